"""The UNet over a video of any length and frame size: overlapping windows, blended.

A stage's UNet sees clips of its training length. At every denoising step the video is cut
into overlapping temporal windows (and, for large frames, overlapping spatial tiles); each
(window, tile) piece is predicted and the predictions are blended per frame and pixel with
tent weights (MultiDiffusion), so there is no seam where pieces meet.

Pieces run in groups, one UNet call per group. On a sampling mesh (``sampling_mesh``) a
group's batch is split over the mesh's ``windows`` axis (data parallel: each device
predicts its own pieces) and each piece's rows over its ``rows`` axis (context parallel:
several devices hold one window's activations; the compiler exchanges the convolutions'
halos and gathers what attention needs).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ('windows', 'rows')


def window_starts(total: int, window: int, overlap: int) -> tuple[int, ...]:
  """Start frames of windows of ``window`` frames covering ``total`` (>= window) frames."""
  if total < window:
    raise ValueError(f'{total} frames are fewer than the window of {window}')
  stride = max(window - overlap, 1)
  starts = list(range(0, total - window + 1, stride))
  if starts[-1] != total - window:
    starts.append(total - window)
  return tuple(starts)


def stage_windows(total: int, window: int, window_overlap: int) -> tuple[int, ...]:
  """Window starts of a stage over ``total`` frames, ``window_overlap`` frames shared by
  consecutive windows (``sample.window_overlap``; -1: half a window)."""
  overlap = window_overlap if window_overlap >= 0 else window // 2
  return window_starts(total, window, min(overlap, window - 1))


def refiner_tiles(height: int, width: int, tile: int, overlap: int, factor: int):
  """Spatial tiles for ``sample.refiner_tile`` px (0: none, or no smaller than the frame):
  (row starts, column starts, (tile height, tile width)), tiles rounded to the UNet's
  ``factor`` and overlapping by ``sample.refiner_tile_overlap`` px."""
  if tile < 0 or overlap < 0:
    raise ValueError('sample.refiner_tile and sample.refiner_tile_overlap must be >= 0')
  tile = max(factor, int(round(tile / factor)) * factor) if tile else 0
  if not tile or (tile >= height and tile >= width):
    return None
  th, tw = min(tile, height), min(tile, width)
  rows = window_starts(height, th, min(overlap, th - 1)) if th < height else (0,)
  columns = window_starts(width, tw, min(overlap, tw - 1)) if tw < width else (0,)
  return rows, columns, (th, tw)


def tent_weights(length: int) -> np.ndarray:
  """Blending weights along a window or tile: highest in the middle, > 0 at the ends."""
  position = np.arange(length, dtype=np.float32)
  return np.minimum(position + 1, length - position)


def _coverage(length: int, starts, profile: np.ndarray) -> np.ndarray:
  """The sum over ``starts`` of a piece's ``profile`` along one axis of ``length``."""
  total = np.zeros(length, np.float32)
  for start in starts:
    total[start:start + len(profile)] += profile
  return total


def _outer(vectors) -> jax.Array:
  """(a, b, c) -> the (len a, len b, len c) array a[t] * b[y] * c[x], computed in the graph."""
  a, b, c = (jnp.asarray(v) for v in vectors)
  return a[:, None, None] * b[None, :, None] * c[None, None, :]


