"""The 3D strength's response curve: what disparity a sampler makes when asked for each
strength, on held-out synthetic clips with known per-layer disparities.

For each requested strength s the same clips are converted (the full sampler, and its base
stage alone), and measured against the clip's true layer disparities at baseline 1:

* ``scale``: the disparity scale fitted over the clip's single-depth layers (1: the
  training data's own scale); ``ratio``: scale(s) / (s * scale(1)), 1 when the output
  follows the request exactly;
* ``spearman`` and ``depth_order``: whether the depths stay in the right order;
* ``psnr`` against the true left view rendered at baseline s (the view the request asks
  for), next to ``copy_psnr``: the right view copied, against the same view.
"""

from __future__ import annotations

import json
import pathlib

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from eye2eye_jax.common import atomic_files  # noqa: E402
from eye2eye_jax.data.synthetic_scenes import SceneGenerator, SceneParams  # noqa: E402
from eye2eye_jax.evaluation import (metrics_report, stereo_metrics, synthetic_eval,  # noqa: E402
                                    view_metrics)
from eye2eye_jax.sampling.stereo_sampler import StereoSampler  # noqa: E402

STRENGTHS = (0.5, 1.0, 1.5, 2.0)


def measure(sampler: StereoSampler, records: list[dict], params: SceneParams,
            strengths=STRENGTHS, progress=None) -> list[dict]:
  """One row per requested strength (see the module's docstring); ``records`` are dicts of
  the synthetic_stereo dataset at baseline 1 (its validation splits)."""
  generator = SceneGenerator(params)
  max_shift = max(strengths) * float(params.max_disparity) + 2
  stages = ['generated'] + (['base_only'] if sampler.refiner is not None else [])
  rows = []
  for strength in strengths:
    sample_config = sampler.sample_config.copy_and_resolve_references()
    sample_config.strength = float(strength)
    variant = StereoSampler(sampler.base, sampler.refiner, sample_config)
    layers = {m: [] for m in stages}
    psnr = {m: [] for m in stages + ['copy_right']}
    for index, record in enumerate(records):
      views = dict(zip(('generated', 'base_only'),
                       synthetic_eval.convert_clip(variant, record, index)))
      views['copy_right'] = record['right']
      truth = generator.generate(int(record['seed']), baseline=float(strength)).left
      for method in psnr:
        psnr[method].append(view_metrics.psnr(views[method], truth))
      for method in stages:
        layers[method] += stereo_metrics.measure_clip_layers(
            index, views[method], record['right'], record['layer_masks'],
            record['layer_disparity'], record['layer_kind'], max_shift=max_shift)
    row = {'strength': float(strength), 'copy_psnr': float(np.mean(psnr['copy_right']))}
    for method in stages:
      geometry = stereo_metrics.summarize(layers[method])['all']
      row[method] = {'scale': geometry.get('scale'), 'spearman': geometry.get('spearman'),
                     'depth_order': geometry.get('depth_order_accuracy'),
                     'psnr': float(np.mean(psnr[method]))}
    rows.append(row)
    if progress is not None:
      progress(row)
  _add_ratios(rows, stages)
  return rows


def _add_ratios(rows: list[dict], stages: list[str]) -> None:
  """scale(s) / (s * scale(1)) per stage, where strength 1 was measured."""
  reference = next((r for r in rows if r['strength'] == 1.0), None)
  for method in stages:
    unit = reference and reference[method]['scale']
    for row in rows:
      scale = row[method]['scale']
      row[method]['ratio'] = (scale / (row['strength'] * unit)
                              if unit and scale is not None else None)


def _fmt(value, spec: str = '.2f') -> str:
  return '-' if value is None else format(value, spec)


def table(rows: list[dict], method: str) -> str:
  """A row per requested strength: what ``method`` ('generated' or 'base_only') made."""
  lines = ['| strength | scale | ratio | Spearman | depth order | PSNR (dB) | copy (dB) |',
           '|---|---|---|---|---|---|---|']
  for row in rows:
    r = row[method]
    lines.append(f'| {row["strength"]:g} | {_fmt(r["scale"])} | {_fmt(r["ratio"])} | '
                 f'{_fmt(r["spearman"])} | {_fmt(r["depth_order"])} | {_fmt(r["psnr"])} | '
                 f'{row["copy_psnr"]:.2f} |')
  return '\n'.join(lines)


def markdown(rows: list[dict], num_clips: int, split: str, plot: str | None) -> str:
  """The response curve as a readable report."""
  stages = [m for m in ('generated', 'base_only') if m in rows[0]]
  lines = ['# 3D strength: requested against measured', '',
           f'{num_clips} clips of `{split}`, each converted at every requested strength. '
           'Scale: the disparity scale fitted over the clips\' layers (1 = the training '
           'data\'s own). Ratio: scale / (strength x the scale at strength 1); 1 means the '
           'output follows the request exactly. PSNR is against the true left view rendered '
           'at the requested strength; "copy" is the right view copied, against the same '
           'view.', '']
  for method in stages:
    name = 'the full sampler' if method == 'generated' else 'the base stage alone'
    lines += [f'## {name}', '', table(rows, method), '']
  if plot:
    lines += [f'![requested against measured]({plot})', '']
  return '\n'.join(lines)


def _figure(rows: list[dict]):
  figure, axis = plt.subplots(figsize=(4.5, 4))
  strengths = [r['strength'] for r in rows]
  reference = next((r for r in rows if r['strength'] == 1.0), rows[0])
  for method, style in (('generated', 'o-'), ('base_only', 's--')):
    if method in rows[0]:
      axis.plot(strengths, [r[method]['scale'] for r in rows], style, label=method)
  unit = reference['generated']['scale'] or 1.0
  axis.plot(strengths, [s * unit for s in strengths], ':', color='gray',
            label='strength x scale at 1')
  axis.set_xlabel('requested strength')
  axis.set_ylabel('measured disparity scale')
  axis.legend()
  axis.grid(alpha=0.3)
  return figure


def write(output_dir: str | pathlib.Path, rows: list[dict], num_clips: int, split: str) -> None:
  """strength.json, strength.md and plots/strength_response.png under ``output_dir``."""
  out = pathlib.Path(output_dir)
  metrics_report.save_figure(out / 'plots' / 'strength_response.png', _figure(rows))
  atomic_files.write_text(out / 'strength.json', json.dumps(
      {'split': split, 'num_clips': num_clips, 'rows': rows}, indent=2))
  report = markdown(rows, num_clips, split, 'plots/strength_response.png')
  atomic_files.write_text(out / 'strength.md', report + '\n' + metrics_report.manual_link(
      out, 'strength.md', '3D strength and convergence'))
