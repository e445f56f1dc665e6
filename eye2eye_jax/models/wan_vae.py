"""The Wan 2.1 video VAE in Flax NNX, channels-last: causal 3D convolutions, streamed.

A video of F frames (F = 1 + 4k) becomes latents of 1 + k frames at 1/8 of its height and
width: 4x in time, 8x in space, 16 channels (diffusers' ``AutoencoderKLWan``). Every
temporal convolution is causal (it pads only the past), so a video can be encoded and
decoded in chunks of any size: each call takes the caches the previous chunk left (the
last input frames of every temporal convolution) and returns the next ones, and the result
equals one call on the whole video. The first chunk is the one that starts the video: its
first frame is encoded alone (the time downsampling keeps it), and its first latent frame
decodes to one frame, every later latent frame to four.

``encode`` / ``decode`` work on one chunk; ``normalize`` / ``denormalize`` apply the
released per-channel latent mean and std (the released pipeline normalises what it encodes
and undoes it before decoding); ``models/wan_streaming.py`` streams whole videos.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

CLASS_NAME = 'AutoencoderKLWan'


@dataclasses.dataclass(frozen=True)
class VaeShape:
  """The VAE's shape: the fields of its ``config.json`` that this port reads."""
  base_dim: int = 96
  z_dim: int = 16
  dim_mult: tuple[int, ...] = (1, 2, 4, 4)
  num_res_blocks: int = 2
  temperal_downsample: tuple[bool, ...] = (False, True, True)  # the release's spelling
  latents_mean: tuple[float, ...] = (0.0,) * 16
  latents_std: tuple[float, ...] = (1.0,) * 16

  @property
  def spatial_ratio(self) -> int:
    return 2**(len(self.dim_mult) - 1)

  @property
  def temporal_ratio(self) -> int:
    return 2**sum(self.temperal_downsample)

  @classmethod
  def from_diffusers(cls, config: dict, source: str = 'config.json') -> 'VaeShape':
    """Reads a released ``config.json``; refuses another architecture or the Wan 2.2
    variants this port does not build (patchified or residual VAEs, attention scales)."""
    name = config.get('_class_name')
    if name != CLASS_NAME:
      raise ValueError(f'{source}: _class_name is {name!r}, not {CLASS_NAME!r}')
    for field, expected in (('patch_size', None), ('is_residual', False), ('attn_scales', []),
                            ('decoder_base_dim', None), ('in_channels', 3),
                            ('out_channels', 3)):
      if config.get(field, expected) != expected:
        raise ValueError(f'{source}: {field}={config[field]!r} is not Wan 2.1\'s VAE '
                         f'(expected {expected!r})')
    values = {f.name: config[f.name] for f in dataclasses.fields(cls) if f.name in config}
    shape = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    if len(shape.latents_mean) != shape.z_dim or len(shape.latents_std) != shape.z_dim:
      raise ValueError(f'{source}: latents_mean and latents_std need z_dim={shape.z_dim} '
                       'values each')
    return shape

  @classmethod
  def from_config(cls, vae: ml_collections.ConfigDict) -> 'VaeShape':
    """From the ``model.wan_vae`` block of a project config."""
    return cls(**{f.name: tuple(vae[f.name]) if isinstance(vae[f.name], (list, tuple))
                  else vae[f.name] for f in dataclasses.fields(cls)})


class Caches:
  """The temporal convolutions' caches, read and written in call order: ``previous`` is what
  the last chunk wrote (None: this chunk starts the video, every cache is zeros)."""

  def __init__(self, previous: list | None):
    self.previous = previous
    self.written: list = []

  @property
  def first(self) -> bool:
    return self.previous is None

  def read(self, like):
    """The cache this convolution wrote last chunk, or zeros shaped ``like``."""
    if self.previous is None:
      return jnp.zeros_like(like)
    return self.previous[len(self.written)]

  def write(self, value) -> None:
    self.written.append(value)


def _conv(x, kernel, bias, strides, padding):
  """An N-d convolution of a channels-last ``x`` with a (*window, in, out) kernel."""
  spatial = 'DHW'[3 - (kernel.ndim - 2):]
  numbers = (f'N{spatial}C', f'{spatial}IO', f'N{spatial}C')
  y = jax.lax.conv_general_dilated(x, kernel.astype(x.dtype), strides, padding,
                                   dimension_numbers=numbers)
  return y + bias.astype(x.dtype)


