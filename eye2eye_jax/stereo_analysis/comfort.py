"""How comfortable a stereo pair is to watch, measured frame by frame against comfort limits.

Disparity follows the project's convention d = x_left - x_right: d > 0 is crossed disparity,
seen in front of the screen (negative parallax); d < 0 lies behind it. Figures are
fractions of the frame width (of the height for vertical disparity): scaling a pair does not
change its 3D, so one set of limits serves every resolution, and a half side-by-side eye
measures like the full-width one a player shows.

Default limits (``Limits``) and where they come from:

* in front of the screen at most 1% of the width, behind it at most 2%: BSkyB's *Technical
  Guidelines for Plano Stereoscopic (3D) Programme Content* (screens of 46-70 inches; their
  depth budget is 3%), the broadcast guidance most widely adopted;
* within 1 degree of visual angle of the screen plane (the "1-degree rule" of the comfort
  zone, e.g. Lambooij et al. 2009, J. Imaging Sci. Technol. 53(3)), converted with the
  screen's horizontal viewing angle: 33 degrees by default, a 16:9 screen seen from three
  picture heights (HDTV's design distance), where 1 degree is 3% of the width;
* vertical disparity at most 0.2% of the height and temporal flicker at most 0.1% of the
  width per frame (neither below ``NOISE_PX`` of the measured frames): no published
  figure exists for either; these are this project's defect thresholds (a rectified pair
  has no vertical disparity at all; at the 480 px frames a video is measured at, 0.1% is
  about 3x the flicker a true pair measures).
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from eye2eye_jax.stereo_analysis import disparity_estimation

_SCREEN_TOLERANCE = 0.002  # |d| (of the width) still counted as on the screen plane
_EDGE_BAND = 0.02  # columns (of the width, at least 2 px) watched at each side
_EDGE_ROWS = 0.05  # share of rows with content in front of the screen there: a violation
_STILL_LEVELS = 3.0  # grey levels: content that agrees this well after its motion is still
_MIN_SHARE = 0.01  # pixels a per-frame figure needs (of the frame), else it is not given
_NEAREST, _FARTHEST = 99.0, 1.0  # percentiles taken as the nearest and farthest content
_MIN_SIDE = 32  # px: smaller frames are measured enlarged
# px of the measured frames that flicker and vertical disparity cannot be told from the
# estimators' own noise (true synthetic pairs measure up to about 0.15 px of flicker whatever
# their size), so neither limit is below it: a fraction of the frame is that few px on a
# small one.
NOISE_PX = 0.25
HISTOGRAM_BINS = 2000  # over [-search, search] of the width: the video's pooled percentiles


@dataclasses.dataclass(frozen=True)
class Limits:
  """Comfort limits (fractions of the frame width unless said otherwise)."""
  in_front: float = 0.01  # nearest content in front of the screen
  behind: float = 0.02  # farthest content behind it
  max_angle_deg: float = 1.0  # either, as a visual angle from the screen plane
  screen_angle_deg: float = 33.0  # the horizontal angle the screen fills for the viewer
  vertical: float = 0.002  # |vertical disparity|, a fraction of the height
  flicker: float = 0.001  # mean frame-to-frame change of the disparity of still content
  frames_over: float = 0.01  # share of the frames allowed over a limit

  @classmethod
  def from_config(cls, comfort_config) -> 'Limits':
    """The limits of a config's ``comfort`` section, checked."""
    limits = cls(**{field.name: float(comfort_config[field.name])
                    for field in dataclasses.fields(cls)})
    for field in dataclasses.fields(cls):
      if not getattr(limits, field.name) > 0 and field.name != 'frames_over':
        raise ValueError(f'comfort.{field.name}={getattr(limits, field.name)}: must be > 0')
    if not 0 <= limits.frames_over < 1:
      raise ValueError(f'comfort.frames_over={limits.frames_over}: must be in [0, 1)')
    if not 0 < limits.screen_angle_deg < 180:
      raise ValueError(f'comfort.screen_angle_deg={limits.screen_angle_deg}: must be in '
                       '(0, 180)')
    return limits

  def degrees(self, fraction: float) -> float:
    """The visual angle (degrees) of a disparity of ``fraction`` of the width."""
    return math.degrees(fraction * 2 * math.tan(math.radians(self.screen_angle_deg / 2)))


