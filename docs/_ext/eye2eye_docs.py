"""Sphinx directives that generate the manual's reference pages from the code.

``{config-files}``: every experiment config in ``configs/`` with its docstring's summary.

``{config-fields}``: every field of ``config_base.base_config()`` with its default and the
comment beside (or just above) it in ``config_base.py``; a field without one is a warning,
so the docs build (warnings are errors) fails until it is described.

``{api-modules} PACKAGE``: ``automodule`` for every module of a package, found on disk, so
a new module is documented without editing the manual; the command modules (whose import
defines absl flags) are described by their docstrings, read without importing them.
"""

from __future__ import annotations

import ast
import io
import pathlib
import pkgutil
import tokenize

from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG_BASE = REPO / 'eye2eye_jax' / 'config_base.py'
COMMANDS = ('build_data', 'ckpt', 'demo', 'evaluate', 'plan', 'sample', 'train')
_LOGGER = logging.getLogger(__name__)


def _dotted(target: ast.expr) -> str | None:
  """'data.builder' for the assignment target ``c.data.builder``; None for anything else."""
  parts = []
  while isinstance(target, ast.Attribute):
    parts.insert(0, target.attr)
    target = target.value
  return '.'.join(parts) if isinstance(target, ast.Name) and target.id == 'c' and parts else None


def field_descriptions(source: str) -> dict[str, tuple[int, str]]:
  """Field path -> (line, meaning) for every assignment in ``base_config()``: the comment
  block just above the assignment, then the comment at the end of its lines."""
  comments = {}  # line -> (text, whether the line holds nothing else)
  for token in tokenize.generate_tokens(io.StringIO(source).readline):
    if token.type == tokenize.COMMENT:
      comments[token.start[0]] = (token.string.lstrip('#').strip(),
                                  token.line.strip().startswith('#'))
  function = next(node for node in ast.parse(source).body
                  if isinstance(node, ast.FunctionDef) and node.name == 'base_config')
  found = {}
  for node in ast.walk(function):
    if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
      continue
    path = _dotted(node.targets[0])
    if path is None:
      continue
    block, line = [], node.lineno - 1
    while line in comments and comments[line][1]:
      block.insert(0, comments[line][0])
      line -= 1
    trailing = [comments[n][0] for n in range(node.lineno, node.end_lineno + 1)
                if n in comments and not comments[n][1]]
    found[path] = (node.lineno, ' '.join(block + trailing))
  return found


def _leaves(config, prefix: str = '') -> dict[str, object]:
  """Dotted path -> default of every field that is not a section."""
  out = {}
  for key, value in config.items():
    if hasattr(value, 'items'):
      out.update(_leaves(value, f'{prefix}{key}.'))
    else:
      out[prefix + key] = value
  return out


def _inline(text: str) -> list[nodes.Node]:
  """One cell of text whose ``double-backquoted`` parts are code."""
  parts = text.split('``')
  return [nodes.inline('', '', *[nodes.literal(text=p) if i % 2 else nodes.Text(p)
                                 for i, p in enumerate(parts) if p])]


def _table(header: list[str], rows: list[list[nodes.Node]], widths: list[int]) -> nodes.table:
  table = nodes.table()
  group = nodes.tgroup(cols=len(header))
  table += group
  group.extend(nodes.colspec(colwidth=w) for w in widths)
  head = nodes.thead()
  head += nodes.row('', *[nodes.entry('', nodes.paragraph(text=h)) for h in header])
  body = nodes.tbody()
  for cells in rows:
    body += nodes.row('', *[nodes.entry('', nodes.paragraph('', '', cell)) for cell in cells])
  group += [head, body]
  return table


class ConfigFields(SphinxDirective):
  """Every config field, its default and its meaning, one table per section."""

  def run(self) -> list[nodes.Node]:
    from eye2eye_jax import config_base  # the package is installed where the docs build
    self.env.note_dependency(str(CONFIG_BASE))
    described = field_descriptions(CONFIG_BASE.read_text())
    defaults = _leaves(config_base.base_config())
    sections: dict[str, list] = {}
    for path, default in defaults.items():
      line, meaning = described.get(path, (None, ''))
      if not meaning:
        where = f' (line {line})' if line else ''
        _LOGGER.warning(f'config field {path} has no description in '
                        f'eye2eye_jax/config_base.py{where}: add a comment beside it',
                        location=self.get_location())
      section = path.split('.')[0] if '.' in path else '(top level)'
      sections.setdefault(section, []).append(
          [nodes.literal(text=path), nodes.literal(text=repr(default)),
           nodes.Text(meaning)])
    result = []
    for section, rows in sections.items():
      rubric = nodes.rubric(text=section, ids=[f'config-{section.strip("()").replace(" ", "-")}'])
      result += [rubric, _table(['field', 'default', 'meaning'], rows, [25, 20, 55])]
    return result


def _summary(path: pathlib.Path) -> str:
  """The first paragraph of a module's docstring, read without importing it."""
  docstring = ast.get_docstring(ast.parse(path.read_text())) or ''
  return docstring.split('\n\n')[0].replace('\n', ' ')


class ConfigFiles(SphinxDirective):
  """Every experiment config in configs/, with the first paragraph of its docstring."""

  def run(self) -> list[nodes.Node]:
    rows = []
    for path in sorted((REPO / 'configs').glob('*.py')):
      self.env.note_dependency(str(path))
      summary = _summary(path)
      if not summary:
        _LOGGER.warning(f'configs/{path.name} has no docstring saying what it is',
                        location=self.get_location())
      rows.append([nodes.literal(text=f'configs/{path.name}'), *_inline(summary)])
    return [_table(['config', 'what it is'], rows, [25, 75])]


class ApiModules(SphinxDirective):
  """automodule for each module of the package named as the argument."""

  required_arguments = 1

  def run(self) -> list[nodes.Node]:
    package = self.arguments[0]
    folder = REPO.joinpath(*package.split('.'))
    names = sorted(f'{package}.{m.name}' for m in pkgutil.iter_modules([str(folder)]))
    if package == 'eye2eye_jax':  # the top level: its library modules and the commands
      rows = [[nodes.literal(text=f'python -m eye2eye_jax.{c}'),
               *_inline(_summary(REPO / 'eye2eye_jax' / f'{c}.py'))] for c in COMMANDS]
      result = [nodes.rubric(text='commands'),
                _table(['command', 'what it does'], rows, [30, 70])]
      names = [n for n in names if n.rpartition('.')[2] not in COMMANDS and
               (folder / f'{n.rpartition(".")[2]}.py').is_file()]
    else:
      result = []
    # autodoc writes reStructuredText: parsed as such inside this markdown page
    text = '```{eval-rst}\n' + ''.join(f'.. automodule:: {name}\n   :members:\n\n'
                                        for name in names) + '```\n'
    container = nodes.container()
    self.state.nested_parse(self.content.__class__(text.splitlines(), source=package),
                            self.content_offset, container)
    return result + container.children


def setup(app):
  app.add_directive('config-files', ConfigFiles)
  app.add_directive('config-fields', ConfigFields)
  app.add_directive('api-modules', ApiModules)
  return {'parallel_read_safe': True, 'parallel_write_safe': True}
