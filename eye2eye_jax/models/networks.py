"""The denoising network of a config, whichever its ``model.architecture``.

Training, sampling and planning reach the network only through these functions:

* ``'unet'``: the space-time UNet (``unet.py``) on pixels in [-1, 1];
* ``'wan'``: Wan 2.1's transformer (``wan_transformer.py``) on the normalised latents of its
  video VAE (``wan_vae.py``). Its weights are ``{'transformer', 'vae', 'empty_caption'}``:
  the VAE and the empty caption's text embedding ride along, never trained
  (``always_frozen``), so a checkpoint holds everything conversion needs. The right view's
  latents enter by channel concatenation at the patch embedding; the diffusion time t
  reaches the transformer as Wan's timestep, 1000 x sigma(t) of the flow schedule.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from eye2eye_jax import diffusion
from eye2eye_jax.common import sharding
from eye2eye_jax.models import attention, unet, wan_transformer, wan_vae

ARCHITECTURES = ('unet', 'wan')
_WAN_FROZEN = re.compile(r'^(vae|empty_caption)/')


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the field when the config cannot build its network."""
  m = config.model
  if m.condition_join not in ('channels', 'frames'):
    raise ValueError(f"model.condition_join must be 'channels' or 'frames', got "
                     f'{m.condition_join!r}')
  if m.architecture == 'unet':
    if m.condition_join != 'channels':
      raise ValueError("model.condition_join='frames' is for Wan models; the UNet "
                       'concatenates channels')
    unet.validate_model_config(m)
    return
  if m.architecture != 'wan':
    raise ValueError(f'model.architecture must be one of {ARCHITECTURES}, got '
                     f'{m.architecture!r}')
  shape, vae = _wan_shapes(m)
  if shape.in_channels != vae.z_dim or shape.out_channels != vae.z_dim:
    raise ValueError(f'model.wan.in_channels={shape.in_channels} and out_channels='
                     f'{shape.out_channels} must equal the VAE\'s model.wan_vae.z_dim='
                     f'{vae.z_dim}')
  if m.condition_channels not in (0, vae.z_dim):
    raise ValueError(f'model.condition_channels={m.condition_channels}: a Wan model takes '
                     f'0 (a backbone) or the right view\'s {vae.z_dim} latent channels')
  if m.text_embed_dim != shape.text_dim:
    raise ValueError(f'model.text_embed_dim={m.text_embed_dim} must equal model.wan.text_dim='
                     f'{shape.text_dim}')
  if m.dtype not in ('float32', 'bfloat16'):
    raise ValueError(f"model.dtype must be 'float32' or 'bfloat16', got {m.dtype!r}")
  if m.remat not in ('none', 'full', 'dots'):
    raise ValueError(f"model.remat must be 'none', 'full' or 'dots', got {m.remat!r}")
  if m.attention_kernel not in attention.KERNELS:
    raise ValueError(f'model.attention_kernel must be one of {attention.KERNELS}, got '
                     f'{m.attention_kernel!r}')
  d = config.diffusion
  if diffusion.flow_shift(d.schedule) is None or d.prediction != 'flow':
    raise ValueError(f"a Wan model is a flow-matching model: diffusion.schedule='flow[:S]' and "
                     f"diffusion.prediction='flow' (got {d.schedule!r}, {d.prediction!r})")
  if d.clip_x0:
    raise ValueError('diffusion.clip_x0: latents have no fixed range; set it to False')


def _wan_shapes(model_config) -> tuple[wan_transformer.WanShape, wan_vae.VaeShape]:
  return (wan_transformer.WanShape.from_config(model_config.wan),
          wan_vae.VaeShape.from_config(model_config.wan_vae))


def spatial_factor(model_config: ml_collections.ConfigDict) -> int:
  """Pixels of frame side per step of the network's coarsest grid: frame sides must be
  multiples of it."""
  if model_config.architecture == 'wan':
    shape, vae = _wan_shapes(model_config)
    return vae.spatial_ratio * max(shape.patch_size[1:])
  return 2**(len(model_config.channel_mult) - 1)


