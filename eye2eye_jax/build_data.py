"""Builds the dataset a config trains on (TFDS ArrayRecord shards), if it is missing.

  python -m eye2eye_jax.build_data --config=configs/demo.py [--data_dir=outputs/tfds]
  python -m eye2eye_jax.build_data --config=configs/base_paper.py \
      --config.data.manual_dir=/data/stereo4d_dataset   # the release's npz/, raw/, processed/
"""

from __future__ import annotations

from absl import flags

from eye2eye_jax.common import cli_flags
from eye2eye_jax.data import datasets

_CONFIG = cli_flags.define_config()
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Overrides config.data.data_dir.')


def main(argv):
  cli_flags.require(argv, config=_CONFIG.value)
  data_dir = _DATA_DIR.value or datasets.resolve_data_dir(_CONFIG.value)
  with cli_flags.exit_on_error():
    datasets.ensure_dataset(_CONFIG.value, data_dir)
  for split in ('train', 'validation'):
    try:
      source = datasets.data_source(_CONFIG.value, split, data_dir)
    except FileNotFoundError:
      continue  # a small build may hold one split only
    print(f'{_CONFIG.value.data.builder}/{_CONFIG.value.data.builder_config} {split}: '
          f'{len(source)} clips in {data_dir}')


if __name__ == '__main__':
  cli_flags.run(main)
