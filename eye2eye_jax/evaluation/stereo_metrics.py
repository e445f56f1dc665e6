"""Measuring the 3D effect of a generated left view against per-layer ground truth.

The method does not fix the disparity scale, so geometry is measured in ways that survive
that: per layer, the horizontal shift of the generated content relative to the right view;
one global scale fitted between measured and true disparities (a flat output has scale ~0);
depth ordering (does a nearer layer shift more?) and the rank correlation of measured vs
true disparity. For transparent and reflective layers, whether the output looks more like
the true view or like a single-depth warp, both rendered at the output's own disparity
scale. And, where there is no ground truth, statistics of the disparity estimated between
the generated and the input view, which show a flat, reversed or flickering 3D effect.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

from eye2eye_jax.data.synthetic_scenes import LayerKind
from eye2eye_jax.stereo_analysis import comfort
from eye2eye_jax.stereo_analysis.disparity_estimation import DisparityEstimate

_TIE_PX = 0.1


def shift_columns(image: np.ndarray, shift: float) -> np.ndarray:
  """Samples ``image`` (..., H, W, C) at column x + shift (linear; edges clamped)."""
  width = image.shape[-2]
  x = np.arange(width, dtype=np.float64) + shift
  x0 = np.clip(np.floor(x).astype(np.int64), 0, width - 1)
  x1 = np.clip(x0 + 1, 0, width - 1)
  frac = np.clip(x - np.floor(x), 0, 1).astype(np.float32)[:, None]
  return image[..., x0, :] * (1 - frac) + image[..., x1, :] * frac


def measure_layer_shift(left: np.ndarray, right: np.ndarray, mask: np.ndarray,
                        max_shift: float, resolution: float = 0.25) -> float:
  """The horizontal shift s (px) for which left(x + s) best matches right(x) inside ``mask``.

  left, right: (T, H, W, 3) float; mask: (T, H, W) bool, in right-view coordinates. Shifts
  from -max_shift to +max_shift are tried on a ``resolution`` grid and the best one is
  refined with a parabola through its neighbours. Pixels whose match would fall outside the
  frame are ignored.
  """
  # Only the rows and columns around the mask matter (columns widened by the search).
  rows = np.flatnonzero(mask.any(axis=(0, 2)))
  cols = np.flatnonzero(mask.any(axis=(0, 1)))
  if rows.size == 0:
    return 0.0
  reach = int(np.ceil(max_shift)) + 1
  x0, x1 = max(cols[0] - reach, 0), min(cols[-1] + reach + 1, left.shape[2])
  box = (slice(None), slice(rows[0], rows[-1] + 1), slice(x0, x1))
  left, right, mask = left[box].astype(np.float32), right[box].astype(np.float32), mask[box]
  width = left.shape[2]
  shifts = np.arange(-max_shift, max_shift + resolution / 2, resolution)
  columns = np.arange(width)
  errors = []
  for s in shifts:
    inside = (columns + s >= 0) & (columns + s <= width - 1)
    m = mask & inside[None, None, :]
    if m.sum() == 0:
      errors.append(np.inf)
      continue
    diff = (shift_columns(left, s) - right)**2
    errors.append(float(diff.sum(-1)[m].mean()))
  errors = np.asarray(errors)
  best = int(np.argmin(errors))
  offset = 0.0
  if 0 < best < len(shifts) - 1 and np.all(np.isfinite(errors[best - 1:best + 2])):
    e0, e1, e2 = errors[best - 1:best + 2]
    denominator = e0 - 2 * e1 + e2
    if denominator > 0 and e1 > 0:  # an exact match needs no refining
      offset = 0.5 * (e0 - e2) / denominator
  return float(shifts[best] + offset * resolution)


@dataclasses.dataclass
class LayerMeasurement:
  clip: int
  kind: int
  true_disparity: float
  measured: float  # shift of the evaluated left view's content


def measure_clip_layers(clip_index: int, left: np.ndarray, right: np.ndarray,
                        layer_masks: np.ndarray, layer_disparity: np.ndarray,
                        layer_kind: np.ndarray, max_shift: float,
                        min_pixels: int = 24) -> list[LayerMeasurement]:
  """Measures every real layer of one clip that covers at least ``min_pixels`` pixels."""
  out = []
  for i, kind in enumerate(layer_kind):
    if kind == LayerKind.PADDING or layer_masks[i].sum() < min_pixels:
      continue
    measured = measure_layer_shift(left, right, layer_masks[i], max_shift)
    out.append(LayerMeasurement(clip_index, int(kind), float(layer_disparity[i]), measured))
  return out


def disparity_scale(true: np.ndarray, measured: np.ndarray) -> float:
  """The disparity scale, everywhere it is reported: the least-squares ``s`` of
  measured ~ s * true (1: the true 3D effect; 0.5: half of it; ~0: a flat output)."""
  true, measured = (np.asarray(a, np.float64).ravel() for a in (true, measured))
  return float(np.dot(measured, true) / max(np.dot(true, true), 1e-12))


def fit_scale(layers: list[LayerMeasurement]) -> float:
  """``disparity_scale`` of the layers' measured shifts against their true disparities."""
  return disparity_scale(np.array([l.true_disparity for l in layers]),
                         np.array([l.measured for l in layers]))


