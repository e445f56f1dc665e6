"""Evaluation splits side by side: the seen textures' validation split next to held-out ones.

A synthetic dataset with held-out texture families has a ``validation_unseen`` split whose
clips draw only families never seen in training. A model that learned stereo scores about
the same on both; one that learned the look of its training textures loses on the unseen
split. ``evaluate`` runs every validation split and writes this comparison as the top
report.
"""

from __future__ import annotations

import json
import pathlib

import ml_collections

from eye2eye_jax.common import atomic_files
from eye2eye_jax.data import datasets

UNSEEN_SPLIT = 'validation_unseen'
# (column, how to read it from a split's metrics for a method, format)
_COLUMNS = (
    ('PSNR', lambda m, k: m['image'].get(k, {}).get('psnr'), '.2f'),
    ('disparity scale', lambda m, k: _geometry(m, k, 'scale'), '.2f'),
    ('Spearman', lambda m, k: _geometry(m, k, 'spearman'), '.2f'),
    ('depth order', lambda m, k: _geometry(m, k, 'depth_order_accuracy'), '.2f'),
    ('panes closer to the truth than to a single-depth warp',
     lambda m, k: _closer_to_truth(m, k, 'transparent'), '.0%'),
    ('mirror content closer to the truth than to a single-depth warp',
     lambda m, k: _closer_to_truth(m, k, 'reflection'), '.0%'),
)


def _closer_to_truth(metrics: dict, method: str, kind: str):
  comparison = metrics.get('single_depth_comparison', {}).get(method, {})
  return comparison.get(kind, {}).get('closer_to_truth_fraction')


def _geometry(metrics: dict, method: str, key: str):
  if 'geometry' in metrics:
    return metrics['geometry'].get(method, {}).get('all', {}).get(key)
  if key == 'scale':  # real pairs: the scale against the true pair's disparity
    return metrics.get('agreement', {}).get(method, {}).get('scale')
  return None


def default_splits(config: ml_collections.ConfigDict) -> list[str]:
  """'validation', and the held-out split when the config's dataset has one."""
  builder = datasets.builder_class(config.data.builder)
  for builder_config in builder.BUILDER_CONFIGS:
    if builder_config.name == config.data.builder_config and hasattr(builder_config,
                                                                       'splits'):
      return [s for s in builder_config.splits() if s != 'train']
  return ['validation']


def comparison_markdown(metrics_by_split: dict[str, dict]) -> str:
  """A table per figure: one row per method, one column per split."""
  splits = list(metrics_by_split)
  methods = [m for m in next(iter(metrics_by_split.values()))['methods'] if m != 'true_left']
  lines = ['# Evaluation splits side by side', '',
           ', '.join(f'`{s}`: {metrics_by_split[s]["num_clips"]} clips' for s in splits) +
           '; each split\'s full report is in its folder.', '']
  for title, read, spec in _COLUMNS:
    rows = [[_format(read(metrics_by_split[s], method), spec) for s in splits]
            for method in methods]
    if all(cell == '–' for row in rows for cell in row):
      continue
    lines += [f'## {title}', '', '| method | ' + ' | '.join(splits) + ' |',
              '|---' * (len(splits) + 1) + '|']
    lines += [f'| {method} | ' + ' | '.join(row) + ' |' for method, row in zip(methods, rows)]
    lines.append('')
  gap = generalisation_gap(metrics_by_split)
  if gap is not None:
    raw = (metrics_by_split['validation']['image']['generated']['psnr'] -
           metrics_by_split[UNSEEN_SPLIT]['image']['generated']['psnr'])
    lines += [f'Generated PSNR, `validation` minus `{UNSEEN_SPLIT}`: {raw:+.2f} dB; less '
              f'the same difference for copying the right view (how much harder the unseen '
              f'textures are in themselves): **{gap:+.2f} dB**. Above ~1 dB the model '
              'still relies on the look of its training textures.', '']
  return '\n'.join(lines)


def generalisation_gap(metrics_by_split: dict[str, dict]) -> float | None:
  """How much more the generated view loses on the unseen split than copying the right
  view does (dB); None without both splits and a generated method."""
  if 'validation' not in metrics_by_split or UNSEEN_SPLIT not in metrics_by_split:
    return None
  psnr = lambda split, method: metrics_by_split[split]['image'].get(method, {}).get('psnr')
  values = [psnr(s, m) for s in ('validation', UNSEEN_SPLIT) for m in ('generated',
                                                                        'copy_right')]
  if any(v is None for v in values):
    return None
  seen_generated, seen_copy, unseen_generated, unseen_copy = values
  return (seen_generated - unseen_generated) - (seen_copy - unseen_copy)


def write_comparison(output_dir: str | pathlib.Path, metrics_by_split: dict[str, dict],
                     report_name: str = 'report.md') -> pathlib.Path:
  """Writes ``report_name`` (the tables) and splits.json (each split's headline figures)."""
  output_dir = pathlib.Path(output_dir)
  headline = {split: {title: {m: read(metrics, m) for m in metrics['methods']}
                      for title, read, _ in _COLUMNS}
              for split, metrics in metrics_by_split.items()}
  headline['generalisation_gap_db'] = generalisation_gap(metrics_by_split)
  atomic_files.write_text(output_dir / 'splits.json', json.dumps(headline, indent=2))
  report = output_dir / report_name
  atomic_files.write_text(report, comparison_markdown(metrics_by_split))
  return report


def _format(value, spec: str) -> str:
  return '–' if value is None else format(value, spec)
