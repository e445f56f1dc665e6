"""The functional core of training: optimizer, train state and the jitted train step.

Weights are plain nested dicts of arrays (``nnx.to_pure_dict(nnx.state(...))``); the network
(``models/networks.py``: the UNet, or a Wan transformer on its VAE's latents) is rebuilt
from its graphdef inside jitted functions with ``nnx.merge``. The train state is a
dict ``{'step', 'params', 'opt_state', 'ema_params'}``; the step's randomness is derived
from the run's seed and the step number, so a resumed run draws the same noise.

Batches (``eye2eye_jax/data/input_pipeline.py``) hold ``right`` (the condition) and ``left`` (the
target) for the stereo task, or ``video`` alone for a backbone (``data.task='video'``), plus
``text`` / ``text_mask`` when the model reads text, and ``strength`` (B,) when it is
conditioned on the disparity scale.
"""

from __future__ import annotations

from typing import Any

import re

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging

from eye2eye_jax import diffusion
from eye2eye_jax.models import checkpoints, networks, surgery
from eye2eye_jax.training import distillation

TrainState = dict[str, Any]


_TEMPORAL = re.compile(r'(^|/)temporal(_norm|_conv)?/|^downsamplers/\d+/conv/(kernel|bias)$')
# Named groups for ``train.freeze``; any other entry is a regular expression searched in each
# parameter's path (e.g. 'down_blocks/0/0/conv1/conv/kernel'). The UNet's groups: temporal,
# spatial, text; a Wan transformer's: self_attention, cross_attention (with text: all the
# text path), feed_forward, modulation.
FREEZE_GROUPS = {
    # temporal convolutions, temporal attention and temporal downsamplers
    'temporal': lambda path: bool(_TEMPORAL.search(path)),
    # everything that sees one frame at a time (what an image backbone has), except the
    # first convolution, which gains the right view's channels in surgery
    'spatial': lambda path: not _TEMPORAL.search(path) and not path.startswith('conv_in/'),
    'text': lambda path: bool(re.search(r'(^|/)text(_norm|_linear_\d)?/', path)),
    # A Wan transformer's parts, each across all its (stacked) blocks:
    'self_attention': lambda path: path.startswith('transformer/stacked_blocks/attn1/'),
    'cross_attention': lambda path: bool(re.match(r'transformer/stacked_blocks/(attn2|norm2)/',
                                                  path)),
    'feed_forward': lambda path: path.startswith('transformer/stacked_blocks/ffn_'),
    # the time embedding and every block's and the head's modulation tables
    'modulation': lambda path: bool(re.match(r'transformer/(time_|(stacked_blocks/)?'
                                             r'scale_shift_table)', path)),
}


def frozen_mask(config: ml_collections.ConfigDict, params) -> dict:
  """A tree of bools like ``params``: True where ``train.freeze`` keeps the weight fixed
  (and for the parts no loss trains: ``networks.always_frozen``)."""
  tests = []
  for entry in config.train.freeze:
    if entry in FREEZE_GROUPS:
      tests.append(FREEZE_GROUPS[entry])
    else:
      try:
        tests.append(re.compile(entry).search)
      except re.error as error:
        raise ValueError(f'train.freeze: {entry!r} is neither a group '
                         f'{sorted(FREEZE_GROUPS)} nor a regular expression ({error})') from error
  tests.append(lambda path: networks.always_frozen(config, path))
  mask = {path: any(test(path) for test in tests) for path in surgery.flatten(params)}
  return surgery.unflatten_like(params, mask)


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """The learning rate at each optimizer step: linear warmup to ``train.learning_rate``."""
  t = config.train
  return optax.linear_schedule(0.0, t.learning_rate, max(t.warmup_steps, 1))


def make_optimizer(config: ml_collections.ConfigDict, params=None) -> optax.GradientTransformation:
  """AdamW with linear warmup to a constant rate, after global-norm clipping.

  With ``train.freeze`` (group names or regular expressions of parameter paths) the
  matching weights get no updates and no optimizer state; ``params`` (or their shapes)
  are needed to find them.
  """
  t = config.train
  optimizer = optax.chain(optax.clip_by_global_norm(t.grad_clip_norm),
                          optax.adamw(learning_rate_schedule(config),
                                      weight_decay=t.weight_decay))
  if not t.freeze and config.model.architecture == 'unet':
    return optimizer
  if params is None:
    params = jax.eval_shape(lambda: networks.init_params(config, 0))
  labels = jax.tree.map(lambda frozen: 'frozen' if frozen else 'trained',
                        frozen_mask(config, params))
  return optax.multi_transform({'trained': optimizer, 'frozen': optax.set_to_zero()}, labels)


def split_batch(config: ml_collections.ConfigDict, batch: dict):
  """(target, condition or None) of a batch, by ``data.task``."""
  if config.data.task == 'video':
    return batch['video'], None
  return batch['left'], batch['right']


