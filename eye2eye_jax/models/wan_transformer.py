"""The Wan 2.1 text-to-video transformer in Flax NNX, channels-last.

One module per part of the released model (diffusers' ``WanTransformer3DModel``): a 3D
patch embedding, 3D rotary position embedding, blocks of modulated self-attention (RMS-norm
on queries and keys), cross-attention to text tokens and a modulated tanh-GELU feed-forward,
then a modulated output head and unpatchify. The blocks' weights are stacked on a leading
layer axis and run under ``lax.scan`` (one block compiled, whatever the depth), each block
rematerialised per ``model.remat``. Norms, modulation, the time embedding and the rotary
tables are kept in float32 as the reference keeps them; the matmuls run in ``model.dtype``.

Shapes come from the released ``config.json`` (``WanShape.from_diffusers``); the importer
(``models/wan_weights.py``) maps each released tensor to one parameter here.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from eye2eye_jax.models import attention
from eye2eye_jax.models.embeddings import strength_embedding

CLASS_NAME = 'WanTransformer3DModel'


@dataclasses.dataclass(frozen=True)
class WanShape:
  """The transformer's shape: the fields of its ``config.json`` that this port reads."""
  patch_size: tuple[int, int, int] = (1, 2, 2)
  num_attention_heads: int = 12
  attention_head_dim: int = 128
  in_channels: int = 16
  out_channels: int = 16
  text_dim: int = 4096
  freq_dim: int = 256
  ffn_dim: int = 8960
  num_layers: int = 30
  cross_attn_norm: bool = True
  eps: float = 1e-6
  rope_max_seq_len: int = 1024

  @property
  def dim(self) -> int:
    return self.num_attention_heads * self.attention_head_dim

  @classmethod
  def from_diffusers(cls, config: dict, source: str = 'config.json') -> 'WanShape':
    """Reads a released ``config.json``; refuses another architecture or a variant this
    port does not build (image conditioning, learned position embeddings)."""
    name = config.get('_class_name')
    if name != CLASS_NAME:
      raise ValueError(f'{source}: _class_name is {name!r}, not {CLASS_NAME!r}')
    for unsupported in ('image_dim', 'added_kv_proj_dim', 'pos_embed_seq_len'):
      if config.get(unsupported) is not None:
        raise ValueError(f'{source}: {unsupported}={config[unsupported]!r} (an image-to-video '
                         'variant); only text-to-video Wan 2.1 is supported')
    if config.get('qk_norm', 'rms_norm_across_heads') != 'rms_norm_across_heads':
      raise ValueError(f'{source}: qk_norm={config["qk_norm"]!r}; only '
                       "'rms_norm_across_heads' is supported")
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in config.items() if k in fields}
    values['patch_size'] = tuple(values.get('patch_size', cls.patch_size))
    if values.get('out_channels') is None:
      values['out_channels'] = values.get('in_channels', cls.in_channels)
    return cls(**values)

  @classmethod
  def from_config(cls, wan: ml_collections.ConfigDict) -> 'WanShape':
    """From the ``model.wan`` block of a project config."""
    values = {f.name: wan[f.name] for f in dataclasses.fields(cls)}
    values['patch_size'] = tuple(values['patch_size'])
    return cls(**values)


def _layer_norm(x, eps: float, scale=None, bias=None):
  """LayerNorm in float32 (the reference's FP32LayerNorm)."""
  x = x.astype(jnp.float32)
  mean = x.mean(-1, keepdims=True)
  centred = x - mean
  y = centred * jax.lax.rsqrt(jnp.mean(centred * centred, -1, keepdims=True) + eps)
  if scale is not None:
    y = y * scale + bias
  return y


class AffineNorm(nnx.Module):
  """A float32 LayerNorm with a learned scale and bias."""

  def __init__(self, dim: int, eps: float):
    self.scale = nnx.Param(jnp.ones((dim,), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((dim,), jnp.float32))
    self.eps = eps

  def __call__(self, x):
    return _layer_norm(x, self.eps, self.scale[...], self.bias[...])


class RMSNorm(nnx.Module):
  """RMS norm over the last axis with a learned scale (over all heads' width at once)."""

  def __init__(self, dim: int, eps: float):
    self.scale = nnx.Param(jnp.ones((dim,), jnp.float32))
    self.eps = eps

  def __call__(self, x):
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, -1, keepdims=True) + self.eps)
    return (y * self.scale[...]).astype(x.dtype)


