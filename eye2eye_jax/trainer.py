"""The training loop: data, jitted steps, checkpoints, resume and metric writing."""

from __future__ import annotations

import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers, periodic_actions

from eye2eye_jax import (checkpointing, input_pipeline, model as model_lib, training,
                         training_samples)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       on_metrics=None) -> training.TrainState:
  """Runs (or resumes) training to ``config.train.num_steps``; returns the final state.

  ``on_metrics(step, scalars)`` is called with every logged set of scalars.
  """
  model_lib.validate_model_config(config.model)
  model_lib.check_video_shape(config.model, config.data.num_frames, config.data.resolution,
                              config.data.resolution)
  os.makedirs(workdir, exist_ok=True)
  data_dir = input_pipeline.resolve_data_dir(config)
  if jax.process_index() == 0:
    input_pipeline.ensure_dataset(config, data_dir)
  loader = input_pipeline.create_train_loader(config, data_dir)
  data_iterator = iter(loader)

  state = training.init_train_state(config)
  manager = checkpointing.create_manager(os.path.join(workdir, 'checkpoints'), config)
  restored = checkpointing.restore_training(manager, jax.tree.map(np.asarray, state),
                                            data_iterator)
  if restored is not None:
    state = jax.tree.map(jax.numpy.asarray, restored)
    logging.info('Resumed from step %d', int(state['step']))
  elif config.train.init_checkpoint:
    state = training.init_from_checkpoint(config, state, config.train.init_checkpoint)
    logging.info('Initialised the weights from %s', config.train.init_checkpoint)
  start_step = int(state['step'])

  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
  if start_step == 0:
    writer.write_hparams({k: str(v) for k, v in config.to_dict().items()})
  params = model_lib.count_params(state['params'])
  logging.info('UNet: %.2fM parameters', params / 1e6)

  train_step = training.make_train_step(config)
  t = config.train
  sample_clips = None
  if t.sample_every > 0 and jax.process_index() == 0:
    sample_clips = training_samples.TrainingSampler(config, data_dir)
  report = periodic_actions.ReportProgress(num_train_steps=t.num_steps, writer=writer,
                                           every_steps=t.log_every)
  losses = []
  step_start = time.time()
  for step in range(start_step + 1, t.num_steps + 1):
    batch = next(data_iterator)
    state, metrics = train_step(state, batch)
    losses.append(metrics['loss'])
    report(step)
    if step % t.log_every == 0 or step == t.num_steps:
      loss = float(np.mean(jax.device_get(losses)))
      losses = []
      scalars = {'loss': loss, 'grad_norm': float(metrics['grad_norm']),
                 'seconds_per_step': (time.time() - step_start) / t.log_every}
      writer.write_scalars(step, scalars)
      if on_metrics is not None:
        on_metrics(step, scalars)
      step_start = time.time()
    if sample_clips is not None and step % t.sample_every == 0:
      sample_clips(step, state, writer)
    if step % t.checkpoint_every == 0 or step == t.num_steps:
      checkpointing.save_training(manager, step, state, data_iterator, config)
  manager.wait_until_finished()
  manager.close()
  writer.flush()
  return state
