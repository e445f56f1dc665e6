"""The real programs, compiled for this CPU from abstract shapes: FLOPs, memory, residuals.

Nothing is allocated: the train state is ``jax.eval_shape``d, the train step and the UNet
forward are lowered from ShapeDtypeStructs and compiled once per config and shape (cached
here), and XLA's cost and memory analyses give their figures. Activation memory is what
JAX's autodiff keeps between the forward and backward pass under ``model.remat`` (see the
package docstring for why this, not the CPU's temp bytes), read from jax's private
``saved_residuals`` (no public function returns the list; see ``WRITTEN_FOR``).
"""

from __future__ import annotations

import json
import math
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.extend import core as jex_core

from eye2eye_jax.data import input_pipeline
from eye2eye_jax.models import networks, unet
from eye2eye_jax.training import train_state


_cache: dict = {}  # abstract states and compiled programs' figures, by what they depend on


def _program_key(config: ml_collections.ConfigDict) -> str:
  """The whole config but the mesh (programs are per device): a field the programs read
  (the data's shape, the text length, ...) can never be missed, at the cost of compiling
  again for one they do not."""
  return json.dumps({k: v for k, v in config.to_dict().items() if k != 'mesh'},
                    sort_keys=True, default=str)


def abstract_train_state(config: ml_collections.ConfigDict) -> dict:
  """The train state's ShapeDtypeStructs (nothing allocated)."""
  key = ('state', _program_key(config))
  if key not in _cache:
    _cache[key] = jax.eval_shape(lambda: train_state.init_train_state(config))
  return _cache[key]


def parameter_counts(params) -> dict[str, int]:
  """Parameters per top-level UNet submodule."""
  return {name: networks.count_params(tree) for name, tree in params.items()}


def _figures(kind: str, config: ml_collections.ConfigDict, shape: tuple, lower) -> dict:
  """FLOPs and memory of a compiled program, compiled once per kind, config and shape."""
  key = (kind, _program_key(config), shape)
  if key not in _cache:
    compiled = lower().compile()
    cost, memory = compiled.cost_analysis(), compiled.memory_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    _cache[key] = {'flops': float(cost['flops']),
                   'temp_bytes': int(memory.temp_size_in_bytes),
                   'argument_bytes': int(memory.argument_size_in_bytes)}
  return _cache[key]


def batch_struct(config: ml_collections.ConfigDict, batch_size: int) -> dict:
  """ShapeDtypeStructs of a training batch of ``batch_size`` clips, as the loader makes them."""
  videos = (batch_size,) + networks.clip_size(config) + (config.model.video_channels,)
  clip = jax.ShapeDtypeStruct(networks.model_shape(config.model, videos) if config.data.latents
                              else videos, jnp.float32)
  tokens = (batch_size, int(config.text.max_tokens))
  shapes = {'text': jax.ShapeDtypeStruct(tokens + (config.model.text_embed_dim,), jnp.float32),
            'text_mask': jax.ShapeDtypeStruct(tokens, jnp.bool_),
            'strength': jax.ShapeDtypeStruct((batch_size,), jnp.float32)}
  return {key: shapes.get(key, clip) for key in input_pipeline.batch_ndims(config)}


def train_step_figures(config: ml_collections.ConfigDict, batch_size: int) -> dict:
  """The train step compiled for one device at ``batch_size`` (in ``train.grad_accum_steps``
  micro-batches: its FLOPs count all of them; XLA counts a loop's body once)."""
  state = abstract_train_state(config)
  batch = batch_struct(config, batch_size)
  figures = dict(_figures('train_step', config, (batch_size,),
                          lambda: train_state.make_train_step(config).lower(state, batch)))
  k = config.train.grad_accum_steps
  if k > 1:
    figures['flops'] += (k - 1) * train_state.micro_batch_flops(config, state['params'], batch)
  return figures


# Residuals a compiler does not keep: the elementwise intermediates of the normalisation
# layers and of the activation function. Autodiff lists each as an array of its own; XLA
# fuses them into the convolution that consumes them and recomputes them in the backward
# pass from the arrays it does keep (convolution outputs, concatenated skips, block
# outputs). Measured with the TPU compiler on configs/base_paper.py's train step (v5p-64,
# benchmarks/tpu_train_memory.py): counting them made the estimate 4.4x the compiled bytes.
# They, and ``fun``'s own arguments ('from the argument ...'), are recognised by the residual
# descriptions jax writes (flax's source file, jax.nn.silu's jit): a private format, like
# ``saved_residuals`` below.
_FUSED_INTERMEDIATES = ('flax/nnx/nn/normalization.py', "jitted function 'silu'")
# The versions the private jax internals here were read from (requirements.lock); checked,
# with a loud failure naming them, by tests/test_pinned_internals.py.
WRITTEN_FOR = {'jax': '0.10.2', 'flax': '0.12.8'}


