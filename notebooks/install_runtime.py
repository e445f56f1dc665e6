"""Installs eye2eye_jax from a checkout into a notebook runtime, keeping its accelerator JAX.

  python notebooks/install_runtime.py CHECKOUT [--dry_run]

The notebook's first cell runs this after finding or fetching the checkout. A hosted runtime
(Colab) comes with JAX built for its GPU or TPU, and with TensorFlow: installing
``requirements.lock`` (a CPU environment for Python 3.11) would replace them. Instead the
package goes in with ``--no-deps`` and its ``install_requires`` (read from ``setup.py``) are
installed beside what is there: JAX and jaxlib pinned to the installed versions (a
constraints file, so nothing may replace them), ``tensorflow-cpu`` left out where a
TensorFlow is installed. On a runtime without JAX the requirements go in as they are.
``--dry_run`` prints what pip would install and installs nothing.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import pathlib
import re
import subprocess
import sys
import tempfile

# Installed distributions that a requirement must not replace, by the requirement's name.
KEPT = {'jax': ('jax', 'jaxlib'), 'tensorflow-cpu': ('tensorflow',)}


def install_requires(checkout: pathlib.Path) -> list[str]:
  """The ``install_requires`` list of the checkout's setup.py (read, not run)."""
  tree = ast.parse((checkout / 'setup.py').read_text())
  for node in ast.walk(tree):
    if isinstance(node, ast.keyword) and node.arg == 'install_requires':
      return [ast.literal_eval(element) for element in node.value.elts]
  raise ValueError(f'{checkout / "setup.py"}: no install_requires list')


def installed_version(name: str) -> str | None:
  try:
    return importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    return None


def plan(requirements: list[str], installed=installed_version) -> tuple[list[str], list[str]]:
  """(requirements to install, constraints pinning what is kept): a requirement whose
  distributions in ``KEPT`` are installed is dropped and those versions are pinned."""
  keep, constraints = [], []
  for requirement in requirements:
    name = re.split(r'[<>=!~\[; ]', requirement, maxsplit=1)[0].lower()
    versions = {dist: installed(dist) for dist in KEPT.get(name, ())}
    if versions and all(versions.values()):
      constraints += [f'{dist}=={version}' for dist, version in versions.items()]
      continue
    keep.append(requirement)
  return keep, constraints


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('checkout', type=pathlib.Path)
  parser.add_argument('--dry_run', action='store_true')
  args = parser.parse_args()
  requirements, constraints = plan(install_requires(args.checkout))
  pip = [sys.executable, '-m', 'pip', 'install', '--quiet']
  with tempfile.NamedTemporaryFile('w', suffix='.txt') as pinned:
    pinned.write('\n'.join(constraints) + '\n')
    pinned.flush()
    if args.dry_run:
      subprocess.run(pip[:-1] + ['--dry-run', '-c', pinned.name, *requirements], check=True)
      print('kept:', ', '.join(constraints) or 'nothing')
      return
    subprocess.run(pip + ['--no-deps', '-e', str(args.checkout)], check=True)
    subprocess.run(pip + ['-c', pinned.name, *requirements], check=True)
  print('installed eye2eye_jax from', args.checkout, '; kept', ', '.join(constraints) or
        'nothing')


if __name__ == '__main__':
  main()
