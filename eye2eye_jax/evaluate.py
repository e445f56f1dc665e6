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
"""

from __future__ import annotations

import pathlib

import jax
from absl import flags, logging

from eye2eye_jax.common import cli_flags, runtime
from eye2eye_jax.evaluation import checkpoint_report, split_comparison

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


def main(argv):
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