def saved_residuals(fun, *args) -> list[tuple]:
  """(abstract value, description) of each residual ``fun``'s forward pass keeps for its
  backward pass: the list the public ``jax.ad_checkpoint.print_saved_residuals`` prints.
  jax has no public function that returns it; this is the one use of the private one."""
  from jax._src.ad_checkpoint import saved_residuals as private_saved_residuals
  return private_saved_residuals(fun, *args)


def _residual_bytes(fun, *args) -> int:
  """Bytes of the residuals ``fun``'s forward pass keeps for its backward pass, its own
  arguments and the fused elementwise intermediates left out."""
  return sum(math.prod(r.shape) * np.dtype(r.dtype).itemsize
             for r, why in saved_residuals(fun, *args)
             if not why.startswith('from the argument')
             and not any(marker in why for marker in _FUSED_INTERMEDIATES))


def _remat_blocks(jaxpr):
  """The rematerialised calls (``jax.checkpoint``) in a jaxpr, nested ones included."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in ('checkpoint', 'remat2'):
      yield eqn
    for param in eqn.params.values():
      for sub in param if isinstance(param, (list, tuple)) else (param,):
        if isinstance(sub, jex_core.ClosedJaxpr):
          yield from _remat_blocks(sub.jaxpr)
        elif isinstance(sub, jex_core.Jaxpr):
          yield from _remat_blocks(sub)


def _block_residual_bytes(eqn) -> int:
  """Residual bytes of one rematerialised call's body, differentiated without remat."""
  body = jex_core.jaxpr_as_fun(jex_core.ClosedJaxpr(eqn.params['jaxpr'], ()))
  return _residual_bytes(body, *[jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype)
                                 for v in eqn.invars])


def activation_bytes(config: ml_collections.ConfigDict, batch_size: int) -> dict:
  """Activation memory of the train step's forward/backward pass at ``batch_size``.

  ``saved``: the residuals autodiff keeps from the forward pass for the backward pass, under
  ``model.remat``; ``recomputed_block``: with remat, the residuals of the largest
  rematerialised block, which exist again while that block's backward pass runs. Both
  leave out the normalisation and activation intermediates that the compiler fuses and
  recomputes (``_FUSED_INTERMEDIATES``).
  """
  key = ('activations', _program_key(config), batch_size)
  if key not in _cache:
    loss = train_state.make_loss(config)
    args = (abstract_train_state(config)['params'], batch_struct(config, batch_size),
            jax.ShapeDtypeStruct((), jnp.int32))
    blocks = _remat_blocks(jax.make_jaxpr(loss)(*args).jaxpr)
    _cache[key] = {'saved': _residual_bytes(loss, *args),
                   'recomputed_block': max(map(_block_residual_bytes, blocks), default=0)}
  return _cache[key]


def forward_figures(config: ml_collections.ConfigDict, shape: tuple[int, ...]) -> dict:
  """One UNet forward on clips of ``shape`` (batch, frames, height, width), as sampling runs
  it (the denoiser of ``unet.make_denoiser``)."""
  params = abstract_train_state(config)['params']
  graphdef = unet.model_graphdef(config)
  video = jax.ShapeDtypeStruct(tuple(shape) + (config.model.video_channels,), jnp.float32)
  condition = None
  if config.model.condition_channels:
    condition = jax.ShapeDtypeStruct(tuple(shape) + (config.model.condition_channels,),
                                     jnp.float32)
  text = batch_struct(config, shape[0]).get('text')
  t = jax.ShapeDtypeStruct(shape[:1], jnp.float32)

  def forward(params, condition, text, x, t):
    return unet.make_denoiser(graphdef, params, condition, text)(x, t)

  return _figures('forward', config, tuple(shape),
                  lambda: jax.jit(forward).lower(params, condition, text, video, t))


# An array constant in compiled HLO text, e.g. "f32[80,512,512]{2,1,0} constant({...})".
_CONSTANT = re.compile(r'= ([a-z]+[0-9]*)\[([0-9,]*)\][^ ]* constant\(')
_HLO_BYTES = {'pred': 1, 's8': 1, 'u8': 1, 'bf16': 2, 'f16': 2, 's16': 2, 'u16': 2, 'f32': 4,
              's32': 4, 'u32': 4, 'f64': 8, 's64': 8, 'u64': 8, 'c64': 8, 'c128': 16}


def constant_bytes(compiled) -> int:
  """Bytes of the array constants a compiled program embeds (from its HLO text)."""
  total = 0
  for dtype, dims in _CONSTANT.findall(compiled.as_text()):
    total += math.prod(int(d) for d in dims.split(',') if d) * _HLO_BYTES.get(dtype, 4)
  return total


def tree_bytes(tree) -> int:
  """Bytes of every array (or ShapeDtypeStruct) in ``tree``."""
  return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


