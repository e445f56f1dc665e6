"""Writes a lean inference checkpoint (EMA weights + config) from a training run.

  python -m eye2eye_jax.export --workdir=outputs/demo_train --output=DIR [--raw_params]
"""

from __future__ import annotations

import sys

from absl import app, flags

from eye2eye_jax import checkpointing, model as model_lib

_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir or checkpoint step dir.')
_OUTPUT = flags.DEFINE_string('output', None, 'Directory of the inference checkpoint.')
_RAW = flags.DEFINE_bool('raw_params', False, 'Export the raw weights instead of the EMA.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not _WORKDIR.value or not _OUTPUT.value:
    raise app.UsageError('--workdir and --output are required')
  try:
    config, params = checkpointing.load_for_inference(_WORKDIR.value, use_ema=not _RAW.value)
    checkpointing.save_inference(_OUTPUT.value, params, config)
  except (FileNotFoundError, ValueError, OSError) as error:
    sys.exit(f'error: {error}')
  print(f'wrote {_OUTPUT.value}: {model_lib.count_params(params) / 1e6:.2f}M parameters')


if __name__ == '__main__':
  app.run(main)
