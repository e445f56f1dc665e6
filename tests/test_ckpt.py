"""Checkpoint tools: inspection, and a lean inference checkpoint that samples identically."""

import numpy as np
import pytest
from absl import flags

from eye2eye_jax import ckpt
from eye2eye_jax.models import checkpoints, unet
from eye2eye_jax.sampling import stereo_sampler


@pytest.fixture(autouse=True)
def default_flags():
  """ckpt.main is called in-process, with every flag at its default."""
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def _sampler(path, config):
  stage = stereo_sampler.Stage(*checkpoints.load_for_inference(path))
  return stereo_sampler.StereoSampler(stage, None, config.sample)


def test_info_describes_the_training_checkpoint(tiny_checkpoint):
  info = checkpoints.describe(str(tiny_checkpoint))
  _, params = checkpoints.load_for_inference(str(tiny_checkpoint))
  assert info['kind'] == 'training' and info['step'] == 20
  assert info['items'] == ['ema_params', 'opt_state', 'params', 'step']
  assert info['parameter_count'] == unet.count_params(params)
  assert sum(info['parameters_per_module'].values()) == info['parameter_count']
  assert info['parameters']['params/conv_in/conv/kernel'] == {'shape': [3, 3, 6, 8],
                                                              'dtype': 'float32'}
  text = ckpt.info_text(info, tree=True)
  assert f'{info["parameter_count"]:,}' in text and 'params/conv_in/conv/kernel' in text


def test_export_is_smaller_and_samples_bit_identically(tiny_config, tiny_checkpoint, tmp_path,
                                                       capsys):
  lean = tmp_path / 'lean'
  ckpt.main(['ckpt', 'export', str(tiny_checkpoint), str(lean)])
  assert 'wrote' in capsys.readouterr().out
  training_info = checkpoints.describe(str(tiny_checkpoint))
  lean_info = checkpoints.describe(str(lean))
  assert lean_info['kind'] == 'inference' and lean_info['items'] == ['params']
  assert lean_info['parameter_count'] == training_info['parameter_count']
  # No optimizer state and one copy of the weights instead of two: about a quarter.
  assert lean_info['bytes_on_disk'] < 0.5 * training_info['bytes_on_disk']
  video = np.random.default_rng(0).integers(0, 255, (6, 20, 24, 3), dtype=np.uint8)
  from_training = _sampler(str(tiny_checkpoint), tiny_config).convert(video, seed=3)
  from_lean = _sampler(str(lean), tiny_config).convert(video, seed=3)
  np.testing.assert_array_equal(from_lean, from_training)


def test_bad_paths_exit_with_the_problem(tmp_path):
  with pytest.raises(SystemExit, match='does not exist'):
    ckpt.main(['ckpt', 'info', str(tmp_path / 'missing')])
  (tmp_path / 'empty').mkdir()
  with pytest.raises(SystemExit, match='holds no checkpoint'):
    ckpt.main(['ckpt', 'export', str(tmp_path / 'empty'), str(tmp_path / 'out')])
  assert not (tmp_path / 'out').exists()
