"""A caption (and, optionally, a text embedding) per clip.

Sources, in order: a captioner callable named in the builder config as
``"package.module:function"`` (called with the clip's middle frame, (H, W, 3) uint8, and
returning a string); else a sidecar JSON file mapping clip names (or npz names, or video
ids) to captions; else the empty caption. A text encoder, when named the same way, turns
each caption into an (N, D) float32 embedding stored beside it.
"""

from __future__ import annotations

import importlib
import json
import pathlib

import numpy as np


def load_callable(spec: str):
  """The object named by ``"module.path:attribute"``; a clear error when it is missing."""
  module_name, _, attribute = spec.partition(':')
  if not module_name or not attribute:
    raise ValueError(f'{spec!r}: name a callable as "package.module:function"')
  try:
    found = getattr(importlib.import_module(module_name), attribute)
  except (ImportError, AttributeError) as error:
    raise ValueError(f'{spec!r}: cannot load it ({error})') from error
  if not callable(found):
    raise ValueError(f'{spec!r} is not callable')
  return found


class Captioner:
  """Captions clips from a callable, a sidecar file, or nothing (in that order)."""

  def __init__(self, captioner: str = '', sidecar: str | pathlib.Path | None = None):
    self._call = load_callable(captioner) if captioner else None
    self._sidecar = {}
    if sidecar:
      path = pathlib.Path(sidecar)
      try:
        self._sidecar = json.loads(path.read_text())
      except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f'{path}: not a readable JSON file of captions ({error})') from error
      if not isinstance(self._sidecar, dict):
        raise ValueError(f'{path}: expected a JSON object {{name: caption}}')

  def __call__(self, clip_name: str, npz_name: str, video_id: str,
               middle_frame: np.ndarray) -> str:
    if self._call is not None:
      caption = self._call(middle_frame)
      if not isinstance(caption, str):
        raise ValueError(f'the captioner returned {type(caption).__name__}, not a string')
      return caption
    for key in (clip_name, npz_name, video_id):
      if key in self._sidecar:
        return str(self._sidecar[key])
    return ''


class TextEncoder:
  """Wraps an encoder callable (caption -> (N, D) array) and checks what it returns."""

  def __init__(self, spec: str, embed_dim: int):
    self._encode = load_callable(spec)
    self.embed_dim = embed_dim

  def __call__(self, caption: str) -> np.ndarray:
    embedding = np.asarray(self._encode(caption), np.float32)
    if embedding.ndim != 2 or embedding.shape[1] != self.embed_dim:
      raise ValueError(f'the text encoder returned shape {embedding.shape}; expected '
                       f'(tokens, {self.embed_dim})')
    return embedding
