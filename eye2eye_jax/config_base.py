"""Every field an experiment config has, with defaults; ``configs/*.py`` override them."""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """The full config tree. Experiments change values, never add keys."""
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.builder = 'synthetic_stereo'  # TFDS dataset name
  c.data.builder_config = 'demo'
  c.data.data_dir = ''  # '' -> $TFDS_DATA_DIR, else outputs/tfds
  c.data.view = 'downsample'  # 'downsample' (base model) or 'crop' (refiner)
  c.data.resolution = 32  # side of the square clip the model sees
  c.data.num_frames = 8  # frames per training clip (taken from the start of each record)
  c.data.batch_size = 8  # global batch
  c.data.shuffle_seed = 0
  c.data.num_workers = 0  # grain worker processes (0: in the main process)
  c.data.mirror_augment = True  # mirror both views and swap eyes; keeps disparity >= 0

  c.model = ml_collections.ConfigDict()
  c.model.channels = 32
  c.model.channel_mult = (1, 2, 2)
  c.model.temporal_downsample = (False, True)
  c.model.num_res_blocks = 1
  c.model.num_heads = 4
  c.model.text_embed_dim = 0  # 0: no text conditioning
  c.model.video_channels = 3
  c.model.condition_channels = 3

  c.diffusion = ml_collections.ConfigDict()
  c.diffusion.schedule = 'cosine'
  c.diffusion.prediction = 'v'

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 1000
  c.train.learning_rate = 1e-3
  c.train.warmup_steps = 100
  c.train.weight_decay = 0.0
  c.train.grad_clip_norm = 1.0
  c.train.ema_decay = 0.999
  c.train.log_every = 50
  c.train.checkpoint_every = 500
  c.train.keep_checkpoints = 3

  c.sample = ml_collections.ConfigDict()
  c.sample.num_steps = 50
  c.sample.eta = 0.0
  c.sample.seed = 0
  c.sample.batch_size = 4  # clips per sampler call
  c.sample.checkpoint = ''  # a training workdir, a checkpoint step dir, or 'bundled:demo'
  c.sample.use_ema = True

  return c
