"""The training run's orbax checkpoints: save and restore the whole train state.

A training run keeps ``<workdir>/checkpoints/<step>/`` with three items: ``state`` (params,
optimizer state, EMA params, step), ``data`` (the grain iterator's position) and ``config``
(the run's config as JSON). Reading the weights back for inference, and the lean inference
checkpoints, are ``eye2eye_jax.models.checkpoints``.
"""

from __future__ import annotations

import time

import grain
import jax
from absl import logging
import ml_collections
import orbax.checkpoint as ocp
from etils import epath

from eye2eye_jax.common import runtime
from eye2eye_jax.data import grain_state, input_pipeline
from eye2eye_jax.models import checkpoints


def create_manager(directory: str, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
  """Keeps ``train.keep_checkpoints`` checkpoints in ``directory`` (local or gs://)."""
  options = ocp.CheckpointManagerOptions(max_to_keep=config.train.keep_checkpoints, create=True,
                                         enable_async_checkpointing=True)
  return ocp.CheckpointManager(checkpoints.absolute(directory), options=options,
                               item_names=('state', 'data', 'config'))


def save_training(manager: ocp.CheckpointManager, step: int, state, data_iterator,
                  config: ml_collections.ConfigDict) -> None:
  """Starts an async save of the full training state at ``step``.

  A checkpoint directory deleted during the run is re-created (with a warning): training
  goes on and keeps saving, though the checkpoints that were in it are lost. A save orbax
  declines (it keeps no step at or below its newest) raises ``CheckpointNotSaved``.
  """
  directory = epath.Path(manager.directory)
  if not directory.exists():
    logging.warning('The checkpoint directory %s was deleted; re-creating it (its earlier '
                    'checkpoints are lost)', directory)
    directory.mkdir(parents=True, exist_ok=True)
  saved = manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=grain.checkpoint.CheckpointSave(data_iterator),
      config=ocp.args.JsonSave(config.to_dict())))
  if not saved:
    raise CheckpointNotSaved(
        f'the checkpoint of step {step} was not saved in {directory}: it already holds step '
        f'{manager.latest_step()}')


def restore_training(manager: ocp.CheckpointManager, abstract_state, data_iterator,
                     config: ml_collections.ConfigDict):
  """Restores the newest usable checkpoint; None when the directory holds none.

  ``abstract_state`` gives the structure and, through its arrays' shardings, the layout to
  restore onto (any mesh: orbax reshards). A checkpoint that is half-written or unreadable
  is skipped with a warning and the one before it is used; once one restores, the skipped
  newer ones are set aside (``set_aside``, never deleted), so that the steps after it are
  saved again and rotation keeps the readable ones. A checkpoint whose parameters do
  not match ``abstract_state`` stops the run (``CheckpointMismatch``), and so does a
  directory none of whose checkpoints can be read (``UnusableCheckpoints``): the run never
  silently starts over beside them. A data position written by a different number of
  processes is re-derived from the step (``input_pipeline.seek_to_step``), with a warning.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  unreadable = []
  for step in steps:
    directory = epath.Path(manager.directory) / str(step)
    try:
      stored = _stored_shapes(directory / 'state')
    except Exception as error:  # orbax and tensorstore raise many types for bad files
      logging.warning('Checkpoint %s is half-written or unreadable (%s: %s); trying the one '
                      'before it', directory, type(error).__name__, error)
      unreadable.append(directory)
      continue
    _check_structure(stored, abstract_state, directory)
    written_by = grain_state.written_process_count(directory / 'data')
    items = {'state': ocp.args.StandardRestore(abstract_state)}
    if written_by == jax.process_count():
      items['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
    try:
      restored = manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as error:
      logging.warning('Checkpoint %s is unreadable (%s: %s); trying the one before it',
                      directory, type(error).__name__, error)
      unreadable.append(directory)
      continue
    if unreadable:
      _set_aside_unreadable(manager, unreadable, step)
    if 'data' not in items:
      logging.warning('Checkpoint %s holds the data position of %s processes, this run has '
                      '%d: the position is re-derived from step %d as if the run had always '
                      'had %d', directory, written_by or 'no', jax.process_count(), step,
                      jax.process_count())
      input_pipeline.seek_to_step(data_iterator, config, step)
    return restored.state
  if steps:
    raise UnusableCheckpoints(
        f'none of the checkpoints in {manager.directory} (steps {sorted(steps)}) can be read '
        '(see the warnings above); move them away, or set train.allow_fresh_start=True to '
        'start over (they are then set aside, not deleted)')
  return None


def _set_aside_unreadable(manager: ocp.CheckpointManager, directories: list[epath.Path],
                          resumed: int) -> None:
  """Sets aside the unreadable checkpoints newer than the ``resumed`` one (process 0 renames,
  every process then re-lists)."""
  if jax.process_index() == 0:
    for directory in directories:
      moved = set_aside(str(directory))
      logging.warning('Resuming from step %d: the unreadable checkpoint %s is set aside as %s',
                      resumed, directory, moved)
  runtime.sync_processes('unreadable checkpoints set aside')
  manager.reload()


class CheckpointNotSaved(RuntimeError):
  """Orbax declined to save a checkpoint."""


class UnusableCheckpoints(ValueError):
  """The checkpoint directory holds checkpoints this run cannot resume from."""


class CheckpointMismatch(UnusableCheckpoints):
  """A checkpoint's parameters differ from the ones the run's config builds."""


def _stored_shapes(directory: epath.Path) -> dict[str, tuple]:
  """Every array's path and shape in a saved pytree, from its metadata (no data read)."""
  metadata = ocp.PyTreeCheckpointer().metadata(directory).item_metadata
  tree = metadata.tree if hasattr(metadata, 'tree') else metadata
  shapes = _shapes(tree) if tree is not None else {}
  if not shapes:  # orbax returns no tree for a missing or damaged _METADATA file
    raise ValueError(f'{directory} lists no arrays')
  return shapes


def _shapes(tree) -> dict[str, tuple]:
  return {jax.tree_util.keystr(path, simple=True, separator='/'): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _check_structure(stored: dict[str, tuple], abstract_state, directory) -> None:
  """Raises CheckpointMismatch naming the first path whose presence or shape differs."""
  expected = _shapes(abstract_state)
  for path in sorted(stored.keys() | expected.keys()):
    if stored.get(path) != expected.get(path):
      describe = lambda shape: 'absent' if shape is None else str(shape)
      raise CheckpointMismatch(
          f'checkpoint {directory} does not match the config: {path} is '
          f'{describe(stored.get(path))} there and {describe(expected.get(path))} in this '
          'run; resume with the config that wrote it, start a new workdir, or pass '
          'train.init_checkpoint to start from its weights on purpose')


def set_aside(directory: str) -> str:
  """Renames a checkpoint directory to ``<directory>.set_aside.<UTC time>``; returns the
  new name (a fresh start never deletes or overwrites an earlier run's checkpoints)."""
  target = f'{directory}.set_aside.{time.strftime("%Y%m%d-%H%M%S", time.gmtime())}'
  epath.Path(directory).rename(target)
  return target