def valid_frames(model_config: ml_collections.ConfigDict, frames: int) -> int:
  """The fewest frames >= ``frames`` the network takes in one clip (Wan's VAE: 1 + 4k)."""
  if model_config.architecture == 'wan':
    ratio = wan_vae.VaeShape.from_config(model_config.wan_vae).temporal_ratio
    return 1 + ratio * math.ceil(max(frames - 1, 0) / ratio)
  return frames


def model_frames(model_config: ml_collections.ConfigDict, frames: int) -> int:
  """Frames the network sees for a clip of ``frames`` (Wan: latent frames)."""
  if model_config.architecture == 'wan':
    ratio = wan_vae.VaeShape.from_config(model_config.wan_vae).temporal_ratio
    return (frames - 1) // ratio + 1
  return frames


def check_video_shape(model_config: ml_collections.ConfigDict, frames: int, height: int,
                      width: int) -> None:
  """Raises ValueError when a clip of this shape cannot pass through the network."""
  if model_config.architecture != 'wan':
    unet.check_video_shape(model_config, frames, height, width)
    return
  factor = spatial_factor(model_config)
  if valid_frames(model_config, frames) != frames or height % factor or width % factor:
    ratio = wan_vae.VaeShape.from_config(model_config.wan_vae).temporal_ratio
    raise ValueError(f'clip of {frames}x{height}x{width} (frames x height x width): a Wan '
                     f'model takes 1 + {ratio}k frames and sides that are multiples of '
                     f'{factor}')


