"""The manual's tables of measured figures, rendered from the measurements recorded in the repo.

A record (``docs/results/NAME.json``) is the JSON a command wrote, kept as it was, with when,
at which commit and on what machine it was measured. Each table in ``README.md`` and
``docs/*.md`` sits between ``<!-- table: NAME -->`` and ``<!-- end table -->`` and is
rendered from its record by the same functions that write the command's own report, so a
figure in the docs is the figure the command measured.

  python docs/render_tables.py                  # re-render every table in place
  python docs/render_tables.py --check          # exit 1 naming every table that differs
  python docs/render_tables.py record NAME FILE --command='make demo'
                                                # keep FILE as the record NAME, then render
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import subprocess
import sys

DOCS = pathlib.Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))

from benchmarks import conversion_speed, run_all, tpu_sampling_memory, tpu_wan_memory  # noqa: E402
from benchmarks import row_attention_ablation  # noqa: E402
from benchmarks import tpu_wan_conversion, wan_condition_join  # noqa: E402
from eye2eye_jax.common import atomic_files  # noqa: E402
from eye2eye_jax.planning import report  # noqa: E402
from eye2eye_jax.evaluation import metrics_report, quality_vs_steps  # noqa: E402
from eye2eye_jax.evaluation import split_comparison, strength_response  # noqa: E402

RESULTS = DOCS / 'results'
_BLOCK = re.compile(r'(<!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end table -->)',
                    re.DOTALL)


def _splits_tables(figures: dict) -> str:
  tables = [(title, split_comparison.figure_table(figures, title))
            for title in figures['validation']]
  return '\n\n'.join(f'*{title}*\n\n{table}' for title, table in tables if table)


def _layer_tables(metrics: dict) -> str:
  tables = [(kind, metrics_report.layer_table(metrics, kind))
            for kind in ('opaque', 'reflection', 'transparent')]
  return '\n\n'.join(f'*{kind} layers*\n\n{table}' for kind, table in tables if table)


def _strength_tables(result: dict) -> str:
  return '\n\n'.join(f'*{name}*\n\n{strength_response.table(result["rows"], method)}'
                     for method, name in (('generated', 'the full sampler'),
                                          ('base_only', 'the base stage alone')))


# table name -> (the record it is rendered from, or several, side by side; the renderer of
# the record's data, or of the list of their data)
TABLES = {
    'headline': ('demo_splits', lambda figures: '\n\n'.join(
        [split_comparison.method_table(figures, 'generated'),
         split_comparison.gap_sentence(figures)])),
    'splits': ('demo_splits', _splits_tables),
    'evaluation': ('demo_metrics', metrics_report.summary_table),
    'evaluation_layers': ('demo_metrics', _layer_tables),
    'base_resolution': ('demo_metrics', metrics_report.resolution_table),
    'middlebury': ('middlebury_metrics', metrics_report.pair_table),
    'comfort': ('demo_comfort', metrics_report.comfort_table),
    'strength': ('demo_strength', _strength_tables),
    'steps': ('demo_steps', lambda result: quality_vs_steps.table(result['rows'])),
    'benchmarks': ('benchmarks', run_all.table),
    'conversion_speed': ('conversion_speed', conversion_speed.speed_table),
    'conversion_overlap': ('conversion_speed', conversion_speed.overlap_table),
    'conversion_memory': ('conversion_speed', conversion_speed.memory_table),
    'tpu_sampling_memory': ('tpu_sampling_memory', tpu_sampling_memory.table),
    'row_attention_tpu_base': ('tpu_row_attention_base', tpu_sampling_memory.table),
    'row_attention_tpu_refiner': ('tpu_row_attention_refiner', tpu_sampling_memory.table),
    'row_attention_ablation': ('row_attention_ablation', row_attention_ablation.table),
    'row_attention_curves': ('row_attention_ablation', row_attention_ablation.curve_table),
    'wan_tpu_memory': ('wan_tpu_memory', tpu_wan_memory.table),
    'wan_tpu_conversion': ('wan_tpu_conversion', tpu_wan_conversion.table),
    'wan_condition_join': ('wan_condition_join', wan_condition_join.table),
    'plan_paper': (('plan_base_paper_v5p-64', 'plan_base_paper_8xH100',
                    'plan_base_paper_8xH100_dots', 'plan_base_paper_8xH100_accum4'),
                   report.summary_table),
}


def records_of(name: str) -> tuple[str, ...]:
  """The records table ``name`` is rendered from."""
  records = TABLES[name][0]
  return (records,) if isinstance(records, str) else records


def documents() -> list[pathlib.Path]:
  """Every file whose tables are rendered."""
  return [REPO / 'README.md'] + sorted(DOCS.glob('*.md'))


def render(name: str) -> str:
  """Table ``name`` and the lines saying where its figures come from."""
  kept = {r: json.loads((RESULTS / f'{r}.json').read_text()) for r in records_of(name)}
  renderer = TABLES[name][1]
  data = [k['data'] for k in kept.values()]
  table = renderer(data[0] if isinstance(TABLES[name][0], str) else data)
  sources = []
  for record_name, k in kept.items():
    m = k['measured']
    sources.append(f'<sub>Measured {m["date"]} at commit `{m["commit"]}` on {m["machine"]}: '
                   f'`{m["command"]}`; recorded in `docs/results/{record_name}.json`.</sub>')
  return (f'{table}\n\n' + '<br>\n'.join(sources) +
          '\n<sub>Rendered by `docs/render_tables.py`.</sub>\n')


def rendered(text: str, path: pathlib.Path) -> str:
  """``text`` with every table block re-rendered; an unknown table name is an error."""
  def block(match: re.Match) -> str:
    if match['name'] not in TABLES:
      raise ValueError(f'{path}: unknown table {match["name"]!r} (known: {", ".join(TABLES)})')
    for record_name in records_of(match['name']):
      if not (RESULTS / f'{record_name}.json').is_file():
        raise ValueError(f'{path}: table {match["name"]} needs the record '
                         f'docs/results/{record_name}.json, which does not exist: measure it, '
                         f'then python docs/render_tables.py record {record_name} FILE.json '
                         '--command=...')
    return f'{match[1]}\n{render(match["name"])}\n{match[4]}'
  return _BLOCK.sub(block, text)


def differing(paths: list[pathlib.Path] | None = None) -> list[str]:
  """'FILE: table NAME' for every table of ``paths`` (default: the documents) that differs
  from what its record renders."""
  found = []
  for path in paths or documents():
    text = path.read_text()
    for match in _BLOCK.finditer(text):
      if rendered(match[0], path) != match[0]:
        found.append(f"{os.path.relpath(path, REPO)}: table {match['name']}")
  return found


def used_tables() -> set[str]:
  """The names of the tables the documents hold."""
  return {m['name'] for path in documents() for m in _BLOCK.finditer(path.read_text())}


def write_all() -> list[pathlib.Path]:
  """Re-renders every table in place; returns the files that changed."""
  changed = []
  for path in documents():
    text = path.read_text()
    new = rendered(text, path)
    if new != text:
      atomic_files.write_text(path, new)
      changed.append(path)
  return changed


def _git_commit() -> str:
  commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout.strip()
  dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=REPO,
                         check=True, capture_output=True, text=True).stdout.strip()
  return commit + ('+changes' if dirty else '')


def machine() -> str:
  """This machine in words: cores, architecture, system."""
  return f'{os.cpu_count()} CPU cores ({platform.machine()}, {platform.system()})'


def record(name: str, source: pathlib.Path, command: str, commit: str | None = None,
           date: str | None = None, machine_text: str | None = None) -> pathlib.Path:
  """Keeps ``source`` (a command's JSON output) as the record ``name``; the date defaults to
  the file's modification time, the commit to this checkout's."""
  try:
    data = json.loads(source.read_text())
  except json.JSONDecodeError as error:
    raise ValueError(f'{source} is not JSON ({error}); nothing was recorded') from error
  when = date or datetime.datetime.fromtimestamp(source.stat().st_mtime,
                                                 datetime.timezone.utc).strftime('%Y-%m-%d')
  target = RESULTS / f'{name}.json'
  atomic_files.write_text(target, json.dumps(
      {'measured': {'date': when, 'commit': commit or _git_commit(),
                    'machine': machine_text or machine(), 'command': command},
       'data': data}, indent=1) + '\n')
  return target


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--check', action='store_true', help='exit 1 if any table differs')
  sub = parser.add_subparsers(dest='action')
  keep = sub.add_parser('record', help='keep a command\'s JSON as a record, then render')
  keep.add_argument('name', help=f'the record (tables use: '
                    f'{", ".join(sorted({r for t in TABLES for r in records_of(t)}))})')
  keep.add_argument('source', type=pathlib.Path, help='the JSON the command wrote')
  keep.add_argument('--command', required=True, help='the command that measured it')
  keep.add_argument('--commit', help='default: this checkout\'s HEAD')
  keep.add_argument('--date', help='default: the file\'s modification date')
  keep.add_argument('--machine', help=f'default: this one ({machine()})')
  args = parser.parse_args(argv)
  try:
    return _run(args, parser)
  except ValueError as error:
    print(f'error: {error}', file=sys.stderr)
    return 1


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
  """What ``main`` was asked to do."""
  if args.action == 'record':
    if not args.source.is_file():
      parser.error(f'{args.source} does not exist')
    target = record(args.name, args.source, args.command, args.commit, args.date, args.machine)
    print(f'recorded {target.relative_to(REPO)}')
  if args.check:
    stale = differing()
    for line in stale:
      print(f'{line} differs from its record: run python docs/render_tables.py')
    return 1 if stale else 0
  for path in write_all():
    print(f'rendered {path.relative_to(REPO)}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