def _per_frame(fn, x):
  """Applies a (N, H, W, C) function to every frame of (B, T, H, W, C)."""
  b, t = x.shape[:2]
  y = fn(x.reshape((b * t,) + x.shape[2:]))
  return y.reshape((b, t) + y.shape[1:])


class CausalConv3d(nnx.Module):
  """A 3D convolution padded by its window in space and only in the past in time."""

  def __init__(self, channels_in: int, channels_out: int, window=(3, 3, 3), *, rngs):
    self.kernel = nnx.Param(nnx.initializers.lecun_normal()(
        rngs.params(), tuple(window) + (channels_in, channels_out)))
    self.bias = nnx.Param(jnp.zeros((channels_out,), jnp.float32))

  def __call__(self, x, caches: Caches | None = None):
    kt, kh, kw = self.kernel.shape[:3]
    if kt > 1:
      past = caches.read(jnp.zeros(x.shape[:1] + (kt - 1,) + x.shape[2:], x.dtype))
      x = jnp.concatenate([past.astype(x.dtype), x], axis=1)
      caches.write(x[:, -(kt - 1):])
    return _conv(x, self.kernel[...], self.bias[...], (1, 1, 1),
                 ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))


class RMSNorm(nnx.Module):
  """Each position's channel vector divided by its L2 norm, times sqrt(channels) and a
  learned scale."""

  def __init__(self, dim: int):
    self.scale = nnx.Param(jnp.ones((dim,), jnp.float32))

  def __call__(self, x):
    x32 = x.astype(jnp.float32)
    norm = jnp.sqrt(jnp.sum(x32 * x32, -1, keepdims=True))
    y = x32 / jnp.maximum(norm, 1e-12) * (x.shape[-1]**0.5) * self.scale[...]
    return y.astype(x.dtype)


class ResidualBlock(nnx.Module):

  def __init__(self, dim_in: int, dim_out: int, *, rngs):
    self.norm1 = RMSNorm(dim_in)
    self.conv1 = CausalConv3d(dim_in, dim_out, rngs=rngs)
    self.norm2 = RMSNorm(dim_out)
    self.conv2 = CausalConv3d(dim_out, dim_out, rngs=rngs)
    self.shortcut = (CausalConv3d(dim_in, dim_out, (1, 1, 1), rngs=rngs)
                     if dim_in != dim_out else None)

  def __call__(self, x, caches: Caches):
    skip = x if self.shortcut is None else self.shortcut(x)
    x = self.conv1(nnx.silu(self.norm1(x)), caches)
    x = self.conv2(nnx.silu(self.norm2(x)), caches)
    return x + skip


class AttentionBlock(nnx.Module):
  """One-head self-attention over each frame's positions."""

  def __init__(self, dim: int, *, rngs):
    self.norm = RMSNorm(dim)
    self.to_qkv = nnx.Linear(dim, 3 * dim, rngs=rngs)
    self.proj = nnx.Linear(dim, dim, rngs=rngs)

  def __call__(self, x, caches: Caches | None = None):
    b, t, h, w, c = x.shape
    q, k, v = jnp.split(self.to_qkv(self.norm(x)).reshape(b * t, h * w, 1, 3 * c), 3, -1)
    out = jax.nn.dot_product_attention(q, k, v).reshape(b, t, h, w, c)
    return x + self.proj(out)


