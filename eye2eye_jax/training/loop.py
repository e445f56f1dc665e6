"""The training loop: data, jitted steps, checkpoints, resume and metric writing.

The state lives on the device mesh of ``config.mesh`` (``eye2eye_jax.common.sharding``); each
process reads its own share of every batch and the global batch is assembled from the
shares. SIGTERM (preemption) saves a checkpoint at the current step before returning.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers, periodic_actions
from etils import epath

from eye2eye_jax.common import atomic_files, runtime, sharding
from eye2eye_jax.data import datasets, input_pipeline
from eye2eye_jax.models import unet
from eye2eye_jax.training import checkpoint_manager, train_state, validation_samples


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       on_metrics=None) -> train_state.TrainState:
  """Runs (or resumes) training to ``config.train.num_steps``; returns the final state.

  ``on_metrics(step, scalars)`` is called with every logged set of scalars.
  """
  unet.validate_model_config(config.model)
  unet.check_video_shape(config.model, config.data.num_frames, config.data.resolution,
                         config.data.resolution)
  mesh = sharding.create_mesh(config)
  rules = config.mesh.rules
  sharding.per_device_batch(config, mesh)  # raises if the batch does not split
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)  # local or gs://
  runtime.check_shared_directory(workdir, '--workdir')
  data_dir = datasets.resolve_data_dir(config)
  runtime.check_shared_directory(data_dir, 'data.data_dir')
  if jax.process_index() == 0:
    datasets.ensure_dataset(config, data_dir)
  runtime.sync_processes('dataset ready')
  loader = input_pipeline.create_train_loader(config, data_dir)
  data_iterator = iter(loader)

  abstract = jax.eval_shape(lambda: train_state.init_train_state(config))
  state_shardings = sharding.state_shardings(abstract, mesh, rules)
  batch_sharding = sharding.batch_shardings(mesh, rules, input_pipeline.batch_ndims(config))
  target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        abstract, state_shardings)
  manager, state = _resume(config, os.path.join(workdir, 'checkpoints'), target, data_iterator)
  if state is not None:
    logging.info('Resumed from step %d', int(state['step']))
  elif config.train.init_checkpoint:
    state, report = train_state.init_from_checkpoint(config, config.train.init_checkpoint,
                                                     state_shardings)
    if jax.process_index() == 0:
      _write_text(workdir, 'init_report.json',
                  json.dumps({'source': config.train.init_checkpoint, **report}, indent=1))
  else:
    state = train_state.init_sharded_train_state(config, state_shardings)
  start_step = int(state['step'])

  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
  if start_step == 0:
    writer.write_hparams({k: str(v) for k, v in config.to_dict().items()})
  params = unet.count_params(state['params'])
  logging.info('UNet: %.2fM parameters', params / 1e6)

  train_step = train_state.make_train_step(config, state_shardings, batch_sharding)
  t = config.train
  held_out = None
  if t.eval_every > 0:
    held_out = _HeldOutLoss(config, data_dir, batch_sharding)
  sample_clips = None
  if t.sample_every > 0:  # on every process (the weights are global); process 0 writes
    sample_clips = validation_samples.TrainingSampler(config, data_dir)
  report = periodic_actions.ReportProgress(num_train_steps=t.num_steps, writer=writer,
                                           every_steps=t.log_every)
  losses = []
  learning_rate = train_state.learning_rate_schedule(config)
  clock = _StepClock()
  preempted = _PreemptionFlag()
  stopped_at = None
  for step in range(start_step + 1, t.num_steps + 1):
    batch = _global_batch(batch_sharding, next(data_iterator))
    state, metrics = train_step(state, batch)
    losses.append(metrics['loss'])
    compile_s = clock.step_done(metrics['loss'])
    if compile_s is not None:
      writer.write_scalars(step, {'compile_seconds': compile_s})
    report(step)
    if step % t.log_every == 0 or step % t.checkpoint_every == 0 or step == t.num_steps:
      _stop_if_diverged(losses, step, manager, preempted)
    if step % t.log_every == 0 or step == t.num_steps:
      loss = float(np.mean(jax.device_get(losses)))
      losses = []
      seconds = clock.seconds_per_step()
      scalars = {'loss': loss, 'grad_norm': float(metrics['grad_norm']),
                 'learning_rate': float(learning_rate(step - 1)),
                 'seconds_per_step': seconds, 'steps_per_second': 1 / seconds,
                 'clips_per_second': config.data.batch_size / seconds}
      writer.write_scalars(step, scalars)
      if on_metrics is not None:
        on_metrics(step, scalars)
    with clock.paused():
      if held_out is not None and (step % t.eval_every == 0 or step == t.num_steps):
        eval_loss = held_out(state['ema_params'])
        writer.write_scalars(step, {'eval/loss': eval_loss})
        if on_metrics is not None:
          on_metrics(step, {'eval/loss': eval_loss})
      if sample_clips is not None and step % t.sample_every == 0:
        sample_clips(step, state, writer)
    if step % t.checkpoint_every == 0 or step == t.num_steps:
      with clock.paused():
        checkpoint_manager.save_training(manager, step, state, data_iterator, config)
    elif preempted.is_set(manager, step):
      _stop_if_diverged(losses, step, manager, preempted)
      checkpoint_manager.save_training(manager, step, state, data_iterator, config)
      logging.warning('Preempted: saved step %d and stopped', step)
      stopped_at = step
      break
  preempted.restore()
  manager.wait_until_finished()
  manager.close()
  writer.flush()
  if stopped_at is not None:
    raise Preempted(stopped_at)
  return state


# The exit status of a preempted run (128 + SIGTERM, as a shell reports a process that
# SIGTERM ended): not 0, so that a scheduler requeues it rather than count it finished.
PREEMPTED_EXIT_STATUS = 143


class Preempted(Exception):
  """Training stopped on SIGTERM after checkpointing ``step``; the same command resumes."""

  def __init__(self, step: int):
    super().__init__(f'preempted: saved step {step}; run the same command again to resume')
    self.step = step


def _resume(config: ml_collections.ConfigDict, directory: str, target, data_iterator):
  """(checkpoint manager, restored state or None). Checkpoints this run cannot use stop it,
  unless ``train.allow_fresh_start``: then they are set aside and the run starts over."""
  manager = checkpoint_manager.create_manager(directory, config)
  try:
    return manager, checkpoint_manager.restore_training(manager, target, data_iterator, config)
  except checkpoint_manager.UnusableCheckpoints as error:
    manager.close()
    if not config.train.allow_fresh_start:
      raise
    logging.warning('%s', error)
  if jax.process_index() == 0:
    moved = checkpoint_manager.set_aside(directory)
    logging.warning('train.allow_fresh_start: starting over; the checkpoints that were in '
                    '%s are now in %s', directory, moved)
  runtime.sync_processes('checkpoints set aside')
  return checkpoint_manager.create_manager(directory, config), None


def _write_text(workdir: str, name: str, text: str) -> None:
  """Writes ``workdir/name``: atomically on local disks, as one object on buckets."""
  if '://' in workdir:
    epath.Path(workdir, name).write_text(text)
  else:
    atomic_files.write_text(os.path.join(workdir, name), text)


def _global_batch(batch_sharding: dict, local: dict) -> dict:
  """The global batch from this process's share of it."""
  return {k: jax.make_array_from_process_local_data(batch_sharding[k], v)
          for k, v in local.items()}


