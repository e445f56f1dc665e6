"""Row attention at equal budget: the demo base continued with and without it, evaluated.

  python benchmarks/row_attention_ablation.py [--steps=2000] [--levels=0,1] \
      [--num_clips=32] [--work_dir=outputs/row_attention] [--output=FILE.json]

Both arms start from the bundled demo base (``bundled:demo``) and train the same steps on
the same batches with the same seeds and settings (``configs/demo.py``, held-out losses on
both validation splits every 250 steps); the 'with' arm adds ``model.row_attention`` at
``--levels``, whose layers start as the identity, so both arms start from the same
outputs. Each arm is then evaluated by ``eye2eye_jax.evaluate`` (base + the bundled refiner,
the baselines, both validation splits). Every stage resumes: an arm's training continues
from its last checkpoint and a finished evaluation is kept. Prints and writes (``--output``)
the figures of ``evaluation/split_comparison.headline`` per arm, the issue's goals on
``validation_unseen``, the training curves, and the seconds each arm's steps took; writes
the curves as WORK_DIR/curves.png. About an hour and a half on 2 CPU cores in all.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from benchmarks import common  # noqa: E402
from eye2eye_jax.common import atomic_files  # noqa: E402
from eye2eye_jax.evaluation import split_comparison  # noqa: E402

ARMS = ('without', 'with')
UNSEEN = 'validation_unseen'
_CURVES = ('loss', 'eval/loss', f'eval/loss_{UNSEEN}')


def train_command(work_dir: pathlib.Path, arm: str, steps: int, levels: tuple[int, ...]):
  """The ``train`` command of one arm (the same in both but the row attention)."""
  command = [sys.executable, '-m', 'eye2eye_jax.train', '--config=configs/demo.py',
             f'--workdir={work_dir / arm}', '--config.train.init_checkpoint=bundled:demo',
             f'--config.train.num_steps={steps}', '--config.train.sample_every=0',
             '--config.train.eval_every=250', '--config.train.checkpoint_every=500',
             f"--config.train.eval_splits=('validation','{UNSEEN}')"]
  if arm == 'with':
    command.append(f'--config.model.row_attention={tuple(levels)!r}')
  return command


def evaluate_command(work_dir: pathlib.Path, arm: str, num_clips: int):
  return [sys.executable, '-m', 'eye2eye_jax.evaluate', '--config=configs/demo.py',
          f'--checkpoint={work_dir / arm}', f'--output_dir={work_dir / arm / "eval"}',
          f'--num_clips={num_clips}']


def _run(command: list[str]) -> None:
  print('$', ' '.join(command), flush=True)
  subprocess.run(command, check=True, cwd=common.REPO,
                 env=os.environ | {'TF_CPP_MIN_LOG_LEVEL': '2'})


def scalar_curves(workdir: pathlib.Path) -> dict[str, list[tuple[int, float]]]:
  """(step, value) of each TensorBoard scalar of a training workdir, by tag."""
  import numpy as np
  from tensorboard.backend.event_processing import event_accumulator
  from tensorboard.util import tensor_util
  events = event_accumulator.EventAccumulator(str(workdir), size_guidance={
      event_accumulator.TENSORS: 0, event_accumulator.SCALARS: 0})
  events.Reload()
  curves = {}
  for tag in events.Tags().get('tensors', []):
    values = [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)]
    if values and all(np.size(v) == 1 and np.issubdtype(v.dtype, np.number) for _, v in values):
      curves[tag] = [(step, float(v)) for step, v in values]
  for tag in events.Tags().get('scalars', []):
    curves[tag] = [(e.step, e.value) for e in events.Scalars(tag)]
  return {tag: sorted(dict(points).items()) for tag, points in curves.items()}


def goals(figures: dict) -> dict[str, dict]:
  """The goals on ``validation_unseen`` for the full sampler (``generated``): value, target,
  met. PSNR is read as the share of the way from copy_right to warp_stereo."""
  unseen = figures[UNSEEN]
  value = lambda title, method='generated': unseen[title][method]
  psnr = value('PSNR')
  low, high = value('PSNR', 'copy_right'), value('PSNR', 'warp_stereo')
  rows = {
      'disparity scale': (value('disparity scale'), 'in [0.85, 1.15]',
                          lambda v: 0.85 <= v <= 1.15),
      'Spearman': (value('Spearman'), '>= 0.85', lambda v: v >= 0.85),
      'depth order': (value('depth order'), '>= 0.9', lambda v: v >= 0.9),
      'PSNR, share of the way from copy_right to warp_stereo': (
          (psnr - low) / (high - low), '>= 0.6', lambda v: v >= 0.6),
      'panes closer to the truth than to a single-depth warp': (
          value('panes closer to the truth than to a single-depth warp'), '>= 74%',
          lambda v: v >= 0.74),
      'mirror content closer to the truth than to a single-depth warp': (
          value('mirror content closer to the truth than to a single-depth warp'), '>= 74%',
          lambda v: v >= 0.74),
      'seen minus unseen PSNR (dB)': (split_comparison.seen_minus_unseen_db(figures), '< 3',
                                      lambda v: v < 3),
  }
  return {name: {'value': v, 'target': target, 'met': v is not None and bool(test(v))}
          for name, (v, target, test) in rows.items()}


def summarise(work_dir: pathlib.Path, steps: int, levels: tuple[int, ...]) -> dict:
  """Each arm's evaluation headline, goals, curves and training seconds."""
  arms = {}
  for arm in ARMS:
    figures = json.loads((work_dir / arm / 'eval' / 'splits.json').read_text())
    curves = scalar_curves(work_dir / arm)
    step_seconds = [seconds for _, seconds in curves.get('seconds_per_step', [])]
    arms[arm] = {
        'figures': figures,
        'goals': goals(figures),
        'curves': {tag: curves.get(tag, []) for tag in _CURVES},
        'train_seconds': (steps * sum(step_seconds) / len(step_seconds)
                          if step_seconds else None),
    }
  return {'steps': steps, 'row_attention_levels': list(levels), 'arms': arms}