def draw_step_noise(config: ml_collections.ConfigDict, batch: dict, rng,
                    condition_dropout: float = 0.0, caption_dropout: float = 0.0) -> dict:
  """Every random draw of a batch's loss, each with the examples on its first axis (so a
  share of the examples takes the matching rows): diffusion times ``t`` and noise ``eps``
  (shaped as the network denoises: a Wan model's latents), and the dropout masks
  ``keep_condition`` and ``keep_caption`` where they apply."""
  target, condition = split_batch(config, batch)
  t, eps = diffusion.draw_time_and_noise(rng, networks.denoised_shape(config, target.shape),
                                         target.dtype)
  noise = {'t': t, 'eps': eps}
  if condition is not None and condition_dropout:
    noise['keep_condition'] = jax.random.bernoulli(
        jax.random.fold_in(rng, 1), 1 - condition_dropout,
        (condition.shape[0],) + (1,) * (condition.ndim - 1))
  if batch.get('text') is not None and caption_dropout:
    noise['keep_caption'] = jax.random.bernoulli(jax.random.fold_in(rng, 2),
                                                 1 - caption_dropout, (target.shape[0], 1))
  return noise


def batch_loss(config: ml_collections.ConfigDict, graphdef, params, batch: dict, rng,
               condition_dropout: float = 0.0, caption_dropout: float = 0.0,
               activation_sharding=None, noise: dict | None = None) -> jax.Array:
  """The diffusion loss of one batch; the dropouts blank the right view or the caption of a
  random share of the examples (so that guidance can be used later). The draws come from
  ``rng``, or are given as ``noise`` (``draw_step_noise``)."""
  if noise is None:
    noise = draw_step_noise(config, batch, rng, condition_dropout, caption_dropout)
  target, condition = networks.encode_videos(config, params, *split_batch(config, batch))
  if 'keep_condition' in noise:
    condition = condition * noise['keep_condition']
  text, text_mask = batch.get('text'), batch.get('text_mask')
  if 'keep_caption' in noise:
    text_mask = jnp.logical_and(text_mask, noise['keep_caption'])
  denoiser = networks.make_denoiser(config, graphdef, params, condition, text, text_mask,
                                    activation_sharding, batch.get('strength'))
  return diffusion.diffusion_loss(config, denoiser, target, None, (noise['t'], noise['eps']))


def train_state_from_params(config: ml_collections.ConfigDict, params) -> TrainState:
  """A step-0 train state around ``params``: fresh optimizer state, EMA = the weights;
  when distilling (``distillation``), the teacher's weights too, = the weights."""
  state = {
      'step': jnp.zeros((), jnp.int32),
      'params': params,
      'opt_state': make_optimizer(config, params).init(params),
      'ema_params': jax.tree.map(jnp.copy, params),
  }
  if distillation.enabled(config):
    state['teacher_params'] = jax.tree.map(jnp.copy, params)
  return state


def init_train_state(config: ml_collections.ConfigDict) -> TrainState:
  return train_state_from_params(config, networks.init_params(config, config.seed))


def init_from_checkpoint(config: ml_collections.ConfigDict, source: str, state_shardings=None
                         ) -> tuple[TrainState, dict[str, list[str]]]:
  """A step-0 train state whose weights come from another checkpoint, and the surgery report.

  The source may be the same UNet (a refiner started from its base model) or a backbone
  (fewer input channels, no text, or an image UNet): ``eye2eye_jax.models.surgery`` maps it.
  The weights are read and mapped in host memory; with ``state_shardings`` each device then
  receives only its own shards and the optimizer state is created in place, so the state
  is never whole on one accelerator.
  """
  source_config, loaded = checkpoints.load_weights_to_host(source)
  if source_config.model.architecture != config.model.architecture:
    raise ValueError(f'train.init_checkpoint {source}: holds a '
                     f'{source_config.model.architecture!r} model; this config builds a '
                     f'{config.model.architecture!r} one')
  with jax.default_device(jax.local_devices(backend='cpu')[0]):  # host memory, not a chip's
    fresh = networks.init_params(config, config.seed)
  try:
    params, report = surgery.transplant(fresh, loaded)
  except ValueError as error:
    raise ValueError(f'train.init_checkpoint {source}: does not fit config.model: '
                     f'{error}') from error
  logging.info('Weights from %s:\n%s', source, surgery.summary(report, params))
  if state_shardings is None:
    return train_state_from_params(config, jax.tree.map(jnp.asarray, params)), report
  params = jax.device_put(params, state_shardings['params'])
  state = jax.jit(lambda p: train_state_from_params(config, p),
                  out_shardings=state_shardings)(params)
  return state, report


def make_loss(config: ml_collections.ConfigDict, batch_sharding=None):
  """Returns the train step's loss ``(params, batch, step, noise=None) -> loss``: the step's
  noise, times and dropouts derive from the step, or are given (``draw_step_noise``).
  ``batch_sharding``: a dict per batch key, or None."""
  graphdef = networks.graphdef(config)
  base_rng = jax.random.PRNGKey(config.seed)
  activation_sharding = None
  if batch_sharding is not None:  # the layout of the (B, T, H, W, C) videos
    activation_sharding = batch_sharding.get('left', batch_sharding.get('video'))

  def loss(params: dict, batch: dict, step: jax.Array, noise: dict | None = None) -> jax.Array:
    return batch_loss(config, graphdef, params, batch, jax.random.fold_in(base_rng, step),
                      float(config.train.condition_dropout),
                      float(config.train.caption_dropout), activation_sharding, noise)

  return loss


