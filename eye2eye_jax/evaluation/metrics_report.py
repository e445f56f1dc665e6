"""Writes an evaluation's figures: metrics.json, report.md and the plots it shows.

Plots (PNG, in ``plots/``): measured vs true shift of every layer per method; the error
after scale per layer type; histograms of the disparity estimated between each method's
left view and the right view; and the middle frame of a few clips as anaglyphs, one column
per method. Every file is written atomically.
"""

from __future__ import annotations

import io
import json
import os
import pathlib

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from eye2eye_jax.common import atomic_files  # noqa: E402
from eye2eye_jax.data.synthetic_scenes import LayerKind  # noqa: E402
from eye2eye_jax.sampling import stereo_formats  # noqa: E402

_KIND_COLORS = {LayerKind.BACKGROUND: 'tab:gray', LayerKind.OPAQUE: 'tab:blue',
                LayerKind.TRANSPARENT: 'tab:orange', LayerKind.REFLECTION: 'tab:purple'}
_KINDS = ('all', 'background', 'opaque', 'transparent', 'reflection')
_MANUAL = pathlib.Path(__file__).resolve().parents[2] / 'docs'


def manual_link(output_dir: str | pathlib.Path, page: str, title: str) -> str:
  """A line pointing a report's reader to the manual page that explains it: a link relative
  to the report in a checkout, else the page's place in the repository."""
  name = page.split('#')[0]
  lead = 'What these figures mean and how they were measured: the manual\'s'
  if not (_MANUAL / name).is_file():  # an installed package: no docs beside it
    return f'{lead} {title} page (`docs/{name}` in the eye2eye_jax repository).\n'
  target = os.path.relpath(_MANUAL / name, pathlib.Path(output_dir).resolve())
  return f'{lead} [{title}]({target}{page[len(name):]}).\n'


def write_report(output_dir: str | pathlib.Path, metrics: dict,
                 examples: list[dict] | None = None, num_example_clips: int = 4) -> None:
  """metrics.json, report.md and ``plots/*.png`` under ``output_dir`` (for synthetic clips'
  metrics, or rectified pairs' from ``pair_eval``)."""
  out = pathlib.Path(output_dir)
  if metrics.get('kind') == 'pairs':
    plots = {}
    if examples:
      plots['anaglyphs'] = save_figure(out / 'plots' / 'anaglyphs.png', _anaglyph_figure(
          examples[:num_example_clips], metrics['methods']))
    atomic_files.write_text(out / 'metrics.json', json.dumps(metrics, indent=2))
    atomic_files.write_text(out / 'report.md', pair_report(metrics, plots) + '\n' +
                            manual_link(out, 'evaluating.md#on-real-stereo-pairs', 'Evaluating'))
    return
  plots = {}
  if metrics.get('layers'):
    plots['layer_shift'] = save_figure(out / 'plots' / 'layer_shift.png', _layer_shift_figure(metrics))
    plots['layer_error'] = save_figure(out / 'plots' / 'layer_error.png', _layer_error_figure(metrics))
  if metrics.get('disparity_histogram'):
    plots['disparity_histogram'] = save_figure(out / 'plots' / 'disparity_histogram.png',
                                         _histogram_figure(metrics))
  if examples:
    plots['anaglyphs'] = save_figure(out / 'plots' / 'anaglyphs.png',
                               _anaglyph_figure(examples[:num_example_clips], metrics['methods']))
  atomic_files.write_text(out / 'metrics.json', json.dumps(metrics, indent=2))
  atomic_files.write_text(out / 'report.md', markdown_report(metrics, plots) + '\n' +
                          manual_link(out, 'evaluating.md#what-it-measured', 'Evaluating'))


def save_figure(path: pathlib.Path, figure) -> str:
  """Writes ``figure`` as a PNG at ``path`` atomically and closes it; 'folder/name.png'."""
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=110, bbox_inches='tight')
  plt.close(figure)
  with atomic_files.atomic_path(path) as temporary:
    pathlib.Path(temporary).write_bytes(buffer.getvalue())
  return f'{path.parent.name}/{path.name}'