def plot_curves(result: dict, path: pathlib.Path) -> None:
  """Training loss and both held-out losses of both arms, against the step."""
  import matplotlib
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt
  figure, axes = plt.subplots(1, len(_CURVES), figsize=(4 * len(_CURVES), 3.2))
  for axis, tag in zip(axes, _CURVES):
    for arm, style in zip(ARMS, ('-', '--')):
      points = result['arms'][arm]['curves'][tag]
      if points:
        axis.plot(*zip(*points), style, label=f'{arm} row attention')
    axis.set_title(tag)
    axis.set_xlabel('step')
  axes[0].legend()
  figure.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  figure.savefig(path, dpi=100)
  plt.close(figure)


def _cell(value, spec: str) -> str:
  return '–' if value is None else format(value, spec)


def table(result: dict) -> str:
  """A row per figure and split: both arms side by side, then the goals on the unseen split
  and the final held-out losses."""
  arms = result['arms']
  lines = ['| figure (full sampler) | split | without row attention | with row attention |',
           '|---|---|---|---|']
  for title in arms['without']['figures']['validation']:
    for split in ('validation', UNSEEN):
      cells = [_cell(arms[a]['figures'][split][title]['generated'],
                     split_comparison.figure_spec(title)) for a in ARMS]
      lines.append(f'| {title} | {split} | ' + ' | '.join(cells) + ' |')
  raw = [_cell(split_comparison.seen_minus_unseen_db(arms[a]['figures']), '.2f') for a in ARMS]
  lines.append('| seen minus unseen PSNR (dB) | both | ' + ' | '.join(raw) + ' |')
  gap = [_cell(arms[a]['figures']['generalisation_gap_db'], '.2f') for a in ARMS]
  lines.append('| the same, less copy_right\'s (dB) | both | ' + ' | '.join(gap) + ' |')
  for tag in _CURVES[1:]:
    final = [_cell(arms[a]['curves'][tag][-1][1] if arms[a]['curves'][tag] else None, '.4f')
             for a in ARMS]
    lines.append(f'| final held-out loss ({tag}) | – | ' + ' | '.join(final) + ' |')
  seconds = [_cell(arms[a]['train_seconds'] and arms[a]['train_seconds'] / 60, '.0f')
             for a in ARMS]
  lines.append(f'| minutes of training steps ({result["steps"]}) | – | ' + ' | '.join(seconds)
               + ' |')
  lines += ['', f'*Goals on {UNSEEN}*', '',
            '| goal | target | without | with |', '|---|---|---|---|']
  for name, row in arms['with']['goals'].items():
    cells = []
    for arm in ARMS:
      goal = arms[arm]['goals'][name]
      spec = '.0%' if '%' in goal['target'] else '.2f'
      cells.append(f'{_cell(goal["value"], spec)} ({"met" if goal["met"] else "not met"})')
    lines.append(f'| {name} | {row["target"]} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def curve_table(result: dict) -> str:
  """The training curves: at every held-out evaluation, each arm's training loss (the mean
  since the previous log) and held-out losses on both splits."""
  arms = result['arms']
  lookup = {(arm, tag): dict(arms[arm]['curves'][tag]) for arm in ARMS for tag in _CURVES}
  steps = sorted(dict(arms['without']['curves']['eval/loss']))
  header = ' | '.join(f'{tag} {arm}' for tag in _CURVES for arm in ARMS)
  lines = [f'| step | {header} |', '|---' * (1 + len(_CURVES) * len(ARMS)) + '|']
  for step in steps:
    cells = [_cell(lookup[arm, tag].get(step), '.4f') for tag in _CURVES for arm in ARMS]
    lines.append(f'| {step} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--steps', type=int, default=2000)
  parser.add_argument('--levels', default='0,1', help='levels given row attention')
  parser.add_argument('--num_clips', type=int, default=32)
  parser.add_argument('--work_dir', default='outputs/row_attention')
  parser.add_argument('--output', help='also write the figures here as JSON')
  args = parser.parse_args()
  levels = tuple(int(x) for x in args.levels.split(','))
  work_dir = pathlib.Path(args.work_dir).resolve()
  for arm in ARMS:
    _run(train_command(work_dir, arm, args.steps, levels))
    if not (work_dir / arm / 'eval' / 'splits.json').exists():
      _run(evaluate_command(work_dir, arm, args.num_clips))
  result = summarise(work_dir, args.steps, levels)
  plot_curves(result, work_dir / 'curves.png')
  print(table(result))
  print(curve_table(result))
  if args.output:
    atomic_files.write_text(args.output, json.dumps(result, indent=1) + '\n')


if __name__ == '__main__':
  main()
