"""A config stored with a checkpoint is merged over today's base config, once, as it loads."""

import json
import logging

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, subprocess_env
from eye2eye_jax import config_base
from eye2eye_jax.models import checkpoints


def _old_config() -> dict:
  """The base config as an older version stored it: JSON lists, two fields it did not have
  yet, and one it had that this version dropped."""
  stored = json.loads(json.dumps(config_base.base_config().to_dict()))
  del stored['model']['norm_per_frame'], stored['sample']['text_guidance_scale']
  stored['model']['retired_knob'] = 7
  stored['train']['num_steps'] = 123
  return stored


def test_missing_fields_take_the_defaults_and_unknown_keys_are_named(caplog):
  with caplog.at_level(logging.WARNING):
    config = config_base.with_defaults(_old_config(), 'checkpoint /runs/old')
  assert config.model.norm_per_frame is False
  assert config.sample.text_guidance_scale == 0.0
  assert config.train.num_steps == 123  # stored values win over defaults
  assert 'retired_knob' not in config.model
  assert config.mesh.shape == (-1, 1, 1) and config.mesh.rules[0] == ('batch', ('data', 'fsdp'))
  assert 'checkpoint /runs/old' in caplog.text and 'model.retired_knob' in caplog.text
  # The fields it predates are named with the defaults they silently take.
  assert 'model.norm_per_frame=False' in caplog.text
  assert 'sample.text_guidance_scale=0.0' in caplog.text


def test_a_config_file_setting_a_field_the_config_lacks_is_an_error_naming_it(tmp_path):
  path = tmp_path / 'typo.py'
  path.write_text(f'''import importlib.util
spec = importlib.util.spec_from_file_location('tiny', {str(REPO / 'configs' / 'tiny.py')!r})
tiny = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tiny)


def get_config():
  c = tiny.get_config()
  c.train.num_step = 3
  return c
''')
  with pytest.raises(ValueError, match=f'config file {path} line 9: .*num_step'):
    config_base.load_config_file(path)
  result = subprocess.run([sys.executable, '-m', 'eye2eye_jax.train', f'--config={path}',
                           f'--workdir={tmp_path / "work"}'], capture_output=True, text=True,
                          timeout=300, env=subprocess_env())
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(f'error: config file {path} line 9')
  assert 'Traceback' not in result.stderr and not (tmp_path / 'work').exists()


def test_a_section_stored_as_a_value_is_an_error_naming_it():
  stored = _old_config()
  stored['sample'] = 3
  try:
    config_base.with_defaults(stored)
  except ValueError as error:
    assert 'sample' in str(error)
  else:
    raise AssertionError('a malformed section was accepted')


def test_a_checkpoint_with_an_older_config_loads_with_every_field(tmp_path, caplog):
  import ml_collections
  params = {'conv': {'kernel': np.arange(6, dtype=np.float32).reshape(2, 3)}}
  checkpoints.save_inference(str(tmp_path / 'old'), params,
                             ml_collections.ConfigDict(_old_config()))
  with caplog.at_level(logging.WARNING):
    config, loaded = checkpoints.load_for_inference(str(tmp_path / 'old'))
  assert config.model.norm_per_frame is False and config.train.num_steps == 123
  np.testing.assert_array_equal(loaded['conv']['kernel'], params['conv']['kernel'])
  assert 'model.retired_knob' in caplog.text and str(tmp_path / 'old') in caplog.text
  info = checkpoints.describe(str(tmp_path / 'old'))
  assert info['config']['model']['norm_per_frame'] is False
