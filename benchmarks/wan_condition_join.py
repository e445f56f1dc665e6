"""The right view by channels or along time: the two ways a Wan stereo model can take it,
trained side by side at tiny scale.

  python benchmarks/wan_condition_join.py --output=FILE.json [--steps=400] [--workdir=DIR]

Trains ``configs/wan_stereo_tiny.py`` twice on the synthetic ``demo`` clips (32 px, 5 frames,
encoded in the step by the same random VAE), the same batches, noise, seeds and steps:
``model.condition_join='channels'`` (the paper's concatenation at the patch embedding) and
``'frames'`` (StereoPilot's and StereoWorld's join along time: twice the tokens). Records
each arm's held-out flow-matching loss curve (fixed validation batches and noise), its
FLOPs per step (XLA's count) and its seconds per step on this machine, and the planner's
FLOPs of one evaluation of the 1.3B model on an 81-frame 832x480 clip joined each way.
Runs resume from their checkpoints.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from benchmarks import common  # noqa: E402
from eye2eye_jax.common import atomic_files  # noqa: E402
from eye2eye_jax.planning import compiled_programs, wan_plan  # noqa: E402
from eye2eye_jax.training import loop, train_state  # noqa: E402

ARMS = ('channels', 'frames')


def arm_config(join: str, steps: int):
  config = common.load_config('configs/wan_stereo_tiny.py')
  config.model.condition_join = join
  config.data.builder_config, config.data.resolution, config.data.num_frames = 'demo', 32, 5
  config.data.batch_size = 8
  config.train.num_steps, config.train.warmup_steps = steps, 20
  config.train.eval_every, config.train.eval_batches = max(steps // 8, 1), 4
  config.train.checkpoint_every, config.train.log_every = max(steps // 4, 1), 25
  config.train.caption_dropout = 0.0
  return config


def run_arm(join: str, steps: int, workdir: pathlib.Path) -> dict:
  kept = workdir / join / 'curve.json'  # a resumed run keeps what it measured before
  record = json.loads(kept.read_text()) if kept.exists() else {'curve': {}, 'seconds': []}

  def on_metrics(step, scalars):
    if 'eval/loss' in scalars:
      record['curve'][str(step)] = float(scalars['eval/loss'])
    if 'seconds_per_step' in scalars:
      record['seconds'].append(float(scalars['seconds_per_step']))
    atomic_files.write_text(kept, json.dumps(record))

  started = time.time()
  config = arm_config(join, steps)
  loop.train_and_evaluate(config, str(workdir / join), on_metrics=on_metrics)
  state = compiled_programs.abstract_train_state(config)
  batch = compiled_programs.batch_struct(config, config.data.batch_size)
  paper = common.load_config('configs/wan_stereo_1_3b.py')
  paper.model.condition_join = join
  seconds = sorted(record['seconds'])
  return {'held_out_loss': dict(sorted(record['curve'].items(), key=lambda kv: int(kv[0]))),
          'seconds_per_step': seconds[len(seconds) // 2] if seconds else None,
          'gflop_per_step': train_state.micro_batch_flops(config, state['params'], batch) / 1e9,
          'paper_forward_tflop': wan_plan.forward_flops(paper, wan_plan.DEFAULT_VIDEO, 1) / 1e12,
          'wall_s': time.time() - started}


def table(result: dict) -> str:
  """A row per arm: the held-out loss at the first and last evaluation, FLOPs and time per
  step, relative to channels."""
  lines = ['| right view joined by | held-out loss, first | held-out loss, last | '
           'GFLOP per step | seconds per step (CPU) | 1.3B at 81x480x832: TFLOP per '
           'evaluation |', '|---|---|---|---|---|---|']
  for join, row in result['arms'].items():
    losses = list(row['held_out_loss'].items())
    flops = '–' if row['gflop_per_step'] is None else f'{row["gflop_per_step"]:.2f}'
    timing = '–' if row['seconds_per_step'] is None else f'{row["seconds_per_step"]:.3f}'
    lines.append(f'| {join} | {losses[0][1]:.4f} (step {losses[0][0]}) | '
                 f'{losses[-1][1]:.4f} (step {losses[-1][0]}) | {flops} | {timing} | '
                 f'{row["paper_forward_tflop"]:.0f} |')
  return '\n'.join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--steps', type=int, default=400)
  parser.add_argument('--workdir', default='outputs/condition_join')
  parser.add_argument('--output', help='write the figures here as JSON')
  args = parser.parse_args()
  result = {'steps': args.steps, 'arms': {}}
  for join in ARMS:
    result['arms'][join] = run_arm(join, args.steps, pathlib.Path(args.workdir))
  if args.output:
    atomic_files.write_text(args.output, json.dumps(result, indent=1) + '\n')
  print(table(result))


if __name__ == '__main__':
  main()