def make_loss_and_grads(config: ml_collections.ConfigDict, batch_sharding=None):
  """``(params, batch, step) -> (loss, grads)`` of the whole batch. With
  ``train.grad_accum_steps`` = k > 1 the batch is taken in k micro-batches (example i goes
  to micro-batch i mod k, so each device's share splits evenly) in a loop that keeps one
  micro-batch's activations at a time; the noise is drawn for the whole batch first, so
  the result is the whole batch's loss and gradient up to float rounding."""
  k = config.train.grad_accum_steps
  loss = make_loss(config, batch_sharding)
  value_and_grad = jax.value_and_grad(loss)
  if k == 1:
    return value_and_grad
  base_rng = jax.random.PRNGKey(config.seed)
  t = config.train

  def loss_and_grads(params, batch, step):
    noise = draw_step_noise(config, batch, jax.random.fold_in(base_rng, step),
                            float(t.condition_dropout), float(t.caption_dropout))
    micro = jax.tree.map(lambda x: jnp.swapaxes(x.reshape((-1, k) + x.shape[1:]), 0, 1),
                         (batch, noise))

    def add_micro_batch(total, part):
      value, grads = value_and_grad(params, part[0], step, part[1])
      return jax.tree.map(jnp.add, total, (value, grads)), None

    zero = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
    (value, grads), _ = jax.lax.scan(add_micro_batch, zero, micro)
    return value / k, jax.tree.map(lambda g: g / k, grads)

  return loss_and_grads


def make_train_step(config: ml_collections.ConfigDict, state_shardings=None,
                    batch_sharding=None):
  """Returns the jitted ``(state, batch) -> (state, metrics)``; the state is donated.

  With shardings (``eye2eye_jax.common.sharding``; ``batch_sharding`` is a dict per batch key) the
  step is compiled for that layout: the state stays where it is, the batch is split over
  the data axes, the metrics are replicated. ``train.grad_accum_steps`` splits the batch
  into micro-batches (``make_loss_and_grads``). With ``distill.teacher_steps`` it is the
  progressive-distillation step (``distillation.make_train_step``).
  """
  optimizer = make_optimizer(config)
  decay = config.train.ema_decay
  distilling = distillation.enabled(config)
  loss_and_grads = None if distilling else make_loss_and_grads(config, batch_sharding)

  def ordinary_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    loss, grads = loss_and_grads(state['params'], batch, state['step'])
    updates, opt_state = optimizer.update(grads, state['opt_state'], state['params'])
    params = optax.apply_updates(state['params'], updates)
    ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state['ema_params'], params)
    new_state = {'step': state['step'] + 1, 'params': params, 'opt_state': opt_state,
                 'ema_params': ema}
    return new_state, {'loss': loss, 'grad_norm': optax.tree.norm(grads)}

  train_step = (distillation.make_train_step(config, optimizer) if distilling
                else ordinary_step)
  if state_shardings is None:
    return jax.jit(train_step, donate_argnums=0)
  mesh = next(iter(batch_sharding.values())).mesh
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  return jax.jit(train_step, donate_argnums=0, in_shardings=(state_shardings, batch_sharding),
                 out_shardings=(state_shardings, replicated))


def micro_batch_flops(config: ml_collections.ConfigDict, params, batch: dict) -> float:
  """FLOPs of one micro-batch's loss and gradient for a batch shaped like ``batch`` (XLA's
  count on the traced program, no compilation). XLA counts a loop's body once, so a
  compiled step with ``train.grad_accum_steps`` = k misses k - 1 of these."""
  k = config.train.grad_accum_steps
  micro = jax.tree.map(lambda x: jax.ShapeDtypeStruct((x.shape[0] // k,) + x.shape[1:],
                                                      x.dtype), batch)
  params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
  lowered = jax.jit(jax.value_and_grad(make_loss(config))).lower(
      params, micro, jax.ShapeDtypeStruct((), jnp.int32))
  return float(lowered.cost_analysis()['flops'])


def make_eval_loss(config: ml_collections.ConfigDict):
  """Jitted ``(params, batch, index) -> loss`` with noise and times fixed by ``index``, so
  the same held-out batches give a comparable loss at every evaluation (the inputs' own
  shardings decide the layout)."""
  graphdef = networks.graphdef(config)
  base_rng = jax.random.PRNGKey(10_000 + config.seed)

  def eval_loss(params, batch, index):
    return batch_loss(config, graphdef, params, batch, jax.random.fold_in(base_rng, index))

  return jax.jit(eval_loss)


def init_sharded_train_state(config: ml_collections.ConfigDict, state_shardings) -> TrainState:
  """A fresh train state created directly in its sharded layout (never whole on one device)."""
  return jax.jit(lambda: init_train_state(config), out_shardings=state_shardings)()
