"""Paper-scale base model: 128x128 clips of 80 frames at 16 fps, downsampled from 512x512;
the paper's batch 32, learning rate 2e-5 and 120K steps; sampled with 50 steps and no
guidance, then refined by ``configs/refiner_paper.py``'s model. Trains on accelerators; on
a CPU only shape checks run.
"""

from eye2eye_jax.config_base import base_config


def get_config():
  c = base_config()
  c.data.builder = 'stereo4d'
  c.data.builder_config = 'rectified_512'
  c.data.view = 'downsample'
  c.data.resolution = 128
  c.data.num_frames = 80
  c.data.batch_size = 32
  c.model.channels = 128
  c.model.channel_mult = (1, 2, 4, 4)
  c.model.temporal_downsample = (True, True, True)  # 80 -> 40 -> 20 -> 10 frames
  c.model.num_res_blocks = 2
  c.model.num_heads = 8
  c.diffusion.prediction = 'eps'
  c.diffusion.schedule = 'linear'
  c.train.num_steps = 120_000
  c.train.learning_rate = 2e-5
  c.train.warmup_steps = 1000
  c.train.ema_decay = 0.9999
  c.train.log_every = 100
  c.train.checkpoint_every = 5000
  # Sampling as in the paper: the base at 256 px (trained at 128) with 50 steps, bilinear
  # upsampling, noise to t=0.9 (a cosine-schedule time: signal alpha 0.156, which this linear
  # schedule reaches at its t 0.61; diffusion.noise_level_time), 48 refiner steps; no
  # guidance; 16 fps.
  c.sample.base_resolution = 256
  c.sample.base_num_steps = 50
  c.sample.refiner_num_steps = 48
  c.sample.refiner_t_start = 0.9
  c.sample.guidance_scale = 0.0
  c.sample.model_fps = 16.0
  c.sample.window_batch = 1
  return c
