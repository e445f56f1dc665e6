"""Whole videos through the Wan VAE with memory flat in their length and frame size.

``VaeStream.encoder()`` and ``.decoder()`` return objects that take a video (or its
latents) chunk by chunk, in order, and give back each chunk's result: every temporal
convolution's cache is carried from one chunk to the next, so the concatenated results
equal one pass over the whole video while only one chunk is ever held. Frames larger than
``tile`` pixels are cut into overlapping square tiles (each with caches of its own, as
diffusers' tiled VAE keeps them) whose results are blended with linear ramps across the
overlaps; every tile has the same shape, so one compiled program serves them all.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from eye2eye_jax.models import wan_runner, wan_vae


def tile_starts(size: int, tile: int, overlap: int, align: int) -> list[int]:
  """Starts of equal tiles of ``tile`` covering ``size`` with at least ``overlap`` shared,
  on multiples of ``align``; one tile of the whole size when it fits."""
  if tile <= 0 or size <= tile:
    return [0]
  count = math.ceil((size - overlap) / (tile - overlap))
  return [int(round(s / align)) * align for s in np.linspace(0, size - tile, count)]


def _ramp(starts: list[int], tile: int, index: int) -> np.ndarray:
  """Weights of tile ``index`` along one axis: 1, falling linearly to 0 across the parts it
  shares with its neighbours."""
  weights = np.ones(tile, np.float32)
  start = starts[index]
  if index > 0:
    shared = starts[index - 1] + tile - start
    weights[:shared] = np.minimum(weights[:shared], (np.arange(shared) + 1) / (shared + 1))
  if index < len(starts) - 1:
    shared = start + tile - starts[index + 1]
    weights[tile - shared:] = np.minimum(weights[tile - shared:],
                                         (shared - np.arange(shared)) / (shared + 1))
  return weights


class _Pass:
  """One direction of the stream: tiles, their caches, the blend."""

  def __init__(self, function, params, tile: int, overlap: int, scale: float, align: int):
    self.function, self.params = function, params
    self.tile, self.overlap, self.scale, self.align = tile, overlap, scale, align
    self.caches: dict[tuple[int, int], list] = {}

  def push(self, chunk: np.ndarray) -> np.ndarray:
    """A chunk (B, T, H, W, C), the video's next frames -> its result."""
    h, w = chunk.shape[2:4]
    if self.align > 1 and (h % self.align or w % self.align):
      raise ValueError(f'frames of {h}x{w} px: the VAE needs multiples of {self.align}')
    rows = tile_starts(h, self.tile, self.overlap, self.align)
    cols = tile_starts(w, self.tile, self.overlap, self.align)
    tile_h, tile_w = min(h, self.tile or h), min(w, self.tile or w)
    out = weight = None
    for i, top in enumerate(rows):
      for j, left in enumerate(cols):
        piece = jnp.asarray(chunk[:, :, top:top + tile_h, left:left + tile_w])
        result, self.caches[(i, j)] = self.function(self.params, piece,
                                                    self.caches.get((i, j)))
        result = np.asarray(result)
        if out is None:
          out = np.zeros(result.shape[:2] + (int(h * self.scale), int(w * self.scale))
                         + result.shape[4:], np.float32)
          weight = np.zeros(out.shape[2:4] + (1,), np.float32)
        rh, rw = result.shape[2:4]
        y, x = int(top * self.scale), int(left * self.scale)
        ramp = (_ramp([int(r * self.scale) for r in rows], rh, i)[:, None]
                * _ramp([int(c * self.scale) for c in cols], rw, j)[None, :])
        out[:, :, y:y + rh, x:x + rw] += result * ramp[..., None]
        weight[y:y + rh, x:x + rw] += ramp[..., None]
    return out / weight


class VaeStream:
  """The VAE of an imported model, for streams of chunks (``tile`` 0: whole frames)."""

  def __init__(self, params, shape: wan_vae.VaeShape, dtype: str = 'float32', tile: int = 0,
               overlap: int = 64):
    if tile and (tile % shape.spatial_ratio or overlap % shape.spatial_ratio
                 or not 0 < overlap < tile):
      raise ValueError(f'VAE tiles of {tile} px overlapping by {overlap} px: both must be '
                       f'multiples of {shape.spatial_ratio}, the overlap smaller than the tile')
    self.params, self.shape = params, shape
    self.tile, self.overlap = tile, overlap
    encode, decode = wan_runner.vae_functions(shape, dtype)
    self._encode = lambda p, x, c: _pair(encode(p, x, c))
    self._decode = decode

  def encoder(self) -> _Pass:
    """``push(frames)`` -> raw latent means; the first chunk holds 1 + 4k frames, the rest 4k."""
    r = self.shape.spatial_ratio
    return _Pass(self._encode, self.params, self.tile, self.overlap, 1 / r, r)

  def decoder(self) -> _Pass:
    """``push(raw latents)`` -> frames in [-1, 1]."""
    r = self.shape.spatial_ratio
    return _Pass(self._decode, self.params, self.tile // r, self.overlap // r, r, 1)


def _pair(result):
  """(mean, log-variance, caches) -> (mean, caches)."""
  return result[0], result[2]
