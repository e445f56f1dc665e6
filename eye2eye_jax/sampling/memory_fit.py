"""The memory one UNet call of a sampling stage needs, and the refiner tiling that fits.

A piece (a window of frames, or a tile of one) costs what its coarsest-level spatial
attention materialises, ``heads x tokens x tokens`` scores per frame there, plus the
full-resolution feature maps; a UNet call holds ``window_batch`` pieces. The two constants
below were fitted as upper bounds to the temporaries XLA allocates for the bundled demo
UNet's forward at 64 to 452 px (``tests/test_refiner_tiles.py`` checks the bound and that
it stays within 3x of the compiled figure). With ``sample.refiner_tile=-1`` (the default) the
refiner takes the largest tile, whole frames first, and then the most pieces per call, that
fit half the device's memory (half the host's available memory on a CPU), and no tile wider
than ``CONTEXT_FACTOR`` times the crops it was trained on: its attention's cost grows with
the square of the tile's area, while what it learned is local to its crops.
"""

from __future__ import annotations

import math
import os

import jax
import ml_collections

# Bytes held per attention score (the scores and their exponentials) and full-resolution
# feature maps alive at once, per piece.
SCORE_COPIES = 2.5
FEATURE_MAPS = 12
BUDGET_FRACTION = 0.5
CONTEXT_FACTOR = 4
# Tile sides tried below whole frames, largest first (rounded to the UNet's factor).
TILE_SIDES = (1024, 768, 512, 384, 256, 192, 128, 96, 64, 48, 32)


def piece_bytes(model_config: ml_collections.ConfigDict, frames: int, height: int,
                width: int) -> float:
  """Estimated peak bytes of one UNet forward on one (frames, height, width) piece."""
  m = model_config
  factor = 2**(len(m.channel_mult) - 1)
  coarse_frames = frames // 2**sum(bool(d) for d in m.temporal_downsample)
  tokens = (height // factor) * (width // factor)
  keys = min(tokens, m.attention_chunk or tokens)
  scores = 0 if m.attention_kernel != 'xla' else coarse_frames * m.num_heads * tokens * keys * 4
  itemsize = 2 if m.dtype == 'bfloat16' else 4
  features = frames * height * width * m.channels * m.channel_mult[0] * itemsize
  return SCORE_COPIES * scores + FEATURE_MAPS * features


def memory_budget() -> float:
  """Bytes a sampling call may take: half the first local device's memory, or half the
  host's available memory where the device keeps no account (CPU)."""
  stats = jax.local_devices()[0].memory_stats() or {}
  if stats.get('bytes_limit'):
    return BUDGET_FRACTION * stats['bytes_limit']
  try:  # Linux: what the host can still give
    with open('/proc/meminfo') as meminfo:
      fields = dict(line.split(':', 1) for line in meminfo)
    return BUDGET_FRACTION * int(fields['MemAvailable'].split()[0]) * 1024
  except (OSError, KeyError, ValueError):  # elsewhere (macOS): all of the host's memory
    return BUDGET_FRACTION * os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')


def choose_refiner_tiling(model_config: ml_collections.ConfigDict, frames: int, height: int,
                          width: int, window_batch: int, budget: float, trained_side: int,
                          overlap: int) -> tuple[int, int]:
  """(sample.refiner_tile, pieces per call) for (height, width) frames: whole frames (0) if
  they fit, else the largest tile of ``TILE_SIDES``, no wider than ``CONTEXT_FACTOR`` x
  ``trained_side`` (the refiner's training crops) nor narrower than 4x the ``overlap``
  (``sample.refiner_tile_overlap``), with as many of ``window_batch`` pieces per call as fit
  ``budget``; ValueError names the settings when nothing fits."""
  factor = 2**(len(model_config.channel_mult) - 1)
  widest = max(CONTEXT_FACTOR * trained_side, 4 * overlap)
  sides = ([0] if max(height, width) <= widest else []) + [
      s for s in TILE_SIDES
      if s < max(height, width) and max(2 * factor, 4 * overlap) <= s <= widest]
  for side in sides:
    th, tw = (height, width) if side == 0 else (min(side, height), min(side, width))
    th, tw = (max(factor, math.ceil(x / factor) * factor) for x in (th, tw))
    need = piece_bytes(model_config, frames, th, tw)
    if need <= budget:
      return side, min(window_batch, int(budget // need))
  raise ValueError(
      f'sample.refiner_tile: no tile of {height}x{width} frames fits this device: the '
      f'smallest tried ({sides[-1] or "whole frames"} px) needs about {need / 2**30:.1f} '
      f'GiB, the budget is {budget / 2**30:.1f} GiB; use a device with more memory or '
      'sample.dtype=bfloat16')


def check_base_fits(model_config: ml_collections.ConfigDict, frames: int, height: int,
                    width: int, budget: float) -> None:
  """Raises ValueError naming ``sample.base_resolution`` when one base window of
  (height, width) does not fit ``budget`` (the base stage is never tiled)."""
  need = piece_bytes(model_config, frames, height, width)
  if need > budget:
    raise ValueError(
        f'sample.base_resolution: the base model at {height}x{width} needs about '
        f'{need / 2**30:.1f} GiB per window, the budget is {budget / 2**30:.1f} GiB; lower '
        'sample.base_resolution (0: the model\'s training resolution)')
