"""Demo base model with strength conditioning: asked for a 3D strength, it makes that
multiple of its training data's disparity scale.

  python -m eye2eye_jax.train --config=configs/strength_demo.py \
      --workdir=outputs/strength_demo_train

It starts from the bundled demo base (its strength layers start at zero, so it begins as
that model) and trains on ``diverse_strength``: the ``diverse`` scenes, each training clip
rendered at a baseline of 0.25-2.5, and zoomed in by 1-1.5x by resampling (as real stereo
clips, whose baseline is fixed, would be), each example's strength being baseline x zoom.
"""

import pathlib

from eye2eye_jax.config_base import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name('demo.py'))
  c.data.builder_config = 'diverse_strength'
  c.data.zoom_range = (1.0, 1.5)  # a 43-64 px square of the 64 px frame, down to 32 px
  c.model.strength_conditioning = True
  c.model.strength_range = (0.25, 2.5)
  c.train.init_checkpoint = 'bundled:demo'
  c.train.num_steps = 2000
  c.train.learning_rate = 3e-4
  c.train.warmup_steps = 50
  c.sample.checkpoint = 'bundled:strength_demo'
  c.sample.refiner_checkpoint = 'bundled:strength_refiner_demo'
  return c
