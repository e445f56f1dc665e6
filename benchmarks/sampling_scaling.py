"""How does the cost of converting a video grow with its length and its frame size?

  python benchmarks/sampling_scaling.py [--config=configs/demo.py] [--frames=4] [--size=32]

Converts videos of ``frames`` x ``size`` x ``size`` with the two-stage sampler (random
weights of the config's model), then of 2x and 4x the frames and of 2x and 4x the side,
each after a warm-up call that compiles its shape, and prints the time of each over the
base shape's. Windows of the model's clip length overlap by half, so more frames cost in
proportion to the windows; the base stage samples at a fixed short side, so a larger frame
grows only the refiner's share.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from benchmarks import common  # noqa: E402
from eye2eye_jax.common import runtime  # noqa: E402
from eye2eye_jax.models import unet  # noqa: E402
from eye2eye_jax.sampling import stereo_sampler  # noqa: E402

FIGURES = {
    'frames_2x_time': 'conversion time at 2x the frames over the base shape\'s',
    'frames_4x_time': 'conversion time at 4x the frames over the base shape\'s',
    'side_2x_time': 'conversion time at 2x the height and width over the base shape\'s',
    'side_4x_time': 'conversion time at 4x the height and width over the base shape\'s',
}
_SHAPES = {'base': (1, 1), 'frames_2x': (2, 1), 'frames_4x': (4, 1), 'side_2x': (1, 2),
           'side_4x': (1, 4)}


def measure(config: str = 'configs/demo.py', frames: int = 4, size: int = 32,
            base_num_steps: int = 0, refiner_num_steps: int = 0, repeats: int = 5,
            refiner: bool = True) -> dict:
  """Seconds of a compiled conversion per video shape, and their ratios to the base shape.

  ``refiner=False`` samples with the base stage alone (fewer programs to compile).
  """
  cfg = common.load_config(config)
  s = cfg.sample
  s.base_num_steps = base_num_steps or s.base_num_steps
  s.refiner_num_steps = refiner_num_steps or s.refiner_num_steps
  stage = stereo_sampler.Stage(cfg, unet.init_params(cfg, 0))
  sampler = stereo_sampler.StereoSampler(stage, stage if refiner else None, s)
  rng = np.random.default_rng(0)
  seconds = {}
  for name, (frame_factor, side_factor) in _SHAPES.items():
    video = rng.integers(0, 255, (frames * frame_factor, size * side_factor,
                                  size * side_factor, 3), np.uint8)
    seconds[name] = common.median_seconds(lambda: sampler.convert(video), repeats)
  return {
      'figures': {f'{name}_time': seconds[name] / seconds['base']
                  for name in _SHAPES if name != 'base'},
      'details': {'config': config, 'base_shape': [frames, size, size],
                  'base_num_steps': s.base_num_steps, 'refiner': refiner,
                  'refiner_num_steps': s.refiner_num_steps, 'seconds': seconds},
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='configs/demo.py')
  parser.add_argument('--frames', type=int, default=4)
  parser.add_argument('--size', type=int, default=32)
  parser.add_argument('--base_num_steps', type=int, default=0, help='0: the config\'s')
  parser.add_argument('--refiner_num_steps', type=int, default=0, help='0: the config\'s')
  parser.add_argument('--no_refiner', action='store_true', help='Base stage alone.')
  args = parser.parse_args(argv)
  runtime.enable_compilation_cache()
  result = measure(args.config, args.frames, args.size, args.base_num_steps,
                   args.refiner_num_steps, refiner=not args.no_refiner)
  for name, value in result['details']['seconds'].items():
    ratio = result['figures'].get(f'{name}_time', 1.0)
    print(f'{name:10s} {value:8.3f} s  x{ratio:.2f}')


if __name__ == '__main__':
  main()
