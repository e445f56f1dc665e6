"""Rectified perspective stereo pairs from side-by-side VR180 equirectangular frames.

The Stereo4D release rectifies each eye in two remaps: raw equirect -> rectified equirect
(rotating every ray by the eye's ``rectified2rig``), then rectified equirect -> a pinhole
view (512x512, 60 degrees horizontal field of view). Both are pure functions of the ray,
so here they are composed into ONE lookup table per eye, computed once per frame size and
applied with one bilinear ``cv2.remap`` per frame: the same geometry, one interpolation
instead of two, and fast enough that decoding the video is the bottleneck.

Conventions (the release's): a ray (x, y, z) has longitude atan2(x, z) and latitude
asin(y) (y points down); equirect column 0 is ``start_yaw`` and the last column
``end_yaw``, row 0 ``start_tilt``, the last row ``end_tilt``; the pinhole camera looks down
+z with its principal point at the image centre and pixel centres at +0.5.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class FovBounds:
  """Angular extent (degrees) of one eye's equirect image: the npz's ``fov_bounds``."""
  start_yaw: float
  end_yaw: float
  start_tilt: float
  end_tilt: float

  @classmethod
  def from_array(cls, values) -> 'FovBounds':
    values = np.asarray(values, np.float64).reshape(-1)
    if values.shape != (4,):
      raise ValueError(f'fov_bounds must hold 4 angles (start/end yaw, start/end tilt), got '
                       f'{values.shape}')
    if values[1] <= values[0] or values[3] <= values[2]:
      raise ValueError(f'fov_bounds {values.tolist()}: each end must exceed its start')
    return cls(*map(float, values))


def focal_length(size: int, hfov_degrees: float) -> float:
  """Pinhole focal length (px) of an image ``size`` px wide with this horizontal FOV."""
  return size / 2 / np.tan(np.radians(hfov_degrees) / 2)


def perspective_rays(size: int, hfov_degrees: float) -> np.ndarray:
  """(size, size, 3) unit rays of a square pinhole camera looking down +z, y down."""
  f = focal_length(size, hfov_degrees)
  centre = np.arange(size, dtype=np.float64) + 0.5 - size / 2
  x, y = np.meshgrid(centre / f, centre / f)
  rays = np.stack([x, y, np.ones_like(x)], axis=-1)
  return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def rays_to_equirect(rays: np.ndarray, equirect_hw: tuple[int, int],
                     fov: FovBounds) -> tuple[np.ndarray, np.ndarray]:
  """Pixel coordinates (u, v) in an equirect image of the given size for unit ``rays``."""
  lon = np.arctan2(rays[..., 0], rays[..., 2])
  lat = np.arcsin(np.clip(rays[..., 1], -1.0, 1.0))
  height, width = equirect_hw
  u = (lon - np.radians(fov.start_yaw)) / np.radians(fov.end_yaw - fov.start_yaw) * (width - 1)
  v = (lat - np.radians(fov.start_tilt)) / np.radians(fov.end_tilt - fov.start_tilt) * (
      height - 1)
  return u, v


def equirect_to_rays(u: np.ndarray, v: np.ndarray, equirect_hw: tuple[int, int],
                     fov: FovBounds) -> np.ndarray:
  """Unit rays of equirect pixel coordinates (the inverse of ``rays_to_equirect``)."""
  height, width = equirect_hw
  lon = np.radians(fov.start_yaw) + u / (width - 1) * np.radians(fov.end_yaw - fov.start_yaw)
  lat = np.radians(fov.start_tilt) + v / (height - 1) * np.radians(
      fov.end_tilt - fov.start_tilt)
  return np.stack([np.cos(lat) * np.sin(lon), np.sin(lat), np.cos(lat) * np.cos(lon)], -1)


def eye_map(equirect_hw: tuple[int, int], fov: FovBounds, rectified2rig: np.ndarray,
            size: int, hfov_degrees: float) -> tuple[np.ndarray, np.ndarray]:
  """For each pixel of one eye's rectified pinhole view, where to sample its raw equirect
  half: (map_x, map_y) float32 for ``cv2.remap``."""
  rectified2rig = np.asarray(rectified2rig, np.float64)
  if rectified2rig.shape != (3, 3):
    raise ValueError(f'rectified2rig must be a 3x3 rotation, got shape {rectified2rig.shape}')
  rays = perspective_rays(size, hfov_degrees) @ rectified2rig.T
  u, v = rays_to_equirect(rays, equirect_hw, fov)
  return u.astype(np.float32), v.astype(np.float32)


@dataclasses.dataclass
class Rectifier:
  """Turns side-by-side VR180 frames (left eye in the left half) into rectified pairs.

  ``rectified2rig``: (2, 3, 3), [0] left eye, [1] right eye. The lookup tables are built on
  the first frame and reused for every frame of that size.
  """
  fov: FovBounds
  rectified2rig: np.ndarray
  size: int = 512
  hfov_degrees: float = 60.0
  _maps: dict = dataclasses.field(default_factory=dict, repr=False)

  def __post_init__(self):
    self.rectified2rig = np.asarray(self.rectified2rig, np.float64)
    if self.rectified2rig.shape != (2, 3, 3):
      raise ValueError(f'rectified2rig must be (2, 3, 3) (left, right), got '
                       f'{self.rectified2rig.shape}')
    if not 0 < self.hfov_degrees < 180 or self.size < 1:
      raise ValueError(f'bad output view: {self.size} px, {self.hfov_degrees} degrees')

  def _maps_for(self, eye_hw: tuple[int, int]):
    if eye_hw not in self._maps:
      self._maps[eye_hw] = [eye_map(eye_hw, self.fov, self.rectified2rig[e], self.size,
                                    self.hfov_degrees) for e in (0, 1)]
    return self._maps[eye_hw]

  def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """frames: (T, H, 2W, 3) side-by-side -> (left, right), each (T, size, size, 3)."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
      frames = frames[None]
    if frames.ndim != 4 or frames.shape[2] % 2:
      raise ValueError(f'expected side-by-side frames (T, H, 2W, C), got {frames.shape}')
    width = frames.shape[2] // 2
    maps = self._maps_for((frames.shape[1], width))
    views = []
    for eye, half in enumerate((slice(0, width), slice(width, 2 * width))):
      map_x, map_y = maps[eye]
      views.append(np.stack([
          cv2.remap(frame[:, half], map_x, map_y, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0) for frame in frames]))
    return views[0], views[1]
