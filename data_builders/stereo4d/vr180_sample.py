"""A small Stereo4D-format sample with known geometry: a VR180 video and its npz.

The scene, in the rig's rectified frame (x right, y down, z forward, metres): a far
textured backdrop, a few textured boards facing the camera at known depths, and small
bright markers at known 3-D points. The camera pans along x. Each eye (left at -b/2,
right at +b/2 along x, b = 63 mm) is rendered into a 180-degree equirect image in its OWN
rig frame (rotated by ``rectified2rig``, as a real lens pair is never perfectly aligned),
and the two are placed side by side, left eye first, as VR180 videos are.

So the whole path -- decode, rectify, select frames, measure disparity, write -- can run on
it, and the truth is known: the rectified pinhole position of every marker, and the
disparity ``f * b / z`` of every board.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib

import numpy as np

from data_builders.stereo4d import rectification
from eye2eye_jax.data import video_io

BASELINE_M = 0.063
VR180_FOV = rectification.FovBounds(-90.0, 90.0, -90.0, 90.0)


@dataclasses.dataclass(frozen=True)
class Board:
  """A textured rectangle facing the camera: centre (x, y) at depth z, size in metres."""
  centre: tuple[float, float, float]
  size: tuple[float, float]
  photo: str


@dataclasses.dataclass(frozen=True)
class Scene:
  boards: tuple[Board, ...]
  markers: tuple[tuple[float, float, float], ...]  # white dots in black rings, on boards
  marker_radius_degrees: float = 1.2  # the dot; its ring reaches twice as far
  backdrop_photo: str = 'coffee'
  pan_m_per_s: float = 0.05  # camera speed along x


def default_scene(near_z: float = 1.5) -> Scene:
  """Boards at 1.5-6 m; markers on them at known points."""
  boards = (Board((0.0, 0.0, 6.0), (8.0, 6.0), 'astronaut'),
            Board((-0.35, 0.1, near_z + 1.5), (0.6, 0.6), 'chelsea'),
            Board((0.3, -0.05, near_z), (0.5, 0.4), 'rocket'))
  markers = ((0.3, -0.05, near_z), (-0.35, 0.1, near_z + 1.5), (0.9, 0.9, 6.0),
             (-1.0, -0.6, 6.0))  # each in view of both eyes
  return Scene(boards, markers)


def rig_rotations(seed: int = 0, max_degrees: float = 2.0) -> np.ndarray:
  """(2, 3, 3) small random rotations from each eye's rectified frame to its rig frame."""
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(2):
    yaw, pitch, roll = np.radians(rng.uniform(-max_degrees, max_degrees, 3))
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)],
                   [0, np.sin(pitch), np.cos(pitch)]])
    rz = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0],
                   [0, 0, 1]])
    out.append(ry @ rx @ rz)
  return np.stack(out)


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
  import skimage.data
  image = getattr(skimage.data, name)()
  if image.ndim == 2:
    image = np.stack([image] * 3, -1)
  return image[..., :3].astype(np.float32) / 255.0


def _sample_photo(name: str, s: np.ndarray, t: np.ndarray) -> np.ndarray:
  """Bilinear-free nearest lookup of a photo at texture coordinates s, t in [0, 1]."""
  photo = _photo(name)
  h, w = photo.shape[:2]
  rows = np.clip((t * (h - 1)).round().astype(int), 0, h - 1)
  cols = np.clip((s * (w - 1)).round().astype(int), 0, w - 1)
  return photo[rows, cols]


def render_eye(scene: Scene, eye_centre: np.ndarray, rectified2rig: np.ndarray,
               equirect_hw: tuple[int, int]) -> np.ndarray:
  """One eye's raw equirect image (H, W, 3) float in [0, 1]."""
  height, width = equirect_hw
  u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
  rig_rays = rectification.equirect_to_rays(u, v, equirect_hw, VR180_FOV)
  rays = rig_rays @ np.asarray(rectified2rig)  # rig -> rectified: R^T applied per ray
  # Backdrop: the direction's longitude and latitude index a photo.
  lon = np.arctan2(rays[..., 0], rays[..., 2])
  lat = np.arcsin(np.clip(rays[..., 1], -1, 1))
  image = _sample_photo(scene.backdrop_photo, (lon / np.pi + 0.5), (lat / np.pi + 0.5))
  depth = np.full((height, width), np.inf)
  for board in sorted(scene.boards, key=lambda b: -b.centre[2]):  # far to near
    bx, by, bz = board.centre
    with np.errstate(divide='ignore', invalid='ignore'):
      distance = (bz - eye_centre[2]) / rays[..., 2]
    hit = eye_centre + distance[..., None] * rays
    s = (hit[..., 0] - bx) / board.size[0] + 0.5
    t = (hit[..., 1] - by) / board.size[1] + 0.5
    inside = (distance > 0) & (s >= 0) & (s <= 1) & (t >= 0) & (t <= 1) & (distance < depth)
    image[inside] = _sample_photo(board.photo, s[inside], t[inside])
    depth[inside] = distance[inside]
    for marker in scene.markers:
      if abs(marker[2] - bz) > 1e-9:
        continue
      offset = np.linalg.norm(hit[..., :2] - np.array(marker[:2]), axis=-1)
      radius = bz * np.tan(np.radians(scene.marker_radius_degrees))
      image[inside & (offset < 2 * radius)] = 0.0  # a black ring around a white dot: found
      image[inside & (offset < radius)] = 1.0  # again by brightness, which video keeps sharp
  return image


