"""Operations on clips as numpy arrays, shared by the builders, the input pipeline and the
sampler: resizing frames, the model's value range, resampling frame rates.

A leaf module: numpy and OpenCV only, so a dataset builder's worker processes can use it
without loading JAX or the model.
"""

from __future__ import annotations

import cv2
import numpy as np


def resize_clip(clip: np.ndarray, height: int, width: int) -> np.ndarray:
  """Resizes every frame of a (T, H, W, C) clip with area averaging (bilinear to upsample)."""
  if clip.shape[1:3] == (height, width):
    return clip
  shrinking = height <= clip.shape[1] and width <= clip.shape[2]
  interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
  return np.stack([cv2.resize(frame, (width, height), interpolation=interpolation)
                   for frame in clip]).reshape((clip.shape[0], height, width, clip.shape[3]))


def to_model_range(x: np.ndarray) -> np.ndarray:
  """uint8 pixels in [0, 255] -> float32 in [-1, 1], the range the model works in."""
  return x.astype(np.float32) / 127.5 - 1.0


def from_model_range(x: np.ndarray) -> np.ndarray:
  """The model's [-1, 1] -> uint8 pixels (rounded, clipped)."""
  return np.clip(np.round((np.asarray(x, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def resample_frame_indices(num_frames: int, fps: float, target_fps: float) -> np.ndarray:
  """Indices of the input frames nearest to a ``target_fps`` grid over the same duration."""
  if target_fps <= 0 or abs(target_fps - fps) < 1e-6:
    return np.arange(num_frames)
  count = max(1, int(round(num_frames * target_fps / fps)))
  return np.clip(np.round(np.arange(count) * fps / target_fps).astype(int), 0, num_frames - 1)
