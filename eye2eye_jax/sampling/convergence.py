"""Convergence: where the screen plane sits in a stereo pair, set after generation.

A point at x in the right view is at x + d in the left view: d > 0 is crossed disparity,
seen in front of the screen, and the generated views put the far distance (d = 0) in the
screen plane, everything else in front of it. Moving the disparity ``c * W`` (a fraction
``c`` of the frame width W) to zero shifts the left view by -cW/2 and the right view by
+cW/2: every disparity becomes d - cW, so what had disparity cW sits in the screen plane,
nearer things in front of it and farther ones behind (c > 0 moves the scene back, as the
convergence setting of 3D players does; c < 0 brings it forward).

Each shift uncovers a strip of ``|cW| / 2`` px at one side of one view. The same
``k = ceil(|cW| / 2)`` columns are cropped from both sides of both views (equal crops keep
the disparities), the rows in proportion (the aspect ratio is kept), and the frames are
scaled back to their size: the final disparity is (d - cW) * W / (W - 2k). Shift, crop and scale are one affine
resampling per frame (bilinear).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

LIMIT = 0.25  # |convergence| as a fraction of the width; beyond it half the frame is lost


def border_crop(width: int, convergence: float) -> int:
  """Columns cropped from each side of each view for ``convergence``."""
  return math.ceil(abs(convergence) * width / 2 - 1e-9)


def _resample(video: np.ndarray, shift: float, crop_x: int, crop_y: float) -> np.ndarray:
  """Every frame shifted right by ``shift`` px, cropped by crop_x / crop_y px per side and
  scaled back to its size, in one bilinear resampling."""
  height, width = video.shape[1:3]
  sx, sy = width / (width - 2 * crop_x), height / (height - 2 * crop_y)
  matrix = np.array([[sx, 0.0, (shift - crop_x) * sx], [0.0, sy, -crop_y * sy]], np.float64)
  return np.stack([cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE) for frame in video])


AUTO = 'auto'  # sample.convergence chosen per scene (``auto_convergence``)


def is_auto(convergence) -> bool:
  """Whether ``sample.convergence`` asks for automatic convergence."""
  return isinstance(convergence, str) and convergence.strip().lower() == AUTO


def check_convergence(convergence) -> None:
  """Raises ValueError naming the accepted values for an impossible ``sample.convergence``:
  a number in [-LIMIT, LIMIT] or 'auto'."""
  if is_auto(convergence):
    return
  try:
    value = float(convergence)
  except (TypeError, ValueError):
    value = math.nan
  if not -LIMIT <= value <= LIMIT:
    raise ValueError(f'sample.convergence={convergence!r}: accepted values are a fraction of '
                     f"the frame width in [-{LIMIT}, {LIMIT}], or '{AUTO}' (chosen per scene)")


def converge(left: np.ndarray, right: np.ndarray, convergence: float
             ) -> tuple[np.ndarray, np.ndarray]:
  """The (T, H, W, C) pair with the disparity ``convergence * W`` moved to the screen plane;
  0 returns the views unchanged."""
  if is_auto(convergence):
    raise ValueError(f"convergence '{AUTO}' is chosen per frame (auto_convergence); converge "
                     'takes the number chosen')
  check_convergence(convergence)
  convergence = float(convergence)
  if convergence == 0:
    return left, right
  height, width = left.shape[1:3]
  crop_x = border_crop(width, convergence)
  if 2 * crop_x >= width:
    raise ValueError(f'sample.convergence={convergence}: frames {width} px wide cannot lose '
                     f'{crop_x} px at each side')
  crop_y = crop_x * height / width
  half = convergence * width / 2
  return _resample(left, -half, crop_x, crop_y), _resample(right, half, crop_x, crop_y)
