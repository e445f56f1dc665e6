"""Wan 2.1 T2V-14B as released (``ckpt import`` of Wan2.1-T2V-14B-Diffusers writes this
shape): 40 blocks of width 5120, 40 heads, feed-forward 13824; the same video VAE as
1.3B. Settings as ``configs/wan_t2v_1_3b.py``, with a batch of 32 clips; for 720p clips
(75,600 tokens) give the mesh a ``tensor`` axis to split the tokens, e.g.
``--config.mesh.shape='(1,-1,2)'``.
"""

import pathlib

from eye2eye_jax.config_base import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name('wan_t2v_1_3b.py'))
  c.model.wan.num_attention_heads = 40
  c.model.wan.ffn_dim = 13824
  c.model.wan.num_layers = 40
  c.data.batch_size = 32
  return c
