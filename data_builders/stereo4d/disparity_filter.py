"""The paper's data filter: drop clips whose disparity exceeds 60 px at 512 px.

Such clips break the stereo window (something very near the camera) and would teach the
model disparities it should not produce. The disparity between the rectified eyes is
estimated with OpenCV's semi-global matching (``eye2eye_jax.evaluation.disparity_estimation``; the
paper used RAFT optical flow) on every ``every``-th frame, and a clip is judged by a high
percentile of the valid disparities' magnitude (98th by default), not their maximum, so a
few mismatched pixels cannot drop a good clip. The threshold scales with the frame size.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from eye2eye_jax.evaluation import disparity_estimation


@dataclasses.dataclass(frozen=True)
class DisparityFilter:
  max_disparity_at_512: float = 60.0
  percentile: float = 98.0
  every: int = 8  # frames between the ones measured

  def threshold(self, size: int) -> float:
    return self.max_disparity_at_512 * size / 512

  def measure(self, left: np.ndarray, right: np.ndarray) -> dict:
    """Disparity statistics (px at this size) of a rectified clip (T, S, S, 3) uint8."""
    frames = slice(None, None, max(self.every, 1))
    limit = 2 * self.threshold(left.shape[2])  # look past the threshold to see a violation
    estimate = disparity_estimation.estimate_disparity(
        left[frames], right[frames], min_disparity=-limit, max_disparity=limit, upsample=1)
    values = np.abs(estimate.valid_values())
    if values.size == 0:
      return {'valid_fraction': 0.0, 'median_px': 0.0, 'high_percentile_px': 0.0}
    return {'valid_fraction': float(estimate.valid.mean()),
            'median_px': float(np.median(estimate.valid_values())),
            'high_percentile_px': float(np.percentile(values, self.percentile))}

  def keep(self, statistics: dict, size: int) -> tuple[bool, str]:
    """Whether a clip passes, and why not."""
    if statistics['valid_fraction'] < 0.05:
      return False, 'no_disparity_measured'
    if statistics['high_percentile_px'] > self.threshold(size):
      return False, 'disparity_too_large'
    return True, ''
