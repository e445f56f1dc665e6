"""Image similarity of a generated view to the true view: PSNR, SSIM and stereo-IoU.

All functions take uint8 videos (T, H, W, 3) (or single frames) and return one number
averaged over frames.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage import metrics as skimage_metrics

# Stereo-IoU's constants, as the Mono2Stereo benchmark (CVPR 2025) defines it: Canny edges
# with thresholds 100/200, a pixel "changed" when it differs from the input view by > 5
# (grey levels), and the two IoUs weighted 3:1.
_CANNY_THRESHOLDS = (100, 200)
_CHANGE_THRESHOLD = 5
_EDGE_WEIGHT = 0.75


def _frames(video: np.ndarray) -> np.ndarray:
  video = np.asarray(video)
  return video[None] if video.ndim == 3 else video


def psnr(generated: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
  """PSNR (dB, at most 100) of uint8-range images, over all pixels or where ``mask`` (T, H, W)."""
  error = (generated.astype(np.float64) - truth.astype(np.float64))**2
  mse = error.mean() if mask is None else error.mean(-1)[mask].mean()
  return float(10 * np.log10(255.0**2 / max(mse, 255.0**2 * 1e-10)))


def ssim(generated: np.ndarray, truth: np.ndarray) -> float:
  """Mean structural similarity (scikit-image, 7x7 windows, over RGB) of the frames."""
  generated, truth = _frames(generated), _frames(truth)
  window = min(7, *generated.shape[1:3])
  window -= 1 - window % 2  # odd
  return float(np.mean([
      skimage_metrics.structural_similarity(g, t, channel_axis=-1, data_range=255,
                                            win_size=window)
      for g, t in zip(generated, truth)]))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
  union = np.logical_or(a, b).sum()
  return float(np.logical_and(a, b).sum() / union) if union else 1.0


def stereo_iou(generated: np.ndarray, truth: np.ndarray, source: np.ndarray) -> float:
  """Stereo intersection-over-union of a generated view (Mono2Stereo's SIoU).

  0.75 x IoU of the Canny edges of the generated and true views, plus 0.25 x IoU of the
  pixels where each differs from the ``source`` (input) view: it rewards edges in the right
  place and changes in the right pixels, which PSNR barely sees. Copying the input scores
  low on the second term.
  """
  gray = lambda image: cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
  scores = []
  for g, t, s in zip(_frames(generated), _frames(truth), _frames(source)):
    edges = _iou(cv2.Canny(gray(g), *_CANNY_THRESHOLDS) > 0,
                 cv2.Canny(gray(t), *_CANNY_THRESHOLDS) > 0)
    changed = lambda view: gray(cv2.absdiff(view, s)) > _CHANGE_THRESHOLD
    scores.append(_EDGE_WEIGHT * edges + (1 - _EDGE_WEIGHT) * _iou(changed(g), changed(t)))
  return float(np.mean(scores))
