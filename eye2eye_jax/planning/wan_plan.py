"""Plans for Wan 2.1 transformers: bytes per device and FLOPs of a fine-tuning step, by
estimate and by the TPU compiler, and the VAE's decode of one chunk.

The step is the transformer's: the flow-matching loss (mean squared error of the predicted
velocity) on a batch of noisy latents, timesteps, targets and text, its gradients and the
project's optimizer update (``train_state.make_optimizer``), with weights, moments and EMA
laid out by ``config.mesh``'s rules (FSDP over their widths) and the activations' token axis
split by the ``tokens`` rule (context parallelism) where the config has one. The VAE encode
of the training clips is left out: it runs once per clip, outside the step. The clip is
``video`` (width, height, frames) in pixels, e.g. 81 frames of 832x480, as Wan samples it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from eye2eye_jax.common import sharding
from eye2eye_jax.models import wan_runner, wan_transformer, wan_vae
from eye2eye_jax.planning import accelerators, tpu_compile
from eye2eye_jax.training import train_state


def latent_grid(config: ml_collections.ConfigDict, video: tuple[int, int, int]):
  """(latent frames, latent height, latent width) of a clip of ``video`` pixels."""
  width, height, frames = video
  vae = wan_vae.VaeShape.from_config(config.model.wan_vae)
  r, s = vae.temporal_ratio, vae.spatial_ratio
  if (frames - 1) % r or height % (2 * s) or width % (2 * s):
    raise ValueError(f'a clip of {frames} frames of {width}x{height}: Wan takes 1 + {r}k '
                     f'frames and sides that are multiples of {2 * s}')
  return (frames - 1) // r + 1, height // s, width // s


def tokens(config: ml_collections.ConfigDict, video: tuple[int, int, int]) -> int:
  shape = wan_transformer.WanShape.from_config(config.model.wan)
  grid = latent_grid(config, video)
  return math.prod(g // p for g, p in zip(grid, shape.patch_size))


def abstract_params(config: ml_collections.ConfigDict) -> dict:
  shape = wan_transformer.WanShape.from_config(config.model.wan)
  module = nnx.eval_shape(lambda: wan_transformer.create(shape, config.model))
  return nnx.to_pure_dict(nnx.state(module, nnx.Param))


def forward_flops(config: ml_collections.ConfigDict, video: tuple[int, int, int],
                  batch: int) -> float:
  """Matmul FLOPs of one forward pass over ``batch`` clips (2 per multiply-add): every
  projection, self-attention's scores and weighted sums over all tokens, cross-attention's
  over the text tokens; norms and elementwise work left out."""
  s = wan_transformer.WanShape.from_config(config.model.wan)
  n, text, d = tokens(config, video), int(config.text.max_tokens), s.dim
  per_layer = (2 * n * (6 * d * d + 2 * d * s.ffn_dim)  # q k v o, cross q o, feed-forward
               + 2 * text * 2 * d * d  # cross-attention's keys and values of the text
               + 2 * 2 * n * n * d + 2 * 2 * n * text * d)  # scores and weighted sums
  patches = math.prod(s.patch_size) * s.in_channels
  head = 2 * n * d * (patches + math.prod(s.patch_size) * s.out_channels)
  return batch * (s.num_layers * per_layer + head)


def _mesh_layout(config, mesh):
  """(batch axes, token axes) of the activations under ``config.mesh.rules``."""
  axes = {logical: (m,) if isinstance(m, str) else tuple(m) for logical, m in config.mesh.rules
          if logical in ('batch', 'tokens')}
  return axes.get('batch', ()), axes.get('tokens', ())


def estimate(config: ml_collections.ConfigDict, topology: accelerators.Topology,
             video: tuple[int, int, int], mfu: float) -> dict:
  """Bytes per device and time of a fine-tuning step, from the shapes alone."""
  mesh = sharding.abstract_mesh(config, topology.num_devices)
  params = abstract_params(config)
  shardings = sharding.param_shardings(params, mesh, config.mesh.rules)
  held = sharding.planned_bytes_per_device(params, shardings)
  batch_axes, token_axes = _mesh_layout(config, mesh)
  batch_split = math.prod(mesh.shape[a] for a in batch_axes if a not in token_axes)
  token_split = math.prod(mesh.shape[a] for a in token_axes)
  b = config.data.batch_size
  if b % batch_split:
    raise ValueError(f'data.batch_size={b} does not split over the {batch_split} devices of '
                     f'the batch axes {batch_axes}')
  s = wan_transformer.WanShape.from_config(config.model.wan)
  n = math.ceil(tokens(config, video) / token_split)
  local = b // batch_split
  width = np.dtype(config.model.dtype).itemsize
  stream = local * n * s.dim * 4  # the float32 residual stream between blocks
  block = local * n * (10 * s.dim + 3 * s.ffn_dim) * width  # one block's internals
  saved = s.num_layers * (stream if config.model.remat == 'full' else stream + block)
  memory = {'parameters': held, 'optimizer': 2 * held,
            'ema': held, 'gradients': held,
            'activations': saved, 'recomputed_block': block if config.model.remat != 'none'
            else 0}
  total = sum(memory.values())
  recompute = 1.0 if config.model.remat != 'none' else 0.0
  flops = forward_flops(config, video, b) * (3 + recompute) / topology.num_devices
  peak = (topology.chip.peak_flops_bf16 if config.model.dtype == 'bfloat16'
          else topology.chip.peak_flops_fp32)
  return {'memory': memory, 'total_bytes': total, 'hbm_bytes': topology.chip.hbm_bytes,
          'fits': total <= topology.chip.hbm_bytes, 'tokens_per_clip': tokens(config, video),
          'tokens_per_device': n, 'clips_per_device': local, 'flops_per_device': flops,
          'step_s': flops / (peak * mfu), 'mesh': dict(mesh.shape)}


def make_step(config: ml_collections.ConfigDict, mesh, shapes: dict):
  """The jitted fine-tuning step on ``mesh`` and the (params, opt_state, batch) shardings."""
  shape = wan_transformer.WanShape.from_config(config.model.wan)
  params = abstract_params(config)
  optimizer = train_state.make_optimizer(config, params)
  opt_state = jax.eval_shape(optimizer.init, params)
  state = {'params': params, 'ema_params': params, 'opt_state': opt_state}
  state_shardings = sharding.state_shardings(state, mesh, config.mesh.rules)
  state_shardings.pop('step')
  batch_axes, token_axes = _mesh_layout(config, mesh)
  batch_axes = tuple(a for a in batch_axes if a not in token_axes) or None
  tokens_spec = NamedSharding(mesh, PartitionSpec(batch_axes, token_axes or None, None))
  batch_spec = {k: NamedSharding(mesh, PartitionSpec(batch_axes, *[None] * (len(v.shape) - 1)))
                for k, v in shapes.items()}
  forward = wan_runner.transformer_function(shape, config.model, jit=False)
  decay = float(config.train.ema_decay)

  def step(state, batch):
    def loss(p):
      prediction = forward(p, batch['latents'], batch['timesteps'], batch['text'],
                           token_sharding=tokens_spec)
      return jnp.mean((prediction - batch['target'])**2)

    value, grads = jax.value_and_grad(loss)(state['params'])
    updates, opt_state = optimizer.update(grads, state['opt_state'], state['params'])
    params = jax.tree.map(lambda p, u: p + u, state['params'], updates)
    ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state['ema_params'], params)
    return {'params': params, 'ema_params': ema, 'opt_state': opt_state}, value

  jitted = jax.jit(step, in_shardings=(state_shardings, batch_spec),
                   out_shardings=(state_shardings, None), donate_argnums=(0,))
  return jitted, state, state_shardings, batch_spec


def batch_shapes(config: ml_collections.ConfigDict, video: tuple[int, int, int]) -> dict:
  s = wan_transformer.WanShape.from_config(config.model.wan)
  b = config.data.batch_size
  latents = (b,) + latent_grid(config, video) + (s.in_channels,)
  f32 = jnp.float32
  return {'latents': jax.ShapeDtypeStruct(latents, f32),
          'target': jax.ShapeDtypeStruct(latents[:-1] + (s.out_channels,), f32),
          'timesteps': jax.ShapeDtypeStruct((b,), f32),
          'text': jax.ShapeDtypeStruct((b, int(config.text.max_tokens), s.text_dim), f32)}


def compile_step(config: ml_collections.ConfigDict, topology: accelerators.Topology,
                 video: tuple[int, int, int]) -> dict:
  """The fine-tuning step compiled by the TPU compiler for ``topology``: figures per device."""
  devices = tpu_compile.abstract_tpu_devices(topology)
  mesh = sharding.create_mesh(config, devices)
  shapes = batch_shapes(config, video)
  step, state, state_shardings, batch_spec = make_step(config, mesh, shapes)
  lowered = step.lower(tpu_compile.placed(state, state_shardings),
                       tpu_compile.placed(shapes, batch_spec))
  return {'program': 'wan_train_step', 'topology': tpu_compile.topology_name(topology),
          'mesh': dict(mesh.shape), 'video': list(video),
          **tpu_compile.compiled_figures(lowered, topology.chip.hbm_bytes)}


def compile_vae_decode(config: ml_collections.ConfigDict, topology: accelerators.Topology,
                       video: tuple[int, int, int]) -> dict:
  """One later chunk of the VAE's streamed decode (one latent frame -> 4 frames, with the
  causal caches in and out) compiled for one chip of ``topology``."""
  devices = tpu_compile.abstract_tpu_devices(topology)
  shape = wan_vae.VaeShape.from_config(config.model.wan_vae)
  _, height, width = latent_grid(config, video)
  one = jax.sharding.SingleDeviceSharding(devices[0])
  place = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one)
  module = nnx.eval_shape(lambda: wan_vae.create(shape, config.model.dtype))
  params = jax.tree.map(place, nnx.to_pure_dict(nnx.state(module, nnx.Param)))
  latents = jax.ShapeDtypeStruct((1, 1, height, width, shape.z_dim), jnp.float32)
  _, decode = wan_runner.vae_functions(shape, config.model.dtype)
  first = jax.eval_shape(lambda p, z: decode(p, z, None), params, latents)[1]
  lowered = decode.lower(params, place(latents), jax.tree.map(place, first))
  return {'program': 'wan_vae_decode_chunk', 'topology': tpu_compile.topology_name(topology),
          'video': list(video), 'frames_out': 4,
          **tpu_compile.compiled_figures(lowered, topology.chip.hbm_bytes)}


DEFAULT_VIDEO = (832, 480, 81)  # Wan 2.1's clip: 81 frames of 832x480


def plan(config: ml_collections.ConfigDict, topology: accelerators.Topology, *,
         name: str = 'config', mfu: float = 0.4, video: tuple[int, int, int] = DEFAULT_VIDEO,
         compile_for_tpu: bool = False) -> dict:
  """The plan of a Wan config (JSON-able): the model, the step's estimate and, with
  ``compile_for_tpu``, the TPU compiler's figures for the step and one VAE decode chunk."""
  if not 0 < mfu <= 1:
    raise ValueError(f'mfu must be in (0, 1], got {mfu}')
  compiled = {}
  if compile_for_tpu:
    compiled = {'train_step': compile_step(config, topology, video),
                'vae_decode': compile_vae_decode(config, topology, video)}
  params = abstract_params(config)
  estimate_ = estimate(config, topology, video, mfu)
  return {
      'config': name, 'architecture': 'wan', 'topology': topology.name,
      'chip': topology.chip.name, 'devices': topology.num_devices, 'video': list(video),
      'model': {'parameters': int(sum(math.prod(x.shape) for x in jax.tree.leaves(params))),
                'dtype': config.model.dtype, 'remat': config.model.remat,
                'attention': config.model.attention_kernel},
      'batch': config.data.batch_size, 'training': estimate_,
      'fits': compiled['train_step']['fits'] if compiled else estimate_['fits'],
      'fits_source': 'TPU compiler' if compiled else 'estimate', 'compiled': compiled,
  }


