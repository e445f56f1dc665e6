"""A caption (and, optionally, a text embedding) per clip.

Sources, in order: a captioner callable named in the builder config as
``"package.module:function"`` (called with the clip's middle frame, (H, W, 3) uint8, and
returning a string); else a sidecar JSON file mapping clip names (or npz names, or video
ids) to captions; else the empty caption. A text encoder
(``eye2eye_jax.text_encoding.TextEncoder``), when named, turns each caption into an (N, D)
float32 embedding stored beside it.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from eye2eye_jax.data.text_encoding import load_callable


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
