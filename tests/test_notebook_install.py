"""The notebook's install cell: inside a checkout, from a git URL, from an uploaded archive, and
a clear error when it has none; its installer keeps the runtime's own JAX and TensorFlow."""

import importlib.util
import pathlib
import shutil
import subprocess
import sys

import nbformat
import pytest

from conftest import REPO, subprocess_env

sys.path.insert(0, str(REPO / 'notebooks'))
import install_runtime  # noqa: E402  (notebooks/install_runtime.py)


def _install_cell() -> str:
  notebook = nbformat.read(REPO / 'notebooks' / 'eye2eye_demo.ipynb', as_version=4)
  return next(c.source for c in notebook.cells if c.cell_type == 'code')


def _run_cell(monkeypatch, cwd: pathlib.Path, source: str = '') -> list[list[str]]:
  """Runs the install cell in ``cwd`` as where the package is not installed, with
  REPO_SOURCE set to ``source``; returns the commands it ran (none is really run)."""
  commands = []
  real_find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'eye2eye_jax'
                      else real_find_spec(name, *a))
  monkeypatch.setattr(subprocess, 'run', lambda command, **kwargs: commands.append(command))
  monkeypatch.chdir(cwd)
  monkeypatch.setattr(sys, 'path', list(sys.path))
  exec(_install_cell().replace("REPO_SOURCE = ''", f'REPO_SOURCE = {source!r}', 1), {})
  return commands


def _checkout_copy(root: pathlib.Path) -> pathlib.Path:
  """A minimal checkout: setup.py, the package folder and the installer."""
  checkout = root / 'eye2eye_jax-main'
  (checkout / 'eye2eye_jax').mkdir(parents=True)
  (checkout / 'notebooks').mkdir()
  shutil.copy(REPO / 'setup.py', checkout / 'setup.py')
  shutil.copy(REPO / 'notebooks' / 'install_runtime.py', checkout / 'notebooks')
  return checkout


def _installs(commands, checkout: pathlib.Path) -> bool:
  return commands[-1][1:] == [str(checkout / 'notebooks' / 'install_runtime.py'),
                              str(checkout)]


def test_inside_a_checkout_the_checkout_is_installed(monkeypatch):
  commands = _run_cell(monkeypatch, REPO / 'notebooks')
  assert len(commands) == 1 and _installs(commands, REPO)


def test_without_a_checkout_or_a_source_the_cell_says_what_to_set(monkeypatch, tmp_path):
  with pytest.raises(RuntimeError, match='set REPO_SOURCE .* git URL or an uploaded archive'):
    _run_cell(monkeypatch, tmp_path)
  assert not list(tmp_path.iterdir())


def test_a_git_url_is_cloned_and_installed(monkeypatch, tmp_path):
  url = 'https://example.org/team/eye2eye_jax.git'
  commands = _run_cell(monkeypatch, tmp_path, url)
  assert commands[0] == ['git', 'clone', '--depth=1', url, str(tmp_path / 'eye2eye_jax')]
  assert _installs(commands, tmp_path / 'eye2eye_jax')


@pytest.mark.parametrize('kind', ['zip', 'gztar'])
def test_an_uploaded_archive_is_unpacked_and_installed(monkeypatch, tmp_path, kind):
  archive = shutil.make_archive(str(tmp_path / 'upload'), kind, _checkout_copy(tmp_path / 'src'))
  runtime = tmp_path / 'content'
  runtime.mkdir()
  commands = _run_cell(monkeypatch, runtime, archive)
  assert _installs(commands, runtime / 'eye2eye_jax')
  assert (runtime / 'eye2eye_jax' / 'setup.py').read_bytes() == (REPO / 'setup.py').read_bytes()
  with pytest.raises(FileNotFoundError, match="REPO_SOURCE='missing.zip': no such archive"):
    _run_cell(monkeypatch, tmp_path / 'src', 'missing.zip')


def test_the_installer_keeps_an_accelerator_jax_and_tensorflow():
  requirements = install_runtime.install_requires(REPO)
  assert 'jax>=0.10.2' in requirements and 'tensorflow-cpu>=2.21.0' in requirements
  colab = {'jax': '0.11.0', 'jaxlib': '0.11.0', 'tensorflow': '2.22.0'}.get
  kept, constraints = install_runtime.plan(requirements, colab)
  assert constraints == ['jax==0.11.0', 'jaxlib==0.11.0', 'tensorflow==2.22.0']
  assert not [r for r in kept if r.startswith(('jax', 'tensorflow-cpu'))]
  assert 'flax>=0.12.8' in kept
  # A runtime with no JAX or TensorFlow gets every requirement.
  assert install_runtime.plan(requirements, lambda name: None) == (requirements, [])


def test_the_installer_resolves_in_this_environment_without_touching_jax():
  """pip's own resolution of the installer's commands (a dry run) here, where jax is
  installed: it pins jax and jaxlib and would install nothing new."""
  result = subprocess.run([sys.executable, str(REPO / 'notebooks' / 'install_runtime.py'),
                           str(REPO), '--dry_run'], capture_output=True, text=True,
                          timeout=300, env=subprocess_env())
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'kept: jax==0.10.2, jaxlib==0.10.2' in result.stdout
  assert 'Would install' not in result.stdout
