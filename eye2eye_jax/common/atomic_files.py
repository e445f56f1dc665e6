"""Atomic file writes: write next to the destination, then rename into place."""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def scratch_path(beside: str | os.PathLike, tag: str = 'scratch'):
  """Yields a temporary path next to ``beside`` (same suffix), always removed afterwards."""
  beside = pathlib.Path(beside)
  beside.parent.mkdir(parents=True, exist_ok=True)
  handle, temporary = tempfile.mkstemp(prefix=f'.{beside.stem}.{tag}.', suffix=beside.suffix,
                                       dir=beside.parent)
  os.close(handle)
  try:
    yield temporary
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
  """Yields a temporary path beside ``path`` (same suffix); renames it to ``path`` on success.

  On an exception the temporary file is removed and ``path`` is left as it was.
  """
  with scratch_path(path, 'partial') as temporary:
    yield temporary
    os.chmod(temporary, 0o666 & ~_umask())
    os.replace(temporary, path)


@contextlib.contextmanager
def atomic_paths(paths):
  """``atomic_path`` for several files at once: yields their temporary paths, and renames
  them into place only when the block succeeds, so a failure replaces none of them."""
  with contextlib.ExitStack() as stack:
    yield [stack.enter_context(atomic_path(path)) for path in paths]


def write_text(path: str | os.PathLike, text: str) -> None:
  with atomic_path(path) as temporary:
    pathlib.Path(temporary).write_text(text)
