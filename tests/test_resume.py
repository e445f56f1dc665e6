"""Resuming a run: what is resumed, what is refused, and that nothing on disk is lost."""

import hashlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, subprocess_env
from eye2eye_jax.data import input_pipeline
from eye2eye_jax.training import checkpoint_manager, loop


def _fingerprint(directory) -> dict[str, str]:
  """Every file under ``directory`` by relative path, with a hash of its bytes."""
  return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(directory.rglob('*')) if p.is_file()}


def _copy_run(tiny_checkpoint, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_checkpoint, workdir)
  return workdir


def test_a_config_that_does_not_match_the_checkpoints_stops_with_the_first_difference(
    tiny_config, tiny_checkpoint, tmp_path):
  workdir = _copy_run(tiny_checkpoint, tmp_path)
  before = _fingerprint(workdir / 'checkpoints')
  result = subprocess.run(
      [sys.executable, '-m', 'eye2eye_jax.train', f'--config={REPO / "configs" / "tiny.py"}',
       f'--workdir={workdir}', f'--config.data.data_dir={tiny_config.data.data_dir}',
       '--config.model.channels=16'], capture_output=True, text=True, timeout=300,
      env=subprocess_env())
  assert result.returncode == 1, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: checkpoint ') and 'does not match the config' in last
  # The first differing parameter, with both shapes, and the way to start from it on purpose.
  assert 'conv_in/conv/bias is (8,) there and (16,) in this run' in last
  assert 'train.init_checkpoint' in last
  assert 'Traceback' not in result.stderr and 'Event loop is closed' not in result.stderr
  assert _fingerprint(workdir / 'checkpoints') == before


def test_checkpoints_no_one_can_read_stop_the_run_unless_a_fresh_start_is_asked_for(
    tiny_config, tiny_checkpoint, tmp_path):
  workdir = _copy_run(tiny_checkpoint, tmp_path)
  for metadata in (workdir / 'checkpoints').glob('*/state/_METADATA'):
    metadata.write_text('{half written')
  before = _fingerprint(workdir / 'checkpoints')
  config = tiny_config.copy_and_resolve_references()
  config.train.num_steps, config.train.sample_every = 2, 0
  with pytest.raises(checkpoint_manager.UnusableCheckpoints, match='allow_fresh_start'):
    loop.train_and_evaluate(config, str(workdir))
  assert _fingerprint(workdir / 'checkpoints') == before

  config.train.allow_fresh_start = True
  logged = []
  loop.train_and_evaluate(config, str(workdir), on_metrics=lambda s, m: logged.append(s))
  assert logged and logged[0] <= config.train.log_every  # started over at step 1
  set_aside = [p for p in workdir.iterdir() if p.name.startswith('checkpoints.set_aside.')]
  assert len(set_aside) == 1 and _fingerprint(set_aside[0]) == before
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['2']


def test_a_half_written_latest_checkpoint_is_skipped_for_the_one_before(
    tiny_config, tiny_checkpoint, tmp_path):
  workdir = _copy_run(tiny_checkpoint, tmp_path)
  steps = sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())
  (workdir / 'checkpoints' / str(steps[-1]) / 'state' / '_METADATA').unlink()
  config = tiny_config.copy_and_resolve_references()
  config.train.num_steps, config.train.sample_every = steps[-1], 0
  logged = []
  loop.train_and_evaluate(config, str(workdir), on_metrics=lambda s, m: logged.append(s))
  assert min(logged) > steps[-2]  # resumed from the step before the broken one


def test_seeking_to_a_step_puts_the_loader_where_reading_that_many_batches_does(
    tiny_config, tiny_dataset):
  read = iter(input_pipeline.create_train_loader(tiny_config, tiny_dataset))
  for _ in range(11):  # past the end of the first epoch (16 records, batches of 2)
    next(read)
  sought = iter(input_pipeline.create_train_loader(tiny_config, tiny_dataset))
  input_pipeline.seek_to_step(sought, tiny_config, 11)
  assert sought.get_state() == read.get_state()
  for a, b in zip(next(sought).values(), next(read).values()):
    np.testing.assert_array_equal(a, b)
