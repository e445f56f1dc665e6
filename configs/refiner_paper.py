"""Paper-scale refiner: random 128x128 crops of 512x512 clips, 80 frames at 16 fps.

Same architecture, conditioning and training hyperparameters as configs/base_paper.py; it
learns full-resolution detail and inpainting and is applied to whole 512x512 frames when
sampling (SDEdit from the upsampled base output at t=0.9, 48 steps).
"""

import pathlib

from eye2eye_jax.config_base import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name('base_paper.py'))
  c.data.view = 'crop'  # 128x128 crops at full (512x512) resolution
  c.data.resolution = 128
  return c
