"""Shared fixtures: a tiny dataset and a tiny trained checkpoint, built once per worker."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', str(REPO / '.cache' / 'jax'))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# gs:// paths through gcsfs (which the fake Cloud Storage server below speaks to) rather than
# TensorFlow's own GCS client; our code reaches both through etils.epath alike.
os.environ.setdefault('EPATH_USE_TF', 'false')

from eye2eye_jax import config_base  # noqa: E402
from eye2eye_jax.common import runtime  # noqa: E402

runtime.enable_compilation_cache()

# The files holding the longest tests of a full run on 2 cores (make test prints the 30
# slowest), longest first. They are started first, so that no pytest-xdist worker is left
# running a long test at the end while the other has nothing to do.
_LONGEST_FIRST = ('test_scale_out.py', 'test_benchmarks.py', 'test_wan_stereo.py',
                  'test_refiner_tiles.py', 'test_demo.py', 'test_accelerator_check.py', 'test_sampling_at_scale.py',
                  'test_distillation.py', 'test_tpu_compile.py', 'test_plan.py')


def pytest_collection_modifyitems(items):
  """Puts the files of ``_LONGEST_FIRST`` first, in that order (the rest keep theirs)."""
  rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def load_config(name: str):
  """configs/<name>.py's get_config()."""
  return config_base.load_config_file(REPO / 'configs' / f'{name}.py')


def subprocess_env(**extra) -> dict:
  """This environment, with the repository importable and ``extra`` variables set."""
  return dict(os.environ, PYTHONPATH=str(REPO), **extra)


def free_port() -> int:
  """A TCP port on localhost that nothing listens on now."""
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def worker_result(output: str) -> dict:
  """The JSON on a worker's last ``RESULT`` line."""
  lines = [l for l in output.splitlines() if l.startswith('RESULT ')]
  assert lines, output[-3000:]
  return json.loads(lines[-1][len('RESULT '):])


def on_8_devices(*args, worker: str = 'scale_out_worker.py') -> dict:
  """tests/<worker>'s result, run with 8 simulated CPU devices (the device count is fixed
  when JAX starts, hence the subprocess)."""
  result = subprocess.run([sys.executable, str(REPO / 'tests' / worker), *args],
                          capture_output=True, text=True, timeout=900, env=subprocess_env(
                              XLA_FLAGS='--xla_force_host_platform_device_count=8'))
  assert result.returncode == 0, result.stderr[-3000:]
  return worker_result(result.stdout)


@pytest.fixture(scope='session')
def tiny_config(tmp_path_factory):
  config = load_config('tiny')
  config.data.data_dir = str(tmp_path_factory.mktemp('tfds'))
  return config


@pytest.fixture(scope='session')
def tiny_dataset(tiny_config):
  from eye2eye_jax.data import datasets
  datasets.ensure_dataset(tiny_config, tiny_config.data.data_dir)
  return tiny_config.data.data_dir


@pytest.fixture(scope='session')
def tiny_checkpoint(tiny_config, tiny_dataset, tmp_path_factory):
  """A training workdir of the tiny config after 20 steps."""
  from eye2eye_jax.training import loop
  workdir = tmp_path_factory.mktemp('tiny_train')
  loop.train_and_evaluate(tiny_config, str(workdir))
  return workdir


@pytest.fixture(scope='session')
def tiny_strength_config(tmp_path_factory):
  """The tiny model with strength conditioning, on clips of many baselines, zoomed 1-2x."""
  from eye2eye_jax.data import datasets
  config = load_config('tiny')
  config.data.builder_config = 'tiny_strength'
  config.data.data_dir = str(tmp_path_factory.mktemp('tfds_strength'))
  config.data.zoom_range = (1.0, 2.0)
  config.model.strength_conditioning = True
  config.train.num_steps, config.train.sample_every = 6, 0
  datasets.ensure_dataset(config, config.data.data_dir)
  return config


@pytest.fixture(scope='session')
def tiny_strength_checkpoint(tiny_strength_config, tmp_path_factory):
  """A training workdir of ``tiny_strength_config`` after 6 steps (finite losses)."""
  import numpy as np
  from eye2eye_jax.training import loop
  workdir = tmp_path_factory.mktemp('tiny_strength_train')
  losses = []
  loop.train_and_evaluate(tiny_strength_config, str(workdir),
                          on_metrics=lambda step, m: losses.append(m['loss']))
  assert losses and np.isfinite(losses).all()
  return workdir


@pytest.fixture(scope='session')
def fake_bucket():
  """``gs://bucket`` on a fake Cloud Storage server on localhost (gcp-storage-emulator):
  etils.epath (through gcsfs) and orbax's tensorstore reach it in this process and in
  subprocesses started with ``subprocess_env``."""
  from gcp_storage_emulator.server import create_server
  port = free_port()
  server = create_server('localhost', port, in_memory=True, default_bucket='bucket')
  server.start()
  url = f'http://localhost:{port}'
  variables = {'STORAGE_EMULATOR_HOST': url, 'TENSORSTORE_GCS_HTTP_URL': url,
               'GOOGLE_AUTH_TOKEN_FOR_TESTING': 'fake'}
  os.environ.update(variables)
  yield 'gs://bucket'
  server.stop()
  for name in variables:
    os.environ.pop(name)