class Resample(nnx.Module):
  """Halves or doubles height and width (a 3x3 convolution per frame), and with ``3d`` in
  the mode also time, by a causal temporal convolution that keeps the first frame single."""

  def __init__(self, dim: int, mode: str, *, rngs):
    self.mode = mode
    init = nnx.initializers.lecun_normal()
    out = dim // 2 if mode.startswith('up') else dim
    self.kernel = nnx.Param(init(rngs.params(), (3, 3, dim, out)))
    self.bias = nnx.Param(jnp.zeros((out,), jnp.float32))
    time_out = {'upsample3d': 2 * dim, 'downsample3d': dim}.get(mode)
    self.time_conv = (CausalConv3d(dim, time_out, (3, 1, 1), rngs=rngs) if time_out
                      else None)

  def _spatial(self, frames):
    kernel, bias = self.kernel[...], self.bias[...]
    if self.mode.startswith('up'):
      frames = jnp.repeat(jnp.repeat(frames, 2, axis=1), 2, axis=2)
      return _conv(frames, kernel, bias, (1, 1), ((1, 1), (1, 1)))
    return _conv(frames, kernel, bias, (2, 2), ((0, 1), (0, 1)))

  def _time_down(self, x):
    conv = self.time_conv
    return _conv(x, conv.kernel[...], conv.bias[...], (2, 1, 1), ((0, 0), (0, 0), (0, 0)))

  def __call__(self, x, caches: Caches):
    if self.mode == 'upsample3d':
      x = self._time_up(x, caches)
    x = _per_frame(self._spatial, x)
    if self.mode == 'downsample3d':
      last = x[:, -1:]
      if caches.first:  # the video's first frame passes alone; the rest pair up after it
        x = jnp.concatenate([x[:, :1], self._time_down(x)], 1) if x.shape[1] > 1 else x
      else:
        x = self._time_down(jnp.concatenate([caches.read(last), x], 1))
      caches.write(last)
    return x

  def _time_up(self, x, caches: Caches):
    head, rest = (x[:, :1], x[:, 1:]) if caches.first else (None, x)
    if rest.shape[1]:
      doubled = self.time_conv(rest, caches)  # (B, T, H, W, 2C): two frames per frame
      b, t, h, w, _ = doubled.shape
      rest = doubled.reshape(b, t, h, w, 2, -1).transpose(0, 1, 4, 2, 3, 5).reshape(
          b, 2 * t, h, w, -1)
    else:  # the first chunk's single latent frame: the cache stays zeros
      caches.write(jnp.zeros(x.shape[:1] + (2,) + x.shape[2:], x.dtype))
    return rest if head is None else jnp.concatenate([head, rest], 1)


class MidBlock(nnx.Module):

  def __init__(self, dim: int, *, rngs):
    self.res_1 = ResidualBlock(dim, dim, rngs=rngs)
    self.attention = AttentionBlock(dim, rngs=rngs)
    self.res_2 = ResidualBlock(dim, dim, rngs=rngs)

  def __call__(self, x, caches: Caches):
    return self.res_2(self.attention(self.res_1(x, caches)), caches)


class Encoder(nnx.Module):
  """Video (B, 1+4k, H, W, 3) -> (B, 1+k, H/8, W/8, 2 z_dim): the posterior's mean and
  log-variance (the first chunk; a later chunk of 4k frames gives k latent frames)."""

  def __init__(self, shape: VaeShape, *, rngs):
    dims = [shape.base_dim * m for m in (1,) + tuple(shape.dim_mult)]
    self.conv_in = CausalConv3d(3, dims[0], rngs=rngs)
    layers = []
    for level, (dim_in, dim_out) in enumerate(zip(dims[:-1], dims[1:])):
      for _ in range(shape.num_res_blocks):
        layers.append(ResidualBlock(dim_in, dim_out, rngs=rngs))
        dim_in = dim_out
      if level != len(shape.dim_mult) - 1:
        mode = 'downsample3d' if shape.temperal_downsample[level] else 'downsample2d'
        layers.append(Resample(dim_out, mode, rngs=rngs))
    self.down = nnx.List(layers)
    self.mid = MidBlock(dims[-1], rngs=rngs)
    self.norm_out = RMSNorm(dims[-1])
    self.conv_out = CausalConv3d(dims[-1], 2 * shape.z_dim, rngs=rngs)
    self.quant_conv = CausalConv3d(2 * shape.z_dim, 2 * shape.z_dim, (1, 1, 1), rngs=rngs)

  def __call__(self, x, caches: Caches):
    x = self.conv_in(x, caches)
    for layer in self.down:
      x = layer(x, caches)
    x = self.conv_out(nnx.silu(self.norm_out(self.mid(x, caches))), caches)
    return self.quant_conv(x)


