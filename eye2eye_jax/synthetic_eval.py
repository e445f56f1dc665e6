"""Scores a sampler on held-out synthetic clips, against the truth and trivial answers.

For each clip the generated left view (and, with a refiner, the base stage's upsampled
output alone), the true left view (a sanity ceiling: its measured shifts should equal the
true disparities) and the right view copied as the left view (the trivial answer: no 3D at
all) are measured layer by layer with ``stereo_metrics``.
"""

from __future__ import annotations

import numpy as np

from eye2eye_jax import input_pipeline, stereo_metrics
from eye2eye_jax.sampling import StereoSampler


def evaluate(sampler: StereoSampler, records, max_disparity: float, progress=None) -> dict:
  """Metrics of ``sampler`` on ``records`` (dicts from the synthetic_stereo dataset).

  Returns {'num_clips', 'psnr': {method: dB}, 'psnr_base_resolution': {...},
  'geometry': {method: stereo_metrics.summarize(...)}, 'layers': [...]}; methods are
  generated, base_only (with a refiner), true_left and copy_right.
  """
  methods = ['generated'] + (['base_only'] if sampler.refiner is not None else []) + [
      'true_left', 'copy_right']
  layers = {m: [] for m in methods}
  psnr = {m: [] for m in methods if m != 'true_left'}
  psnr_small = {m: [] for m in psnr}
  r = sampler.base.resolution
  for index, record in enumerate(records):
    right, true_left = record['right'], record['left']
    generated, base_only = sampler.convert(right, seed=index, return_base=True)
    views = {'generated': generated, 'base_only': base_only, 'true_left': true_left,
             'copy_right': right}
    for method in methods:
      left = views[method]
      layers[method] += stereo_metrics.measure_clip_layers(
          index, left, right, record['layer_masks'], record['layer_disparity'],
          record['layer_kind'], max_shift=max_disparity + 2)
      if method in psnr:
        psnr[method].append(stereo_metrics.psnr(left, true_left))
        psnr_small[method].append(stereo_metrics.psnr(
            input_pipeline.resize_clip(left, r, r), input_pipeline.resize_clip(true_left, r, r)))
    if progress is not None:
      progress(index + 1)
  return {
      'num_clips': len(psnr['generated']),
      'psnr': {m: float(np.mean(v)) for m, v in psnr.items()},
      'psnr_base_resolution': {m: float(np.mean(v)) for m, v in psnr_small.items()},
      'geometry': {m: stereo_metrics.summarize(v) for m, v in layers.items()},
      'layers': [{'clip': l.clip, 'kind': l.kind, 'true_disparity': l.true_disparity,
                  'measured': {m: layers[m][i].measured for m in methods}}
                 for i, l in enumerate(layers['generated'])],
  }


def markdown_report(metrics: dict) -> str:
  """A readable summary of ``evaluate``'s figures."""
  lines = [
      '# Stereo quality on held-out synthetic clips', '',
      f'{metrics["num_clips"]} clips. Disparities in pixels at the clips\' full resolution.', '',
      '| left view | PSNR (dB) | PSNR at base resolution (dB) |', '|---|---|---|',
  ]
  for m in metrics['psnr']:
    lines.append(f'| {m} | {metrics["psnr"][m]:.2f} | {metrics["psnr_base_resolution"][m]:.2f} |')
  lines += ['', '## Geometry (measured shift of each layer vs its true disparity)', '',
            'scale: least-squares factor from true to measured disparity (flat output: 0). '
            'order: fraction of layer pairs of a clip (true disparities > 0.5 px apart) whose '
            'measured shifts have the same order.', '']
  fmt = lambda x, f: '-' if x is None else format(x, f)
  for method, summary in metrics['geometry'].items():
    lines += [f'### {method}', '',
              '| layers | n | mean true d | mean shift | scale | Spearman | order | '
              'error after scale (px) |',
              '|---|---|---|---|---|---|---|---|']
    for kind, s in summary.items():
      if not s.get('num_layers'):
        continue
      lines.append(f'| {kind} | {s["num_layers"]} | {s["mean_true_disparity_px"]:.2f} | '
                   f'{s["mean_measured_shift_px"]:.2f} | {s["scale"]:.2f} | '
                   f'{fmt(s["spearman"], ".2f")} | {fmt(s["depth_order_accuracy"], ".2f")} | '
                   f'{s["mean_abs_error_after_scale_px"]:.2f} |')
    lines.append('')
  if metrics.get('strength'):
    lines += ['## 3D strength: the base sampling resolution', '',
              'The model keeps disparity in pixels of the grid it samples on, so sampling the '
              'base at a lower resolution gives a larger disparity in the output.', '',
              '| base resolution (px) | disparity scale | base stage alone | mean shift (px) '
              '| PSNR (dB) |',
              '|---|---|---|---|---|']
    for row in metrics['strength']:
      alone = format(row['base_only_scale'], '.2f') if 'base_only_scale' in row else '-'
      lines.append(f'| {row["base_resolution"]} | {row["scale"]:.2f} | {alone} | '
                   f'{row["mean_measured_shift_px"]:.2f} | {row["psnr"]:.2f} |')
    lines.append('')
  return '\n'.join(lines)
