"""Trains a stereo diffusion model.

  python -m eye2eye_jax.train --config=configs/demo.py --workdir=outputs/demo_train \
      [--config.train.num_steps=2000 ...]

Builds the configured dataset if it is missing, resumes from the newest readable
checkpoint in ``<workdir>/checkpoints``, logs to TensorBoard and the console (process 0
only) and saves checkpoints every ``train.checkpoint_every`` steps, at the end and on
SIGTERM. A bad config or dataset, or a loss that turns NaN or inf, stops it with a message
and a non-zero exit status. Run on every host of a multi-host job (``launch/``): the
processes join up first.
"""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

from eye2eye_jax import runtime, trainer

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints and logs.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if _CONFIG.value is None or _WORKDIR.value is None:
    raise app.UsageError('--config and --workdir are required')
  config = _CONFIG.value
  config.config_file = config.config_file or config_flags.get_config_filename(
      flags.FLAGS['config'])
  runtime.enable_compilation_cache(config.compilation_cache_dir or None)
  runtime.initialize_distributed()
  try:
    trainer.train_and_evaluate(config, _WORKDIR.value)
  except (FileNotFoundError, ValueError, OSError, FloatingPointError) as error:
    sys.exit(f'error: {error}')


if __name__ == '__main__':
  app.run(main)
