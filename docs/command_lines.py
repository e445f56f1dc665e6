"""Every command line the README and the manual show, parsed by its command's own flag parser.

  python docs/command_lines.py [FILE.md ...]   # exit 1 naming each line that does not parse

A line is taken from a fenced ``bash`` block (continuations joined, comments dropped) when it
runs a command of the project: ``python -m eye2eye_jax.NAME ...`` (absl flags, with the
``--config`` file loaded and its ``--config.a.b`` overrides checked against it) or a
benchmark (``python benchmarks/NAME.py`` or ``python -m benchmarks.NAME``: argparse). The
parser runs exactly as the command would run it, and the job is never started. Each command
module is loaded once; its flags are removed before the next module defines its own.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import runpy
import shlex
import sys
from unittest import mock

DOCS = pathlib.Path(__file__).resolve().parent
REPO = DOCS.parent
_FENCE = re.compile(r'^(?P<indent> *)```(?:bash|sh|shell)\n(?P<body>.*?)^(?P=indent)```',
                    re.DOTALL | re.MULTILINE)


class _Parsed(Exception):
  """Raised in place of the job once the command line has been parsed."""


def documents() -> list[pathlib.Path]:
  """The README and every page of the manual."""
  return [REPO / 'README.md'] + sorted(DOCS.glob('*.md'))


def command_lines(paths: list[pathlib.Path] | None = None) -> list[tuple[str, int, str]]:
  """(file, line number, command) for every project command in a bash block of ``paths``
  (default: the documents)."""
  found = []
  for path in paths or documents():
    text = path.read_text()
    for block in _FENCE.finditer(text):
      first_line = text.count('\n', 0, block.start('body')) + 1
      logical, start = '', None
      for offset, raw in enumerate(block['body'].splitlines()):
        line = raw.strip()
        if start is None:
          start = first_line + offset
        logical += line[:-1] + ' ' if line.endswith('\\') else line
        if line.endswith('\\'):
          continue
        command = logical.split(' #')[0].strip()
        if re.match(r'python (-m eye2eye_jax\.|benchmarks/|-m benchmarks\.)', command):
          found.append((os.path.relpath(path, REPO), start, command))
        logical, start = '', None
  return found


def _target(argv: list[str]) -> tuple[str, str, list[str]]:
  """('module' or 'path', what to run, its argv) of ``python ...`` words."""
  if argv[1] == '-m':
    return 'module', argv[2], [argv[2]] + argv[3:]
  return 'path', str(REPO / argv[1]), argv[1:]


def _absl_parser(module: str):
  """The flag parser ``module`` hands to ``app.run``, its flags defined."""
  from absl import app
  captured = {}

  def run(main, argv=None, flags_parser=app.parse_flags_with_usage):
    captured['parser'] = flags_parser
    raise _Parsed

  with mock.patch.object(app, 'run', run), mock.patch.object(sys, 'argv', [module]):
    try:
      runpy.run_module(module, run_name='__main__')
    except _Parsed:
      pass
  return captured['parser']


def _parse_argparse(kind: str, target: str, argv: list[str]) -> None:
  """Runs the script until its argparse parser has parsed ``argv``."""
  original = argparse.ArgumentParser.parse_args

  def parse_args(self, args=None, namespace=None):
    original(self, args, namespace)
    raise _Parsed

  with mock.patch.object(argparse.ArgumentParser, 'parse_args', parse_args), \
      mock.patch.object(sys, 'argv', argv):
    try:
      if kind == 'module':
        runpy.run_module(target, run_name='__main__')
      else:
        runpy.run_path(target, run_name='__main__')
    except _Parsed:
      pass


def _problem(path: str, line: int, command: str, parse) -> str | None:
  try:
    parse()
  except SystemExit as error:  # what the command's parser does with a bad flag
    return f'{path}:{line}: {command}: {error.code}'
  except Exception as error:  # noqa: BLE001 - any failure to parse is the finding
    return f'{path}:{line}: {command}: {type(error).__name__}: {error}'
  return None


def check(paths: list[pathlib.Path] | None = None) -> list[str]:
  """'FILE:LINE: COMMAND: PROBLEM' for every command line of ``paths`` (default: the
  documents) that does not parse."""
  from absl import flags
  sys.path.insert(0, str(REPO))
  by_target: dict[tuple[str, str], list] = {}
  for path, line, command in command_lines(paths):
    kind, target, argv = _target(shlex.split(command))
    by_target.setdefault((kind, target), []).append((path, line, command, argv))
  problems = []
  for (kind, target), uses in by_target.items():
    if not target.startswith('eye2eye_jax.'):
      problems += [_problem(path, line, command,
                            lambda argv=argv: _parse_argparse(kind, target, argv))
                   for path, line, command, argv in uses]
      continue
    defined = set(flags.FLAGS)
    parser = _absl_parser(target)
    loaded = set(flags.FLAGS)
    for path, line, command, argv in uses:
      flags.FLAGS.unparse_flags()
      with mock.patch.object(sys, 'argv', argv):  # config overrides are read from sys.argv
        problems.append(_problem(path, line, command, lambda argv=argv: parser(argv)))
      for name in set(flags.FLAGS) - loaded:  # the override flags this line defined
        delattr(flags.FLAGS, name)
    for name in set(flags.FLAGS) - defined:  # this command's flags, before the next's
      delattr(flags.FLAGS, name)
  return [p for p in problems if p]


if __name__ == '__main__':
  chosen = [pathlib.Path(a).resolve() for a in sys.argv[1:]] or None
  missing = [str(path) for path in chosen or [] if not path.is_file()]
  if missing:
    sys.exit(f'error: no such file: {", ".join(missing)}')
  lines = command_lines(chosen)
  failed = check(chosen)
  for problem in failed:
    print(problem)
  print(f'{len(lines) - len(failed)} of {len(lines)} command lines parse')
  sys.exit(1 if failed else 0)
