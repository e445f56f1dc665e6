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
from eye2eye_jax.evaluation.metrics_report import manual_link

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


def headline(metrics_by_split: dict[str, dict]) -> dict:
  """What splits.json holds: split -> figure -> method -> value, and the generalisation gap."""
  figures = {split: {title: {m: read(metrics, m) for m in metrics['methods']}
                     for title, read, _ in _COLUMNS}
             for split, metrics in metrics_by_split.items()}
  return figures | {'generalisation_gap_db': generalisation_gap(metrics_by_split)}


def figure_spec(title: str) -> str:
  """The format of one of ``headline``'s figures (e.g. '.2f')."""
  return next(spec for name, _, spec in _COLUMNS if name == title)


def figure_table(figures: dict, title: str) -> str | None:
  """One figure of ``headline``'s: a row per method but the true view, a column per split;
  None where no method has it."""
  splits = [s for s in figures if s != 'generalisation_gap_db']
  spec = figure_spec(title)
  methods = [m for m in figures[splits[0]][title] if m != 'true_left']
  rows = [[_format(figures[s][title][m], spec) for s in splits] for m in methods]
  if all(cell == '–' for row in rows for cell in row):
    return None
  lines = ['| method | ' + ' | '.join(splits) + ' |', '|---' * (len(splits) + 1) + '|']
  lines += [f'| {method} | ' + ' | '.join(row) + ' |' for method, row in zip(methods, rows)]
  return '\n'.join(lines)


def method_table(figures: dict, method: str) -> str:
  """Every figure of one method (a row each) on every split (a column each)."""
  splits = [s for s in figures if s != 'generalisation_gap_db']
  lines = ['| ' + method + ' | ' + ' | '.join(f'`{s}`' for s in splits) + ' |',
           '|---' * (len(splits) + 1) + '|']
  lines += [f'| {title} | ' + ' | '.join(_format(figures[s][title].get(method), spec)
                                         for s in splits) + ' |'
            for title, _, spec in _COLUMNS]
  return '\n'.join(lines)


def seen_minus_unseen_db(figures: dict) -> float:
  """The generated view's PSNR on ``validation`` minus that on the unseen split (dB), from
  ``headline``'s figures: the raw gap, before the unseen textures' own difficulty is taken
  out (``generalisation_gap``)."""
  return (figures['validation']['PSNR']['generated']
          - figures[UNSEEN_SPLIT]['PSNR']['generated'])


def gap_sentence(figures: dict) -> str | None:
  """The generalisation gap in words, or None without both splits."""
  gap = figures.get('generalisation_gap_db')
  if gap is None:
    return None
  raw = seen_minus_unseen_db(figures)
  return (f'Generated PSNR, `validation` minus `{UNSEEN_SPLIT}`: {raw:+.2f} dB; less the same '
          f'difference for copying the right view (how much harder the unseen textures are '
          f'in themselves): **{gap:+.2f} dB**. Above ~1 dB the model still relies on the look '
          'of its training textures.')


def comparison_markdown(metrics_by_split: dict[str, dict]) -> str:
  """A table per figure: one row per method, one column per split."""
  figures = headline(metrics_by_split)
  lines = ['# Evaluation splits side by side', '',
           ', '.join(f'`{s}`: {metrics_by_split[s]["num_clips"]} clips'
                     for s in metrics_by_split) +
           '; each split\'s full report is in its folder.', '']
  for title, _, _ in _COLUMNS:
    table = figure_table(figures, title)
    if table:
      lines += [f'## {title}', '', table, '']
  gap = gap_sentence(figures)
  if gap:
    lines += [gap, '']
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
  atomic_files.write_text(output_dir / 'splits.json',
                          json.dumps(headline(metrics_by_split), indent=2))
  report = output_dir / report_name
  atomic_files.write_text(report, comparison_markdown(metrics_by_split) + '\n' + manual_link(
      output_dir, 'evaluating.md#seen-and-held-out-textures', 'Evaluating'))
  return report


def _format(value, spec: str) -> str:
  return '–' if value is None else format(value, spec)