def _layer_shift_figure(metrics: dict):
  methods = metrics['methods']
  columns = min(3, len(methods))
  rows = -(-len(methods) // columns)
  figure, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3.2 * rows),
                              squeeze=False, sharex=True, sharey=True)
  true = np.array([l['true_disparity'] for l in metrics['layers']])
  kinds = np.array([l['kind'] for l in metrics['layers']])
  for axis, method in zip(axes.flat, methods):
    measured = np.array([l['measured'][method] for l in metrics['layers']])
    for kind, color in _KIND_COLORS.items():
      pick = kinds == kind
      axis.scatter(true[pick], measured[pick], s=9, color=color, label=kind.name.lower())
    scale = metrics['geometry'][method]['all'].get('scale') or 0.0
    line = np.array([0, true.max(initial=1.0)])
    axis.plot(line, line, 'k:', lw=1)
    axis.plot(line, scale * line, 'r-', lw=1)
    axis.set_title(f'{method} (scale {scale:.2f})', fontsize=9)
    axis.set_xlabel('true disparity (px)', fontsize=8)
    axis.set_ylabel('measured shift (px)', fontsize=8)
  for axis in list(axes.flat)[len(methods):]:
    axis.axis('off')
  axes.flat[0].legend(fontsize=7)
  figure.suptitle('Per-layer shift of each left view (dotted: truth; red: fitted scale)')
  return figure


def _layer_error_figure(metrics: dict):
  methods = metrics['methods']
  kinds = [k for k in _KINDS[1:] if any(metrics['geometry'][m].get(k, {}).get('num_layers')
                                         for m in methods)]
  figure, axis = plt.subplots(figsize=(1.2 + 1.1 * len(methods), 3.2))
  width = 0.8 / max(len(kinds), 1)
  for i, kind in enumerate(kinds):
    values = [metrics['geometry'][m].get(kind, {}).get('mean_abs_error_after_scale_px', 0)
              for m in methods]
    axis.bar(np.arange(len(methods)) + i * width, values, width, label=kind,
             color=_KIND_COLORS[LayerKind[kind.upper()]])
  axis.set_xticks(np.arange(len(methods)) + width * (len(kinds) - 1) / 2, methods,
                  rotation=30, ha='right', fontsize=8)
  axis.set_ylabel('shift error after scale (px)')
  axis.legend(fontsize=7)
  return figure


def _histogram_figure(metrics: dict):
  histogram = metrics['disparity_histogram']
  edges = np.array(histogram['edges_px'])
  centres = (edges[:-1] + edges[1:]) / 2
  figure, axis = plt.subplots(figsize=(6, 3.2))
  for method in metrics['methods']:
    counts = np.array(histogram[method], np.float64)
    axis.step(centres, counts / max(counts.sum(), 1), where='mid', label=method,
              lw=2 if method in ('generated', 'true_left') else 1)
  axis.set_xlabel('disparity estimated against the right view (px)')
  axis.set_ylabel('fraction of valid pixels')
  axis.legend(fontsize=7)
  return figure


def _anaglyph_figure(examples: list[dict], methods: list[str]):
  figure, axes = plt.subplots(len(examples), len(methods),
                              figsize=(1.9 * len(methods), 1.9 * len(examples)), squeeze=False)
  for row, example in enumerate(examples):
    middle = len(example['right']) // 2
    for column, method in enumerate(methods):
      axis = axes[row, column]
      axis.imshow(stereo_formats.anaglyph(example[method][middle:middle + 1],
                                          example['right'][middle:middle + 1])[0],
                  interpolation='nearest')
      axis.set_xticks([])
      axis.set_yticks([])
      if row == 0:
        axis.set_title(method, fontsize=8)
  figure.suptitle('Middle frames as red-cyan anaglyphs (red: left view)', fontsize=9)
  return figure


def _fmt(value, spec: str = '.2f') -> str:
  return '-' if value is None else format(value, spec)


def summary_table(metrics: dict) -> str:
  """A row per method: image quality against the true view, the fitted geometry and the
  temporal flicker of its disparity."""
  lines = ['| method | PSNR (dB) | SSIM | stereo-IoU | scale | Spearman | order | '
           'error after scale (px) | flicker (px) |', '|---|---|---|---|---|---|---|---|---|']
  for m in metrics['methods']:
    image = metrics['image'].get(m, {})
    g = metrics['geometry'][m]['all']
    flicker = metrics.get('disparity_statistics', {}).get(m, {}).get('flicker_px')
    lines.append(f'| {m} | {_fmt(image.get("psnr"))} | {_fmt(image.get("ssim"), ".3f")} | '
                 f'{_fmt(image.get("stereo_iou"), ".3f")} | {_fmt(g.get("scale"))} | '
                 f'{_fmt(g.get("spearman"))} | {_fmt(g.get("depth_order_accuracy"))} | '
                 f'{_fmt(g.get("mean_abs_error_after_scale_px"))} | {_fmt(flicker, ".3f")} |')
  return '\n'.join(lines)


