"""Layouts of a stereo pair that players and screens read: side-by-side, top-bottom, anaglyph.

File-name suffixes follow what VR players detect: ``_LRF_Full_SBS`` (full side-by-side,
left | right), ``_LR_Half_SBS`` (each eye squeezed to half width, 3D TVs), ``_TB`` (full
top-bottom, left on top). Red-cyan anaglyphs take red from the left eye: Dubois'
least-squares matrices (applied in linear light) by default, or plain colour, or grey.
"""

from __future__ import annotations

import cv2
import numpy as np

# Dubois (2001) red-cyan matrices: rows give linear R, G, B of the anaglyph.
_DUBOIS_LEFT = np.array([[0.437, 0.449, 0.164],
                         [-0.062, -0.062, -0.024],
                         [-0.048, -0.050, -0.017]], np.float32)
_DUBOIS_RIGHT = np.array([[-0.011, -0.032, -0.007],
                          [0.377, 0.761, 0.009],
                          [-0.026, -0.093, 1.234]], np.float32)
_GRAY = np.array([0.299, 0.587, 0.114], np.float32)

SUFFIXES = {
    'left': '_left',
    'sbs': '_LRF_Full_SBS',
    'half_sbs': '_LR_Half_SBS',
    'tb': '_TB',
    'anaglyph': '_anaglyph',
}


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
  """Full side-by-side: (T, H, W, 3) pairs -> (T, H, 2W, 3), left eye on the left."""
  return np.concatenate([left, right], axis=2)


def _squeeze_width(video: np.ndarray, width: int) -> np.ndarray:
  return np.stack([cv2.resize(f, (width, f.shape[0]), interpolation=cv2.INTER_AREA)
                   for f in video])


def half_side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
  """Half side-by-side: each eye squeezed to half width; the frame keeps the input's size.

  For an odd width the left half gets the extra column.
  """
  width = left.shape[2]
  if width < 2:
    raise ValueError(f'half side-by-side needs frames at least 2 px wide, got {width} px')
  return np.concatenate([_squeeze_width(left, width - width // 2),
                         _squeeze_width(right, width // 2)], axis=2)


def top_bottom(left: np.ndarray, right: np.ndarray) -> np.ndarray:
  """Full top-bottom: (T, H, W, 3) pairs -> (T, 2H, W, 3), left eye on top."""
  return np.concatenate([left, right], axis=1)


def _to_linear(x: np.ndarray) -> np.ndarray:
  x = x.astype(np.float32) / 255.0
  return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055)**2.4)


def _to_srgb(x: np.ndarray) -> np.ndarray:
  x = np.clip(x, 0.0, 1.0)
  x = np.where(x <= 0.0031308, 12.92 * x, 1.055 * x**(1 / 2.4) - 0.055)
  return np.round(x * 255.0).astype(np.uint8)


ANAGLYPH_METHODS = ('dubois', 'color', 'gray')


def anaglyph(left: np.ndarray, right: np.ndarray, method: str = 'dubois') -> np.ndarray:
  """Red-cyan anaglyph of uint8 (..., 3) views: 'dubois', 'color' or 'gray'."""
  if method == 'dubois':
    mixed = _to_linear(left) @ _DUBOIS_LEFT.T + _to_linear(right) @ _DUBOIS_RIGHT.T
    return _to_srgb(mixed)
  if method == 'color':
    return np.concatenate([left[..., :1], right[..., 1:]], axis=-1).astype(np.uint8)
  if method == 'gray':
    gray_left = np.round(left.astype(np.float32) @ _GRAY).astype(np.uint8)[..., None]
    gray_right = np.round(right.astype(np.float32) @ _GRAY).astype(np.uint8)[..., None]
    return np.concatenate([gray_left, gray_right, gray_right], axis=-1)
  raise ValueError(f"anaglyph method must be 'dubois', 'color' or 'gray', got {method!r}")


def render(layout: str, left: np.ndarray, right: np.ndarray,
           anaglyph_method: str = 'dubois') -> np.ndarray:
  """The frames of one output layout (a key of SUFFIXES) of a pair of equal-shaped views."""
  if np.shape(left) != np.shape(right):
    raise ValueError(f'the left and right views differ in shape: {np.shape(left)} and '
                     f'{np.shape(right)}')
  if layout == 'left':
    return left
  if layout == 'sbs':
    return side_by_side(left, right)
  if layout == 'half_sbs':
    return half_side_by_side(left, right)
  if layout == 'tb':
    return top_bottom(left, right)
  if layout == 'anaglyph':
    return anaglyph(left, right, anaglyph_method)
  raise ValueError(f'unknown output layout {layout!r}; choose from {sorted(SUFFIXES)}')


# Layouts a stereo file can be read from: how its frames hold the two eyes.
READ_LAYOUTS = ('sbs', 'half_sbs', 'tb', 'half_tb')
# File-name markers players use, most specific first (matched case-insensitively).
_NAME_MARKERS = (('half_sbs', ('_lr_half_sbs', 'half_sbs', 'half-sbs', 'hsbs')),
                 ('half_tb', ('half_tb', 'half-tb', 'half_ou', 'htb', 'hou')),
                 ('sbs', ('_lrf_full_sbs', 'full_sbs', 'full-sbs', 'fsbs', '_sbs', '_lr')),
                 ('tb', ('_tb', '_tab', '_ou', '_3dv')))


def layout_of(name: str, width: int, height: int) -> str:
  """The READ_LAYOUTS layout of a stereo file: from the markers players read in its name,
  else from its frame shape (at least 2.6x as wide as high: full side-by-side; higher than
  wide: full top-bottom); ValueError when neither tells."""
  lowered = name.lower()
  for layout, markers in _NAME_MARKERS:
    if any(marker in lowered for marker in markers):
      return layout
  if width >= 2.6 * height:
    return 'sbs'
  if height > width:
    return 'tb'
  raise ValueError(f'{name}: cannot tell how its {width}x{height} frames hold the two eyes; '
                   f'name the layout ({", ".join(READ_LAYOUTS)})')


def eye_size(layout: str, width: int, height: int) -> tuple[int, int]:
  """(width, height) of one eye as a player shows it, for frames of ``layout``: a half
  layout's eye is stretched back to the whole frame."""
  if layout == 'sbs':
    return width // 2, height
  if layout == 'tb':
    return width, height // 2
  if layout in ('half_sbs', 'half_tb'):
    return width, height
  raise ValueError(f'unknown stereo layout {layout!r}; choose from {READ_LAYOUTS}')


def split(layout: str, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(left, right) eyes of one (H, W, 3) frame of ``layout``, each at its shown aspect (a
  half layout's eyes stretched back, so one pixel of disparity means the same in x and y)."""
  height, width = frame.shape[:2]
  if layout in ('sbs', 'half_sbs'):
    middle = width - width // 2 if layout == 'half_sbs' else width // 2
    left, right = frame[:, :middle], frame[:, middle:middle + width // 2]
  elif layout in ('tb', 'half_tb'):
    left, right = frame[:height // 2], frame[height // 2:2 * (height // 2)]
  else:
    raise ValueError(f'unknown stereo layout {layout!r}; choose from {READ_LAYOUTS}')
  if layout.startswith('half_'):
    size = eye_size(layout, width, height)
    stretch = lambda eye: cv2.resize(eye, size, interpolation=cv2.INTER_LINEAR)
    return stretch(left), stretch(right)
  return left, right
