"""Evaluating a checkpoint: load it, score it and the baselines on a split, write the report.

The library side of ``python -m eye2eye_jax.evaluate``.
"""

from __future__ import annotations

import pathlib

import tqdm

from eye2eye_jax.data import datasets
from eye2eye_jax.evaluation import metrics_report, synthetic_eval
from eye2eye_jax.sampling import video_conversion


def evaluate_checkpoint(config, output_dir: pathlib.Path, checkpoint: str | None = None,
                        refiner_checkpoint: str | None = None, num_clips: int = 32,
                        split: str = 'validation', baselines: bool = True) -> dict:
  """Scores the checkpoint (and baselines) on ``split``, writes the report under
  ``output_dir`` and returns the metrics."""
  if num_clips < 1:
    raise ValueError(f'--num_clips must be >= 1, got {num_clips}')
  pathlib.Path(output_dir).mkdir(parents=True, exist_ok=True)  # unwritable: fail before work
  params = synthetic_eval.scene_params(config)
  data_dir = datasets.resolve_data_dir(config)
  datasets.ensure_dataset(config, data_dir)
  records = datasets.data_source(config, split, data_dir)
  count = min(num_clips, len(records))
  sampler = video_conversion.load_sampler(config, checkpoint, refiner_checkpoint)
  examples = []
  with tqdm.tqdm(total=count, unit='clip', desc='evaluating') as bar:
    metrics = synthetic_eval.evaluate(
        sampler, (records[i] for i in range(count)), params, baselines=baselines,
        progress=lambda done: bar.update(1), examples=examples)
  metrics['checkpoint'] = checkpoint or config.sample.checkpoint
  metrics['refiner_checkpoint'] = (config.sample.refiner_checkpoint
                                   if refiner_checkpoint is None else refiner_checkpoint)
  metrics['split'] = split
  metrics_report.write_report(output_dir, metrics, examples)
  return metrics
