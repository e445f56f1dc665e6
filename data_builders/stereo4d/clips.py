"""Which frames make a training clip: the npz's timestamps, resampled and cut into clips.

Stereo4D's npz lists the video frames of a clip by timestamp (microseconds). Training clips
are ``clip_frames`` frames at ``fps`` (the paper: 80 at 16 fps): a regular time grid from
the first timestamp, each time snapped to the nearest listed timestamp (frames are fetched
by timestamp), cut into consecutive clips; the leftover shorter than a clip is dropped.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ClipPlan:
  """One training clip: its name and the source times of its frames (microseconds)."""
  name: str
  times_us: np.ndarray


def plan_clips(name: str, timestamps_us, fps: float = 16.0,
               clip_frames: int = 80) -> list[ClipPlan]:
  """The clips of one npz (``name``) at ``fps``, ``clip_frames`` frames each."""
  timestamps = np.asarray(timestamps_us, np.int64).reshape(-1)
  if timestamps.size == 0:
    raise ValueError(f'{name}: the npz lists no timestamps')
  if np.any(np.diff(timestamps) <= 0):
    raise ValueError(f'{name}: timestamps are not strictly increasing')
  if fps <= 0 or clip_frames < 1:
    raise ValueError(f'bad clip shape: {clip_frames} frames at {fps} fps')
  step_us = 1e6 / fps
  count = int(np.floor((timestamps[-1] - timestamps[0]) / step_us)) + 1
  grid = timestamps[0] + np.arange(count) * step_us
  if len(timestamps) == 1:
    snapped = timestamps
  else:
    nearest = np.clip(np.searchsorted(timestamps, grid), 1, len(timestamps) - 1)
    before, after = timestamps[nearest - 1], timestamps[nearest]
    snapped = np.where(grid - before <= after - grid, before, after)
  return [ClipPlan(f'{name}_{k:03d}', snapped[k * clip_frames:(k + 1) * clip_frames])
          for k in range(len(snapped) // clip_frames)]

