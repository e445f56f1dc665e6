"""Checkpoint tools: inspection, and a lean inference checkpoint that samples identically."""

import hashlib
import pathlib
import shutil

import jax
import numpy as np
import pytest
import tensorstore
from absl import flags
from absl.testing import flagsaver
from etils import epath

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


def _hashes(root):
  """Every file under ``root`` (or ``root`` itself) and its content's SHA-256."""
  root = pathlib.Path(root)
  files = [root] if root.is_file() else sorted(p for p in root.rglob('*') if p.is_file())
  return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_export_replaces_only_an_earlier_export(tiny_checkpoint, tmp_path, capsys):
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_checkpoint, workdir)
  notes = tmp_path / 'notes.txt'
  notes.write_text('my notes')
  folder = tmp_path / 'videos'
  folder.mkdir()
  (folder / 'clip.mp4').write_bytes(b'\x00video')
  (folder / 'notes.txt').write_text('more notes')
  before = _hashes(tmp_path)
  for target in (notes, folder, workdir, workdir / 'checkpoints' / '20',
                 workdir / 'checkpoints' / '20' / 'lean', tmp_path):
    with pytest.raises(SystemExit, match=f'^error: {target} ') as exited:
      ckpt.main(['ckpt', 'export', str(workdir), str(target)])
    assert '\n' not in str(exited.value)
    assert _hashes(tmp_path) == before
  # An earlier export is recognised and replaced; an export onto itself is refused.
  lean = tmp_path / 'lean'
  ckpt.main(['ckpt', 'export', str(workdir), str(lean)])
  with flagsaver.flagsaver(raw_params=True):
    ckpt.main(['ckpt', 'export', str(workdir), str(lean)])
  assert checkpoints.describe(str(lean))['kind'] == 'inference'
  np.testing.assert_array_equal(
      jax.tree.leaves(checkpoints.load_for_inference(str(lean))[1])[0],
      jax.tree.leaves(checkpoints.load_for_inference(str(workdir), use_ema=False)[1])[0])
  exported = _hashes(lean)
  with pytest.raises(SystemExit, match='being exported'):
    ckpt.main(['ckpt', 'export', str(lean), str(lean)])
  assert _hashes(lean) == exported
  assert capsys.readouterr().out.count('wrote') == 2


def _file_bytes_read() -> int:
  """Bytes tensorstore has read from local files in this process so far."""
  metrics = tensorstore.experimental_collect_matching_metrics(
      '/tensorstore/kvstore/file/bytes_read')
  return sum(v['value'] for m in metrics for v in m['values'])


def test_inference_reads_only_the_weights_it_keeps(tiny_checkpoint):
  step = checkpoints.describe(str(tiny_checkpoint))['path']
  start = _file_bytes_read()
  state = checkpoints._restore_as_numpy(epath.Path(step) / 'state')  # what it used to read
  whole = _file_bytes_read() - start
  start = _file_bytes_read()
  _, ema = checkpoints.load_weights_to_host(str(tiny_checkpoint))
  kept = _file_bytes_read() - start
  for ours, theirs in zip(jax.tree.leaves(ema), jax.tree.leaves(state['ema_params'])):
    np.testing.assert_array_equal(ours, theirs)
  # Measured on the tiny model: 0.51 of the bytes (the weights are a quarter of the state;
  # the checkpoint's index and metadata are read either way).
  assert kept < 0.6 * whole, (kept, whole)


def test_an_unreachable_bucket_is_one_error_line(monkeypatch):
  class BucketError(Exception):  # a storage client's own type, e.g. TensorFlow's NotFoundError
    pass

  def unreachable(self):
    raise BucketError('Error executing an HTTP request: HTTP response code 404\n  (29 lines)')

  # The bucket path's own class (no network is asked).
  monkeypatch.setattr(type(epath.Path('gs://missing-bucket/run')), 'exists', unreachable)
  with pytest.raises(SystemExit) as exited:
    ckpt.main(['ckpt', 'info', 'gs://missing-bucket/run'])
  assert str(exited.value) == ('error: checkpoint gs://missing-bucket/run: cannot be reached '
                               '(BucketError: Error executing an HTTP request: HTTP response '
                               'code 404)')
