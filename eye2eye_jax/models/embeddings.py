"""Embeddings of the scalars the UNet is conditioned on: the diffusion time and the 3D
strength (the disparity scale asked for)."""

import math

import jax
import jax.numpy as jnp


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
