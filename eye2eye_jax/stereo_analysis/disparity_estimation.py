"""Dense disparity of a rectified stereo pair, per frame, with a validity mask.

Two estimators from OpenCV: semi-global block matching (``'sgbm'``, subpixel, the default)
and DIS optical flow between the eyes (``'flow'``; its horizontal component). Disparity
follows the project's convention ``d = u_left - u_right`` and is given at the pixels of the
``reference`` eye: for the right eye, ``right(x)`` matches ``left(x + d)``; for the left eye,
``left(x)`` matches ``right(x - d)``.

A pixel is valid when the estimator returned a value and a left-right consistency check
passes: the disparity estimated from the other eye, read at the matching pixel, agrees to
within ``consistency_px``. Occluded pixels (seen by one eye only) and textureless ones fail
it, which is what the metrics, the data filter and the warp baseline need to know.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

METHODS = ('sgbm', 'flow')
_MATCHING_SIDE = 256  # short side (px) small frames are enlarged to before matching


@dataclasses.dataclass
class DisparityEstimate:
  """disparity: (T, H, W) float32 pixels at the reference eye; valid: (T, H, W) bool."""
  disparity: np.ndarray
  valid: np.ndarray

  def valid_values(self) -> np.ndarray:
    return self.disparity[self.valid]


def _as_video(frames: np.ndarray, name: str) -> np.ndarray:
  frames = np.asarray(frames)
  if frames.ndim == 3:
    frames = frames[None]
  if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
    raise ValueError(f'{name}: expected uint8 (T, H, W, 3) or (H, W, 3) frames, got '
                     f'{frames.dtype} {frames.shape}')
  return frames


def _sgbm_left_reference(left: np.ndarray, right: np.ndarray, min_disparity: int,
                         num_disparities: int, block_size: int) -> np.ndarray:
  """OpenCV SGBM disparity at the pixels of ``left`` (NaN where it has none).

  The pair is padded by the search range, on the left and (for negative disparities) on the
  right, so pixels near either edge get a disparity too (OpenCV leaves the columns whose
  search would leave the image unmatched; matches into the padding score badly and lose).
  """
  pad = num_disparities + max(min_disparity, 0)
  pad_right = max(-min_disparity, 0)
  grow = lambda image: cv2.copyMakeBorder(image, 0, 0, pad, pad_right, cv2.BORDER_CONSTANT,
                                          value=0)
  matcher = cv2.StereoSGBM_create(
      minDisparity=min_disparity, numDisparities=num_disparities, blockSize=block_size,
      P1=8 * 3 * block_size**2, P2=32 * 3 * block_size**2, disp12MaxDiff=-1,
      uniquenessRatio=5, speckleWindowSize=0, mode=cv2.STEREO_SGBM_MODE_HH)
  raw = matcher.compute(grow(left), grow(right))[:, pad:pad + left.shape[1]]
  disparity = raw.astype(np.float32) / 16.0  # fixed point with 4 fractional bits
  disparity[raw < min_disparity * 16] = np.nan
  return disparity


def _sgbm(left, right, reference_is_right: bool, min_disparity: float,
          max_disparity: float, block_size: int) -> np.ndarray:
  lo = int(np.floor(min_disparity))
  count = int(np.ceil((max_disparity - lo + 1) / 16.0)) * 16
  if reference_is_right:
    # Mirroring both eyes turns the right eye into the left one of a rectified pair.
    return _sgbm_left_reference(right[:, ::-1].copy(), left[:, ::-1].copy(), lo, count,
                                block_size)[:, ::-1]
  return _sgbm_left_reference(left, right, lo, count, block_size)


def _flow(left, right, reference_is_right: bool) -> np.ndarray:
  """Horizontal DIS optical flow from the reference eye to the other, as a disparity."""
  gray = lambda image: cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
  source, target = (right, left) if reference_is_right else (left, right)
  dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
  dis.setPatchSize(min(8, max(4, min(source.shape[:2]) // 4)))
  dis.setPatchStride(max(1, dis.getPatchSize() // 2))
  flow = dis.calc(gray(source), gray(target), None)
  disparity = flow[..., 0] if reference_is_right else -flow[..., 0]
  disparity = disparity.astype(np.float32)
  disparity[np.abs(flow[..., 1]) > 1.0] = np.nan  # a rectified pair has no vertical motion
  return disparity


def _consistent(reference: np.ndarray, other: np.ndarray, direction: float,
                tolerance: float) -> np.ndarray:
  """Where ``reference`` agrees with ``other`` read at x + direction * d (nearest pixel)."""
  height, width = reference.shape
  columns = np.arange(width)[None, :] + direction * np.nan_to_num(reference)
  target = np.round(columns).astype(np.int64)
  inside = (target >= 0) & (target < width) & np.isfinite(reference)
  rows = np.broadcast_to(np.arange(height)[:, None], reference.shape)
  there = other[rows, np.clip(target, 0, width - 1)]
  with np.errstate(invalid='ignore'):
    return inside & np.isfinite(there) & (np.abs(there - reference) <= tolerance)


def estimate_disparity(left: np.ndarray, right: np.ndarray, *, max_disparity: float,
                       min_disparity: float = 0.0, method: str = 'sgbm',
                       reference: str = 'right', block_size: int = 5,
                       consistency_px: float = 1.0, upsample: int = 0) -> DisparityEstimate:
  """Per-frame disparity of a rectified pair of uint8 videos (T, H, W, 3) or images.

  ``min_disparity``/``max_disparity`` bound the search (SGBM); allow negative values to
  measure a pair whose eyes may be swapped. Small frames are matched ``upsample`` times
  larger (bicubic; 0: enough for a short side of 256 px, at most 8x), which removes most of
  block matching's bias toward whole pixels; the result is averaged back to the input grid.
  """
  if reference not in ('right', 'left'):
    raise ValueError(f"reference must be 'right' or 'left', got {reference!r}")
  from_right, from_left = estimate_both_eyes(
      left, right, max_disparity=max_disparity, min_disparity=min_disparity, method=method,
      block_size=block_size, consistency_px=consistency_px, upsample=upsample)
  return from_right if reference == 'right' else from_left


def estimate_both_eyes(left: np.ndarray, right: np.ndarray, *, max_disparity: float,
                       min_disparity: float = 0.0, method: str = 'sgbm', block_size: int = 5,
                       consistency_px: float = 1.0, upsample: int = 0
                       ) -> tuple[DisparityEstimate, DisparityEstimate]:
  """``estimate_disparity`` at the pixels of each eye: (from the right, from the left).

  Both come from the same two matchings, so the second costs only its consistency check.
  """
  left, right = _as_video(left, 'left'), _as_video(right, 'right')
  if left.shape != right.shape:
    raise ValueError(f'left {left.shape} and right {right.shape} views differ in shape')
  if method not in METHODS:
    raise ValueError(f'unknown disparity method {method!r}; choose from {METHODS}')
  if not max_disparity > min_disparity:
    raise ValueError(f'max_disparity {max_disparity} must exceed min_disparity {min_disparity}')

  def one_way(l, r, reference_is_right):
    if method == 'sgbm':
      return _sgbm(l, r, reference_is_right, min_disparity, max_disparity, block_size)
    return _flow(l, r, reference_is_right)

  height, width = left.shape[1:3]
  factor = upsample or int(min(8, max(1, np.ceil(_MATCHING_SIDE / min(height, width)))))
  grow = lambda image: (image if factor == 1 else cv2.resize(
      image, (width * factor, height * factor), interpolation=cv2.INTER_CUBIC))
  min_disparity, max_disparity = min_disparity * factor, max_disparity * factor
  out = [DisparityEstimate(np.empty(left.shape[:3], np.float32), np.empty(left.shape[:3], bool))
         for _ in range(2)]
  for t in range(left.shape[0]):
    l, r = grow(left[t]), grow(right[t])
    maps = one_way(l, r, True), one_way(l, r, False)
    # From the right eye a match lies at x + d in the left one; from the left, at x - d.
    for estimate, primary, secondary, direction in ((out[0], maps[0], maps[1], 1.0),
                                                     (out[1], maps[1], maps[0], -1.0)):
      ok = _consistent(primary, secondary, direction, consistency_px * factor)
      values = np.where(ok, primary, 0.0).astype(np.float32) / factor
      if factor == 1:
        estimate.disparity[t], estimate.valid[t] = values, ok
      else:  # average the valid values of each block of factor x factor pixels
        weight = cv2.resize(ok.astype(np.float32), (width, height),
                            interpolation=cv2.INTER_AREA)
        total = cv2.resize(values, (width, height), interpolation=cv2.INTER_AREA)
        estimate.valid[t] = weight > 0.5
        estimate.disparity[t] = np.where(estimate.valid[t], total / np.maximum(weight, 1e-6),
                                         0.0)
  return out[0], out[1]


def fill_invalid(estimate: DisparityEstimate) -> np.ndarray:
  """The disparity with every invalid pixel filled from its row, farther side first.

  Invalid pixels are mostly occlusions, which belong to the farther surface, so each one
  takes the smaller of the nearest valid disparities to its left and right; rows with no
  valid pixel take the frame's median (0 when a frame has none).
  """
  disparity = estimate.disparity.astype(np.float32).copy()
  valid = estimate.valid
  t, h, w = disparity.shape
  flat_d, flat_v = disparity.reshape(t * h, w), valid.reshape(t * h, w)
  columns = np.broadcast_to(np.arange(w), flat_v.shape)
  last = np.maximum.accumulate(np.where(flat_v, columns, -1), axis=1)
  first = np.minimum.accumulate(np.where(flat_v, columns, w)[:, ::-1], axis=1)[:, ::-1]
  rows = np.arange(t * h)[:, None]
  from_left = np.where(last >= 0, flat_d[rows, np.clip(last, 0, w - 1)], np.inf)
  from_right = np.where(first < w, flat_d[rows, np.clip(first, 0, w - 1)], np.inf)
  filled = np.where(flat_v, flat_d, np.minimum(from_left, from_right)).reshape(t, h, w)
  for i in range(t):
    frame_median = np.median(disparity[i][valid[i]]) if valid[i].any() else 0.0
    filled[i][~np.isfinite(filled[i])] = frame_median
  return filled.astype(np.float32)