def layer_table(metrics: dict, kind: str) -> str | None:
  """A row per method over the layers of one kind ('opaque', 'reflection', ...), with the
  single-depth comparison where it was made; None where no clip has such a layer."""
  methods = metrics['methods']
  rows = [(m, metrics['geometry'][m].get(kind, {})) for m in methods]
  if not any(r.get('num_layers') for _, r in rows):
    return None
  comparison = metrics.get('single_depth_comparison', {})
  has_comparison = any(kind in comparison.get(m, {}) for m in methods)
  header = ('| method | layers | mean true d | mean shift | scale | Spearman | order | '
            'error after scale (px) |')
  rule = '|---|---|---|---|---|---|---|---|'
  if has_comparison:
    header += ' closer to truth than to warp | PSNR to truth / to warp (dB) |'
    rule += '---|---|'
  lines = [header, rule]
  for m, s in rows:
    if not s.get('num_layers'):
      continue
    line = (f'| {m} | {s["num_layers"]} | {s["mean_true_disparity_px"]:.2f} | '
            f'{s["mean_measured_shift_px"]:.2f} | {s["scale"]:.2f} | {_fmt(s["spearman"])} | '
            f'{_fmt(s["depth_order_accuracy"])} | {s["mean_abs_error_after_scale_px"]:.2f} |')
    if has_comparison:
      c = comparison.get(m, {}).get(kind, {})
      line += (f' {_fmt(c.get("closer_to_truth_fraction"))} | '
               f'{_fmt(c.get("psnr_to_truth"), ".1f")} / '
               f'{_fmt(c.get("psnr_to_single_depth_warp"), ".1f")} |')
    lines.append(line)
  return '\n'.join(lines)


def markdown_report(metrics: dict, plots: dict[str, str] | None = None) -> str:
  """A readable summary of ``synthetic_eval.evaluate``'s figures (and the demo's extras)."""
  plots = plots or {}
  methods = metrics['methods']
  lines = ['# Stereo quality on held-out synthetic clips', '',
           f'{metrics["num_clips"]} clips. Disparities in pixels at the clips\' full '
           'resolution; every left view is measured against the right view.', '',
           '| method | what it is |', '|---|---|']
  lines += [f'| {m} | {metrics["descriptions"][m]} |' for m in methods]
  lines += ['', '## Summary', '',
            'PSNR, SSIM and stereo-IoU (Mono2Stereo\'s SIoU) against the true left view. '
            'Geometry over the layers with one depth per pixel (background, opaque, '
            'reflection; panes mix two depths in a pixel and are judged per pixel below). '
            'scale: least-squares factor from true disparity to measured shift (flat output: '
            '0). order: fraction of layer pairs of a clip (true disparities > 0.5 px apart) '
            'in the right depth order. Per layer type, the error is measured after this one '
            'scale.', '',
            summary_table(metrics), '', '## Per layer type', '']
  for kind in _KINDS[1:]:
    table = layer_table(metrics, kind)
    if table:
      lines += [f'### {kind}', '', table, '']
  if metrics.get('single_depth_comparison'):
    lines += ['"closer to truth than to warp": inside each transparent or reflective layer, '
              'the fraction of layers where the left view is nearer (MSE) to the true view '
              'than to a single-depth warp of the right view, both rendered at the method\'s '
              'own fitted scale. A method that handles several depths per pixel scores '
              'high; warping scores low by construction.', '']
  if 'layer_shift' in plots:
    lines += [f'![per-layer shift]({plots["layer_shift"]})', '',
              f'![shift error per layer type]({plots["layer_error"]})', '']
  lines += ['## Disparity without ground truth', '',
            'Estimated (OpenCV SGBM, left-right checked) between each left view and the right '
            'view: what a viewer would get. A flat output has median and range near 0; '
            'swapped eyes give negative disparities. Flicker is the mean frame-to-frame '
            'change of the disparity of content that is still once its motion is followed '
            '(true_left shows the estimator\'s own noise: the truth does not flicker).', '',
            '| method | valid | median (px) | 5-95% (px) | negative | frame median change '
            '(px) | flicker (px) |', '|---|---|---|---|---|---|---|']
  for m in methods:
    s = metrics['disparity_statistics'][m]
    lines.append(f'| {m} | {_fmt(s.get("valid_fraction"))} | {_fmt(s.get("median_px"))} | '
                 f'{_fmt(s.get("p05_px"))} to {_fmt(s.get("p95_px"))} | '
                 f'{_fmt(s.get("negative_fraction"))} | '
                 f'{_fmt(s.get("frame_median_change_px"))} | '
                 f'{_fmt(s.get("flicker_px"))} |')
  lines.append('')
  if 'disparity_histogram' in plots:
    lines += [f'![disparity histograms]({plots["disparity_histogram"]})', '']
  if 'anaglyphs' in plots:
    lines += ['## Examples', '', f'![anaglyphs]({plots["anaglyphs"]})', '']
  if metrics.get('strength'):
    lines += ['## 3D strength: the base sampling resolution', '',
              'The model keeps disparity in pixels of the grid it samples on, so sampling the '
              'base at a lower resolution gives a larger disparity in the output.', '',
              resolution_table(metrics), '']
  return '\n'.join(lines)


