"""Eye2Eye on Wan 2.1 T2V-14B: ``configs/wan_stereo_1_3b.py``'s recipe on the 14B release
(40 blocks of width 5120), a batch of 32 clips. For 720p clips give the mesh a ``tensor``
axis to split the tokens (context parallelism), e.g. ``--config.mesh.shape='(1,-1,4)'`` and
``--config.diffusion.schedule=flow:5`` (Wan's shift for 720p). Start it from
``ckpt import Wan2.1-T2V-14B-Diffusers outputs/wan_t2v_14b``.
"""

import pathlib

from eye2eye_jax.config_base import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name('wan_stereo_1_3b.py'))
  c.model.wan.num_attention_heads = 40
  c.model.wan.ffn_dim = 13824
  c.model.wan.num_layers = 40
  c.data.batch_size = 32
  c.train.init_checkpoint = 'outputs/wan_t2v_14b'
  return c
