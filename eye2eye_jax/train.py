"""Trains a stereo diffusion model.

  python -m eye2eye_jax.train --config=configs/demo.py --workdir=outputs/demo_train \
      [--config.train.num_steps=2000 ...]

Builds the configured dataset if it is missing, resumes from the newest readable
checkpoint in ``<workdir>/checkpoints``, logs to TensorBoard and the console (process 0
only) and saves checkpoints every ``train.checkpoint_every`` steps, at the end and on
SIGTERM; after SIGTERM's checkpoint it exits with status 143 (not 0: a scheduler requeues
it, and the same command resumes). A bad config or dataset, or a loss that turns NaN or inf, stops it with a message
and a non-zero exit status. Run on every host of a multi-host job (``launch/``): the
processes join up first.
"""

from __future__ import annotations

import sys

import jax
from absl import flags, logging

from eye2eye_jax.common import cli_flags, runtime
from eye2eye_jax.planning import peak_flops
from eye2eye_jax.training import loop

_CONFIG = cli_flags.define_config()
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints and logs.')


def main(argv):
  cli_flags.require(argv, config=_CONFIG.value, workdir=_WORKDIR.value)
  config = _CONFIG.value
  config.config_file = config.config_file or cli_flags.config_file()
  runtime.enable_compilation_cache(config.compilation_cache_dir or None)
  runtime.initialize_distributed()
  with cli_flags.exit_on_error(FloatingPointError):
    try:
      peak, source = peak_flops.peak_flops_per_device(jax.devices()[0], config.model.dtype)
      logging.info('MFU is measured against %.1f TFLOP/s per device: %s', peak / 1e12, source)
      loop.train_and_evaluate(config, _WORKDIR.value, peak_flops_per_device=peak)
    except loop.Preempted as preempted:
      print(preempted, file=sys.stderr)
      sys.exit(loop.PREEMPTED_EXIT_STATUS)


if __name__ == '__main__':
  cli_flags.run(main)
