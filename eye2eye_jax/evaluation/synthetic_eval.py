"""Scores a sampler and the baselines on held-out synthetic clips, layer type by layer type.

Every clip's left view is produced by each method:

  * generated: the sampler (base + refiner when it has one); base_only: its base stage
    alone, upsampled;
  * true_left: the true left view (a sanity ceiling: its measured shifts equal the truth);
  * copy_right: the right view as the left (no 3D);
  * global_shift: the right view shifted as a whole by the clip's median disparity;
  * warp_depth: depth-based warping of the right view, holes inpainted, with the true
    disparity of the nearest SURFACE at each pixel: what a perfect monocular depth
    estimator gives (the paper's warp-and-inpaint baseline, at its best);
  * warp_stereo: the same warp with the disparity matched between the true eyes (an
    oracle no monocular method has; matching sees a reflection's virtual depth).

Each is scored with PSNR, SSIM and stereo-IoU against the truth, per-layer geometry
(``stereo_metrics``), the disparity estimated between it and the right view (no ground
truth needed), and, for transparent and reflective layers, whether it is closer to the true
view or to a single-depth warp at its own disparity scale.
"""

from __future__ import annotations

import numpy as np

from eye2eye_jax.data import datasets, frame_ops
from eye2eye_jax.data.synthetic_scenes import LayerKind, SceneGenerator, SceneParams
from eye2eye_jax.evaluation import stereo_metrics, view_metrics, warp_baselines
from eye2eye_jax.sampling.stereo_sampler import StereoSampler
from eye2eye_jax.stereo_analysis import disparity_estimation

DESCRIPTIONS = {
    'generated': 'the sampler\'s output',
    'base_only': 'the base stage alone, upsampled',
    'true_left': 'the true left view (ceiling)',
    'copy_right': 'the right view copied (no 3D)',
    'global_shift': 'the right view shifted by the clip\'s median disparity',
    'warp_depth': 'warp-and-inpaint with the true surface depth (ideal monocular depth)',
    'warp_stereo': 'warp-and-inpaint with the disparity matched between the true eyes',
}
BASELINES = ('true_left', 'copy_right', 'global_shift', 'warp_depth', 'warp_stereo')
# Histogram bins of estimated disparities, in units of the scenes' max disparity.
_HISTOGRAM_RANGE = (-0.5, 1.5)
_HISTOGRAM_BINS = 40
# Below this disparity scale a method is flat and the truth-vs-warp comparison is moot.
_MIN_COMPARISON_SCALE = 0.1


def scene_params(config, split: str = 'validation') -> SceneParams:
  """The scene parameters of ``split`` of the synthetic_stereo dataset a config reads."""
  if config.data.builder != 'synthetic_stereo':
    raise ValueError(f'synthetic evaluation needs the synthetic_stereo dataset, not '
                     f'{config.data.builder!r}')
  for builder_config in datasets.builder_class('synthetic_stereo').BUILDER_CONFIGS:
    if builder_config.name == config.data.builder_config:
      return builder_config.scene_params(split)
  raise ValueError(f'unknown synthetic_stereo config {config.data.builder_config!r}')


def convert_clip(sampler: StereoSampler, record: dict, index: int):
  """(generated left view, base stage's output) of record number ``index`` (its seed), with
  its caption for models with text conditioning."""
  caption = record.get('caption', b'')
  caption = caption.decode() if isinstance(caption, bytes) else str(caption)
  return sampler.convert(record['right'], seed=index, return_base=True, caption=caption)