def _gib(n) -> str:
  return 'refused' if n is None else f'{n / 2**30:.2f} GiB'


def format_plan(result: dict) -> str:
  """The plan as text."""
  t = result['training']
  width, height, frames = result['video']
  lines = [f'{result["config"]} on {result["topology"]} ({result["devices"]} x '
           f'{result["chip"]}): Wan 2.1, {result["model"]["parameters"] / 1e9:.2f}B parameters, '
           f'{result["model"]["dtype"]} compute, remat {result["model"]["remat"]}',
           f'  clip {frames} frames of {width}x{height}: {t["tokens_per_clip"]:,} tokens; '
           f'batch {result["batch"]}, mesh {t["mesh"]}: {t["clips_per_device"]} clip(s) and '
           f'{t["tokens_per_device"]:,} tokens per device',
           '  estimate per device:']
  for part, n in t['memory'].items():
    lines.append(f'    {part:18s} {_gib(n)}')
  lines.append(f'    {"total":18s} {_gib(t["total_bytes"])} of {_gib(t["hbm_bytes"])} HBM: '
               + ('fits' if t['fits'] else 'does not fit'))
  lines.append(f'  step: {t["flops_per_device"] / 1e12:.1f} TFLOP per device, '
               f'{t["step_s"]:.2f} s at the assumed utilisation')
  for program, figures in result['compiled'].items():
    flops = '' if figures['flops'] is None else f', {figures["flops"] / 1e12:.2f} TFLOP'
    lines.append(f'  TPU compiler, {program} on {figures["topology"]}: '
                 f'{_gib(figures["total_bytes"])} per device of {_gib(figures["hbm_bytes"])}'
                 f'{flops}: ' + ('fits' if figures['fits'] else 'does not fit')
                 + (f' ({figures["refused"]})' if figures['refused'] else ''))
  return '\n'.join(lines)