def comfort_table(figures: dict) -> str:
  """A row per converted clip and convergence setting: its comfort report's figures."""
  percent = lambda value: '-' if value is None else f'{100 * value:.2f}'
  lines = ['| clip | convergence | mean applied (% of width) | nearest (%) | farthest (%) | '
           'frames over in-front limit | window violations | flicker (px) | exceeds |',
           '|---|---|---|---|---|---|---|---|---|']
  lines += [f'| {r["clip"]} | {r["convergence"]} | {percent(r["mean_convergence"])} | '
            f'{percent(r["nearest"])} | {percent(r["farthest"])} | {r["in_front_frames"]:.0%} | '
            f'{r["window_frames"]:.0%} | {_fmt(r["flicker_px"], ".3f")} | '
            f'{", ".join(r["exceeded"]) or "nothing"} |' for r in figures['clips']]
  return '\n'.join(lines)


def write_comfort(output_dir: str | pathlib.Path, rows: list[dict], comfort_config) -> None:
  """``comfort.json`` and ``comfort.md``: the converted clips' comfort figures."""
  out = pathlib.Path(output_dir)
  figures = {'limits': comfort_config.to_dict(), 'clips': rows}
  atomic_files.write_text(out / 'comfort.json', json.dumps(figures, indent=2))
  limits = comfort_config
  atomic_files.write_text(out / 'comfort.md', '\n'.join([
      '# Comfort of the converted clips', '',
      'Each clip as converted with the configured convergence and with '
      "`sample.convergence='auto'`, measured on the written pair (the `<stem>_stereo.json` "
      f'reports in `videos/`). Limits: in front of the screen {100 * limits.in_front:g}% of '
      f'the width, behind it {100 * limits.behind:g}%. Disparity in % of the width, in front '
      'of the screen > 0.', '', comfort_table(figures), '',
      manual_link(out, 'strength.md#automatic-convergence', '3D strength and convergence')]))


def resolution_table(metrics: dict) -> str:
  """A row per base sampling resolution the demo measured: the disparity it gives."""
  lines = ['| base resolution (px) | disparity scale | base stage alone | mean shift (px) '
           '| PSNR (dB) |', '|---|---|---|---|---|']
  lines += [f'| {row["base_resolution"]} | {row["scale"]:.2f} | '
            f'{_fmt(row.get("base_only_scale"))} | {row["mean_measured_shift_px"]:.2f} | '
            f'{row["psnr"]:.2f} |' for row in metrics['strength']]
  return '\n'.join(lines)


def pair_table(metrics: dict) -> str:
  """A row per method on real pairs: image quality, disparity, agreement with the truth."""
  lines = ['| method | PSNR (dB) | SSIM | stereo-IoU | median d | 5-95% range | negative | '
           'frame-to-frame change | flicker (px) | agreement scale | error after scale (px) |',
           '|---|---|---|---|---|---|---|---|---|---|---|']
  for m in metrics['methods']:
    image, d, a = (metrics['image'].get(m, {}), metrics['disparity_statistics'][m],
                   metrics['agreement'][m])
    lines.append(f'| {m} | {_fmt(image.get("psnr"))} | {_fmt(image.get("ssim"), ".3f")} | '
                 f'{_fmt(image.get("stereo_iou"), ".3f")} | {_fmt(d.get("median_px"))} | '
                 f'{_fmt(d.get("range_px"))} | {_fmt(d.get("negative_fraction"))} | '
                 f'{_fmt(d.get("frame_median_change_px"))} | {_fmt(d.get("flicker_px"))} | '
                 f'{_fmt(a.get("scale"))} | '
                 f'{_fmt(a.get("error_px"))} |')
  return '\n'.join(lines)


def pair_report(metrics: dict, plots: dict[str, str] | None = None) -> str:
  """A readable summary of ``pair_eval.evaluate``'s figures."""
  methods = metrics['methods']
  lines = ['# Stereo quality on held-out rectified pairs', '',
           f'{metrics["num_clips"]} clips of the split\'s real stereo pairs: no layers and no '
           'true depth, so the geometry is judged against the disparity measured on the true '
           'pair.', '', '| method | what it is |', '|---|---|']
  lines += [f'| {m} | {metrics["descriptions"][m]} |' for m in methods]
  lines += ['', '## Summary', '',
            'PSNR, SSIM and stereo-IoU against the true left view. Disparity (px, between '
            'each left view and the right view): median and 5-95% range. Agreement: the '
            'least-squares scale from the method\'s disparity to the true pair\'s, pixel by '
            'pixel, and the mean error after it.', '',
            pair_table(metrics)]
  for name, path in (plots or {}).items():
    lines += ['', f'![{name}]({path})']
  return '\n'.join(lines) + '\n'
