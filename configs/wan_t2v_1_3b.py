"""Wan 2.1 T2V-1.3B as released (``ckpt import`` of Wan2.1-T2V-1.3B-Diffusers writes this
shape): 30 blocks of width 1536, 12 heads, feed-forward 8960; its video VAE. Set for
fine-tuning on TPU slices: bfloat16 compute, each block rematerialised, Pallas flash
attention, weights and optimizer state sharded over every chip (FSDP), the token axis
split over ``tensor`` where a mesh has one (context parallelism). Plan it with
``python -m eye2eye_jax.plan --config=configs/wan_t2v_1_3b.py --topology=v5p-8 --compile``.
"""

from eye2eye_jax.config_base import base_config


def get_config():
  c = base_config()
  c.model.architecture = 'wan'  # model.wan and model.wan_vae default to the 1.3B release
  c.model.text_embed_dim = c.model.wan.text_dim
  c.model.condition_channels = 0
  c.data.task = 'video'  # a backbone: clips alone
  c.diffusion.schedule, c.diffusion.prediction, c.diffusion.clip_x0 = 'flow:3', 'flow', False
  c.model.dtype = 'bfloat16'
  c.model.remat = 'full'
  c.model.attention_kernel = 'pallas_flash'  # TPUs; on GPUs 'cudnn'
  c.text.max_tokens = 512  # umT5 captions, zero-padded as the release pads them
  c.data.batch_size = 4
  c.mesh.shape = (1, -1, 1)  # FSDP over every chip
  c.mesh.rules = tuple(c.mesh.rules) + (('tokens', 'tensor'),)
  c.train.learning_rate = 1e-5
  return c
