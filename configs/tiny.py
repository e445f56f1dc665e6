"""A tiny model on the 16x16 test dataset; used by the tests and for smoke runs."""

from eye2eye_jax.config_base import base_config


def get_config():
  c = base_config()
  c.data.builder_config = 'tiny'  # 16x16, 4 frames
  c.data.resolution = 8
  c.data.num_frames = 4
  c.data.batch_size = 2
  c.model.channels = 8
  c.model.channel_mult = (1, 2)
  c.model.temporal_downsample = (True,)
  c.model.num_heads = 2
  c.train.num_steps = 20
  c.train.warmup_steps = 2
  c.train.log_every = 5
  c.train.checkpoint_every = 10
  c.train.sample_every = 10
  c.sample.base_num_steps = 4
  c.sample.refiner_num_steps = 3
  c.sample.window_batch = 2
  return c
