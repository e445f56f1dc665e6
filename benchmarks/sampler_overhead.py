"""How much of the sampler's time is the UNet, and does a second video compile anything?

  python benchmarks/sampler_overhead.py [--config=configs/demo.py] [--frames=16] [--size=64]

Runs the two-stage pipeline (base, then refiner; random weights of the config's model) on
one video to compile it, then on a second video of the same shape, timing it and counting
JAX compilations. It then times the UNet forward passes that run made, each alone, and
prints wall time / forward time: the pipeline's overhead (1.0 = none; below 1 means the
compiled sampling loop runs the UNet faster than the same calls dispatched one by one).
"""

from __future__ import annotations

import math
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from eye2eye_jax import config_base, runtime, sampling, training  # noqa: E402

_CONFIG = flags.DEFINE_string('config', 'configs/demo.py', 'Config of both models.')
_FRAMES = flags.DEFINE_integer('frames', 16, 'Frames of the test video.')
_SIZE = flags.DEFINE_integer('size', 64, 'Height and width of the test video.')


def _count_compilations():
  counts = {'traces': 0, 'backend_compiles': 0}

  def listener(event, duration, **kwargs):
    if event == '/jax/core/compile/jaxpr_trace_duration':
      counts['traces'] += 1
    elif event == '/jax/core/compile/backend_compile_duration':
      counts['backend_compiles'] += 1

  jax.monitoring.register_event_duration_secs_listener(listener)
  return counts


def _forward_seconds(stage: sampling.Stage, batch: int, height: int, width: int) -> float:
  """Median seconds of one jitted UNet call on ``batch`` windows of the stage's clip length."""
  graphdef = training.model_graphdef(stage.config)
  forward = jax.jit(lambda p, x, c, t: training.make_denoiser(graphdef, p, c)(x, t))
  x = jnp.zeros((batch, stage.num_frames, height, width, 3))
  t = jnp.full((batch,), 0.5)
  forward(stage.params, x, x, t).block_until_ready()
  times = []
  for _ in range(5):
    start = time.perf_counter()
    forward(stage.params, x, x, t).block_until_ready()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def main(argv):
  del argv
  runtime.enable_compilation_cache()
  config = config_base.load_config_file(_CONFIG.value)
  stage = sampling.Stage(config, training.init_params(config, 0))
  sampler = sampling.StereoSampler(stage, stage, config.sample)
  rng = np.random.default_rng(0)
  shape = (_FRAMES.value, _SIZE.value, _SIZE.value, 3)
  sampler.convert(rng.integers(0, 255, shape, np.uint8))  # compiles

  counts = _count_compilations()
  start = time.perf_counter()
  sampler.convert(rng.integers(0, 255, shape, np.uint8))
  wall = time.perf_counter() - start
  compiled = dict(counts)

  s = config.sample
  frames = max(_FRAMES.value, stage.num_frames)
  overlap = s.window_overlap if s.window_overlap >= 0 else stage.num_frames // 2
  windows = len(sampling.window_starts(frames, stage.num_frames, overlap))
  batch = min(int(s.window_batch), windows)
  calls_per_step = math.ceil(windows / batch)
  bh, bw = sampling.base_grid(_SIZE.value, _SIZE.value, sampler.base_short_side,
                              stage.spatial_factor)
  forward = (s.base_num_steps * calls_per_step * _forward_seconds(stage, batch, bh, bw) +
             s.refiner_num_steps * calls_per_step *
             _forward_seconds(stage, batch, _SIZE.value, _SIZE.value))
  print(f'video {shape[:3]}, {windows} windows of {stage.num_frames} frames, '
        f'{s.base_num_steps} base + {s.refiner_num_steps} refiner steps')
  print(f'pipeline wall time        {wall:8.3f} s')
  print(f'UNet forward passes alone {forward:8.3f} s')
  print(f'overhead ratio (wall / forward) {wall / forward:.2f}')
  print(f'second video of the same shape: {compiled["traces"]} traces, '
        f'{compiled["backend_compiles"]} backend compilations (0 and 0 = nothing new)')


if __name__ == '__main__':
  app.run(main)
