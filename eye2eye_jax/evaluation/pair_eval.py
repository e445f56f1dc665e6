"""Scores a sampler and the baselines on held-out rectified stereo pairs (real clips).

A real pair has no layers and no true depth, so the figures are those that need neither:

  * PSNR, SSIM and stereo-IoU of each method's left view against the true left view;
  * the disparity between each left view and the right view (median, 5-95% range, share
    negative, frame-to-frame change, temporal flicker: ``stereo_metrics.disparity_statistics``);
  * agreement with the true pair: the disparity measured on the method's pair against the
    one measured on the true pair, pixel by pixel where both are valid: the disparity
    scale (``stereo_metrics.disparity_scale``, as the synthetic evaluation fits it per set
    of layers; 0.5 for half the true 3D effect) and the error left in pixels once the
    method's disparity is rescaled to fit the truth. true_left agrees with itself (1, 0).

Methods: generated (and base_only), true_left, copy_right, and with ``baselines``
global_shift (the right view shifted by the true pair's median disparity) and warp_stereo
(warp-and-inpaint with the disparity matched between the true eyes).
"""

from __future__ import annotations

import numpy as np

from eye2eye_jax.evaluation import stereo_metrics, synthetic_eval, view_metrics, warp_baselines
from eye2eye_jax.stereo_analysis import disparity_estimation

BASELINES = ('true_left', 'copy_right', 'global_shift', 'warp_stereo')


def search_range(record: dict) -> float:
  """Disparity searched on a dataset's pairs, from one of its records: the paper's data
  filter keeps clips under 60 px at 512, so twice that, scaled to the clips' width."""
  return 2 * 60.0 * record['right'].shape[2] / 512


def evaluate(sampler, records, max_disparity: float, *, baselines: bool = True,
             progress=None, examples: list | None = None, converted: dict | None = None
             ) -> dict:
  """Metrics of ``sampler`` (None: baselines only) and the baselines on pair ``records``
  (dicts with uint8 ``left`` and ``right`` clips); disparities are searched up to
  ``max_disparity`` px. ``examples`` and ``converted`` as in ``synthetic_eval.evaluate``."""
  methods = ([] if sampler is None else
             ['generated'] + (['base_only'] if sampler.refiner is not None else []))
  methods += list(BASELINES) if baselines else ['true_left', 'copy_right']
  image = {m: {'psnr': [], 'ssim': [], 'stereo_iou': []} for m in methods if m != 'true_left'}
  statistics = {m: [] for m in methods}
  pairs = {m: [] for m in methods}  # (method's disparity, true disparity) where both valid
  measure = lambda left, right: disparity_estimation.estimate_disparity(
      left, right, min_disparity=-max_disparity, max_disparity=max_disparity, upsample=2)
  count = 0
  for index, record in enumerate(records):
    right, true_left = record['right'], record['left']
    truth = measure(true_left, right)
    views = {'true_left': true_left, 'copy_right': warp_baselines.copy_right(right)}
    if sampler is not None:
      views['generated'], views['base_only'] = (
          converted[index] if converted is not None
          else synthetic_eval.convert_clip(sampler, record, index))
    if baselines:
      matched = disparity_estimation.fill_invalid(truth)
      views['global_shift'] = warp_baselines.global_shift(right, float(np.median(matched)))
      views['warp_stereo'] = warp_baselines.warp_and_inpaint(right, matched)
    for method in methods:
      left = views[method]
      estimate = truth if method == 'true_left' else measure(left, right)
      statistics[method].append(stereo_metrics.disparity_statistics(estimate, right))
      both = estimate.valid & truth.valid
      pairs[method].append((estimate.disparity[both], truth.disparity[both]))
      if method in image:
        image[method]['psnr'].append(view_metrics.psnr(left, true_left))
        image[method]['ssim'].append(view_metrics.ssim(left, true_left))
        image[method]['stereo_iou'].append(view_metrics.stereo_iou(left, true_left, right))
    if examples is not None:
      examples.append({'right': right, **{m: views[m] for m in methods}})
    count += 1
    if progress is not None:
      progress(index + 1)
  return {
      'kind': 'pairs',
      'num_clips': count,
      'methods': methods,
      'descriptions': {m: synthetic_eval.DESCRIPTIONS.get(m, _DESCRIPTIONS.get(m))
                       for m in methods},
      'image': {m: {k: float(np.mean(v)) for k, v in f.items()} for m, f in image.items()},
      'disparity_statistics': {m: synthetic_eval.mean_statistics(v)
                               for m, v in statistics.items()},
      'agreement': {m: _agreement(v) for m, v in pairs.items()},
  }


_DESCRIPTIONS = {
    'global_shift': 'the right view shifted by the true pair\'s median disparity',
}


def _agreement(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
  """The disparity scale of a method's disparity against the true pair's, and the shape
  error: the mean per-pixel error (in the true pair's px) left once the method's disparity
  is rescaled by the one factor that fits the truth best (a flat output keeps all of it)."""
  ours = np.concatenate([p[0] for p in pairs]).astype(np.float64)
  truth = np.concatenate([p[1] for p in pairs]).astype(np.float64)
  if ours.size == 0:
    return {'scale': None, 'error_px': None, 'pixels': 0}
  energy = float(np.dot(ours, ours))
  to_truth = float(np.dot(ours, truth) / energy) if energy > 0 else 0.0
  return {'scale': stereo_metrics.disparity_scale(truth, ours),
          'error_px': float(np.mean(np.abs(to_truth * ours - truth))),
          'pixels': int(ours.size)}