def _dense(features_in: int, features_out: int, dtype, rngs: nnx.Rngs) -> nnx.Linear:
  return nnx.Linear(features_in, features_out, dtype=dtype, param_dtype=jnp.float32,
                    kernel_init=nnx.initializers.xavier_uniform(), rngs=rngs)


def rotary_tables(shape: WanShape, frames: int, height: int, width: int):
  """(cos, sin) of shape (tokens, head_dim // 2): one angle per interleaved pair of a head's
  dims, the pairs split over (time, height, width) as the reference splits them (44/42/42
  dims for 128), computed in float64 at trace time."""
  head = shape.attention_head_dim
  h_dim = w_dim = 2 * (head // 6)
  t_dim = head - h_dim - w_dim
  if max(frames, height, width) > shape.rope_max_seq_len:
    raise ValueError(f'{frames}x{height}x{width} patches exceed rope_max_seq_len '
                     f'{shape.rope_max_seq_len}')
  angles = []
  for dim, count, axis in ((t_dim, frames, 0), (h_dim, height, 1), (w_dim, width, 2)):
    inverse = 1.0 / (10000.0**(np.arange(0, dim, 2, dtype=np.float64)[:dim // 2] / dim))
    per_axis = np.outer(np.arange(count, dtype=np.float64), inverse)
    grid = [1, 1, 1]
    grid[axis] = count
    per_axis = per_axis.reshape(grid + [-1])
    angles.append(np.broadcast_to(per_axis, (frames, height, width, per_axis.shape[-1])))
  angles = np.concatenate(angles, -1).reshape(frames * height * width, head // 2)
  return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def apply_rotary(x, cos, sin):
  """Rotates interleaved pairs of ``x`` (B, L, heads, head_dim) by the tables' angles."""
  pairs = x.reshape(x.shape[:-1] + (x.shape[-1] // 2, 2)).astype(jnp.float32)
  first, second = pairs[..., 0], pairs[..., 1]
  cos, sin = cos[None, :, None, :], sin[None, :, None, :]
  rotated = jnp.stack([first * cos - second * sin, first * sin + second * cos], -1)
  return rotated.reshape(x.shape).astype(x.dtype)


class WanAttention(nnx.Module):
  """Multi-head attention with RMS-normed queries and keys; rotary tables for self-attention."""

  def __init__(self, shape: WanShape, dtype, attention_fn, rngs: nnx.Rngs):
    dim = shape.dim
    self.to_q = _dense(dim, dim, dtype, rngs)
    self.to_k = _dense(dim, dim, dtype, rngs)
    self.to_v = _dense(dim, dim, dtype, rngs)
    self.to_out = _dense(dim, dim, dtype, rngs)
    self.norm_q = RMSNorm(dim, shape.eps)
    self.norm_k = RMSNorm(dim, shape.eps)
    self.heads = shape.num_attention_heads
    self.attention_fn = attention_fn

  def __call__(self, x, context=None, rotary=None):
    context = x if context is None else context
    split = lambda y: y.reshape(y.shape[:-1] + (self.heads, -1))
    query = split(self.norm_q(self.to_q(x)))
    key = split(self.norm_k(self.to_k(context)))
    value = split(self.to_v(context))
    if rotary is not None:
      query, key = apply_rotary(query, *rotary), apply_rotary(key, *rotary)
    out = self.attention_fn(query, key, value)
    return self.to_out(out.reshape(out.shape[:-2] + (-1,)))


class WanBlock(nnx.Module):
  """Modulated self-attention, cross-attention to text, modulated feed-forward."""

  def __init__(self, shape: WanShape, dtype, attention_fn, rngs: nnx.Rngs):
    dim = shape.dim
    self.attn1 = WanAttention(shape, dtype, attention_fn, rngs)
    self.attn2 = WanAttention(shape, dtype, attention_fn, rngs)
    self.norm2 = AffineNorm(dim, shape.eps) if shape.cross_attn_norm else None
    self.ffn_in = _dense(dim, shape.ffn_dim, dtype, rngs)
    self.ffn_out = _dense(shape.ffn_dim, dim, dtype, rngs)
    self.scale_shift_table = nnx.Param(
        jax.random.normal(rngs.params(), (6, dim), jnp.float32) / math.sqrt(dim))
    self.eps = shape.eps
    self.dtype = dtype

  def __call__(self, x, context, modulation, rotary):
    """x (B, L, dim) float32 residual stream; modulation (B, 6, dim) float32."""
    shift, scale, gate, c_shift, c_scale, c_gate = jnp.split(
        self.scale_shift_table[...][None] + modulation, 6, axis=1)
    h = (_layer_norm(x, self.eps) * (1 + scale) + shift).astype(self.dtype)
    x = x + self.attn1(h, rotary=rotary).astype(jnp.float32) * gate
    h = x if self.norm2 is None else self.norm2(x)
    x = x + self.attn2(h.astype(self.dtype), context).astype(jnp.float32)
    h = (_layer_norm(x, self.eps) * (1 + c_scale) + c_shift).astype(self.dtype)
    h = self.ffn_out(nnx.gelu(self.ffn_in(h), approximate=True))
    return x + h.astype(jnp.float32) * c_gate


def timestep_sinusoid(timesteps, width: int):
  """(B,) timesteps -> (B, width) embedding, cosines first (the reference's flip_sin_to_cos)."""
  half = width // 2
  frequencies = jnp.exp(-math.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / half)
  angles = timesteps.astype(jnp.float32)[:, None] * frequencies[None]
  return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], -1)


class WanTransformer(nnx.Module):
  """(latents (B, T, H, W, C), timesteps (B,) in [0, 1000), text (B, N, text_dim)) ->
  prediction (B, T, H, W, out_channels), float32."""

  def __init__(self, shape: WanShape, *, dtype: str = 'float32', remat: str = 'none',
               attention_kernel: str = 'xla', attention_chunk: int = 0,
               condition_channels: int = 0, strength_conditioning: bool = False,
               condition_join: str = 'channels', rngs: nnx.Rngs):
    self.shape = shape
    self.condition_channels = condition_channels
    if condition_join not in ('channels', 'frames'):
      raise ValueError(f"model.condition_join must be 'channels' or 'frames', got "
                       f'{condition_join!r}')
    self.condition_join = condition_join
    joined = condition_channels if condition_join == 'channels' else 0
    self.dtype = jnp.dtype(dtype)
    self.remat = remat
    dim, patch = shape.dim, shape.patch_size
    fn = attention.attention_fn(attention_kernel, attention_chunk)
    self.patch_embedding = nnx.Param(nnx.initializers.lecun_normal()(
        rngs.params(), patch + (shape.in_channels + joined, dim)))
    self.patch_bias = nnx.Param(jnp.zeros((dim,), jnp.float32))
    self.time_linear_1 = _dense(shape.freq_dim, dim, jnp.float32, rngs)
    self.time_linear_2 = _dense(dim, dim, jnp.float32, rngs)
    self.time_proj = _dense(dim, 6 * dim, jnp.float32, rngs)
    if strength_conditioning:  # added to the time embedding; its last layer starts at zero
      self.strength_linear_1 = _dense(shape.freq_dim, dim, jnp.float32, rngs)
      self.strength_linear_2 = nnx.Linear(dim, dim, kernel_init=nnx.initializers.zeros_init(),
                                          rngs=rngs)
    else:
      self.strength_linear_1 = self.strength_linear_2 = None
    self.text_linear_1 = _dense(shape.text_dim, dim, self.dtype, rngs)
    self.text_linear_2 = _dense(dim, dim, self.dtype, rngs)

    @nnx.split_rngs(splits=shape.num_layers)
    @nnx.vmap(in_axes=0, out_axes=0)
    def stacked(rngs):
      return WanBlock(shape, self.dtype, fn, rngs)

    self.stacked_blocks = stacked(rngs)
    self.scale_shift_table = nnx.Param(
        jax.random.normal(rngs.params(), (2, dim), jnp.float32) / math.sqrt(dim))
    self.proj_out = _dense(dim, math.prod(patch) * shape.out_channels, self.dtype, rngs)

  def __call__(self, latents, timesteps, text, token_sharding=None, condition=None,
               strength=None):
    """``condition`` (B, T, H, W, condition_channels): the right view's latents of a stereo
    model, joined to ``latents`` by channel concatenation at the patch embedding, or with
    ``condition_join='frames'`` embedded alike and appended along time (its frames after
    the left view's, as further rotary positions; only the left view's tokens are decoded);
    ``strength`` (B,): the disparity scale asked of a strength-conditioned model (None: 1).
    ``token_sharding`` (a NamedSharding of (B, tokens, width)) pins the activations
    between blocks: the batch over its first axes, the tokens over its second."""
    shape = self.shape
    if (condition is None) != (self.condition_channels == 0):
      raise ValueError(f'this transformer takes {self.condition_channels} condition channels; '
                       f'got {"none" if condition is None else condition.shape[-1]}')
    if condition is not None and self.condition_join == 'channels':
      latents = jnp.concatenate([latents, condition.astype(latents.dtype)], axis=-1)
    batch, frames, height, width, channels = latents.shape
    pt, ph, pw = shape.patch_size
    if frames % pt or height % ph or width % pw:
      raise ValueError(f'latents of {frames}x{height}x{width} do not divide into patches '
                       f'{shape.patch_size}')
    grid = (frames // pt, height // ph, width // pw)
    pin = ((lambda y: y) if token_sharding is None
           else (lambda y: jax.lax.with_sharding_constraint(y, token_sharding)))
    kernel = self.patch_embedding[...].reshape(-1, shape.dim).astype(self.dtype)

    def embed(video):
      patches = video.reshape(batch, grid[0], pt, grid[1], ph, grid[2], pw, video.shape[-1])
      patches = patches.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(batch, math.prod(grid), -1)
      return jnp.dot(patches.astype(self.dtype), kernel,
                     preferred_element_type=jnp.float32) + self.patch_bias[...]

    x, token_grid = embed(latents), grid
    if condition is not None and self.condition_join == 'frames':
      x = jnp.concatenate([x, embed(condition)], axis=1)
      token_grid = (2 * grid[0],) + grid[1:]
    x = pin(x)

    temb = self.time_linear_2(nnx.silu(self.time_linear_1(
        timestep_sinusoid(timesteps, shape.freq_dim))))
    if self.strength_linear_1 is not None:
      strength = jnp.ones((batch,), jnp.float32) if strength is None else strength
      temb = temb + self.strength_linear_2(nnx.silu(self.strength_linear_1(
          strength_embedding(strength, shape.freq_dim))))
    modulation = self.time_proj(nnx.silu(temb)).reshape(batch, 6, shape.dim)
    context = self.text_linear_2(nnx.gelu(self.text_linear_1(text.astype(self.dtype)),
                                          approximate=True))
    rotary = tuple(jnp.asarray(t) for t in rotary_tables(shape, *token_grid))

    graphdef, state = nnx.split(self.stacked_blocks)

    def one_block(x, layer_state):
      block = nnx.merge(graphdef, layer_state)
      return pin(block(x, context, modulation, rotary)), None

    if self.remat != 'none':
      one_block = jax.checkpoint(one_block, policy=_REMAT_POLICIES[self.remat])
    layout = (attention.batch_layout(None) if token_sharding is None else
              attention.batch_layout(token_sharding, query_axes=token_sharding.spec[1]))
    with layout:
      x, _ = jax.lax.scan(one_block, x, state)

    x = x[:, :math.prod(grid)]  # the left view's tokens
    shift, scale = jnp.split(self.scale_shift_table[...][None] + temb[:, None], 2, axis=1)
    x = (_layer_norm(x, shape.eps) * (1 + scale) + shift).astype(self.dtype)
    x = self.proj_out(x).astype(jnp.float32)
    x = x.reshape(batch, *grid, pt, ph, pw, shape.out_channels)
    return x.transpose(0, 1, 4, 2, 5, 3, 6, 7).reshape(
        batch, frames, height, width, shape.out_channels)


_REMAT_POLICIES = {
    'full': jax.checkpoint_policies.nothing_saveable,
    'dots': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def create(shape: WanShape, model: ml_collections.ConfigDict | None = None,
           seed: int = 0) -> WanTransformer:
  """A randomly initialised transformer with ``model``'s dtype, remat, attention kernel and
  condition channels (the right view's latent channels of a stereo model)."""
  options = {}
  if model is not None:
    options = dict(dtype=model.dtype, remat=model.remat, attention_kernel=model.attention_kernel,
                   attention_chunk=model.attention_chunk,
                   condition_channels=model.condition_channels,
                   strength_conditioning=model.strength_conditioning,
                   condition_join=model.condition_join)
  return WanTransformer(shape, **options, rngs=nnx.Rngs(seed))
