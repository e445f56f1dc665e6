"""The training run's orbax checkpoints: save and restore the whole train state.

A training run keeps ``<workdir>/checkpoints/<step>/`` with three items: ``state`` (params,
optimizer state, EMA params, step), ``data`` (the grain iterator's position) and ``config``
(the run's config as JSON). Reading the weights back for inference, and the lean inference
checkpoints, are ``eye2eye_jax.models.checkpoints``.
"""

from __future__ import annotations

import grain
from absl import logging
import ml_collections
import orbax.checkpoint as ocp
from etils import epath

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
  goes on and keeps saving, though the checkpoints that were in it are lost.
  """
  directory = epath.Path(manager.directory)
  if not directory.exists():
    logging.warning('The checkpoint directory %s was deleted; re-creating it (its earlier '
                    'checkpoints are lost)', directory)
    directory.mkdir(parents=True, exist_ok=True)
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=grain.checkpoint.CheckpointSave(data_iterator),
      config=ocp.args.JsonSave(config.to_dict())))


def restore_training(manager: ocp.CheckpointManager, abstract_state, data_iterator):
  """Restores the newest readable checkpoint, or returns None when there is none.

  ``abstract_state`` gives the structure and, through its arrays' shardings, the layout to
  restore onto (any mesh: orbax reshards). A checkpoint that cannot be read (half-written,
  corrupt) is skipped with a warning and the one before it is used.
  """
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      restored = manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state),
          data=grain.checkpoint.CheckpointRestore(data_iterator)))
    except Exception as error:  # orbax and tensorstore raise many types for bad files
      logging.warning('Checkpoint at step %d in %s is unreadable (%s: %s); trying the one '
                      'before it', step, manager.directory, type(error).__name__, error)
      continue
    return restored.state
  return None
