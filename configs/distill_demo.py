"""Demo base student: the bundled demo base distilled from 32 DDIM steps to 2.

  python -m eye2eye_jax.train --config=configs/distill_demo.py --workdir=outputs/distill_train

Progressive distillation (``eye2eye_jax/training/distillation.py``): 4 rounds of
``distill.steps_per_round`` steps, 32 -> 16 -> 8 -> 4 -> 2 steps, each round's student
(its EMA weights) teaching the next. Sample with the result through
``--config.sample.distilled=True --config.sample.distilled_checkpoint=WORKDIR`` (and
``distilled_refiner_checkpoint``, from ``configs/distill_refiner_demo.py``).
"""

import pathlib

from eye2eye_jax.config_base import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name('demo.py'))
  c.train.init_checkpoint = 'bundled:demo'  # the teacher
  c.distill.teacher_steps = 32
  c.distill.student_steps = 2
  c.distill.steps_per_round = 300
  c.train.num_steps = 4 * 300
  c.train.learning_rate = 2e-4
  c.train.warmup_steps = 50
  c.train.ema_decay = 0.99  # a round's EMA forgets the previous round's weights
  c.train.checkpoint_every = 100
  c.train.sample_every = 0
  return c
