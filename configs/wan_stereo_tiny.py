"""A Wan stereo model of a few hundred thousand parameters, random-initialised, on the tiny
synthetic stereo clips (16x16, 3 frames): the whole Wan path (VAE latents, flow matching,
the right view's latents concatenated at the patch embedding, streamed conversion) small
enough to train and convert on a CPU in seconds. For tests and smoke runs:
``python -m eye2eye_jax.train --config=configs/wan_stereo_tiny.py --workdir=...``.
Its VAE is random too, so what it converts is no picture; the path is what it tests.
"""

import pathlib

from eye2eye_jax.config_base import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name('wan_stereo_1_3b.py'))
  w = c.model.wan
  w.num_attention_heads, w.attention_head_dim, w.ffn_dim, w.num_layers = 2, 24, 96, 2
  w.in_channels, w.out_channels, w.text_dim, w.freq_dim = 4, 4, 16, 16
  w.rope_max_seq_len = 64
  v = c.model.wan_vae
  v.base_dim, v.z_dim, v.dim_mult, v.num_res_blocks = 8, 4, (1, 2, 2), 1
  v.temperal_downsample = (False, True)  # 4x in space, 2x in time: 3 frames -> 2
  v.latents_mean, v.latents_std = (0.0,) * 4, (1.0,) * 4
  c.model.condition_channels = v.z_dim
  c.model.text_embed_dim = w.text_dim
  c.model.dtype, c.model.remat, c.model.attention_kernel = 'float32', 'none', 'xla'
  c.text.encoder, c.text.max_tokens = 'hashed_words', 8
  c.mesh.shape = (-1, 1, 1)
  c.data.builder, c.data.builder_config = 'synthetic_stereo', 'tiny'
  c.data.view, c.data.resolution, c.data.width, c.data.num_frames = 'downsample', 16, 0, 3
  c.data.latents, c.data.batch_size = False, 2  # encoded in the step (tests cover both)
  c.diffusion.schedule = 'flow'
  c.train.init_checkpoint = ''
  c.train.num_steps, c.train.warmup_steps, c.train.learning_rate = 20, 2, 1e-3
  c.train.log_every, c.train.checkpoint_every, c.train.sample_every = 5, 10, 0
  c.sample.base_num_steps, c.sample.window_batch = 4, 2
  c.sample.vae_tile, c.sample.vae_chunk_frames = 0, 2
  return c
