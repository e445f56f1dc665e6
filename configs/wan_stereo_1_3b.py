"""Eye2Eye on Wan 2.1 T2V-1.3B: the released text-to-video model fine-tuned into a
video-to-stereo model. The right view's VAE latents are concatenated to the noisy left
latents at the patch embedding (zero-initialised by the checkpoint surgery, so step 0
predicts what the backbone predicts); trained with Wan's flow matching (timestep shift 3,
as Wan samples 480p); captions embedded by umT5. Full fine-tuning of the transformer on
TPU slices: bfloat16 compute, each block rematerialised, Pallas flash attention, FSDP over
every chip and the token axis split over ``tensor`` where a mesh has one.

Start it from an imported release (``docs/wan.md``)::

  python -m eye2eye_jax.ckpt import Wan2.1-T2V-1.3B-Diffusers outputs/wan_t2v_1_3b
  python -m eye2eye_jax.build_data --config=configs/wan_stereo_1_3b.py --latents \\
      --config.data.manual_dir=/data/stereo4d_dataset
  launch/tpu_train.sh ... --config=configs/wan_stereo_1_3b.py

One stage: Wan generates 480p natively, so no refiner is trained (``docs/wan.md`` says why).
"""

import pathlib

from eye2eye_jax.config_base import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name('wan_t2v_1_3b.py'))
  c.data.task = 'stereo'  # right view -> left view
  c.model.condition_channels = c.model.wan_vae.z_dim  # the right view's latents
  c.text.encoder = 'eye2eye_jax.data.umt5_text:encode_caption'
  # Wan's clip: 81 frames of 832x480, cut from Stereo4D's 832 px pairs (the same pixel
  # scale, so the disparity is the data's), encoded once by the VAE (data/latent_records.py:
  # precomputed latents cost less than encoding in every step, docs/wan.md).
  c.data.builder, c.data.builder_config = 'stereo4d', 'vr180_832'
  c.data.view = 'crop'
  c.data.resolution, c.data.width, c.data.num_frames = 480, 832, 81
  c.data.latents = True
  c.train.init_checkpoint = 'outputs/wan_t2v_1_3b'  # made by `ckpt import`
  c.train.num_steps = 20_000
  c.train.warmup_steps = 500
  c.train.caption_dropout = 0.1  # text guidance stays possible
  c.train.checkpoint_every = 1000
  c.train.log_every = 50
  c.sample.solver = 'dpmpp_2m'
  c.sample.base_num_steps = 20
  c.sample.window_batch = 1
  c.sample.model_fps = 16.0
  return c
