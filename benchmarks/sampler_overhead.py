"""How much of the sampler's time is the UNet, and does a second video compile anything?

  python benchmarks/sampler_overhead.py [--config=configs/demo.py] [--frames=16] [--size=64]

Runs the two-stage pipeline (base, then refiner; random weights of the config's model) on
one video to compile it, then on a second video of the same shape, timing it and counting
JAX compilations. It then times the UNet forward passes that run made, each alone, and
prints wall time / forward time: the pipeline's overhead (1.0 = none; below 1 means the
compiled sampling loop runs the UNet faster than the same calls dispatched one by one).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from benchmarks import common  # noqa: E402
from eye2eye_jax.common import runtime  # noqa: E402
from eye2eye_jax.models import unet  # noqa: E402
from eye2eye_jax.sampling import stereo_sampler, window_blending  # noqa: E402

FIGURES = {
    'sampler_overhead': 'sampler wall time over the time of the UNet forward passes it made '
                        '(1 = no overhead)',
}


@contextlib.contextmanager
def count_compilations():
  """Counts JAX traces and backend compilations inside the block."""
  counts = {'traces': 0, 'backend_compiles': 0}

  def listener(event, duration, **kwargs):
    del duration, kwargs
    if event == '/jax/core/compile/jaxpr_trace_duration':
      counts['traces'] += 1
    elif event == '/jax/core/compile/backend_compile_duration':
      counts['backend_compiles'] += 1

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield counts
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)


def _forward_seconds(stage: stereo_sampler.Stage, batch: int, height: int, width: int) -> float:
  """Median seconds of one jitted UNet call on ``batch`` windows of the stage's clip length."""
  graphdef = unet.model_graphdef(stage.config)
  forward = jax.jit(lambda p, x, c, t: unet.make_denoiser(graphdef, p, c)(x, t))
  x = jnp.zeros((batch, stage.num_frames, height, width, 3))
  t = jnp.full((batch,), 0.5)
  return common.median_seconds(lambda: forward(stage.params, x, x, t), repeats=5)


def measure(config: str = 'configs/demo.py', frames: int = 16, size: int = 64,
            base_num_steps: int = 0, refiner_num_steps: int = 0) -> dict:
  """Wall time of a compiled two-stage conversion over its UNet forward passes' time.

  ``base_num_steps`` / ``refiner_num_steps``: 0 keeps the config's.
  """
  cfg = common.load_config(config)
  s = cfg.sample
  s.base_num_steps = base_num_steps or s.base_num_steps
  s.refiner_num_steps = refiner_num_steps or s.refiner_num_steps
  stage = stereo_sampler.Stage(cfg, unet.init_params(cfg, 0))
  sampler = stereo_sampler.StereoSampler(stage, stage, s)
  rng = np.random.default_rng(0)
  shape = (frames, size, size, 3)
  sampler.convert(rng.integers(0, 255, shape, np.uint8))  # compiles

  video = rng.integers(0, 255, shape, np.uint8)
  with count_compilations() as counts:
    start = time.perf_counter()
    sampler.convert(video)
    wall = time.perf_counter() - start

  padded = max(frames, stage.num_frames)
  overlap = s.window_overlap if s.window_overlap >= 0 else stage.num_frames // 2
  windows = len(window_blending.window_starts(padded, stage.num_frames, overlap))
  batch = window_blending.group_size(windows, int(s.window_batch), sampler.mesh)
  calls_per_step = math.ceil(windows / batch)
  bh, bw = stereo_sampler.base_grid(size, size, sampler.base_short_side, stage.spatial_factor)
  forward = (s.base_num_steps * calls_per_step * _forward_seconds(stage, batch, bh, bw) +
             s.refiner_num_steps * calls_per_step * _forward_seconds(stage, batch, size, size))
  return {
      'figures': {'sampler_overhead': wall / forward},
      'details': {'config': config, 'video_shape': list(shape[:3]), 'windows': windows,
                  'window_frames': stage.num_frames, 'base_num_steps': s.base_num_steps,
                  'refiner_num_steps': s.refiner_num_steps, 'wall_seconds': wall,
                  'forward_seconds': forward, 'second_video_traces': counts['traces'],
                  'second_video_backend_compiles': counts['backend_compiles']},
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='configs/demo.py', help='Config of both models.')
  parser.add_argument('--frames', type=int, default=16, help='Frames of the test video.')
  parser.add_argument('--size', type=int, default=64, help='Height and width of the video.')
  args = parser.parse_args(argv)
  runtime.enable_compilation_cache()
  d = measure(args.config, args.frames, args.size)['details']
  print(f'video {tuple(d["video_shape"])}, {d["windows"]} windows of {d["window_frames"]} '
        f'frames, {d["base_num_steps"]} base + {d["refiner_num_steps"]} refiner steps')
  print(f'pipeline wall time        {d["wall_seconds"]:8.3f} s')
  print(f'UNet forward passes alone {d["forward_seconds"]:8.3f} s')
  print(f'overhead ratio (wall / forward) {d["wall_seconds"] / d["forward_seconds"]:.2f}')
  print(f'second video of the same shape: {d["second_video_traces"]} traces, '
        f'{d["second_video_backend_compiles"]} backend compilations (0 and 0 = nothing new)')


if __name__ == '__main__':
  main()
