"""A text-to-video backbone at demo scale: the demo UNet without the right view, trained on
monocular clips (the right views of the synthetic clips) with their captions.

  python -m eye2eye_jax.train --config=configs/backbone_demo.py --workdir=outputs/backbone
  python -m eye2eye_jax.train --config=configs/demo.py --workdir=outputs/from_backbone \
      --config.train.init_checkpoint=outputs/backbone

The second command is the conditioning surgery (eye2eye_jax/models/surgery.py): the stereo model
starts from the backbone with zero weights on the right view's channels.
"""

import pathlib

from eye2eye_jax.config_base import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name('demo.py'))
  c.data.task = 'video'
  c.data.video_field = 'right'  # any monocular clips; data.builder='video_folder' reads videos
  c.model.condition_channels = 0
  c.model.text_embed_dim = 32
  c.text.encoder = 'hashed_words'
  c.train.caption_dropout = 0.1  # so that text guidance can be used
  c.train.sample_every = 0  # stereo samples need a stereo model
  c.train.eval_every = 100
  c.sample.checkpoint = ''
  c.sample.refiner_checkpoint = ''
  return c