def evaluate(sampler: StereoSampler | None, records, params: SceneParams, *,
             baselines: bool = True, progress=None, examples: list | None = None,
             converted: dict | None = None) -> dict:
  """Metrics of ``sampler`` (None: baselines only) and the baselines on ``records``.

  records: dicts of the synthetic_stereo dataset. ``examples``, when a list, receives each
  clip's {'right', method: left view} for the report's pictures. ``converted`` (clip index
  -> ``convert_clip``'s views, e.g. made by several processes) is used instead of sampling.
  """
  methods = ([] if sampler is None else
             ['generated'] + (['base_only'] if sampler.refiner is not None else []))
  methods += list(BASELINES) if baselines else ['true_left', 'copy_right']
  max_d = float(params.max_disparity)
  layers = {m: [] for m in methods}
  image = {m: {'psnr': [], 'ssim': [], 'stereo_iou': [], 'psnr_base_resolution': []}
           for m in methods if m != 'true_left'}
  statistics = {m: [] for m in methods}
  edges = np.linspace(*_HISTOGRAM_RANGE, _HISTOGRAM_BINS + 1) * max_d
  histograms = {m: np.zeros(_HISTOGRAM_BINS, np.int64) for m in methods}
  kept = []  # (record, views, surface disparity) for the comparison at each scale
  small = (sampler.base.resolution if sampler is not None else params.height // 2)
  generator = SceneGenerator(params)
  for index, record in enumerate(records):
    right, true_left = record['right'], record['left']
    views = {'true_left': true_left, 'copy_right': warp_baselines.copy_right(right)}
    if sampler is not None:
      views['generated'], views['base_only'] = (converted[index] if converted is not None
                                                else convert_clip(sampler, record, index))
    surface = None
    if baselines:
      surface = _surface_disparity(generator, record)
      views['global_shift'] = warp_baselines.global_shift(right, float(np.median(surface)))
      views['warp_depth'] = warp_baselines.warp_and_inpaint(right, surface)
      views['warp_stereo'] = warp_baselines.warp_and_inpaint(
          right, warp_baselines.stereo_matched_disparity(true_left, right, max_d + 2))
    for method in methods:
      left = views[method]
      layers[method] += stereo_metrics.measure_clip_layers(
          index, left, right, record['layer_masks'], record['layer_disparity'],
          record['layer_kind'], max_shift=max_d + 2)
      estimate = disparity_estimation.estimate_disparity(
          left, right, min_disparity=-max_d, max_disparity=1.5 * max_d, upsample=2)
      statistics[method].append(stereo_metrics.disparity_statistics(estimate, right))
      histograms[method] += np.histogram(estimate.valid_values(), edges)[0]
      if method in image:
        figures = image[method]
        figures['psnr'].append(view_metrics.psnr(left, true_left))
        figures['ssim'].append(view_metrics.ssim(left, true_left))
        figures['stereo_iou'].append(view_metrics.stereo_iou(left, true_left, right))
        figures['psnr_base_resolution'].append(view_metrics.psnr(
            frame_ops.resize_clip(left, small, small),
            frame_ops.resize_clip(true_left, small, small)))
    kept.append((record, {m: views[m] for m in methods}, surface))
    if examples is not None:
      examples.append({'right': right, **{m: views[m] for m in methods}})
    if progress is not None:
      progress(index + 1)

  geometry = {m: stereo_metrics.summarize(v) for m, v in layers.items()}
  metrics = {
      'num_clips': len(kept),
      'methods': methods,
      'descriptions': {m: DESCRIPTIONS[m] for m in methods},
      'image': {m: {k: float(np.mean(v)) for k, v in f.items()} for m, f in image.items()},
      'geometry': geometry,
      'disparity_statistics': {m: mean_statistics(v) for m, v in statistics.items()},
      'disparity_histogram': {'edges_px': edges.tolist(),
                              **{m: h.tolist() for m, h in histograms.items()}},
      'layers': [{'clip': l.clip, 'kind': l.kind, 'true_disparity': l.true_disparity,
                  'measured': {m: layers[m][i].measured for m in methods}}
                 for i, l in enumerate(layers[methods[0]])],
  }
  if baselines:
    metrics['single_depth_comparison'] = _compare_with_single_depth(
        kept, geometry, generator)
  return metrics


def _surface_disparity(generator: SceneGenerator, record: dict) -> np.ndarray:
  """The clip's nearest-surface disparity, re-rendered from its seed (checked against it)."""
  clip = generator.generate(int(record['seed']))
  if not np.array_equal(clip.right, record['right']):
    raise ValueError(f'clip with seed {int(record["seed"])} does not match the scene '
                     f'parameters {generator.params}: wrong dataset config?')
  return clip.surface_disparity


def mean_statistics(per_clip: list[dict]) -> dict:
  """The mean over clips of each disparity statistic (clips without a value skipped)."""
  keys = {k for s in per_clip for k in s}
  mean = {}
  for key in sorted(keys):
    values = [s[key] for s in per_clip if s.get(key) is not None]
    mean[key] = float(np.mean(values)) if values else None
  return mean


def _compare_with_single_depth(kept, geometry, generator: SceneGenerator) -> dict:
  """Per method: inside transparent and reflective layers, is its output closer to the true
  view or to a single-depth warp, both rendered at the method's fitted disparity scale?"""
  out = {}
  for method in kept[0][1] if kept else ():
    scale = float(geometry[method]['all'].get('scale') or 0.0)
    if scale < _MIN_COMPARISON_SCALE:  # both renders would be ~ the right view
      out[method] = {'scale': scale}
      continue
    comparisons = []
    for index, (record, views, surface) in enumerate(kept):
      kinds = record['layer_kind']
      if not np.isin(kinds, (LayerKind.TRANSPARENT, LayerKind.REFLECTION)).any():
        continue
      truth = generator.generate(int(record['seed']), baseline=scale)
      warp = warp_baselines.warp_and_inpaint(record['right'], surface, scale)
      comparisons += stereo_metrics.compare_with_single_depth(
          index, views[method], truth.left, warp, record['layer_masks'],
          scale * record['layer_disparity'], kinds)
    out[method] = {'scale': scale, **stereo_metrics.comparison_summary(comparisons)}
  return out