def geometry_summary(layers: list[LayerMeasurement], scale: float | None = None) -> dict:
  """Scale, ordering and correlation of measured vs true disparities over ``layers``.

  ``scale`` is the factor the error is measured after (default: fitted on ``layers``);
  the returned 'scale' is always the one fitted on ``layers``.
  """
  if not layers:
    return {'num_layers': 0}
  true = np.array([l.true_disparity for l in layers])
  measured = np.array([l.measured for l in layers])
  own_scale = fit_scale(layers)
  scale = own_scale if scale is None else scale
  rank = float('nan')
  if len(layers) > 2 and np.ptp(measured) > 0 and np.ptp(true) > 0:
    rank = stats.spearmanr(true, measured).statistic
  # Depth ordering: pairs of layers of one clip whose true disparities differ by > 0.5 px.
  correct = total = 0
  for i in range(len(layers)):
    for j in range(i + 1, len(layers)):
      a, b = layers[i], layers[j]
      if a.clip != b.clip or abs(a.true_disparity - b.true_disparity) <= 0.5:
        continue
      total += 1
      # A pair counts as ordered when the measured shifts differ, in the true order, by
      # more than _TIE_PX (so a flat output scores 0, not chance).
      margin = (a.measured - b.measured) * np.sign(a.true_disparity - b.true_disparity)
      correct += margin > _TIE_PX
  return {
      'num_layers': len(layers),
      'scale': own_scale,
      'spearman': float(rank) if np.isfinite(rank) else None,
      'depth_order_accuracy': float(correct / total) if total else None,
      'depth_order_pairs': total,
      'mean_abs_error_after_scale_px': float(np.mean(np.abs(measured - scale * true))),
      'mean_abs_error_px': float(np.mean(np.abs(measured - true))),
      'mean_true_disparity_px': float(true.mean()),
      'mean_measured_shift_px': float(measured.mean()),
  }


# Layers with one depth per pixel, where a single measured shift is exact. A pane mixes its
# own depth with what is behind it, so one shift cannot describe it (the true view itself
# measures sometimes the pane, sometimes the background): panes are judged per pixel
# against the truth and a single-depth warp instead (``compare_with_single_depth``).
SINGLE_DEPTH_KINDS = (LayerKind.BACKGROUND, LayerKind.OPAQUE, LayerKind.REFLECTION)


def summarize(layers: list[LayerMeasurement]) -> dict:
  """Geometry figures over the single-depth layers ('all') and per layer kind.

  The per-kind errors are measured after the scale fitted on 'all' (the method has one
  disparity scale, not one per material), so a kind shifted wrongly relative to the rest
  shows as a large error.
  """
  summary = {'all': {**geometry_summary([l for l in layers if l.kind in SINGLE_DEPTH_KINDS]),
                     'kinds': [k.name.lower() for k in SINGLE_DEPTH_KINDS]}}
  scale = summary['all'].get('scale')
  for kind in (LayerKind.BACKGROUND, LayerKind.OPAQUE, LayerKind.TRANSPARENT,
               LayerKind.REFLECTION):
    summary[kind.name.lower()] = geometry_summary([l for l in layers if l.kind == kind], scale)
  return summary


@dataclasses.dataclass
class LayerComparison:
  """How close a view is, inside one layer, to the truth and to a single-depth warp (MSE)."""
  clip: int
  kind: int
  error_to_truth: float
  error_to_warp: float