def render_sbs(scene: Scene, rectified2rig: np.ndarray, eye_hw: tuple[int, int],
               camera_x: float = 0.0) -> np.ndarray:
  """One side-by-side VR180 frame (H, 2W, 3) uint8, left eye first."""
  halves = [render_eye(scene, np.array([camera_x + sign * BASELINE_M / 2, 0.0, 0.0]),
                       rectified2rig[e], eye_hw) for e, sign in ((0, -1.0), (1, 1.0))]
  return np.clip(np.round(np.concatenate(halves, axis=1) * 255), 0, 255).astype(np.uint8)


def pinhole_position(point, eye_x: float, size: int, hfov_degrees: float) -> tuple[float, float]:
  """Where the release's pinhole view puts a 3-D point seen from an eye at (eye_x, 0, 0):
  (column, row) in pixel-index coordinates (pixel i spans [i, i+1) and is centred at i+0.5)."""
  f = rectification.focal_length(size, hfov_degrees)
  x, y, z = point[0] - eye_x, point[1], point[2]
  return f * x / z + size / 2 - 0.5, f * y / z + size / 2 - 0.5


def write_sample(directory: str | pathlib.Path, video_id: str = 'synthetic_vr180',
                 num_frames: int = 24, fps: float = 30.0, eye_hw: tuple[int, int] = (384, 384),
                 scene: Scene | None = None, seed: int = 0, first_frame: int = 0,
                 upscale: int = 1) -> tuple[pathlib.Path, pathlib.Path]:
  """Writes ``<video_id>.mp4`` (VR180 side by side) and ``<video_id>_<t0>.npz`` with the
  release's field names; returns their paths. The npz's clip starts at ``first_frame``
  of the video (as a real one starts somewhere inside its source video). ``upscale`` > 1
  renders at ``eye_hw / upscale`` and enlarges (bilinear): a source of a real video's size
  at a fraction of the rendering time, with the enlarged image's detail."""
  directory = pathlib.Path(directory)
  scene = scene or default_scene()
  rotations = rig_rotations(seed)
  times_s = np.arange(num_frames) / fps
  rendered_hw = (eye_hw[0] // upscale, eye_hw[1] // upscale)
  frames = np.stack([render_sbs(scene, rotations, rendered_hw, scene.pan_m_per_s * t)
                     for t in times_s])
  if upscale > 1:
    import cv2
    frames = np.stack([cv2.resize(f, (2 * eye_hw[1], eye_hw[0]), interpolation=cv2.INTER_LINEAR)
                       for f in frames])
  video = video_io.write_video(directory / f'{video_id}.mp4', frames, fps, crf=12)
  timestamps = np.round(times_s[first_frame:] * 1e6).astype(np.int64)
  camera2world = np.zeros((len(timestamps), 3, 4), np.float32)
  camera2world[:, :, :3] = np.eye(3)
  camera2world[:, 0, 3] = scene.pan_m_per_s * times_s[first_frame:]
  name = f'{video_id}_{timestamps[0]}'
  npz = directory / f'{name}.npz'
  np.savez(npz, name=name, video_id=video_id, timestamps=timestamps,
           camera2world=camera2world, rectified2rig=rotations.astype(np.float32),
           fov_bounds=np.array([VR180_FOV.start_yaw, VR180_FOV.end_yaw, VR180_FOV.start_tilt,
                                VR180_FOV.end_tilt], np.float32),
           track_lengths=np.zeros((0,), np.int32), track_indices=np.zeros((0,), np.int32),
           track_coordinates=np.zeros((0, 3), np.float32))
  return video, npz


def write_release_output(processed: str | pathlib.Path, npz_path: str | pathlib.Path,
                         raw_video: str | pathlib.Path, size: int = 512,
                         hfov_degrees: float = 60.0) -> dict[str, pathlib.Path]:
  """What the release's ``rectify.py`` leaves for one npz, in its layout and conventions:
  ``<processed>/<name>/<name>-{left,right}_rectified.mp4`` holding one pinhole frame per
  entry of the npz's timestamps, in order, written at 30 fps from time 0, beside
  ``<name>-raw_equirect.mp4`` (the source frames it read). Returns the paths by kind."""
  with np.load(npz_path) as npz:
    name, timestamps = str(npz['name']), npz['timestamps']
    rectify = rectification.Rectifier(rectification.FovBounds.from_array(npz['fov_bounds']),
                                      npz['rectified2rig'], size, hfov_degrees)
  frames = video_io.read_frames_at(raw_video, timestamps / 1e6)
  left, right = rectify(frames)
  folder = pathlib.Path(processed) / name
  paths = {'raw_equirect': folder / f'{name}-raw_equirect.mp4',
           'left': folder / f'{name}-left_rectified.mp4',
           'right': folder / f'{name}-right_rectified.mp4'}
  for kind, video in (('raw_equirect', frames), ('left', left), ('right', right)):
    video_io.write_video(paths[kind], video, 30.0)
  return paths
