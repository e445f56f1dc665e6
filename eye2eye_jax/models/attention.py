"""Attention kernels for the UNet's attention layers: ``model.attention_kernel`` and
``model.attention_chunk``.

* ``'xla'`` (default): Flax's ``nnx.dot_product_attention``, XLA's attention, which
  materialises the (queries x keys) score matrix of every head: at the refiner's coarsest
  level on 512 px frames that is 4096 x 4096 per head and frame. With ``attention_chunk``
  N > 0, ``query_chunked_attention`` computes the same a block of N queries at a time
  (``lax.map``), so only (N x keys) scores exist at once; pure JAX, every backend.
* ``'cudnn'``: ``jax.nn.dot_product_attention(implementation='cudnn')``, cuDNN's fused
  (flash) attention on NVIDIA GPUs; bf16 only (``model.dtype='bfloat16'``).
* ``'pallas_flash'``: the Pallas flash-attention kernel for TPUs
  (``jax.experimental.pallas.ops.tpu.flash_attention``); it runs on a CPU only in Pallas's
  TPU interpret mode (the tests use it), and the TPU compiler compiles it for abstract TPU
  devices (``planning/tpu_compile``).

The fused kernels serve the self-attention over space and time (no mask); the masked text
cross-attention stays on XLA's (its keys are a few dozen tokens). Every kernel takes Flax's
``attention_fn`` arguments, so the choice changes no parameter and a trained checkpoint runs
with any of them.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import dtypes

from eye2eye_jax.models.embeddings import rotate_by_position


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


KERNELS = ('xla', 'cudnn', 'pallas_flash')
# How the model's activations are laid out on a mesh while it is traced (``batch_layout``):
# a Pallas kernel runs per device, so it is mapped over the devices that split the batch
# (and, for a transformer whose tokens are split, over those that split its queries).
_BATCH_LAYOUT: contextvars.ContextVar = contextvars.ContextVar('batch_layout', default=None)


@contextlib.contextmanager
def batch_layout(sharding: jax.sharding.NamedSharding | None, query_axes=None):
  """While tracing a model: its (B, ...) activations lie as ``sharding`` says (None: one
  device), so the fused kernels split their batch the same way; ``query_axes`` (mesh axes)
  also split the queries of self-attention (context parallelism: each device attends its
  share of the queries to every key)."""
  token = _BATCH_LAYOUT.set(None if sharding is None else (sharding, query_axes))
  try:
    yield
  finally:
    _BATCH_LAYOUT.reset(token)


_FLASH_BLOCK = 128  # the Pallas kernel's block along queries and keys; sequences are padded


def _flatten_batch(x):
  """(batch..., length, heads, depth) -> (batch, length, heads, depth)."""
  return x.reshape((-1,) + x.shape[-3:])


def cudnn_attention(query, key, value, bias=None, mask=None, *, dtype=None, precision=None,
                    **unused):
  """Unmasked self-attention by cuDNN's fused kernel (NVIDIA GPUs, bf16)."""
  if bias is not None or mask is not None:
    raise ValueError('cudnn_attention serves unmasked self-attention only')
  query, key, value = dtypes.promote_dtype((query, key, value), dtype=dtype)
  out = jax.nn.dot_product_attention(*map(_flatten_batch, (query, key, value)),
                                     implementation='cudnn')
  return out.reshape(query.shape[:-1] + value.shape[-1:])