def _shift_mask(mask: np.ndarray, shift: float) -> np.ndarray:
  """``mask`` (..., W) moved ``shift`` px to the right (rounded), empty where uncovered."""
  moved = np.zeros_like(mask)
  s = int(round(shift))
  width = mask.shape[-1]
  if abs(s) >= width:
    return moved
  if s >= 0:
    moved[..., s:] = mask[..., :width - s]
  else:
    moved[..., :s] = mask[..., -s:]
  return moved


def compare_with_single_depth(clip_index: int, view: np.ndarray, truth: np.ndarray,
                              warp: np.ndarray, layer_masks: np.ndarray,
                              layer_disparity: np.ndarray, layer_kind: np.ndarray,
                              kinds=(LayerKind.TRANSPARENT, LayerKind.REFLECTION),
                              min_pixels: int = 24) -> list[LayerComparison]:
  """Per layer of ``kinds``: the view's MSE to ``truth`` and to ``warp`` where the layer is.

  ``truth`` and ``warp`` are left views rendered at the same disparity scale as ``view``;
  ``layer_disparity`` is at that scale, and moves each mask (right-view pixels) to where
  the layer is in the left view.
  """
  out = []
  for i, kind in enumerate(layer_kind):
    if kind not in kinds or layer_masks[i].sum() < min_pixels:
      continue
    region = _shift_mask(layer_masks[i], layer_disparity[i])
    if region.sum() < min_pixels:
      continue
    mse = lambda a: float(((view.astype(np.float64) - a.astype(np.float64))**2).mean(-1)[region]
                          .mean())
    out.append(LayerComparison(clip_index, int(kind), mse(truth), mse(warp)))
  return out


def comparison_summary(comparisons: list[LayerComparison]) -> dict:
  """Per layer kind: the fraction of layers closer to the truth than to the warp, and the
  mean PSNR (dB) to each."""
  summary = {}
  for kind in (LayerKind.TRANSPARENT, LayerKind.REFLECTION):
    rows = [c for c in comparisons if c.kind == kind]
    if not rows:
      continue
    to_db = lambda mse: float(np.mean([10 * np.log10(255.0**2 / max(m, 255.0**2 * 1e-10))
                                        for m in mse]))
    summary[kind.name.lower()] = {
        'num_layers': len(rows),
        'closer_to_truth_fraction': float(np.mean([c.error_to_truth < c.error_to_warp
                                                   for c in rows])),
        'psnr_to_truth': to_db([c.error_to_truth for c in rows]),
        'psnr_to_single_depth_warp': to_db([c.error_to_warp for c in rows]),
    }
  return summary


def disparity_statistics(estimate: DisparityEstimate, reference: np.ndarray | None = None,
                         min_valid_fraction: float = 0.01) -> dict:
  """What the 3D effect of a pair looks like without ground truth.

  Range and sign of the estimated disparity (negative: the eyes look swapped), and its
  temporal stability: the mean change of each frame's median disparity between
  consecutive frames, and, given the ``reference`` eye the estimate is at (T, H, W, 3),
  the temporal flicker (``comfort.clip_flicker``: the change on content that is still once
  its motion is followed; 0 for a true pair up to the estimator's noise).
  """
  values = estimate.valid_values()
  frames = estimate.disparity.shape[0]
  if values.size == 0:
    return {'valid_fraction': 0.0}
  per_frame = estimate.valid.reshape(frames, -1).mean(1)
  medians = np.array([np.median(estimate.disparity[t][estimate.valid[t]])
                      if per_frame[t] >= min_valid_fraction else np.nan for t in range(frames)])
  steps = np.abs(np.diff(medians))
  p05, p50, p95 = np.percentile(values, [5, 50, 95])
  finite = lambda x: float(x) if np.isfinite(x) else None
  statistics = {
      'valid_fraction': float(estimate.valid.mean()),
      'median_px': float(p50),
      'p05_px': float(p05),
      'p95_px': float(p95),
      'range_px': float(p95 - p05),
      'negative_fraction': float(np.mean(values < -0.5)),
      'frame_median_change_px': finite(np.nanmean(steps)) if np.isfinite(steps).any() else None,
  }
  if reference is not None:
    statistics['flicker_px'] = comfort.clip_flicker(estimate, reference)
  return statistics
