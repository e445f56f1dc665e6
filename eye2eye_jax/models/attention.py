"""Attention kernels for the UNet's attention layers, chosen by ``model.attention_chunk``.

Flax's default (``nnx.dot_product_attention`` -> ``jax.nn.dot_product_attention``) runs
cuDNN's fused attention where the GPU supports it and XLA's otherwise, which materialises the
(queries x keys) score matrix of every head: at the refiner's coarsest level on 512 px frames
that is 4096 x 4096 per head and frame. ``query_chunked_attention`` computes the same thing a
block of queries at a time (``lax.map``), so only (chunk x keys) scores exist at once; it is
pure JAX and runs on every backend. Both take Flax's ``attention_fn`` arguments, so the
choice changes no parameter and a trained checkpoint runs with either.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import dtypes


def query_chunked_attention(query, key, value, bias=None, mask=None, *, chunk: int,
                            dtype=None, precision=None, **unused):
  """Softmax attention, ``chunk`` queries at a time; Flax's ``attention_fn`` layout:
  query (batch..., q, heads, depth), key/value (batch..., kv, heads, depth), mask/bias
  broadcastable to (batch..., heads, q, kv). Dropout is not supported (the UNet has none)."""
  if unused.get('dropout_rate', 0.0) or unused.get('is_causal', False):
    raise ValueError('query_chunked_attention: no dropout or causal masking')
  query, key, value = dtypes.promote_dtype((query, key, value), dtype=dtype)
  length = query.shape[-3]
  if length <= chunk:
    return _attend(query, key, value, bias, mask, precision)
  count = math.ceil(length / chunk)
  pad = count * chunk - length

  q_blocks = _split(query, -3, count, chunk, pad)
  # A mask or bias that varies along the queries is cut with them; one that broadcasts along
  # them (the text mask: one row per example) is used whole by every block.
  per_query = lambda x: x is not None and x.shape[-2] != 1
  mask_blocks = _split(mask, -2, count, chunk, pad) if per_query(mask) else None
  bias_blocks = _split(bias, -2, count, chunk, pad) if per_query(bias) else None

  def one_block(args):
    q, m, b = args
    return _attend(q, key, value, bias if b is None else b, mask if m is None else m, precision)

  out = jax.lax.map(one_block, (q_blocks, mask_blocks, bias_blocks))
  out = jnp.moveaxis(out, 0, -4)  # (batch..., count, chunk, heads, depth)
  out = out.reshape(out.shape[:-4] + (count * chunk,) + out.shape[-2:])
  return out[..., :length, :, :]


def _split(x, axis: int, count: int, chunk: int, pad: int):
  """``x`` padded to ``count * chunk`` along ``axis`` and cut into blocks, blocks first."""
  axis = axis % x.ndim
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, pad)
  x = jnp.pad(x, widths)
  x = x.reshape(x.shape[:axis] + (count, chunk) + x.shape[axis + 1:])
  return jnp.moveaxis(x, axis, 0)


def _attend(query, key, value, bias, mask, precision):
  """Plain softmax attention (the score matrix of these queries is materialised)."""
  depth = query.shape[-1]
  scores = jnp.einsum('...qhd,...khd->...hqk', query / jnp.sqrt(depth).astype(query.dtype),
                      key, precision=precision)
  if bias is not None:
    scores = scores + bias
  if mask is not None:
    scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
  weights = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(value.dtype)
  return jnp.einsum('...hqk,...khd->...qhd', weights, value, precision=precision)


def attention_fn(chunk: int):
  """Flax's default attention for ``chunk`` 0, else ``query_chunked_attention`` (the model
  config's validation refuses a negative chunk)."""
  if chunk == 0:
    return nnx.dot_product_attention
  return functools.partial(query_chunked_attention, chunk=chunk)
