"""Demo base model: trains on 2 CPU cores; the bundled checkpoint was made with this config.

  python -m eye2eye_jax.train --config=configs/demo.py --workdir=outputs/demo_train
"""

from eye2eye_jax.config_base import base_config


def get_config():
  c = base_config()
  c.data.builder_config = 'demo'  # 64x64, 8 frames, disparity 0-8 px
  c.data.resolution = 32  # base model: clips downsampled 2x (disparity 0-4 px)
  c.data.num_frames = 4  # a random 4-frame window of each 8-frame record
  c.data.batch_size = 8
  c.model.channels = 16
  c.model.channel_mult = (1, 2, 4)
  c.model.temporal_downsample = (False, True)
  c.train.num_steps = 4000
  c.train.learning_rate = 1e-3
  c.train.warmup_steps = 200
  c.train.checkpoint_every = 250
  c.train.sample_every = 500  # validation anaglyphs and 3D metrics in TensorBoard
  c.sample.checkpoint = 'bundled:demo'
  c.sample.refiner_checkpoint = 'bundled:demo_refiner'
  c.sample.base_num_steps = 25
  c.sample.refiner_num_steps = 12
  # The paper refines from t=0.9. This demo refiner then re-estimates most of the disparity
  # itself (measured: the base resolution's effect on the output nearly vanishes), so the
  # demo refines from 0.6, which keeps the base's 3D-strength control at the same PSNR.
  c.sample.refiner_t_start = 0.6
  return c
