"""Embeddings of the scalars the UNet is conditioned on (the diffusion time and the 3D
strength, the disparity scale asked for) and the rotary encoding of the horizontal position
in its row attention."""

import math

import jax
import jax.numpy as jnp
import numpy as np


def timestep_embedding(t: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
  """Sinusoidal embedding of diffusion times ``t`` in [0, 1], shape (B,) -> (B, dim)."""
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = (t.astype(jnp.float32) * 1000.0)[:, None] * freqs[None]
  return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def strength_embedding(strength: jax.Array, dim: int) -> jax.Array:
  """Fourier features of log2 of the 3D strength, (B,) -> (B, dim): periods from 16
  doublings down to half a doubling, smooth over any strength the model may be asked for."""
  half = dim // 2
  freqs = 2 * jnp.pi * 2.0**jnp.linspace(-4.0, 1.0, half)
  args = jnp.log2(strength.astype(jnp.float32))[:, None] * freqs[None]
  return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def rotary_frequencies(head_dim: int, base: float) -> np.ndarray:
  """Angular frequencies (radians per pixel) of a head's head_dim / 2 rotated pairs, from 1
  down geometrically towards 1 / base (a constant of the model, so numpy)."""
  half = head_dim // 2
  return (base ** (-np.arange(half) / half)).astype(np.float32)


def rotate_by_position(x: jax.Array, frequencies: jax.Array) -> jax.Array:
  """Rotary position encoding (RoPE) of (batch..., length, heads, D) along ``length``: the
  pairs (x[..., i], x[..., i + D/2]) turn by position x frequencies[i]. A query and a key so
  turned have a dot product that depends on their content and their offset only."""
  length, half = x.shape[-3], x.shape[-1] // 2
  angles = jnp.arange(length, dtype=jnp.float32)[:, None] * frequencies[None, :]
  # (length, 1, D/2), computed in float32 and applied in x's dtype (no float32 copy of x)
  cos, sin = (f(angles)[:, None, :].astype(x.dtype) for f in (jnp.cos, jnp.sin))
  first, second = x[..., :half], x[..., half:]
  return jnp.concatenate([first * cos - second * sin, first * sin + second * cos], axis=-1)
