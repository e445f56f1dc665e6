"""The functional core of training: optimizer, train state and the jitted train step.

Weights are plain nested dicts of arrays (``nnx.to_pure_dict(nnx.state(...))``); the UNet is
rebuilt from its graphdef inside jitted functions with ``nnx.merge``. The train state is a
dict ``{'step', 'params', 'opt_state', 'ema_params'}``; the step's randomness is derived
from the run's seed and the step number, so a resumed run draws the same noise.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from eye2eye_jax import diffusion
from eye2eye_jax import model as model_lib

TrainState = dict[str, Any]


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """AdamW with linear warmup to a constant rate, after global-norm clipping."""
  t = config.train
  schedule = optax.linear_schedule(0.0, t.learning_rate, max(t.warmup_steps, 1))
  return optax.chain(optax.clip_by_global_norm(t.grad_clip_norm),
                     optax.adamw(schedule, weight_decay=t.weight_decay))


def model_graphdef(config: ml_collections.ConfigDict):
  """The UNet's structure, without allocating weights."""
  abstract = nnx.eval_shape(lambda: model_lib.create_model(config.model))
  return nnx.split(abstract, nnx.Param)[0]


def init_params(config: ml_collections.ConfigDict, seed: int) -> dict:
  """Fresh UNet weights as a plain nested dict of arrays."""
  model = model_lib.create_model(config.model, seed)
  return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def make_denoiser(graphdef, params, condition, text=None, text_mask=None,
                  activation_sharding=None):
  """The UNet as a function (x_t, t) -> prediction, conditioned on the right view."""
  model = nnx.merge(graphdef, params)
  return lambda x_t, t: model(x_t, condition, t, text, text_mask, activation_sharding)


def init_train_state(config: ml_collections.ConfigDict) -> TrainState:
  params = init_params(config, config.seed)
  return {
      'step': jnp.zeros((), jnp.int32),
      'params': params,
      'opt_state': make_optimizer(config).init(params),
      'ema_params': jax.tree.map(jnp.copy, params),
  }


def init_from_checkpoint(config: ml_collections.ConfigDict, state: TrainState,
                         source: str) -> TrainState:
  """Starts training from another run's weights (e.g. a refiner from its base model).

  The checkpoint's UNet must have the same parameter shapes; the optimizer starts fresh.
  """
  from eye2eye_jax import checkpointing
  _, loaded = checkpointing.load_for_inference(source)
  # Checkpoints store list indices as strings; match parameters by their printed paths.
  by_path = lambda tree: {jax.tree_util.keystr(path, simple=True, separator='/'): leaf
                          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
  expected, found = by_path(state['params']), by_path(loaded)
  if {k: jnp.shape(v) for k, v in expected.items()} != {k: jnp.shape(v)
                                                        for k, v in found.items()}:
    raise ValueError(f'train.init_checkpoint {source}: its parameters do not match '
                     'config.model (different tree or shapes)')
  paths = list(expected)
  params = jax.tree.unflatten(jax.tree.structure(state['params']),
                              [jnp.asarray(found[p]) for p in paths])
  return {'step': state['step'], 'params': params,
          'opt_state': make_optimizer(config).init(params),
          'ema_params': jax.tree.map(jnp.copy, params)}


def make_loss(config: ml_collections.ConfigDict, batch_sharding=None):
  """Returns the train step's loss ``(params, batch, step) -> loss`` (the step's noise, times
  and condition dropout derive from the step)."""
  graphdef = model_graphdef(config)
  base_rng = jax.random.PRNGKey(config.seed)
  dropout = float(config.train.condition_dropout)

  def loss(params: dict, batch: dict, step: jax.Array) -> jax.Array:
    rng = jax.random.fold_in(base_rng, step)
    condition = batch['right']
    if dropout:  # zero the right view of some examples, so guidance can be used later
      keep = jax.random.bernoulli(jax.random.fold_in(rng, 1), 1 - dropout,
                                  (condition.shape[0],) + (1,) * (condition.ndim - 1))
      condition = condition * keep
    denoiser = make_denoiser(graphdef, params, condition, activation_sharding=batch_sharding)
    return diffusion.diffusion_loss(config, denoiser, batch['left'], rng)

  return loss


def make_train_step(config: ml_collections.ConfigDict, state_shardings=None,
                    batch_sharding=None):
  """Returns the jitted ``(state, batch) -> (state, metrics)``; the state is donated.

  With shardings (``eye2eye_jax.sharding``) the step is compiled for that layout: the state
  stays where it is, the batch is split over the data axes, the metrics are replicated.
  """
  loss_and_grads = jax.value_and_grad(make_loss(config, batch_sharding))
  optimizer = make_optimizer(config)
  decay = config.train.ema_decay

  def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    loss, grads = loss_and_grads(state['params'], batch, state['step'])
    updates, opt_state = optimizer.update(grads, state['opt_state'], state['params'])
    params = optax.apply_updates(state['params'], updates)
    ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state['ema_params'], params)
    new_state = {'step': state['step'] + 1, 'params': params, 'opt_state': opt_state,
                 'ema_params': ema}
    return new_state, {'loss': loss, 'grad_norm': optax.tree.norm(grads)}

  if state_shardings is None:
    return jax.jit(train_step, donate_argnums=0)
  replicated = jax.sharding.NamedSharding(batch_sharding.mesh, jax.sharding.PartitionSpec())
  return jax.jit(train_step, donate_argnums=0,
                 in_shardings=(state_shardings, {'right': batch_sharding,
                                                 'left': batch_sharding}),
                 out_shardings=(state_shardings, replicated))


def init_sharded_train_state(config: ml_collections.ConfigDict, state_shardings) -> TrainState:
  """A fresh train state created directly in its sharded layout (never whole on one device)."""
  return jax.jit(lambda: init_train_state(config), out_shardings=state_shardings)()
