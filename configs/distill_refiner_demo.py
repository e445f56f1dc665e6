"""Demo refiner student: the bundled demo refiner distilled from 8 DDIM steps to 2, over
the interval it refines (from the demo's ``sample.refiner_t_start``).

  python -m eye2eye_jax.train --config=configs/distill_refiner_demo.py \
      --workdir=outputs/distill_refiner_train

Progressive distillation, 2 rounds (8 -> 4 -> 2 steps) on the refiner's full-resolution
crops.
"""

import pathlib

from eye2eye_jax.config_base import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name('refiner_demo.py'))
  c.train.init_checkpoint = 'bundled:demo_refiner'  # the teacher
  c.distill.teacher_steps = 8
  c.distill.student_steps = 2
  c.distill.t_start = c.sample.refiner_t_start  # the refiner's interval: [0, 0.2]
  c.distill.steps_per_round = 300
  c.train.num_steps = 2 * 300
  c.train.learning_rate = 2e-4
  c.train.warmup_steps = 50
  c.train.ema_decay = 0.99
  c.train.checkpoint_every = 100
  c.train.sample_every = 0
  return c
