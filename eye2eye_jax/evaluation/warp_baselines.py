"""The answers a stereo model is compared against: copy, global shift, warp-and-inpaint.

Warp-and-inpaint is the classic depth-based conversion (and the paper's main baseline):
one disparity per right-view pixel, each pixel splatted forward to ``x + scale * d`` in the
left view with soft, depth-ordered weights (softmax splatting: nearer pixels win where
several land), and the disoccluded holes filled by OpenCV's Telea inpainting. With ONE
disparity per pixel it cannot move a transparent surface and what is behind it by
different amounts, nor a reflection by its virtual depth: the cases the method exists for.
The disparity comes from a depth estimate (in the evaluation: the scenes' true surface
depth, an ideal monocular estimate) or from matching a true stereo pair.
"""

from __future__ import annotations

import cv2
import numpy as np

from eye2eye_jax.stereo_analysis import disparity_estimation

# Softmax splatting weight per pixel of disparity: a surface 1 px nearer gets e^4 (~55x)
# the weight where both land on one pixel, so the nearer one shows.
_DEPTH_SHARPNESS = 4.0
# A left-view pixel that receives less than this much splatted coverage is a hole.
_MIN_COVERAGE = 0.5
_INPAINT_RADIUS = 3


def stereo_matched_disparity(left: np.ndarray, right: np.ndarray,
                             max_disparity: float) -> np.ndarray:
  """One disparity per right-view pixel (T, H, W), matched between the two true eyes.

  An oracle for the warp: no monocular method has the other eye. Matching follows what the
  texture does, so it finds a reflection's virtual depth and, in a pane, whichever of the
  pane or the background dominates. Pixels the matcher cannot resolve get the farther of
  their row neighbours' values.
  """
  estimate = disparity_estimation.estimate_disparity(left, right, max_disparity=max_disparity)
  return disparity_estimation.fill_invalid(estimate)


def forward_splat(right: np.ndarray, disparity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Splats right-view pixels to ``x + disparity`` in the left view, nearest on top.

  right: (T, H, W, C); disparity: (T, H, W). Each pixel is spread over the two nearest
  columns (linear weights) times exp(sharpness * d), and every left pixel is the weighted
  mean of what lands on it. Returns (left float32, hole mask (T, H, W) bool).
  """
  t, h, w = disparity.shape
  target = np.arange(w, dtype=np.float64)[None, None, :] + disparity
  base = np.floor(target).astype(np.int64)
  frac = (target - base).astype(np.float32)
  depth_weight = np.exp(_DEPTH_SHARPNESS * (disparity - disparity.max()))
  row_start = (np.arange(t)[:, None, None] * h + np.arange(h)[None, :, None]) * w
  colors = right.astype(np.float32).reshape(t * h * w, -1)
  accumulated = np.zeros((t * h * w, colors.shape[1] + 2), np.float64)
  for column, linear in ((base, 1.0 - frac), (base + 1, frac)):
    inside = (column >= 0) & (column < w) & (linear > 0)
    index = (row_start + np.clip(column, 0, w - 1))[inside]
    weight = (linear * depth_weight)[inside][:, None]
    np.add.at(accumulated, index, np.concatenate(
        [colors[inside.reshape(-1)] * weight, weight, linear[inside][:, None]], axis=1))
  weights = accumulated[:, -2:-1]
  coverage = accumulated[:, -1].reshape(t, h, w)
  left = (accumulated[:, :-2] / np.maximum(weights, 1e-30)).reshape(right.shape)
  holes = coverage < _MIN_COVERAGE
  left[holes] = 0.0
  return left.astype(np.float32), holes


def inpaint(video: np.ndarray, holes: np.ndarray) -> np.ndarray:
  """Fills ``holes`` (T, H, W) of a uint8 video frame by frame (OpenCV Telea)."""
  out = video.copy()
  for i in range(len(video)):
    if holes[i].any():
      out[i] = cv2.inpaint(video[i], holes[i].astype(np.uint8), _INPAINT_RADIUS,
                           cv2.INPAINT_TELEA)
  return out


def warp_and_inpaint(right: np.ndarray, disparity: np.ndarray,
                     scale: float = 1.0) -> np.ndarray:
  """The left view (uint8) of ``right`` warped by ``scale * disparity``, holes inpainted."""
  splatted, holes = forward_splat(right, scale * disparity)
  return inpaint(np.clip(np.round(splatted), 0, 255).astype(np.uint8), holes)


def global_shift(right: np.ndarray, shift: float) -> np.ndarray:
  """The right view moved ``shift`` px to the right as a whole (a flat, uniform 3D effect);
  the uncovered columns at the edge are inpainted."""
  disparity = np.full(right.shape[:3], shift, np.float32)
  return warp_and_inpaint(right, disparity)


def copy_right(right: np.ndarray) -> np.ndarray:
  """The right view as the left view: no 3D at all."""
  return right.copy()
