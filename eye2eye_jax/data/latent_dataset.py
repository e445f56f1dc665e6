"""The latent dataset a config with ``data.latents`` trains on: its name, where its encoded
clips wait, and reading it (``latent_records`` writes it).

It is the ``latent_stereo`` TFDS dataset (``data_builders/latent_stereo``), one config per
source dataset and clip size, e.g. ``latent_stereo/stereo4d-vr180_832-81x480x832``.
"""

from __future__ import annotations

import importlib
import pathlib

import ml_collections

from eye2eye_jax.data import datasets, text_encoding
from eye2eye_jax.models import networks

BUILDER = 'latent_stereo'
SPLITS = ('train', 'validation', 'validation_unseen')


def source_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``config`` reading its source dataset's pixels (``data.latents`` off)."""
  source = config.copy_and_resolve_references()
  source.data.latents = False
  return source


def dataset_name(config: ml_collections.ConfigDict) -> str:
  """The latent dataset's config name: source dataset and clip size."""
  frames, height, width = networks.clip_size(config)
  return f'{config.data.builder}-{config.data.builder_config}-{frames}x{height}x{width}'


def latent_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int, int]:
  return networks.model_shape(config.model, (1,) + networks.clip_size(config) + (3,))[1:]


def builder(config: ml_collections.ConfigDict, data_dir: str, splits=SPLITS[:2]):
  module = importlib.import_module(datasets.BUILDER_MODULES[BUILDER])
  builder_config = module.LatentStereoConfig(
      name=dataset_name(config), latent_shape=latent_shape(config),
      text_dim=int(config.model.text_embed_dim) if text_encoding.uses_text(config) else 0,
      splits=tuple(splits),
      description=f'{dataset_name(config)} through the VAE of '
                  f'{config.train.init_checkpoint or "a fresh model"}')
  return module.Builder(config=builder_config, data_dir=data_dir, file_format='array_record')


def clips_dir(config: ml_collections.ConfigDict, data_dir: str) -> pathlib.Path:
  """Where the encoded clips (.npz) wait to be packaged: the builder's manual_dir."""
  return pathlib.Path(data_dir) / f'{BUILDER}_clips' / dataset_name(config)


def data_source(config: ml_collections.ConfigDict, split: str, data_dir: str):
  """Random-access source of the latent dataset's ``split``."""
  try:
    return builder(config, data_dir).as_data_source(split=split)
  except Exception as error:  # TFDS raises several types for a missing dataset
    raise FileNotFoundError(
        f'latent dataset {BUILDER}/{dataset_name(config)} (split {split!r}) not found under '
        f'{data_dir!r}: encode it with python -m eye2eye_jax.build_data --latents '
        f'--config=... ({error})') from error