def pallas_flash_attention(query, key, value, bias=None, mask=None, *, dtype=None,
                           precision=None, **unused):
  """Unmasked attention by the Pallas TPU flash-attention kernel. Sequences are padded to
  its block; padded positions are a segment of their own, so no real query sees them.
  Sequences shorter than one block (the temporal attention over a few frames) use XLA's
  attention: their score matrices are small, and padding them would multiply the work."""
  from jax.experimental.pallas.ops.tpu import flash_attention as flash
  if bias is not None or mask is not None:
    raise ValueError('pallas_flash_attention serves unmasked self-attention only')
  query, key, value = dtypes.promote_dtype((query, key, value), dtype=dtype)
  length, keys, depth = query.shape[-3], key.shape[-3], query.shape[-1]
  if min(length, keys) < _FLASH_BLOCK:  # shorter than a block (attention over a few
    return nnx.dot_product_attention(query, key, value)  # frames): its scores are small
  layout = _BATCH_LAYOUT.get()
  mesh, batch_axes, query_axes = None, None, None
  if layout is not None:  # a kernel call is per device: map it over the batch's devices
    mesh, batch_axes, query_axes = layout[0].mesh, layout[0].spec[0], layout[1]
  query_split = 1 if not query_axes else math.prod(
      mesh.shape[a] for a in ((query_axes,) if isinstance(query_axes, str) else query_axes))
  to_kernel = lambda x, n: jnp.pad(_flatten_batch(x).transpose(0, 2, 1, 3),
                                   ((0, 0), (0, 0), (0, n - x.shape[-3]), (0, 0)))
  padded_q = math.ceil(length / (_FLASH_BLOCK * query_split)) * _FLASH_BLOCK * query_split
  padded_k = math.ceil(keys / _FLASH_BLOCK) * _FLASH_BLOCK
  q, k, v = to_kernel(query, padded_q), to_kernel(key, padded_k), to_kernel(value, padded_k)
  blocks = flash.BlockSizes(**{name: _FLASH_BLOCK for name in (
      'block_q', 'block_k_major', 'block_k', 'block_q_major_dkv', 'block_k_major_dkv',
      'block_k_dkv', 'block_q_dkv', 'block_k_major_dq', 'block_k_dq', 'block_q_dq')}, block_b=1)
  # Padded positions are a segment of their own, so no real query sees them.
  ids = lambda n, total: jnp.broadcast_to((jnp.arange(total) >= n).astype(jnp.int32),
                                          (q.shape[0], total))
  q_ids, kv_ids = ids(length, padded_q), ids(keys, padded_k)

  def kernel(q, k, v, q_ids, kv_ids):
    return flash.flash_attention(q, k, v, segment_ids=flash.SegmentIds(q=q_ids, kv=kv_ids),
                                 sm_scale=1 / math.sqrt(depth), block_sizes=blocks)

  if mesh is not None:
    spec = jax.sharding.PartitionSpec
    queries = spec(batch_axes, None, query_axes, None)
    kernel = jax.shard_map(
        kernel, mesh=mesh, out_specs=queries, check_vma=False,
        in_specs=(queries, spec(batch_axes), spec(batch_axes), spec(batch_axes, query_axes),
                  spec(batch_axes)))
  out = kernel(q, k, v, q_ids, kv_ids)[:, :, :length].transpose(0, 2, 1, 3)
  return out.reshape(query.shape[:-1] + value.shape[-1:])


def rotary_attention_fn(kernel_fn, frequencies: jax.Array):
  """``kernel_fn`` (any ``attention_fn`` above) given queries and keys turned by their
  position along the sequence (``embeddings.rotate_by_position``): the row attention's
  relative horizontal encoding, applied before the kernel so every kernel serves it."""

  def attend(query, key, value, *args, **kwargs):
    return kernel_fn(rotate_by_position(query, frequencies),
                     rotate_by_position(key, frequencies), value, *args, **kwargs)

  return attend


def attention_fn(kernel: str = 'xla', chunk: int = 0):
  """The ``attention_fn`` of ``model.attention_kernel`` for self-attention (the model
  config's validation refuses an unknown kernel or a negative chunk)."""
  if kernel == 'cudnn':
    return cudnn_attention
  if kernel == 'pallas_flash':
    return pallas_flash_attention
  if chunk == 0:
    return nnx.dot_product_attention
  return functools.partial(query_chunked_attention, chunk=chunk)
