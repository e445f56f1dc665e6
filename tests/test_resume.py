"""Resuming a run: what is resumed, what is refused, and that nothing on disk is lost."""

import hashlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import REPO, subprocess_env
from eye2eye_jax.data import input_pipeline
from eye2eye_jax.models import checkpoints
from eye2eye_jax.training import checkpoint_manager, loop, train_state


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


def test_an_unreadable_latest_checkpoint_is_set_aside_and_every_later_one_is_saved(
    tiny_config, tiny_checkpoint, tmp_path):
  workdir = _copy_run(tiny_checkpoint, tmp_path)
  checkpoints_dir = workdir / 'checkpoints'
  steps = sorted(int(p.name) for p in checkpoints_dir.iterdir() if p.name.isdigit())
  broken = checkpoints_dir / str(steps[-1])
  (broken / 'state' / '_METADATA').write_text('{half written')
  (broken / 'config' / 'metadata').write_text('{half written')
  damaged = _fingerprint(broken)
  config = tiny_config.copy_and_resolve_references()
  config.train.num_steps, config.train.sample_every = steps[-1], 0
  logged = []
  state = loop.train_and_evaluate(config, str(workdir), on_metrics=lambda s, m: logged.append(s))
  assert min(logged) > steps[-2]  # resumed from the step before the broken one
  set_aside = [p for p in checkpoints_dir.iterdir() if p.name.startswith(f'{steps[-1]}.set_aside.')]
  assert len(set_aside) == 1 and _fingerprint(set_aside[0]) == damaged
  # The broken step was trained again and saved, readable, with this run's weights.
  _, restored = checkpoints.load_for_inference(str(workdir))
  assert checkpoints.describe(str(workdir))['step'] == steps[-1]
  for ours, theirs in zip(jax.tree.leaves(state['ema_params']), jax.tree.leaves(restored)):
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
  # Going on, every checkpoint is saved and rotation keeps readable ones only.
  config.train.num_steps = steps[-1] + 2 * config.train.checkpoint_every
  state = loop.train_and_evaluate(config, str(workdir))
  kept = sorted(int(p.name) for p in checkpoints_dir.iterdir() if p.name.isdigit())
  assert kept[-2:] == [steps[-1] + config.train.checkpoint_every, config.train.num_steps]
  for step in kept:
    checkpoints.describe(str(checkpoints_dir / str(step)))  # raises on an unreadable one


def test_a_save_orbax_declines_is_an_error(tiny_config, tiny_checkpoint, tmp_path):
  workdir = _copy_run(tiny_checkpoint, tmp_path)
  config = tiny_config.copy_and_resolve_references()
  manager = checkpoint_manager.create_manager(str(workdir / 'checkpoints'), config)
  try:
    target = jax.eval_shape(lambda: train_state.init_train_state(config))
    loader = iter(input_pipeline.create_train_loader(config, config.data.data_dir))
    state = checkpoint_manager.restore_training(manager, target, loader, config)
    with pytest.raises(checkpoint_manager.CheckpointNotSaved, match='step 10 was not saved'):
      checkpoint_manager.save_training(manager, 10, state, loader, config)
  finally:
    manager.close()


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
