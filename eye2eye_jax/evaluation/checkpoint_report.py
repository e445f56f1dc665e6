"""Evaluating a checkpoint: load it, score it and the baselines on a split, write the report.

The library side of ``python -m eye2eye_jax.evaluate``.
"""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
import tqdm

from eye2eye_jax.common import atomic_files, runtime
from eye2eye_jax.data import datasets
from eye2eye_jax.evaluation import evaluator, metrics_report, synthetic_eval
from eye2eye_jax.sampling import video_conversion


def evaluate_checkpoint(config, output_dir: pathlib.Path, checkpoint: str | None = None,
                        refiner_checkpoint: str | None = None, num_clips: int = 32,
                        split: str = 'validation', baselines: bool = True,
                        process_index: int = 0, process_count: int = 1) -> dict | None:
  """Scores the checkpoint (and baselines) on ``split``, writes the report under
  ``output_dir`` and returns the metrics.

  With several processes (hosts; ``output_dir`` shared by them) each samples its share of
  the clips and stores the views under ``output_dir``; process 0 then scores them all,
  writes the report and returns the metrics; the others return None.
  """
  if num_clips < 1:
    raise ValueError(f'--num_clips must be >= 1, got {num_clips}')
  pathlib.Path(output_dir).mkdir(parents=True, exist_ok=True)  # unwritable: fail before work
  data_dir = datasets.resolve_data_dir(config)
  if process_index == 0:  # one process builds it, the others wait for it
    datasets.ensure_dataset(config, data_dir)
  runtime.sync_processes('evaluation dataset ready')
  held_out = evaluator.Evaluator(config, split, data_dir, num_clips, baselines)
  count = len(held_out.records)
  sampler = video_conversion.load_sampler(config, checkpoint, refiner_checkpoint)
  converted = None
  if process_count > 1:
    converted = _convert_on_every_process(sampler, held_out.records, count,
                                          pathlib.Path(output_dir), process_index,
                                          process_count)
    if converted is None:
      return None
  examples = []
  with tqdm.tqdm(total=count, unit='clip', desc='evaluating') as bar:
    metrics = held_out.run(sampler, progress=lambda done: bar.update(1), examples=examples,
                           converted=converted)
  metrics['checkpoint'] = checkpoint or config.sample.checkpoint
  metrics['refiner_checkpoint'] = (config.sample.refiner_checkpoint
                                   if refiner_checkpoint is None else refiner_checkpoint)
  metrics['split'] = split
  metrics_report.write_report(output_dir, metrics, examples)
  if converted is not None:
    shutil.rmtree(pathlib.Path(output_dir) / _SHARED_VIEWS, ignore_errors=True)
  return metrics


_SHARED_VIEWS = '.views_by_process'  # under output_dir, while several processes evaluate


def _convert_on_every_process(sampler, records, count: int, output_dir: pathlib.Path,
                              process_index: int, process_count: int) -> dict | None:
  """Clips ``process_index::process_count`` sampled here and stored under ``output_dir``;
  on process 0, once every process is done, all clips' views (index -> (generated,
  base)); elsewhere None."""
  directory = output_dir / _SHARED_VIEWS
  directory.mkdir(exist_ok=True)
  path = lambda i: directory / f'clip_{i:06d}.npz'
  mine = range(process_index, count, process_count)
  for i in tqdm.tqdm(mine, unit='clip', desc=f'sampling (process {process_index})'):
    generated, base = synthetic_eval.convert_clip(sampler, records[i], i)
    with atomic_files.atomic_path(path(i)) as temporary:  # same suffix: savez adds none
      np.savez(temporary, generated=generated, base=base)
  runtime.sync_processes('evaluation clips sampled')
  if process_index != 0:
    return None
  views = {}
  for i in range(count):
    with np.load(path(i)) as stored:
      views[i] = (stored['generated'], stored['base'])
  return views