class Decoder(nnx.Module):
  """Latents (B, n, h, w, z_dim) -> video (B, 1 + 4(n-1), 8h, 8w, 3) for the first chunk,
  (B, 4n, ...) for a later one; clipped to [-1, 1]."""

  def __init__(self, shape: VaeShape, *, rngs):
    mult = tuple(shape.dim_mult)
    dims = [shape.base_dim * m for m in (mult[-1],) + mult[::-1]]
    upsample_time = tuple(shape.temperal_downsample)[::-1]
    self.post_quant_conv = CausalConv3d(shape.z_dim, shape.z_dim, (1, 1, 1), rngs=rngs)
    self.conv_in = CausalConv3d(shape.z_dim, dims[0], rngs=rngs)
    self.mid = MidBlock(dims[0], rngs=rngs)
    layers = []
    for level, (dim_in, dim_out) in enumerate(zip(dims[:-1], dims[1:])):
      if level > 0:
        dim_in //= 2  # the previous level's upsampling halved its channels
      for _ in range(shape.num_res_blocks + 1):
        layers.append(ResidualBlock(dim_in, dim_out, rngs=rngs))
        dim_in = dim_out
      if level != len(mult) - 1:
        mode = 'upsample3d' if upsample_time[level] else 'upsample2d'
        layers.append(Resample(dim_out, mode, rngs=rngs))
    self.up = nnx.List(layers)
    self.norm_out = RMSNorm(dims[-1])
    self.conv_out = CausalConv3d(dims[-1], 3, rngs=rngs)

  def __call__(self, z, caches: Caches):
    x = self.mid(self.conv_in(self.post_quant_conv(z), caches), caches)
    for layer in self.up:
      x = layer(x, caches)
    x = self.conv_out(nnx.silu(self.norm_out(x)), caches)
    return jnp.clip(x, -1.0, 1.0)


class WanVAE(nnx.Module):
  """The encoder and decoder; ``dtype`` is the compute dtype (weights stay float32)."""

  def __init__(self, shape: VaeShape, *, dtype: str = 'float32', rngs: nnx.Rngs):
    self.shape = shape
    self.dtype = jnp.dtype(dtype)
    self.encoder = Encoder(shape, rngs=rngs)
    self.decoder = Decoder(shape, rngs=rngs)

  def check_chunk(self, frames: int, first: bool, latent: bool) -> None:
    """Raises ValueError for a chunk length the causal stream cannot take."""
    ratio = self.shape.temporal_ratio
    if latent:
      ok, rule = frames >= 1, 'at least one latent frame'
    elif first:
      ok, rule = frames % ratio == 1, f'1 + {ratio}k frames (the first frame is alone)'
    else:
      ok, rule = frames >= ratio and frames % ratio == 0, f'{ratio}k frames, k >= 1'
    if not ok:
      raise ValueError(f'a{" first" if first else ""} chunk of {frames} '
                       f'{"latent " if latent else ""}frames; this VAE takes {rule}')

  def encode(self, video, caches: list | None = None):
    """A chunk of video in [-1, 1] -> (posterior mean, log-variance, the next caches); the
    latents are the release's raw ones (``normalize`` them for the transformer)."""
    self.check_chunk(video.shape[1], caches is None, latent=False)
    stream = Caches(caches)
    moments = self.encoder(video.astype(self.dtype), stream).astype(jnp.float32)
    mean, log_variance = jnp.split(moments, 2, axis=-1)
    return mean, log_variance, stream.written

  def decode(self, latents, caches: list | None = None):
    """A chunk of raw latents -> (video in [-1, 1], the next caches)."""
    self.check_chunk(latents.shape[1], caches is None, latent=True)
    stream = Caches(caches)
    video = self.decoder(latents.astype(self.dtype), stream).astype(jnp.float32)
    return video, stream.written

  def normalize(self, latents):
    """Raw latents -> the transformer's: (z - mean) / std per channel."""
    mean, std = (jnp.asarray(v, jnp.float32) for v in (self.shape.latents_mean,
                                                        self.shape.latents_std))
    return (latents - mean) / std

  def denormalize(self, latents):
    """The transformer's latents -> raw ones for ``decode``."""
    mean, std = (jnp.asarray(v, jnp.float32) for v in (self.shape.latents_mean,
                                                        self.shape.latents_std))
    return latents * std + mean


def create(shape: VaeShape, dtype: str = 'float32', seed: int = 0) -> WanVAE:
  return WanVAE(shape, dtype=dtype, rngs=nnx.Rngs(seed))
