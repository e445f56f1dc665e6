"""Finding scene cuts in a stream of frames with a frame-difference test.

A frame starts a new scene when it differs from the frame before it far more than recent
frames differed from each other: the mean absolute difference of the two frames' 32x32
grey thumbnails is over ``threshold`` levels (of 255) and over ``RATIO`` times the mean of
the last ``HISTORY`` differences in the same scene. The second test is the adaptive one of
PySceneDetect's AdaptiveDetector: a fast pan raises the running mean, so it is not taken
for a cut, while a cut between two still shots is.
"""

from __future__ import annotations

import collections

import cv2
import numpy as np

THUMBNAIL = 32  # px: small enough to ignore noise and fine motion
RATIO = 3.0
HISTORY = 8


class SceneCutDetector:
  """Fed the frames of a video in order, says which ones start a new scene."""

  def __init__(self, threshold: float):
    if threshold < 0:
      raise ValueError(f'sample.scene_cut_threshold must be >= 0 (0: off), got {threshold}')
    self.threshold = float(threshold)
    self._previous: np.ndarray | None = None
    self._recent: collections.deque[float] = collections.deque(maxlen=HISTORY)

  def difference(self, frame: np.ndarray) -> float:
    """Mean absolute difference (levels) of ``frame``'s thumbnail from the previous one's;
    0 for the first frame. Remembers ``frame`` as the previous one."""
    grey = cv2.cvtColor(np.ascontiguousarray(frame, np.uint8), cv2.COLOR_RGB2GRAY)
    thumbnail = cv2.resize(grey, (THUMBNAIL, THUMBNAIL),
                           interpolation=cv2.INTER_AREA).astype(np.float32)
    previous, self._previous = self._previous, thumbnail
    return 0.0 if previous is None else float(np.abs(thumbnail - previous).mean())

  def is_cut(self, frame: np.ndarray) -> bool:
    """Whether ``frame`` (H, W, 3 uint8), the next frame of the video, starts a new scene."""
    score = self.difference(frame)
    if not self.threshold:
      return False
    usual = float(np.mean(self._recent)) if self._recent else 0.0
    cut = score > self.threshold and score > RATIO * usual
    if cut:
      self._recent.clear()
    else:
      self._recent.append(score)
    return cut


def find_scene_cuts(frames: np.ndarray, threshold: float) -> list[int]:
  """The frames of a (T, H, W, 3) video that start a new scene (never frame 0)."""
  detector = SceneCutDetector(threshold)
  return [i for i, frame in enumerate(frames) if detector.is_cut(frame)]
