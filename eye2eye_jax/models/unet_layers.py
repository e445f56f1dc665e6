"""The layers of the space-time UNet (``models/unet.py``): per-frame convolutions, group
norms over a clip or a frame, factorized residual blocks, factorized attention at the
coarsest level, row (epipolar) attention, and the down- and upsamplers.

Videos are laid out (batch, frames, height, width, channels).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from eye2eye_jax.models import attention
from eye2eye_jax.models.embeddings import rotary_frequencies

_zeros = nnx.initializers.zeros_init()


class SpatialConv(nnx.Module):
  """A 3x3 convolution applied to every frame (a 1x3x3 space-time kernel, run as 2-D)."""

  def __init__(self, in_channels: int, out_channels: int, *, strides: int = 1,
               kernel_init=nnx.initializers.lecun_normal(), dtype=jnp.float32,
               rngs: nnx.Rngs):
    self.conv = nnx.Conv(in_channels, out_channels, (3, 3), strides=strides,
                         kernel_init=kernel_init, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    b, t = x.shape[:2]
    y = self.conv(x.reshape((b * t,) + x.shape[2:]))
    return y.reshape((b, t) + y.shape[1:])


class GroupNorm(nnx.GroupNorm):
  """Group normalisation over a whole clip, or (``per_frame``) over each frame alone, as an
  image model normalises each image."""

  def __init__(self, channels: int, *, per_frame: bool, dtype, rngs: nnx.Rngs):
    super().__init__(channels, num_groups=min(32, channels // 4) or 1, dtype=dtype, rngs=rngs)
    self.per_frame = per_frame

  def __call__(self, x: jax.Array) -> jax.Array:
    if not self.per_frame:
      return super().__call__(x)
    return super().__call__(x.reshape((-1,) + x.shape[2:])).reshape(x.shape)


class FactorizedResBlock(nnx.Module):
  """Spatial residual block (two 1x3x3 convs, FiLM by the embedding), then temporal conv."""

  def __init__(self, in_channels: int, out_channels: int, embed_dim: int, *,
               temporal: bool = True, norm_per_frame: bool = False, dtype=jnp.float32,
               rngs: nnx.Rngs):
    _group_norm = functools.partial(GroupNorm, per_frame=norm_per_frame)
    self.norm1 = _group_norm(in_channels, dtype=dtype, rngs=rngs)
    self.conv1 = SpatialConv(in_channels, out_channels, dtype=dtype, rngs=rngs)
    self.film = nnx.Linear(embed_dim, 2 * out_channels, dtype=dtype, rngs=rngs)
    self.norm2 = _group_norm(out_channels, dtype=dtype, rngs=rngs)
    self.conv2 = SpatialConv(out_channels, out_channels, kernel_init=_zeros, dtype=dtype,
                             rngs=rngs)
    self.skip = (nnx.Conv(in_channels, out_channels, (1, 1, 1), dtype=dtype, rngs=rngs)
                 if in_channels != out_channels else None)
    if temporal:
      self.temporal_norm = _group_norm(out_channels, dtype=dtype, rngs=rngs)
      self.temporal_conv = nnx.Conv(out_channels, out_channels, (3, 1, 1), kernel_init=_zeros,
                                    dtype=dtype, rngs=rngs)
    else:
      self.temporal_norm = self.temporal_conv = None

  def __call__(self, x: jax.Array, emb: jax.Array) -> jax.Array:
    h = self.conv1(nnx.silu(self.norm1(x)))
    scale, shift = jnp.split(self.film(nnx.silu(emb))[:, None, None, None, :], 2, axis=-1)
    h = self.norm2(h) * (1 + scale) + shift
    h = self.conv2(nnx.silu(h))
    x = (self.skip(x) if self.skip is not None else x) + h
    if self.temporal_conv is None:
      return x
    return x + self.temporal_conv(nnx.silu(self.temporal_norm(x)))


class FactorizedAttention(nnx.Module):
  """Self-attention over space (per frame), then over time (per pixel), then optional
  cross-attention to text tokens. Each branch is residual with a zero-initialised output.

  An example whose text mask is all False (an empty or dropped caption) gets no text
  branch at all, so the same model is also its own unconditional model (for guidance).
  """

  def __init__(self, channels: int, num_heads: int, text_embed_dim: int, *,
               temporal: bool = True, norm_per_frame: bool = False, dtype=jnp.float32,
               attention_kernel: str = 'xla', attention_chunk: int = 0, rngs: nnx.Rngs):
    _group_norm = functools.partial(GroupNorm, per_frame=norm_per_frame)

    def attention_layer(kv_features=None):
      # The masked text cross-attention stays on XLA's kernel (models/attention.py).
      kernel = attention.attention_fn('xla' if kv_features else attention_kernel,
                                      attention_chunk)
      return nnx.MultiHeadAttention(num_heads, channels, in_kv_features=kv_features,
                                    out_kernel_init=_zeros, decode=False, dtype=dtype,
                                    attention_fn=kernel, rngs=rngs)

    self.spatial_norm = _group_norm(channels, dtype=dtype, rngs=rngs)
    self.spatial = attention_layer()
    if temporal:
      self.temporal_norm = _group_norm(channels, dtype=dtype, rngs=rngs)
      self.temporal = attention_layer()
    else:
      self.temporal_norm = self.temporal = None
    if text_embed_dim:
      self.text_norm = _group_norm(channels, dtype=dtype, rngs=rngs)
      self.text = attention_layer(text_embed_dim)
    else:
      self.text_norm = self.text = None

  def __call__(self, x: jax.Array, text: jax.Array | None, text_mask: jax.Array | None):
    b, t, h, w, c = x.shape
    q = self.spatial_norm(x).reshape(b * t, h * w, c)
    x = x + self.spatial(q).reshape(b, t, h, w, c)
    if self.temporal is not None:
      q = self.temporal_norm(x).transpose(0, 2, 3, 1, 4).reshape(b * h * w, t, c)
      x = x + self.temporal(q).reshape(b, h, w, t, c).transpose(0, 3, 1, 2, 4)
    if self.text is not None and text is not None:
      q = self.text_norm(x).reshape(b, t * h * w, c)
      if text_mask is None:
        text_mask = jnp.ones(text.shape[:2], bool)
      text_mask = text_mask.astype(bool)
      attended = self.text(q, text, text, mask=text_mask[:, None, None, :])
      has_text = jnp.any(text_mask, axis=1)[:, None, None].astype(attended.dtype)
      x = x + (attended * has_text).reshape(b, t, h, w, c)
    return x


class RowAttention(nnx.Module):
  """Residual self-attention along each row of each frame (``model.row_attention``): in a
  rectified pair every correspondence lies on the same row, so a position can take the
  content d pixels away directly instead of re-synthesising it through convolutions.
  Queries and keys carry a rotary encoding of the column, so a score depends on content and
  on the horizontal offset only. The branch's output projection starts at zero (a layer
  added to a trained model starts as the identity)."""

  def __init__(self, channels: int, *, head_dim: int, rope_base: float,
               norm_per_frame: bool = False, dtype=jnp.float32, attention_kernel: str = 'xla',
               attention_chunk: int = 0, frames_per_block: int = 0, rngs: nnx.Rngs):
    heads = max(1, channels // head_dim)
    self.frames_per_block = frames_per_block
    self.norm = GroupNorm(channels, per_frame=norm_per_frame, dtype=dtype, rngs=rngs)
    frequencies = rotary_frequencies(channels // heads, rope_base)
    kernel = attention.attention_fn(attention_kernel, attention_chunk)
    self.attention = nnx.MultiHeadAttention(
        heads, channels, out_kernel_init=_zeros, decode=False, dtype=dtype,
        attention_fn=attention.rotary_attention_fn(kernel, frequencies), rngs=rngs)

  def __call__(self, x: jax.Array, emb: jax.Array | None = None) -> jax.Array:
    """x: (B, T, H, W, C); ``emb`` is unused (the signature of the residual blocks). With
    ``frames_per_block`` n > 0 the rows of n frames at a time are attended (``lax.map``), so
    the queries, keys and values of only n frames exist at once; rows are independent, so the
    output is the same."""
    b, t, h, w, c = x.shape
    normed = self.norm(x)
    n = self.frames_per_block
    if not 0 < n < t:
      return x + self.attention(normed.reshape(b * t * h, w, c)).reshape(x.shape)
    count = -(-t // n)
    blocks = jnp.pad(normed, ((0, 0), (0, count * n - t)) + ((0, 0),) * 3)
    blocks = jnp.moveaxis(blocks.reshape(b, count, n, h, w, c), 1, 0)
    graphdef, state = nnx.split(self.attention)
    attend = lambda block: nnx.merge(graphdef, state)(block.reshape(b * n * h, w, c))
    out = jnp.moveaxis(jax.lax.map(attend, blocks).reshape(count, b, n, h, w, c), 0, 1)
    return x + out.reshape(b, count * n, h, w, c)[:, :t]


class Downsample(nnx.Module):

  def __init__(self, channels: int, temporal: bool, *, dtype=jnp.float32, rngs: nnx.Rngs):
    if temporal:
      self.conv = nnx.Conv(channels, channels, (3, 3, 3), strides=(2, 2, 2), dtype=dtype,
                           rngs=rngs)
    else:
      self.conv = SpatialConv(channels, channels, strides=2, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    return self.conv(x)


class Upsample(nnx.Module):

  def __init__(self, channels: int, temporal: bool, *, dtype=jnp.float32, rngs: nnx.Rngs):
    self.temporal = temporal
    self.conv = SpatialConv(channels, channels, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    if self.temporal:
      x = jnp.repeat(x, 2, axis=1)
    x = jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)
    return self.conv(x)