def clip_size(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
  """(frames, height, width) of the training clips (``data.width`` 0: square)."""
  d = config.data
  return int(d.num_frames), int(d.resolution), int(d.width or d.resolution)


def denoised_shape(config: ml_collections.ConfigDict, batch_shape: tuple[int, ...]
                   ) -> tuple[int, ...]:
  """The shape the network denoises for a batch's videos of ``batch_shape`` (their own
  with ``data.latents``: the records hold latents already)."""
  return tuple(batch_shape) if config.data.latents else model_shape(config.model, batch_shape)


def model_shape(model_config: ml_collections.ConfigDict, shape: tuple[int, ...]
                ) -> tuple[int, ...]:
  """The shape the network denoises for videos of ``shape`` (B, T, H, W, 3)."""
  if model_config.architecture != 'wan':
    return tuple(shape)
  vae = wan_vae.VaeShape.from_config(model_config.wan_vae)
  batch, frames, height, width = shape[:4]
  return (batch, model_frames(model_config, frames), height // vae.spatial_ratio,
          width // vae.spatial_ratio, vae.z_dim)


def _create(config: ml_collections.ConfigDict, seed: int = 0):
  if config.model.architecture == 'wan':
    shape, _ = _wan_shapes(config.model)
    return wan_transformer.create(shape, config.model, seed)
  return unet.create_model(config.model, seed)


def graphdef(config: ml_collections.ConfigDict):
  """The denoising network's structure, without allocating weights."""
  return nnx.split(nnx.eval_shape(lambda: _create(config)), nnx.Param)[0]


def init_params(config: ml_collections.ConfigDict, seed: int) -> dict:
  """Fresh weights as a plain nested dict of arrays (a Wan model's VAE random too: its real
  weights come from ``ckpt import`` through ``train.init_checkpoint``)."""
  pure = lambda module: nnx.to_pure_dict(nnx.state(module, nnx.Param))
  if config.model.architecture != 'wan':
    return pure(_create(config, seed))
  shape, vae = _wan_shapes(config.model)
  return {'transformer': pure(_create(config, seed)),
          'vae': pure(wan_vae.create(vae, 'float32', seed + 1)),
          'empty_caption': {'embedding': jnp.zeros((int(config.text.max_tokens),
                                                    shape.text_dim), jnp.float32)}}


def always_frozen(config: ml_collections.ConfigDict, path: str) -> bool:
  """True for weights no loss trains (a Wan model's VAE and empty-caption embedding)."""
  return config.model.architecture == 'wan' and bool(_WAN_FROZEN.match(path))


def count_params(params) -> int:
  return sum(x.size for x in jax.tree.leaves(params))


def _merged_vae(config: ml_collections.ConfigDict, vae_params) -> wan_vae.WanVAE:
  graph, state = nnx.split(nnx.eval_shape(
      lambda: wan_vae.create(wan_vae.VaeShape.from_config(config.model.wan_vae),
                             config.model.dtype)), nnx.Param)
  nnx.replace_by_pure_dict(state, vae_params)
  return nnx.merge(graph, state)


def encode_videos(config: ml_collections.ConfigDict, params, *videos):
  """Videos (B, T, H, W, 3) in [-1, 1] -> what the network denoises: themselves for a UNet,
  a Wan model's normalised VAE latent means (no gradient reaches the frozen VAE); with
  ``data.latents`` the batch holds those latents already. None stays None."""
  if config.model.architecture != 'wan' or config.data.latents:
    return videos
  vae = _merged_vae(config, jax.lax.stop_gradient(params['vae']))
  encode = lambda v: vae.normalize(vae.encode(v)[0])
  return tuple(None if v is None else jax.lax.stop_gradient(encode(v)) for v in videos)


def _wan_text(params, text, text_mask, batch: int):
  """The transformer's text (B, N, D): padded tokens zeroed as the release pads them; an
  example with no caption (none given, or all masked: caption dropout) gets the stored
  empty caption's embedding."""
  empty = params['empty_caption']['embedding'].astype(jnp.float32)
  if text is None:
    return jnp.broadcast_to(empty[None], (batch,) + empty.shape)
  if text_mask is None:
    return text
  kept = text * text_mask[..., None].astype(text.dtype)
  return jnp.where(text_mask.any(-1)[:, None, None], kept, empty[None])


def _token_layout(config, activation_sharding):
  """The (batch, tokens, width) layout matching a (B, T, H, W, C) ``activation_sharding``:
  the sampler's splits frames or rows (its tokens run frame by frame, row by row), the
  trainer's the batch (and the tokens by ``config.mesh.rules``' ``tokens`` rule)."""
  mesh, spec = activation_sharding.mesh, activation_sharding.spec
  split = [a for axes in spec[1:4] if axes is not None
           for a in ((axes,) if isinstance(axes, str) else axes)]
  if not split:
    return sharding.token_sharding(mesh, config.mesh.rules)
  return NamedSharding(mesh, PartitionSpec(spec[0], tuple(split), None))


def make_denoiser(config: ml_collections.ConfigDict, graph, params, condition, text=None,
                  text_mask=None, activation_sharding=None, strength=None):
  """The network as a function (x_t, t) -> prediction, conditioned on the right view
  (None for a backbone; a Wan model's in latents), on text where the model reads it, and
  for strength-conditioned models on ``strength`` (B,)."""
  if config.model.architecture != 'wan':
    return unet.make_denoiser(graph, params, condition, text, text_mask,
                              activation_sharding, strength)
  model = nnx.merge(graph, params['transformer'])
  schedule = config.diffusion.schedule
  tokens = None if activation_sharding is None else _token_layout(config, activation_sharding)

  def denoise(x_t, t):
    sigma = diffusion.alpha_sigma(schedule, t)[1]
    context = _wan_text(params, text, text_mask, x_t.shape[0])
    return model(x_t, 1000.0 * sigma, context, tokens, condition, strength)

  return denoise


def parameter_summary(params) -> str:
  """'12.3M parameters' (a Wan model's parts each)."""
  if isinstance(params, dict) and 'transformer' in params:
    return ', '.join(f'{part} {count_params(params[part]) / 1e6:.2f}M'
                     for part in ('transformer', 'vae'))
  return f'{count_params(params) / 1e6:.2f}M parameters'

