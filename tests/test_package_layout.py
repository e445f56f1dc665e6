"""The house rules of the package layout: imports flow one way, rooms stay small and distinct.

Imports are read from the source (function-level ones included: a lazy import is still a
dependency), so the rules hold for every code path, not just the ones a test happens to run.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ('eye2eye_jax', 'data_builders')
ENTRY_POINTS = ('build_data', 'ckpt', 'demo', 'evaluate', 'plan', 'sample', 'train')
MAX_MODULE_LINES = 400


def _modules() -> dict[str, pathlib.Path]:
  """Dotted name -> file of every module of the project's packages."""
  found = {}
  for package in PACKAGES:
    for path in sorted((REPO / package).rglob('*.py')):
      parts = path.relative_to(REPO).with_suffix('').parts
      found['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
  return found


MODULES = _modules()


def _imports(name: str, path: pathlib.Path) -> set[str]:
  """The project modules ``name`` imports (a package import means its ``__init__``)."""
  package = name if path.name == '__init__.py' else name.rpartition('.')[0]
  targets = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      targets.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        base = '.'.join(package.split('.')[:len(package.split('.')) - node.level + 1]
                        + ([base] if base else []))
      for alias in node.names:
        targets.add(f'{base}.{alias.name}' if f'{base}.{alias.name}' in MODULES else base)
  return {t for t in targets if t in MODULES and t != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _room(module: str) -> str:
  """The stage a module belongs to: its subpackage, or itself for a top-level module."""
  parts = module.split('.')
  if parts[0] == 'data_builders':
    return 'data_builders'
  return '.'.join(parts[:2])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components with more than one node (Tarjan)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for target in graph.get(node, ()):
      if target not in index:
        visit(target)
        low[node] = min(low[node], low[target])
      elif target in on_stack:
        low[node] = min(low[node], index[target])
    if low[node] == index[node]:
      component = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return found


def test_the_import_graph_reads_real_imports():
  assert 'eye2eye_jax.models.networks' in GRAPH['eye2eye_jax.sampling.stereo_sampler']
  assert 'eye2eye_jax.data.frame_ops' in GRAPH['data_builders.stereo4d.frame_sources']
  assert _cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]


def test_no_module_imports_itself_back():
  assert _cycles(GRAPH) == []


def test_stages_import_each_other_one_way():
  rooms: dict[str, set[str]] = {}
  for module, targets in GRAPH.items():
    rooms.setdefault(_room(module), set()).update(_room(t) for t in targets
                                                  if _room(t) != _room(module))
  assert _cycles(rooms) == []
  # Data flows in from the builders: no stage below training reaches up into it.
  for room in ('eye2eye_jax.data', 'eye2eye_jax.models', 'eye2eye_jax.sampling',
               'eye2eye_jax.evaluation', 'data_builders'):
    assert 'eye2eye_jax.training' not in rooms.get(room, set()), room
  assert 'data_builders' not in rooms['eye2eye_jax.data']


def test_entry_point_names_are_not_shared_with_implementation_modules():
  for entry in ENTRY_POINTS:
    assert f'eye2eye_jax.{entry}' in MODULES
    clashes = [m for m in MODULES if m.rpartition('.')[2] == entry and m != f'eye2eye_jax.{entry}']
    assert not clashes, (entry, clashes)


@pytest.mark.parametrize('module', sorted(MODULES))
def test_modules_stay_readable_in_size(module):
  assert len(MODULES[module].read_text().splitlines()) <= MAX_MODULE_LINES


def test_dataset_builders_load_neither_jax_nor_the_model():
  probe = "print(sorted(m for m in ('jax', 'flax', 'eye2eye_jax.models') if m in sys.modules))"
  code = '\n'.join([
      'import sys',
      'import data_builders.stereo4d, data_builders.synthetic_stereo, data_builders.video_folder',
      probe,
      'import eye2eye_jax.models.unet',  # the control: the probe sees a model import
      probe])
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                          text=True, check=True)
  builders, control = result.stdout.strip().splitlines()[-2:]
  assert builders == '[]', result.stdout
  assert control == "['eye2eye_jax.models', 'flax', 'jax']", result.stdout