class _HeldOutLoss:
  """Mean loss of the EMA weights on the first ``train.eval_batches`` validation batches,
  with the same noise and times at every evaluation, so the values form a curve."""

  def __init__(self, config: ml_collections.ConfigDict, data_dir: str, batch_sharding: dict):
    loader = iter(input_pipeline.create_train_loader(config, data_dir, split='validation'))
    self._batches = [next(loader) for _ in range(config.train.eval_batches)]
    self._sharding = batch_sharding
    self._loss = train_state.make_eval_loss(config)

  def __call__(self, params) -> float:
    losses = [self._loss(params, _global_batch(self._sharding, batch), i)
              for i, batch in enumerate(self._batches)]
    return float(np.mean(jax.device_get(losses)))


class _StepClock:
  """Seconds per train step over the steps since the last reading, counting neither the
  first step of the run (it compiles) nor the time spent ``paused`` (evaluation, samples,
  checkpoints)."""

  def __init__(self):
    self._run_start = time.time()
    self._start = None  # set when the first step is done
    self._steps = 0
    self._paused_s = 0.0

  def step_done(self, loss) -> float | None:
    """Counts a step; after the first one (waited for), returns its seconds: compilation."""
    if self._start is not None:
      self._steps += 1
      return None
    jax.block_until_ready(loss)
    self._start = time.time()
    return self._start - self._run_start

  def seconds_per_step(self) -> float:
    """Seconds per step since the last reading (the last step waited for), then restarts."""
    now = time.time()
    seconds = ((now - self._start - self._paused_s) / self._steps if self._steps
               else float('nan'))  # only the compiling step so far
    self._start, self._steps, self._paused_s = now, 0, 0.0
    return seconds

  @contextlib.contextmanager
  def paused(self):
    start = time.time()
    try:
      yield
    finally:
      self._paused_s += time.time() - start


def _stop_if_diverged(losses: list, step: int, manager, preempted: _PreemptionFlag) -> None:
  """Raises FloatingPointError naming the first step whose loss is NaN or inf (``losses``
  are those of the steps up to ``step`` not yet checked). It is called before every
  checkpoint, so no diverged state is saved; saves in flight are finished first."""
  values = np.asarray(jax.device_get(losses), np.float64).reshape(-1)
  bad = np.flatnonzero(~np.isfinite(values))
  if not bad.size:
    return
  manager.wait_until_finished()
  preempted.restore()
  kept = manager.latest_step()
  kept = (f'the last good checkpoint (step {kept}) is kept in {manager.directory}'
          if kept is not None else 'no checkpoint was saved before it')
  raise FloatingPointError(f'training diverged: the loss is {values[bad[0]]} at step '
                           f'{step - len(values) + 1 + bad[0]}; stopped there, and {kept}')


class _PreemptionFlag:
  """Set by SIGTERM; with several processes, orbax's preemption sync point makes every
  process stop at the same step."""

  def __init__(self):
    self._signalled = False
    self._previous = None
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self._signalled = True

  def is_set(self, manager, step: int) -> bool:
    if jax.process_count() > 1:
      return manager.reached_preemption(step)
    return self._signalled

  def restore(self):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
