"""Plans for Wan 2.1 models: bytes per device and FLOPs of a fine-tuning step, by estimate
and by the TPU compiler, and what converting a clip costs one chip.

The step compiled is the trainer's own (``train_state.make_train_step``) on a batch of
latent records (``data.latents``; without it the step encodes the clips with the VAE
first): the flow-matching loss, gradients, clipping, the optimizer and EMA, with weights, moments and EMA laid out by ``config.mesh``'s rules (FSDP
over their widths) and the token axis split by the ``tokens`` rule (context parallelism)
where the config has one. Conversion is costed from one network evaluation over a whole clip's
latents (the scanned blocks' FLOPs restored: the compiler counts a loop's body once) and
the VAE's streamed encode and decode chunks, each compiled for one chip. The clip is
``video`` (width, height, frames) in pixels, e.g. 81 frames of 832x480, as Wan samples it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from eye2eye_jax.common import sharding
from eye2eye_jax.models import attention, networks, wan_runner, wan_transformer, wan_vae
from eye2eye_jax.planning import accelerators, tpu_compile


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
  """The transformer's tokens for one clip: twice the clip's when the right view joins
  along time (``model.condition_join='frames'``)."""
  shape = wan_transformer.WanShape.from_config(config.model.wan)
  grid = latent_grid(config, video)
  views = 2 if config.model.condition_channels and config.model.condition_join == 'frames' else 1
  return views * math.prod(g // p for g, p in zip(grid, shape.patch_size))


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


def estimate(config: ml_collections.ConfigDict, topology: accelerators.Topology,
             video: tuple[int, int, int], mfu: float) -> dict:
  """Bytes per device and time of a fine-tuning step, from the shapes alone."""
  mesh = sharding.abstract_mesh(config, topology.num_devices)
  params = abstract_params(config)
  shardings = sharding.param_shardings(params, mesh, config.mesh.rules)
  held = sharding.planned_bytes_per_device(params, shardings)
  everything = jax.eval_shape(lambda: networks.init_params(config, 0))
  frozen = {part: everything[part] for part in ('vae', 'empty_caption')}
  frozen_held = sharding.planned_bytes_per_device(
      frozen, sharding.param_shardings(frozen, mesh, config.mesh.rules))
  batch_axes, token_axes = (() if a is None else (a,) if isinstance(a, str) else tuple(a)
                            for a in sharding.token_sharding(mesh, config.mesh.rules).spec[:2])
  batch_split = math.prod(mesh.shape[a] for a in batch_axes)
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
            'ema': held, 'gradients': held, 'vae_and_caption': 2 * frozen_held,  # and EMA
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


def step_config(config: ml_collections.ConfigDict, video: tuple[int, int, int]
                ) -> ml_collections.ConfigDict:
  """``config`` training on clips of ``video`` (from latent records with ``data.latents``:
  the VAE ran once per clip when they were written; else the step encodes the clips)."""
  width, height, frames = video
  latent_grid(config, video)  # raises for a clip Wan cannot take
  variant = config.copy_and_resolve_references()
  variant.data.update(num_frames=frames, resolution=height, width=width)
  return variant


def compile_step(config: ml_collections.ConfigDict, topology: accelerators.Topology,
                 video: tuple[int, int, int]) -> dict:
  """The trainer's own step (``train_state.make_train_step``: the flow-matching loss on a
  batch of latents, text and, for a stereo model, the right view's latents; gradients,
  clipping, the optimizer and EMA) compiled by the TPU compiler for ``topology``."""
  figures = tpu_compile.compile_train_step(step_config(config, video), topology)
  return {**figures, 'program': 'wan_train_step', 'video': list(video)}


def _one_chip(topology: accelerators.Topology):
  devices = tpu_compile.abstract_tpu_devices(topology)
  one = jax.sharding.SingleDeviceSharding(devices[0])
  return lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one)


def compile_denoiser_call(config: ml_collections.ConfigDict, topology: accelerators.Topology,
                          video: tuple[int, int, int]) -> dict:
  """One evaluation of the network on the latents of a whole ``video`` clip (a sampling
  step: the right view's latents and the text included) on one chip of ``topology``."""
  place = _one_chip(topology)
  variant = step_config(config, video)
  params = jax.tree.map(place, jax.eval_shape(lambda: networks.init_params(variant, 0)))
  shape = networks.model_shape(variant.model, (1,) + networks.clip_size(variant) + (3,))
  latents = place(jax.ShapeDtypeStruct(shape, jnp.float32))
  condition = latents if variant.model.condition_channels else None
  text = place(jax.ShapeDtypeStruct((1, int(variant.text.max_tokens),
                                     variant.model.text_embed_dim), jnp.float32))
  t = place(jax.ShapeDtypeStruct((1,), jnp.float32))
  graph = networks.graphdef(variant)
  call = jax.jit(lambda p, x, c, text, t: networks.make_denoiser(variant, graph, p, c, text)(x, t))
  lowered = call.lower(params, latents, condition, text, t)
  return {'program': 'wan_denoiser_call', 'topology': tpu_compile.topology_name(topology),
          'video': list(video), **tpu_compile.compiled_figures(lowered, topology.chip.hbm_bytes)}


def compile_block_call(config: ml_collections.ConfigDict, topology: accelerators.Topology,
                       video: tuple[int, int, int]) -> dict:
  """One transformer block's forward over a whole ``video`` clip's tokens on one chip: the
  compiler counts a scanned loop's body once, so a call's FLOPs miss num_layers - 1 of
  these (``denoiser_flops`` adds them back)."""
  place = _one_chip(topology)
  variant = step_config(config, video)
  shape = wan_transformer.WanShape.from_config(variant.model.wan)
  dtype = jnp.dtype(variant.model.dtype)
  fn = attention.attention_fn(variant.model.attention_kernel, variant.model.attention_chunk)
  graph, state = nnx.split(nnx.eval_shape(
      lambda: wan_transformer.WanBlock(shape, dtype, fn, nnx.Rngs(0))), nnx.Param)
  grid = tuple(g // p for g, p in zip(latent_grid(variant, video), shape.patch_size))
  rotary = tuple(jnp.asarray(t) for t in wan_transformer.rotary_tables(shape, *grid))
  f32 = lambda *dims: place(jax.ShapeDtypeStruct(dims, jnp.float32))
  call = jax.jit(lambda state, x, context, modulation: nnx.merge(graph, state)(
      x, context, modulation, rotary))
  lowered = call.lower(jax.tree.map(place, state), f32(1, math.prod(grid), shape.dim),
                       f32(1, int(variant.text.max_tokens), shape.dim), f32(1, 6, shape.dim))
  return {'program': 'wan_block_call', 'topology': tpu_compile.topology_name(topology),
          'video': list(video), **tpu_compile.compiled_figures(lowered, topology.chip.hbm_bytes)}


def denoiser_flops(config: ml_collections.ConfigDict, call: dict, block: dict) -> float:
  """FLOPs of one network evaluation: the compiled call's, plus the blocks its count of the
  scanned loop left out."""
  return call['flops'] + (config.model.wan.num_layers - 1) * block['flops']


def _vae_chunk(config, topology, video, direction: str):
  """The VAE's ``direction`` ('encode' or 'decode') of one later streamed chunk (4 frames,
  one latent frame, the causal caches in and out) on one chip."""
  place = _one_chip(topology)
  shape = wan_vae.VaeShape.from_config(config.model.wan_vae)
  _, height, width = latent_grid(config, video)
  module = nnx.eval_shape(lambda: wan_vae.create(shape, config.model.dtype))
  params = jax.tree.map(place, nnx.to_pure_dict(nnx.state(module, nnx.Param)))
  encode, decode = wan_runner.vae_functions(shape, config.model.dtype)
  ratio, side = shape.temporal_ratio, shape.spatial_ratio
  if direction == 'encode':
    function, caches_at = encode, 2
    first = jax.ShapeDtypeStruct((1, 1, height * side, width * side, 3), jnp.float32)
    later = jax.ShapeDtypeStruct((1, ratio, height * side, width * side, 3), jnp.float32)
  else:
    function, caches_at = decode, 1
    first = later = jax.ShapeDtypeStruct((1, 1, height, width, shape.z_dim), jnp.float32)
  caches = jax.eval_shape(lambda p, x: function(p, x, None), params, first)[caches_at]
  lowered = function.lower(params, place(later), jax.tree.map(place, caches))
  return {'program': f'wan_vae_{direction}_chunk',
          'topology': tpu_compile.topology_name(topology), 'video': list(video),
          'frames_per_chunk': ratio,
          **tpu_compile.compiled_figures(lowered, topology.chip.hbm_bytes)}


def compile_vae_encode(config: ml_collections.ConfigDict, topology: accelerators.Topology,
                       video: tuple[int, int, int]) -> dict:
  """One later chunk of the VAE's streamed encode (4 frames -> one latent frame)."""
  return _vae_chunk(config, topology, video, 'encode')


def conversion_seconds(config: ml_collections.ConfigDict, chip: accelerators.Chip,
                       video: tuple[int, int, int], evaluations: int, call_flops: float,
                       encode_chunk: dict, decode_chunk: dict, utilisation: float) -> float:
  """Seconds to convert one ``video`` clip on one ``chip`` at ``utilisation`` of its peak:
  ``evaluations`` network calls, and the VAE's encode of the right view and decode of the
  left one (every latent frame costed as a later chunk of 4 frames: the first chunk holds
  one frame, so this overstates them slightly)."""
  latent_frames = latent_grid(config, video)[0]
  flops = (evaluations * call_flops
           + latent_frames * (encode_chunk['flops'] + decode_chunk['flops']))
  return flops / (chip.peak_flops(config.model.dtype) * utilisation)


def compile_vae_decode(config: ml_collections.ConfigDict, topology: accelerators.Topology,
                       video: tuple[int, int, int]) -> dict:
  """One later chunk of the VAE's streamed decode (one latent frame -> 4 frames)."""
  return _vae_chunk(config, topology, video, 'decode')


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
