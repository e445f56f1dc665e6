"""Shared fixtures: a tiny dataset and a tiny trained checkpoint, built once per worker."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', str(REPO / '.cache' / 'jax'))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from eye2eye_jax import config_base, runtime  # noqa: E402

runtime.enable_compilation_cache()


def load_config(name: str):
  """configs/<name>.py's get_config()."""
  return config_base.load_config_file(REPO / 'configs' / f'{name}.py')


@pytest.fixture(scope='session')
def tiny_config(tmp_path_factory):
  config = load_config('tiny')
  config.data.data_dir = str(tmp_path_factory.mktemp('tfds'))
  return config


@pytest.fixture(scope='session')
def tiny_dataset(tiny_config):
  from eye2eye_jax import input_pipeline
  input_pipeline.ensure_dataset(tiny_config, tiny_config.data.data_dir)
  return tiny_config.data.data_dir


@pytest.fixture(scope='session')
def tiny_checkpoint(tiny_config, tiny_dataset, tmp_path_factory):
  """A training workdir of the tiny config after 20 steps."""
  from eye2eye_jax import trainer
  workdir = tmp_path_factory.mktemp('tiny_train')
  trainer.train_and_evaluate(tiny_config, str(workdir))
  return workdir
