"""Measuring the 3D effect of a generated left view against per-layer ground truth.

The method does not fix the disparity scale, so geometry is measured in ways that survive
that: per layer, the horizontal shift of the generated content relative to the right view;
one global scale fitted between measured and true disparities (a flat output has scale ~0);
depth ordering (does a nearer layer shift more?) and the rank correlation of measured vs
true disparity. PSNR against the true left view is reported next to the trivial
"copy the right view" answer.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

from eye2eye_jax.synthetic_scenes import LayerKind

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
  left = left.astype(np.float32)
  right = right.astype(np.float32)
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
    if denominator > 0:
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


def psnr(a: np.ndarray, b: np.ndarray) -> float:
  """PSNR (dB) of uint8-range images."""
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64))**2)
  return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def geometry_summary(layers: list[LayerMeasurement]) -> dict:
  """Scale, ordering and correlation of measured vs true disparities over ``layers``."""
  if not layers:
    return {'num_layers': 0}
  true = np.array([l.true_disparity for l in layers])
  measured = np.array([l.measured for l in layers])
  scale = float(np.dot(measured, true) / max(np.dot(true, true), 1e-12))
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
      'scale': scale,
      'spearman': float(rank) if np.isfinite(rank) else None,
      'depth_order_accuracy': float(correct / total) if total else None,
      'depth_order_pairs': total,
      'mean_abs_error_after_scale_px': float(np.mean(np.abs(measured - scale * true))),
      'mean_abs_error_px': float(np.mean(np.abs(measured - true))),
      'mean_true_disparity_px': float(true.mean()),
      'mean_measured_shift_px': float(measured.mean()),
  }


def summarize(layers: list[LayerMeasurement]) -> dict:
  """Geometry figures over all layers and per layer kind."""
  summary = {'all': geometry_summary(layers)}
  for kind in (LayerKind.BACKGROUND, LayerKind.OPAQUE, LayerKind.TRANSPARENT,
               LayerKind.REFLECTION):
    summary[kind.name.lower()] = geometry_summary([l for l in layers if l.kind == kind])
  return summary
