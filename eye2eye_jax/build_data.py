"""Builds the dataset a config trains on (TFDS ArrayRecord shards), if it is missing.

  python -m eye2eye_jax.build_data --config=configs/demo.py [--data_dir=outputs/tfds]
  python -m eye2eye_jax.build_data --config=configs/base_paper.py \
      --config.data.manual_dir=/data/stereo4d   # npz/ and videos/ of the Stereo4D release
"""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

from eye2eye_jax import input_pipeline

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.',
                                          lock_config=True)
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Overrides config.data.data_dir.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if _CONFIG.value is None:
    raise app.UsageError('--config is required')
  data_dir = _DATA_DIR.value or input_pipeline.resolve_data_dir(_CONFIG.value)
  try:
    input_pipeline.ensure_dataset(_CONFIG.value, data_dir)
  except (FileNotFoundError, ValueError, OSError) as error:
    sys.exit(f'error: {error}')
  for split in ('train', 'validation'):
    try:
      source = input_pipeline.data_source(_CONFIG.value, split, data_dir)
    except FileNotFoundError:
      continue  # a small build may hold one split only
    print(f'{_CONFIG.value.data.builder}/{_CONFIG.value.data.builder_config} {split}: '
          f'{len(source)} clips in {data_dir}')


if __name__ == '__main__':
  app.run(main)