@dataclasses.dataclass
class FrameFigures:
  """One analysed frame. Disparities are fractions of the width (NaN: no valid pixel)."""
  frame: int
  valid: float  # share of pixels with a disparity
  p05: float
  p50: float
  p95: float
  nearest: float  # the 99th percentile: the nearest content (in front when > 0)
  farthest: float  # the 1st percentile
  window_left: bool  # content in front of the screen cut by the left edge
  window_right: bool
  vertical: float  # y_left - y_right, a fraction of the height (> 0: left content lower)
  flicker: float  # of the width; NaN for a frame with no previous frame or no still content
  histogram: np.ndarray | None = None  # counts of the disparities over HISTOGRAM_BINS bins


def _dis(size: tuple[int, int]) -> cv2.DISOpticalFlow:
  dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
  dis.setPatchSize(min(8, max(4, min(size) // 4)))
  dis.setPatchStride(max(1, dis.getPatchSize() // 2))
  return dis


def _grey(frame: np.ndarray) -> np.ndarray:
  return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def frame_flicker(previous_grey: np.ndarray, grey: np.ndarray, previous_disparity: np.ndarray,
                  previous_valid: np.ndarray, disparity: np.ndarray,
                  valid: np.ndarray) -> float:
  """Temporal flicker, the one definition: the mean absolute change (px) of the disparity
  from the previous frame where the reference eye's content is still once its motion is
  followed.

  Each pixel is followed to the previous frame by the reference eye's optical flow (DIS);
  where its grey level there agrees within ``_STILL_LEVELS`` (still content: occlusions and
  changing content fail) and both frames have a disparity, the change counts. NaN when under
  1% of the pixels count. A still input gives zero flow, so this is the change on still
  regions; a panning one is compared along its motion.
  """
  height, width = grey.shape
  flow = _dis((height, width)).calc(grey, previous_grey, None)
  columns, rows = np.meshgrid(np.arange(width, dtype=np.float32),
                              np.arange(height, dtype=np.float32))
  map_x, map_y = columns + flow[..., 0], rows + flow[..., 1]
  before = cv2.remap(previous_grey.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=-1e3)
  x = np.clip(np.round(map_x).astype(np.int64), 0, width - 1)
  y = np.clip(np.round(map_y).astype(np.int64), 0, height - 1)
  still = (np.abs(before - grey.astype(np.float32)) <= _STILL_LEVELS) & valid & previous_valid[y, x]
  if still.mean() < _MIN_SHARE:
    return math.nan
  return float(np.abs(disparity - previous_disparity[y, x])[still].mean())


def clip_flicker(estimate: disparity_estimation.DisparityEstimate,
                 reference: np.ndarray) -> float | None:
  """``frame_flicker`` averaged over a clip's consecutive frames (px); ``estimate`` is at
  the pixels of ``reference`` (T, H, W, 3) uint8. None when no frame pair has a value."""
  greys = [_grey(frame) for frame in reference]
  values = [frame_flicker(greys[t - 1], greys[t], estimate.disparity[t - 1],
                          estimate.valid[t - 1], estimate.disparity[t], estimate.valid[t])
            for t in range(1, len(greys))]
  values = [v for v in values if np.isfinite(v)]
  return float(np.mean(values)) if values else None


def vertical_disparity(left_grey: np.ndarray, right_grey: np.ndarray) -> float:
  """The median vertical offset (px) of the left eye's content from the right eye's: DIS
  flow from right to left, read where the image has structure in both directions (the
  strongest 20% of corners). NaN for a frame without structure."""
  flow = _dis(right_grey.shape).calc(right_grey, left_grey, None)
  corners = cv2.cornerMinEigenVal(right_grey, 5)
  strong = corners >= max(np.percentile(corners, 80), 1e-6)
  if strong.mean() < _MIN_SHARE:
    return math.nan
  return float(np.median(flow[..., 1][strong]))


def _window_rows(disparity: np.ndarray, valid: np.ndarray, columns: slice,
                 tolerance: float) -> float:
  """The share of rows whose valid pixels in ``columns`` are mostly in front of the screen."""
  d, v = disparity[:, columns], valid[:, columns]
  in_front = ((d > tolerance) & v).sum(1)
  return float(np.mean((in_front > 0) & (2 * in_front > v.sum(1))))


class PairAnalyzer:
  """Measures (left, right) frame pairs, in order, at most ``analysis_width`` px wide.

  Wider frames are shrunk (aspect kept) before measuring; disparities are searched within
  ``search`` of the width either side of the screen plane, on luma only: decoded video
  keeps colour at half resolution (4:2:0), and its upsampled chroma would pull the match
  by a fraction of a pixel. Consecutive calls give the flicker between frames; ``reset``
  starts afresh (a jump in the video).
  """

  def __init__(self, analysis_width: int = 480, search: float = 0.08):
    if analysis_width < 16:
      raise ValueError(f'comfort.analysis_width={analysis_width}: must be >= 16 px')
    if not 0 < search < 0.5:
      raise ValueError(f'comfort.search={search}: must be in (0, 0.5) of the width')
    self.analysis_width, self.search = int(analysis_width), float(search)
    self.reset()

  def reset(self) -> None:
    self._previous = None  # (grey right, disparity, valid) of the last frame measured

  def measured_width(self, width: int, height: int) -> int:
    """The width (px) frames of ``width`` x ``height`` are measured at (``_resize``)."""
    if width > self.analysis_width:
      return self.analysis_width
    if min(height, width) < _MIN_SIDE:
      return width * math.ceil(_MIN_SIDE / min(height, width))
    return width

  def _resize(self, frame: np.ndarray) -> np.ndarray:
    """``frame`` at the size it is measured at: shrunk to ``analysis_width`` when wider,
    enlarged (a whole factor) when its short side is under ``_MIN_SIDE`` px, which optical
    flow needs; every figure is a fraction of the size, so neither changes them."""
    height, width = frame.shape[:2]
    if width > self.analysis_width:
      size = (self.analysis_width, max(_MIN_SIDE, round(height * self.analysis_width / width)))
      return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    if min(height, width) < _MIN_SIDE:
      factor = math.ceil(_MIN_SIDE / min(height, width))
      return cv2.resize(frame, (width * factor, height * factor),
                        interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(frame)

  def __call__(self, left: np.ndarray, right: np.ndarray, frame: int = 0) -> FrameFigures:
    """The figures of one (H, W, 3) uint8 pair (``frame``: its index, for the record)."""
    if left.shape != right.shape or left.ndim != 3:
      raise ValueError(f'a stereo pair needs two (H, W, 3) views of one size, got '
                       f'{left.shape} and {right.shape}')
    grey_left, grey_right = _grey(self._resize(left)), _grey(self._resize(right))
    height, width = grey_right.shape
    reach = max(2.0, self.search * width)
    as_rgb = lambda grey: cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    from_right, from_left = disparity_estimation.estimate_both_eyes(
        as_rgb(grey_left), as_rgb(grey_right), min_disparity=-reach, max_disparity=reach)
    disparity, valid = from_right.disparity[0], from_right.valid[0]
    values = disparity[valid] / width
    if values.size:
      p01, p05, p50, p95, p99 = np.percentile(values, [_FARTHEST, 5, 50, 95, _NEAREST])
    else:
      p01 = p05 = p50 = p95 = p99 = math.nan
    band = slice(0, max(2, round(_EDGE_BAND * width)))
    right_band = slice(width - (band.stop - band.start), width)
    tolerance = _SCREEN_TOLERANCE * width
    flicker = math.nan
    if self._previous is not None:
      previous_grey, previous_disparity, previous_valid = self._previous
      flicker = frame_flicker(previous_grey, grey_right, previous_disparity, previous_valid,
                              disparity, valid) / width
    self._previous = (grey_right, disparity, valid)
    return FrameFigures(
        frame=int(frame), valid=float(valid.mean()), p05=float(p05), p50=float(p50),
        p95=float(p95), nearest=float(p99), farthest=float(p01),
        window_left=_window_rows(disparity, valid, band, tolerance) >= _EDGE_ROWS,
        window_right=_window_rows(from_left.disparity[0], from_left.valid[0], right_band,
                                  tolerance) >= _EDGE_ROWS,
        vertical=vertical_disparity(grey_left, grey_right) / height, flicker=flicker,
        histogram=np.histogram(values, HISTOGRAM_BINS, (-self.search, self.search))[0])
