"""The training loop: data, jitted steps, checkpoints, resume and metric writing.

The state lives on the device mesh of ``config.mesh`` (``eye2eye_jax.common.sharding``); each
process reads its own share of every batch and the global batch is assembled from the
shares. SIGTERM (preemption) saves a checkpoint at the current step before returning.
"""

from __future__ import annotations

import itertools
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
from eye2eye_jax.models import networks
from eye2eye_jax.training import (checkpoint_manager, distillation, step_figures,
                                  train_state, validation_samples)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, on_metrics=None,
                       peak_flops_per_device: float | None = None) -> train_state.TrainState:
  """Runs (or resumes) training to ``config.train.num_steps``; returns the final state.

  ``on_metrics(step, scalars)`` is called with every logged set of scalars;
  ``peak_flops_per_device`` (``eye2eye_jax.planning.peak_flops``) adds the MFU to them.
  """
  networks.validate(config)
  networks.check_video_shape(config.model, *networks.clip_size(config))
  mesh = sharding.create_mesh(config)
  rules = config.mesh.rules
  sharding.per_device_batch(config, mesh)  # raises if the batch does not split
  if distillation.enabled(config):
    distillation.check_config(config)
  check_profile_steps(config)
  if epath.Path(workdir).exists() and not epath.Path(workdir).is_dir():
    raise NotADirectoryError(f'--workdir {workdir} is a file; it must be a directory (new or '
                             'a run to resume)')
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
  try:
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
    if int(state['step']) >= config.train.num_steps:
      return state
    writer = metric_writers.create_default_writer(workdir,
                                                  just_logging=jax.process_index() > 0)
    if int(state['step']) == 0:
      writer.write_hparams({k: str(v) for k, v in config.to_dict().items()})
    logging.info('Network: %s', networks.parameter_summary(state['params']))
    train_step = train_state.make_train_step(config, state_shardings, batch_sharding)
    batches = (_global_batch(batch_sharding, local) for local in data_iterator)
    try:
      return _run_steps(config, workdir, state, train_step, batches, data_dir, batch_sharding,
                        manager, data_iterator, writer, on_metrics, peak_flops_per_device)
    finally:
      writer.flush()
  finally:
    manager.wait_until_finished()
    manager.close()


def _run_steps(config, workdir, state, train_step, batches, data_dir, batch_sharding, manager,
               data_iterator, writer, on_metrics, peak_flops_per_device):
  """Steps from the state's step to ``train.num_steps``: the train step compiled ahead,
  figures logged (``step_figures``), evaluation, samples, checkpoints, a profile window
  and preemption. Returns the final state."""
  t = config.train
  start_step = int(state['step'])
  profile = _profiler(config, workdir)
  first = next(batches)
  started = time.perf_counter()
  compiled = train_step.lower(state, first).compile()
  flops = step_figures.flops_per_device(config, state, first, jax.device_count())
  setup = {'compile_seconds': time.perf_counter() - started,
           'gflop_per_step_per_device': flops / 1e9}
  if peak_flops_per_device:
    setup['peak_tflops_per_device'] = peak_flops_per_device / 1e12
  writer.write_scalars(start_step + 1, setup)
  logging.info('Train step compiled in %.1f s: %.2f GFLOP per step per device',
               setup['compile_seconds'], flops / 1e9)

  def write(step: int, scalars: dict) -> None:
    writer.write_scalars(step, scalars)
    if on_metrics is not None:
      on_metrics(step, scalars)

  log = step_figures.StepLog(config, write, train_state.learning_rate_schedule(config), flops,
                             peak_flops_per_device)
  held_out = ({split: _HeldOutLoss(config, data_dir, batch_sharding, split)
               for split in t.eval_splits} if t.eval_every > 0 else None)
  sample_clips = None
  if t.sample_every > 0:  # on every process (the weights are global); process 0 writes
    sample_clips = validation_samples.TrainingSampler(config, data_dir)
  report = periodic_actions.ReportProgress(num_train_steps=t.num_steps, writer=writer,
                                           every_steps=t.log_every)
  preempted = _PreemptionFlag()
  try:
    for step, batch in zip(range(start_step + 1, t.num_steps + 1),
                           itertools.chain([first], batches)):
      state, metrics = compiled(state, batch)
      log.add(step, metrics)
      report(step)
      if profile is not None:
        profile(step)
      evaluate = held_out is not None and (step % t.eval_every == 0 or step == t.num_steps)
      sample = sample_clips is not None and step % t.sample_every == 0
      save = step % t.checkpoint_every == 0 or step == t.num_steps
      stop = not save and preempted.is_set(manager, step)
      if evaluate or sample or save or stop:
        log.flush()  # raises on a NaN loss before anything is saved
        with log.paused(metrics):
          if evaluate:
            write(step, {_held_out_name(split): loss(state['ema_params'])
                         for split, loss in held_out.items()})
          if sample:
            sample_clips(step, state, writer)
          if save or stop:
            checkpoint_manager.save_training(manager, step, state, data_iterator, config)
      if stop:
        logging.warning('Preempted: saved step %d and stopped', step)
        raise Preempted(step)
    log.flush()
  except FloatingPointError as error:
    manager.wait_until_finished()
    kept = manager.latest_step()
    kept = (f'the last good checkpoint (step {kept}) is kept in {manager.directory}'
            if kept is not None else 'no checkpoint was saved before it')
    raise FloatingPointError(f'{error}; stopped there, and {kept}') from None
  finally:
    preempted.restore()
  return state


def check_profile_steps(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError unless ``train.profile_steps`` is () or (first, last), 1 <= first
  <= last (checked before anything is written)."""
  steps = tuple(config.train.profile_steps)
  if steps and (len(steps) != 2 or not 1 <= steps[0] <= steps[1]):
    raise ValueError(f'train.profile_steps must be (first, last) with 1 <= first <= last, '
                     f'got {steps}')


def _profiler(config: ml_collections.ConfigDict, workdir: str):
  """A clu action that traces steps ``train.profile_steps`` = (first, last) with
  jax.profiler into ``workdir/plugins/profile`` (TensorBoard's Profile tab); None if unset."""
  if not config.train.profile_steps:
    return None
  check_profile_steps(config)
  first, last = config.train.profile_steps
  return periodic_actions.Profile(logdir=workdir, first_profile=first,
                                  num_profile_steps=last - first + 1, profile_duration_ms=None,
                                  every_steps=None, every_secs=None)


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


def _held_out_name(split: str) -> str:
  """The TensorBoard figure of a held-out split's loss."""
  return 'eval/loss' if split == 'validation' else f'eval/loss_{split}'


class _HeldOutLoss:
  """Mean loss of the EMA weights on the first ``train.eval_batches`` batches of a held-out
  split, with the same noise and times at every evaluation, so the values form a curve."""

  def __init__(self, config: ml_collections.ConfigDict, data_dir: str, batch_sharding: dict,
               split: str):
    loader = iter(input_pipeline.create_train_loader(config, data_dir, split=split))
    self._batches = [next(loader) for _ in range(config.train.eval_batches)]
    self._sharding = batch_sharding
    self._loss = train_state.make_eval_loss(config)

  def __call__(self, params) -> float:
    losses = [self._loss(params, _global_batch(self._sharding, batch), i)
              for i, batch in enumerate(self._batches)]
    return float(np.mean(jax.device_get(losses)))


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
