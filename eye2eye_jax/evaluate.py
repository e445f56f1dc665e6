"""Evaluates a checkpoint against the baselines on held-out stereo clips (synthetic or real).

  python -m eye2eye_jax.evaluate --config=configs/demo.py --checkpoint=bundled:demo \
      --output_dir=outputs/eval [--refiner_checkpoint=bundled:demo_refiner] [--num_clips=32]

Runs the sampler (base + refiner when one is named) and the baselines (true left view,
copy-right, global shift, warp-and-inpaint) on the first ``--num_clips`` clips of the
dataset's validation split, and writes DIR/metrics.json (every figure), DIR/report.md (a
table per layer type, disparity statistics, plots) and DIR/plots/*.png. A synthetic
dataset with held-out texture families also has ``validation_unseen``: then both splits
are evaluated (or those ``--split`` lists), each into DIR/<split>/, and DIR/report.md
sets them side by side (``evaluation/split_comparison.py``). On a dataset of
real rectified pairs (``data.builder='stereo4d'``) the figures are those that need no true
depth: image metrics, disparity statistics and agreement with the true pair's disparity
(``evaluation/pair_eval.py``). Every device of a
process is used (``sample.mesh_shape``); several processes (as for ``sample``) sample a
share of the clips each, and process 0 scores them all and writes the report (DIR must be
shared by them).

The comfort report of any stereo video, without a model or a dataset:

  python -m eye2eye_jax.evaluate --stereo_report=MOVIE_LRF_Full_SBS.mp4 --output_dir=DIR
  python -m eye2eye_jax.evaluate --stereo_report=LEFT.mp4,RIGHT.mp4 --output_dir=DIR

writes DIR/<stem>_stereo.json and DIR/<stem>_stereo.png (``evaluation/stereo_file_report.py``)
and prints the verdict. The layout comes from the file's name or shape, or
``--stereo_layout`` (sbs, half_sbs, tb, half_tb); the limits from ``--config``'s
``sample.comfort`` (default: the defaults). The file streams through; ``--report_every=N``
measures one pair of frames in N, and an interrupted run resumes.
"""

from __future__ import annotations

import pathlib

import jax
from absl import flags, logging

from eye2eye_jax import config_base
from eye2eye_jax.common import cli_flags, runtime
from eye2eye_jax.evaluation import checkpoint_report, split_comparison, stereo_file_report

_HOSTS_WAIT_S = 24 * 3600  # how long a process that is done waits for process 0's report
_CONFIG = cli_flags.define_config()
_CHECKPOINT, _REFINER = cli_flags.define_checkpoints()
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where the report is written.')
_NUM_CLIPS = flags.DEFINE_integer('num_clips', 32, 'Validation clips evaluated.')
_SPLIT = flags.DEFINE_list('split', [], 'Dataset splits evaluated (comma-separated); '
                           'default: validation, and validation_unseen where the dataset '
                           'has it.')
_BASELINES = flags.DEFINE_bool('baselines', True,
                               'Also run global shift and warp-and-inpaint.')
_STEREO_REPORT = flags.DEFINE_list('stereo_report', [],
                                   'A stereo video (or LEFT,RIGHT videos): write its comfort '
                                   'report instead of evaluating a checkpoint.')
_STEREO_LAYOUT = flags.DEFINE_string('stereo_layout', '', 'Layout of the --stereo_report '
                                     'file: sbs, half_sbs, tb or half_tb (default: from its '
                                     'name or shape).')
_REPORT_EVERY = flags.DEFINE_integer('report_every', 1, 'Measure one pair of consecutive '
                                     'frames in this many (1: every frame).')


def main(argv):
  if _STEREO_REPORT.value:
    _stereo_report(argv)
    return
  cli_flags.require(argv, config=_CONFIG.value, output_dir=_OUTPUT_DIR.value)
  runtime.enable_compilation_cache()
  logging.set_verbosity(logging.WARNING)
  runtime.initialize_distributed(shutdown_timeout_s=_HOSTS_WAIT_S)
  output_dir = pathlib.Path(_OUTPUT_DIR.value)
  with cli_flags.exit_on_error():
    splits = _SPLIT.value or split_comparison.default_splits(_CONFIG.value)
    by_split = {}
    for split in splits:
      metrics = checkpoint_report.evaluate_checkpoint(
          _CONFIG.value, output_dir / split if len(splits) > 1 else output_dir,
          _CHECKPOINT.value, _REFINER.value, _NUM_CLIPS.value, split, _BASELINES.value,
          jax.process_index(), jax.process_count())
      if metrics is None:  # another process writes the report
        print(f'process {jax.process_index()}: sampled its share of {split}; process 0 '
              'writes the report')
        continue
      print(f'{split}:')
      _print_summary(metrics)
      by_split[split] = metrics
    if len(by_split) > 1:
      print(f'Splits side by side: {split_comparison.write_comparison(output_dir, by_split)}')
    elif by_split:
      print(f'Report: {output_dir / "report.md"}; figures: {output_dir / "metrics.json"}')


def _stereo_report(argv) -> None:
  """``--stereo_report``: the comfort report of a stereo video file (or pair of files)."""
  cli_flags.require(argv, output_dir=_OUTPUT_DIR.value)
  with cli_flags.exit_on_error():
    config = _CONFIG.value or config_base.base_config()
    source = stereo_file_report.open_source(_STEREO_REPORT.value, _STEREO_LAYOUT.value)
    data = stereo_file_report.report_file(source, _OUTPUT_DIR.value, config.sample,
                                          _REPORT_EVERY.value)
  summary = data['summary']
  print(f'{source.stem} ({source.layout}, eyes {source.eye_width}x{source.eye_height}, '
        f'{summary["frames_analysed"]} frames measured): 3D {data["verdict"]}')
  d = summary['disparity']
  if d['p50'] is not None:
    print(f'  disparity 5/50/95%: {100 * d["p05"]:.2f} / {100 * d["p50"]:.2f} / '
          f'{100 * d["p95"]:.2f} % of the width (in front of the screen > 0)')
  print(f'Report: {pathlib.Path(_OUTPUT_DIR.value) / (source.stem + "_stereo.json")} and '
        f'_stereo.png')


def _print_summary(metrics: dict) -> None:
  for method in metrics['methods']:
    image = metrics['image'].get(method, {})
    psnr = f'{image["psnr"]:6.2f} dB' if image else '   -     '
    if 'geometry' in metrics:  # synthetic clips: scale from the true layer disparities
      scale = f'disparity scale {metrics["geometry"][method]["all"]["scale"]:.2f}'
    else:  # real pairs: scale against the disparity of the true pair
      agreement = metrics['agreement'][method]['scale']
      scale = 'agreement scale ' + ('-' if agreement is None else f'{agreement:.2f}')
    print(f'  {method:13s} PSNR {psnr}  {scale}')


if __name__ == '__main__':
  cli_flags.run(main)
