"""Paper-scale text-to-video backbone: the base UNet of configs/base_paper.py without the
right view, on 128x128 clips of 80 frames at 16 fps cut from any directory of videos.

  python -m eye2eye_jax.train --config=configs/backbone_paper.py --workdir=gs://BUCKET/backbone \
      --config.data.manual_dir=/data/videos --config.text.encoder=my_package.t5:encode
  python -m eye2eye_jax.train --config=configs/base_paper.py --workdir=gs://BUCKET/base \
      --config.train.init_checkpoint=gs://BUCKET/backbone

The second run is the conditioning surgery (zero weights on the right view's channels). The
built-in 'hashed_words' encoder is a stand-in; name a real text encoder (a callable
returning (tokens, 256) embeddings) for a real backbone.
"""

import pathlib

from eye2eye_jax.config_base import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name('base_paper.py'))
  c.data.builder = 'video_folder'
  c.data.builder_config = 'clips_128x80'
  c.data.task = 'video'
  c.data.video_field = 'video'
  c.data.view = 'downsample'  # the clips are already 128x128
  c.model.condition_channels = 0
  c.model.text_embed_dim = 256
  c.text.encoder = 'hashed_words'
  c.text.max_tokens = 64
  c.train.caption_dropout = 0.1
  c.train.learning_rate = 1e-4
  c.train.num_steps = 200_000
  return c
