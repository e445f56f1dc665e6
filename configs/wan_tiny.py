"""A Wan 2.1 of a few hundred thousand parameters: the shapes of the tiny release the tests
import (tests/fixtures/wan_release; 2 blocks of width 24, a VAE of 8 base channels and 4
latent channels), with ``configs/wan_t2v_1_3b.py``'s settings. For tests and for trying
the Wan commands on a CPU, e.g. ``python -m eye2eye_jax.plan --config=configs/wan_tiny.py
--topology=v5p-8 --video=160x128x9``.
"""

import pathlib

from eye2eye_jax.config_base import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name('wan_t2v_1_3b.py'))
  w = c.model.wan
  w.num_attention_heads, w.attention_head_dim, w.ffn_dim, w.num_layers = 2, 12, 40, 2
  w.in_channels, w.out_channels, w.text_dim, w.freq_dim = 4, 4, 32, 16
  w.rope_max_seq_len = 64
  v = c.model.wan_vae
  v.base_dim, v.z_dim, v.dim_mult = 8, 4, (1, 2, 2, 2)
  v.latents_mean, v.latents_std = (0.0,) * 4, (1.0,) * 4
  c.model.text_embed_dim = w.text_dim
  c.text.max_tokens = 16
  return c
