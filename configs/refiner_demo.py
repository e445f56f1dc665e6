"""Demo refiner: random 32x32 crops of the 64x64 demo clips (the base sees them at 32x32).

  python -m eye2eye_jax.train --config=configs/refiner_demo.py --workdir=outputs/refiner_train
"""

import pathlib

from eye2eye_jax.config_base import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name('demo.py'))
  c.data.view = 'crop'  # full-resolution crops, same crop in both eyes
  c.data.resolution = 32
  # Same architecture as the base: start from its weights, which already know stereo.
  c.train.init_checkpoint = 'bundled:demo'
  c.train.num_steps = 1500
  c.train.warmup_steps = 100
  return c
