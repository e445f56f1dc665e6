"""Builds the dataset a config trains on (TFDS ArrayRecord shards), if it is missing.

  python -m eye2eye_jax.build_data --config=configs/demo.py [--data_dir=outputs/tfds]
  python -m eye2eye_jax.build_data --config=configs/base_paper.py \
      --config.data.manual_dir=/data/stereo4d_dataset   # the release's npz/, raw/, processed/
  python -m eye2eye_jax.build_data --config=configs/wan_stereo_1_3b.py --latents
      # the source dataset, then its clips through the model's VAE (data/latent_records.py),
      # on every host of a slice as launch/tpu_train.sh runs commands
"""

from __future__ import annotations

from absl import flags

from eye2eye_jax.common import cli_flags, runtime
from eye2eye_jax.data import datasets, latent_dataset, latent_records

_CONFIG = cli_flags.define_config()
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Overrides config.data.data_dir.')
_LATENTS = flags.DEFINE_bool('latents', False, 'Also encode the clips with the model\'s VAE '
                             'into the latent dataset a config with data.latents trains on.')


def main(argv):
  cli_flags.require(argv, config=_CONFIG.value)
  data_dir = _DATA_DIR.value or datasets.resolve_data_dir(_CONFIG.value)
  config = _CONFIG.value
  with cli_flags.exit_on_error():
    if _LATENTS.value:
      runtime.initialize_distributed()  # every host encodes its share
      config = config.copy_and_resolve_references()
      config.data.latents = True
      latent_records.build(config, data_dir)
    else:
      datasets.ensure_dataset(config, data_dir)
  for split in ('train', 'validation'):
    try:
      source = (latent_dataset.data_source(config, split, data_dir) if config.data.latents
                else datasets.data_source(config, split, data_dir))
    except FileNotFoundError:
      continue  # a small build may hold one split only
    name = (f'{latent_dataset.BUILDER}/{latent_dataset.dataset_name(config)}'
            if config.data.latents else f'{config.data.builder}/{config.data.builder_config}')
    print(f'{name} {split}: {len(source)} clips in {data_dir}')


if __name__ == '__main__':
  cli_flags.run(main)