def sampling_mesh(sample_config: ml_collections.ConfigDict, devices=None) -> Mesh | None:
  """The mesh of ``sample.mesh_shape`` (windows, rows) over ``devices`` (default: this
  process's devices; one -1 takes the rest), or None for a single device."""
  devices = list(jax.local_devices() if devices is None else devices)
  shape = tuple(int(n) for n in sample_config.mesh_shape)
  fixed = math.prod(n for n in shape if n != -1)
  if (len(shape) != len(MESH_AXES) or shape.count(-1) > 1
      or any(n < 1 and n != -1 for n in shape) or len(devices) % fixed):
    raise ValueError(f'sample.mesh_shape={shape}: expected sizes of the axes {MESH_AXES}, '
                     f'at most one -1, whose product divides the {len(devices)} devices')
  shape = tuple(len(devices) // fixed if n == -1 else n for n in shape)
  if math.prod(shape) == 1:
    return None
  return Mesh(np.array(devices[:math.prod(shape)]).reshape(shape), MESH_AXES)


def group_size(pieces: int, per_device: int, mesh: Mesh | None) -> int:
  """Pieces per UNet call: ``per_device`` on each device of the mesh's ``windows`` axis,
  lowered so that padding the last call wastes as little as possible."""
  devices = mesh.shape['windows'] if mesh is not None else 1
  calls = math.ceil(pieces / (devices * max(1, per_device)))
  return devices * math.ceil(pieces / (calls * devices))


def blended_denoiser(predict, condition: jax.Array, starts: tuple[int, ...], window: int,
                     tiles=None, per_device: int = 1, mesh: Mesh | None = None):
  """x (1, N, H, W, C), t (1,) -> the blend of ``predict`` over every (window, tile).

  ``predict(x, c, t)`` takes a batch of pieces: x and c (B, window, th, tw, C), t (B,).
  ``tiles`` (``refiner_tiles``; None: whole frames) splits each window in space.
  ``per_device`` pieces go to each device of the mesh's ``windows`` axis per call.
  """
  height, width = condition.shape[1:3]
  rows, columns, (th, tw) = tiles if tiles is not None else ((0,), (0,), (height, width))
  corners = np.array([(s, y, x) for s in starts for y in rows for x in columns], np.int32)
  # The pieces are every (window, row, column) combination and a piece's weights are a
  # product of one profile per axis (a tent; flat across whole frames), so the weights and
  # their sum at each (frame, row, column) are outer products of per-axis vectors, made in
  # the graph: an array of a piece's or the video's size built here would be embedded in
  # the compiled program as a constant (80 MB for the sum over a 512 px, 80-frame video).
  axes = ((condition.shape[0], starts, window, True), (height, rows, th, tiles is not None),
          (width, columns, tw, tiles is not None))
  profiles = [tent_weights(size) if tent else np.ones(size, np.float32)
              for _, _, size, tent in axes]
  coverage = [_coverage(length, pieces, profile)
              for (length, pieces, _, _), profile in zip(axes, profiles)]

  size = group_size(len(corners), per_device, mesh)
  calls = math.ceil(len(corners) / size)
  live = np.zeros(calls * size, np.float32)  # padding pieces repeat the first, weight 0
  live[:len(corners)] = 1
  padded = np.concatenate([corners, np.repeat(corners[:1], calls * size - len(corners), 0)])
  groups = jnp.asarray(padded.reshape(calls, size, 3))
  live = jnp.asarray(live.reshape(calls, size))
  layout = activation_layout(mesh)
  pin = (lambda a: a) if layout is None else (
      lambda a: jax.lax.with_sharding_constraint(a, layout))

  def cut(video, corner):
    return jax.lax.dynamic_slice(video, (corner[0], corner[1], corner[2], 0),
                                 (window, th, tw, video.shape[-1]))

  def denoise(x: jax.Array, t: jax.Array) -> jax.Array:
    def one_call(g, total):
      corners_g = groups[g]
      x_pieces = pin(jax.vmap(cut, (None, 0))(x[0], corners_g))
      c_pieces = pin(jax.vmap(cut, (None, 0))(condition, corners_g))
      predicted = pin(predict(x_pieces, c_pieces, jnp.broadcast_to(t, (size,))))
      predicted = predicted * _outer(profiles)[None, ..., None] * live[g][:, None, None, None,
                                                                          None]

      def add(i, total):
        corner = (corners_g[i, 0], corners_g[i, 1], corners_g[i, 2], 0)
        piece = jax.lax.dynamic_slice(total, corner, predicted.shape[1:]) + predicted[i]
        return jax.lax.dynamic_update_slice(total, piece, corner)

      return jax.lax.fori_loop(0, size, add, total)

    total = jax.lax.fori_loop(0, calls, one_call, jnp.zeros_like(x[0]))
    return (total / _outer(coverage)[..., None])[None]

  return denoise


def activation_layout(mesh: Mesh | None) -> NamedSharding | None:
  """How a piece batch's activations (B, T, H, W, C) lie on the mesh: batch over
  ``windows``, rows over ``rows``."""
  if mesh is None:
    return None
  return NamedSharding(mesh, PartitionSpec('windows', None, 'rows'))
