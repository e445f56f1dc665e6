"""Layouts of a stereo pair that players and screens read: side-by-side and anaglyph.

Dubois' least-squares red-cyan matrices (for sRGB, applied in linear light) are the default
anaglyph; red comes from the left eye.
"""

from __future__ import annotations

import numpy as np

# Dubois (2001) red-cyan matrices: rows give linear R, G, B of the anaglyph.
_DUBOIS_LEFT = np.array([[0.437, 0.449, 0.164],
                         [-0.062, -0.062, -0.024],
                         [-0.048, -0.050, -0.017]], np.float32)
_DUBOIS_RIGHT = np.array([[-0.011, -0.032, -0.007],
                          [0.377, 0.761, 0.009],
                          [-0.026, -0.093, 1.234]], np.float32)


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
  """Full side-by-side frames: left eye on the left half. Shapes (T, H, W, 3) -> (T, H, 2W, 3)."""
  return np.concatenate([left, right], axis=2)


def _to_linear(x: np.ndarray) -> np.ndarray:
  x = x.astype(np.float32) / 255.0
  return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055)**2.4)


def _to_srgb(x: np.ndarray) -> np.ndarray:
  x = np.clip(x, 0.0, 1.0)
  x = np.where(x <= 0.0031308, 12.92 * x, 1.055 * x**(1 / 2.4) - 0.055)
  return np.round(x * 255.0).astype(np.uint8)


def anaglyph(left: np.ndarray, right: np.ndarray) -> np.ndarray:
  """Red-cyan Dubois anaglyph of uint8 (..., 3) views."""
  mixed = _to_linear(left) @ _DUBOIS_LEFT.T + _to_linear(right) @ _DUBOIS_RIGHT.T
  return _to_srgb(mixed)
