"""How close does the train step get to the device's matmul speed?

  python benchmarks/train_step_flops.py [--config=configs/demo.py] [--matmul_size=1024]

Compiles the train step of a config as the trainer does (AdamW, EMA; random batches of its
clip shape), on one device, and a square float32 matmul, takes each program's FLOPs from
XLA's cost analysis, times the compiled calls, and prints the train step's achieved FLOP/s
as a fraction of the matmul's: a figure that compares across machines (1.0 = the step runs
as fast as a large matmul). On a CPU that matmul rate is the peak the training log's MFU
divides by (``eye2eye_jax.planning.peak_flops``), so this figure is the MFU a run logs.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import jax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from benchmarks import common  # noqa: E402
from eye2eye_jax.common import runtime, sharding  # noqa: E402
from eye2eye_jax.planning import peak_flops  # noqa: E402
from eye2eye_jax.training import step_figures, train_state  # noqa: E402

FIGURES = {
    'train_step_flops_vs_matmul': 'train step FLOP/s (XLA FLOPs / step time) over a large '
                                  'matmul\'s FLOP/s',
}


def random_batch(config, seed: int = 0) -> dict:
  """A batch of the config's training shape, values in [-1, 1]."""
  d = config.data
  shape = (d.batch_size, d.num_frames, d.resolution, d.resolution, 3)
  right, left = jax.random.split(jax.random.PRNGKey(seed))
  return {'right': jax.random.uniform(right, shape, minval=-1, maxval=1),
          'left': jax.random.uniform(left, shape, minval=-1, maxval=1)}


def time_train_step(config, repeats: int = 5) -> tuple[float, float]:
  """(median seconds, FLOPs) of one train step of ``config`` compiled as the trainer
  compiles it, on one device; the FLOPs are the trainer's (``step_figures.flops_per_device``)."""
  mesh = sharding.create_mesh(config, jax.devices()[:1])
  rules = config.mesh.rules
  abstract = jax.eval_shape(lambda: train_state.init_train_state(config))
  state_shardings = sharding.state_shardings(abstract, mesh, rules)
  batch_sharding = sharding.batch_shardings(mesh, rules, {'right': 5, 'left': 5})
  state = train_state.init_sharded_train_state(config, state_shardings)
  batch = jax.device_put(random_batch(config), batch_sharding)
  step = train_state.make_train_step(config, state_shardings, batch_sharding)
  compiled = step.lower(state, batch).compile()
  holder = {'state': state}

  def run():  # the state is donated: each call continues from the last one's
    holder['state'], metrics = compiled(holder['state'], batch)
    return metrics

  return (common.median_seconds(run, repeats),
          step_figures.flops_per_device(config, state, batch, num_devices=1))


def measure(config: str = 'configs/demo.py', batch_size: int = 0, matmul_size: int = 1024,
            repeats: int = 5) -> dict:
  """The train step's achieved FLOP/s over the matmul's, and what they were made of."""
  cfg = common.load_config(config)
  if batch_size:
    cfg.data.batch_size = batch_size
  step_s, step_flops = time_train_step(cfg, repeats)
  step_rate = step_flops / step_s
  matmul_rate = peak_flops.measured_matmul_flops(size=matmul_size, repeats=repeats)
  return {
      'figures': {'train_step_flops_vs_matmul': step_rate / matmul_rate},
      'details': {'config': config, 'batch_size': cfg.data.batch_size,
                  'clip_shape': [cfg.data.num_frames, cfg.data.resolution,
                                 cfg.data.resolution],
                  'train_step_seconds': step_s, 'train_step_gflop': step_flops / 1e9,
                  'train_step_gflops_per_s': step_rate / 1e9, 'matmul_size': matmul_size,
                  'matmul_gflops_per_s': matmul_rate / 1e9},
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='configs/demo.py')
  parser.add_argument('--batch_size', type=int, default=0, help='0: the config\'s')
  parser.add_argument('--matmul_size', type=int, default=1024)
  parser.add_argument('--repeats', type=int, default=5)
  args = parser.parse_args(argv)
  runtime.enable_compilation_cache()
  result = measure(args.config, args.batch_size, args.matmul_size, args.repeats)
  d = result['details']
  print(f'train step: {d["train_step_gflop"]:.2f} GFLOP in {d["train_step_seconds"] * 1e3:.1f} '
        f'ms = {d["train_step_gflops_per_s"]:.1f} GFLOP/s; {d["matmul_size"]}^2 matmul: '
        f'{d["matmul_gflops_per_s"]:.1f} GFLOP/s')
  print(f'train step / matmul FLOP/s = {result["figures"]["train_step_flops_vs_matmul"]:.3f}')


if __name__ == '__main__':
  main()
