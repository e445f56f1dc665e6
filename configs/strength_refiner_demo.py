"""Demo refiner with strength conditioning: 32x32 crops of the ``diverse_strength`` clips,
zoomed out by 1-2x by resampling (a 32-64 px square down to 32 px).

  python -m eye2eye_jax.train --config=configs/strength_refiner_demo.py \
      --workdir=outputs/strength_refiner_train
"""

import pathlib

from eye2eye_jax.config_base import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name('strength_demo.py'))
  c.data.view = 'crop'  # full-resolution crops, same crop in both eyes
  c.data.resolution = 32
  c.data.zoom_range = (0.5, 1.0)
  c.train.init_checkpoint = 'bundled:demo_refiner'
  c.train.num_steps = 1000
  return c
