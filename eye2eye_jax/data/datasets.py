"""The datasets a config names: where they live, building them, reading their records.

Builders live in the top-level ``data_builders`` package and are found by name through
``BUILDER_MODULES``: importing a builder's module registers its class with TFDS, and nothing
here imports a builder until a config asks for it, so data flows one way (builders use
``eye2eye_jax.data``; this module never imports them statically). A new builder is a
folder in ``data_builders/`` and a line in ``BUILDER_MODULES``.
"""

from __future__ import annotations

import importlib
import os

import ml_collections

# data.builder -> the module defining (and so registering) that TFDS builder.
BUILDER_MODULES = {
    'synthetic_stereo': 'data_builders.synthetic_stereo',
    'stereo4d': 'data_builders.stereo4d',
    'video_folder': 'data_builders.video_folder',
    'latent_stereo': 'data_builders.latent_stereo',  # made by build_data --latents
}


def resolve_data_dir(config: ml_collections.ConfigDict) -> str:
  """config.data.data_dir, else $TFDS_DATA_DIR, else ``outputs/tfds``."""
  return config.data.data_dir or os.environ.get('TFDS_DATA_DIR') or os.path.join(
      'outputs', 'tfds')


def builder_class(name: str) -> type:
  """The TFDS builder class registered as ``name``; its module is imported on first use."""
  if name not in BUILDER_MODULES:
    raise ValueError(f'data.builder: unknown dataset {name!r} ({", ".join(BUILDER_MODULES)})')
  import tensorflow_datasets as tfds
  importlib.import_module(BUILDER_MODULES[name])  # defining the class registers it with TFDS
  return tfds.builder_cls(name)


def create_builder(config: ml_collections.ConfigDict, data_dir: str):
  """The TFDS builder of ``config.data`` (nothing is read or written until it prepares)."""
  return builder_class(config.data.builder)(config=config.data.builder_config,
                                            data_dir=data_dir, file_format='array_record')


def ensure_dataset(config: ml_collections.ConfigDict, data_dir: str) -> None:
  """Builds the configured TFDS dataset into ``data_dir`` unless it is already there.

  TFDS writes each split to temporary files and renames them when complete, so an
  interrupted build leaves nothing that a later call mistakes for a finished dataset.
  """
  if config.data.latents:  # encoded by a model: build_data --latents (latent_records.build)
    return
  import tensorflow_datasets as tfds
  builder = create_builder(config, data_dir)
  download_config = tfds.download.DownloadConfig(manual_dir=config.data.manual_dir or None)
  try:
    builder.download_and_prepare(download_config=download_config)
  except AssertionError as error:  # TFDS's way of saying the manual inputs are missing
    if 'Manual directory' not in str(error):
      raise
    raise FileNotFoundError(
        f'{config.data.builder}/{config.data.builder_config}: set data.manual_dir to the '
        f'folder holding its inputs (got {config.data.manual_dir or "nothing"}); '
        f'{str(error).splitlines()[0]}') from error


def data_source(config: ml_collections.ConfigDict, split: str, data_dir: str):
  """Random-access source of the split's records (dicts of numpy arrays): the pixels of
  ``data.builder`` (a config's latent records: ``latent_dataset.data_source``)."""
  import tensorflow_datasets as tfds
  name = f'{config.data.builder}/{config.data.builder_config}'
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir)
  except Exception as error:  # TFDS raises several types for a missing dataset
    raise FileNotFoundError(
        f'dataset {name} (split {split!r}) not found under {data_dir!r}: build it with '
        f'python -m eye2eye_jax.build_data --config=... ({error})') from error
