"""Checkpoints on a bucket: every command that reads a model takes a gs:// path.

A fake Cloud Storage server on localhost stands in for the bucket (the ``fake_bucket``
fixture): the same client libraries talk to it as to Cloud Storage.
"""

import json
import subprocess
import sys

import jax
import numpy as np
from etils import epath

from conftest import REPO, subprocess_env
from eye2eye_jax.data import video_io
from eye2eye_jax.evaluation import checkpoint_report
from eye2eye_jax.models import checkpoints
from eye2eye_jax.training import train_state


def _upload(local, remote: epath.Path) -> None:
  for path in sorted(local.rglob('*')):
    if path.is_file():
      target = remote / str(path.relative_to(local))
      target.parent.mkdir(parents=True, exist_ok=True)
      target.write_bytes(path.read_bytes())


def _command(module: str, *args) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', f'eye2eye_jax.{module}', *args],
                        capture_output=True, text=True, timeout=600, env=subprocess_env())


def test_a_training_run_on_a_bucket_loads_in_every_reader(fake_bucket, tiny_config,
                                                          tiny_checkpoint, tmp_path):
  run = f'{fake_bucket}/runs/tiny'
  _upload(tiny_checkpoint / 'checkpoints', epath.Path(run) / 'checkpoints')
  newest = max(int(p.name) for p in (tiny_checkpoint / 'checkpoints').iterdir()
               if p.name.isdigit())
  _, local = checkpoints.load_for_inference(str(tiny_checkpoint))

  # The library reader, as sample and evaluate use it: the newest step, the EMA weights.
  config, remote = checkpoints.load_for_inference(run)
  assert config.model.channels == tiny_config.model.channels
  for a, b in zip(jax.tree.leaves(local), jax.tree.leaves(remote)):
    np.testing.assert_array_equal(a, b)

  # ckpt info
  result = _command('ckpt', 'info', run, '--json')
  assert result.returncode == 0, result.stderr[-3000:]
  info = json.loads(result.stdout)
  assert info['kind'] == 'training' and info['step'] == newest
  assert info['path'] == f'{run}/checkpoints/{newest}' and info['bytes_on_disk'] > 0

  # train.init_checkpoint
  state, report = train_state.init_from_checkpoint(tiny_config, run)
  assert len(report['copied']) == len(jax.tree.leaves(local)) and int(state['step']) == 0

  # sample
  video_io.write_video(tmp_path / 'in.mp4', np.random.default_rng(0).integers(
      0, 255, (4, 16, 16, 3), np.uint8), 8.0)
  result = _command('sample', f'--config={REPO / "configs" / "tiny.py"}', f'--checkpoint={run}',
                    '--refiner_checkpoint=', f'--input={tmp_path / "in.mp4"}',
                    f'--output_dir={tmp_path / "out"}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert (tmp_path / 'out' / 'in_left.mp4').exists()

  # evaluate
  metrics = checkpoint_report.evaluate_checkpoint(tiny_config, tmp_path / 'report',
                                                  checkpoint=run, refiner_checkpoint='',
                                                  num_clips=1)
  assert metrics['num_clips'] == 1


def test_an_inference_checkpoint_on_a_bucket_loads_and_describes(fake_bucket, tiny_checkpoint,
                                                                 tmp_path):
  config, params = checkpoints.load_for_inference(str(tiny_checkpoint))
  checkpoints.save_inference(str(tmp_path / 'lean'), params, config)
  # Uploaded file by file (the fake server mishandles tensorstore's conditional writes
  # under load, so orbax does not write to it here; reading is what these tests check).
  _upload(tmp_path / 'lean', epath.Path(fake_bucket) / 'lean')
  config2, params2 = checkpoints.load_for_inference(f'{fake_bucket}/lean')
  assert config2.to_dict() == config.to_dict()
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params2)):
    np.testing.assert_array_equal(a, b)
  info = checkpoints.describe(f'{fake_bucket}/lean')
  assert info['kind'] == 'inference'
  assert info['bytes_on_disk'] == checkpoints.directory_bytes(tmp_path / 'lean')


def test_an_imported_wan_model_runs_from_a_bucket(fake_bucket, tmp_path):
  """An imported Wan checkpoint on gs:// loads and runs with the reference's outputs. (It is
  imported locally and copied up: the fake server cannot take orbax's own bucket writes.)"""
  from eye2eye_jax.models import wan_import, wan_runner
  release = REPO / 'tests' / 'fixtures' / 'wan_release'
  reference = np.load(release / 'reference_outputs.npz')
  wan_import.import_release(str(release), str(tmp_path / 'wan'), progress=None,
                            empty_caption=np.load(release / 'empty_caption.npy'))
  target = f'{fake_bucket}/imports/wan_tiny'
  _upload(tmp_path / 'wan', epath.Path(target))
  wan = wan_runner.ImportedWan.load(target)
  out = wan.transformer(reference['transformer_latents'], reference['transformer_timesteps'],
                        reference['transformer_text'])
  np.testing.assert_allclose(out, reference['transformer_output'], atol=2e-5)
