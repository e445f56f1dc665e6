"""Demo base model for 2 CPU cores: whole 8-frame clips at 32x32 (downsampled from the
64x64 ``diverse`` set), 0.78M parameters, v-prediction; samples with 25 base and 12 refiner
steps. The bundled checkpoint was made with this config.

  python -m eye2eye_jax.train --config=configs/demo.py --workdir=outputs/demo_train \
      --config.train.init_checkpoint=outputs/demo_photo_train

It continues a model first trained on the narrower ``demo`` scenes, 4-frame windows
(docs/backbones.md, "The bundled demo checkpoints", has both commands).
"""

from eye2eye_jax.config_base import base_config


def get_config():
  c = base_config()
  # 64x64, 8 frames, disparity up to 3.2-8 px per clip; texture families periodic and text
  # held out in validation_unseen
  c.data.builder_config = 'diverse'
  c.data.resolution = 32  # base model: clips downsampled 2x (disparity up to 4 px)
  c.data.num_frames = 8  # whole clips: twice the camera travel (parallax) of 4 frames
  c.data.batch_size = 8
  c.model.channels = 16
  c.model.channel_mult = (1, 2, 4)
  c.model.temporal_downsample = (False, True)
  c.train.num_steps = 5000
  c.train.learning_rate = 5e-4
  c.train.warmup_steps = 100
  c.train.checkpoint_every = 250
  c.train.sample_every = 500  # validation anaglyphs and 3D metrics in TensorBoard
  c.sample.checkpoint = 'bundled:demo'
  c.sample.refiner_checkpoint = 'bundled:demo_refiner'
  c.sample.base_num_steps = 25
  c.sample.refiner_num_steps = 12
  # The paper refines from t=0.9. This demo refiner shrinks the disparity of the base's
  # output, the more the earlier it starts (measured on 16 clips of validation_unseen: scale
  # 0.86 before refining; refined from 0.2 / 0.4 / 0.6 / 0.8: 0.74 / 0.72 / 0.71 / 0.70, PSNR
  # 19.47 / 19.40 / 19.30 / 19.19 dB), so the demo refines from 0.2.
  c.sample.refiner_t_start = 0.2
  # Distilled students of both (configs/distill_demo.py, distill_refiner_demo.py): 2 + 2
  # steps with --config.sample.distilled=True.
  c.sample.distilled_checkpoint = 'bundled:demo_student'
  c.sample.distilled_refiner_checkpoint = 'bundled:demo_refiner_student'
  return c
