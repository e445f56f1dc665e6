"""Where the frames of an npz's clips come from, each video read in one pass.

The release's tree, as its tools leave it (their defaults: ``stereo4d_dataset/npz``,
``stereo4d_dataset/raw`` and ``stereo4d_dataset/processed``; other folder names through
the builder config):

  npz/<name>.npz                               the annotations; <name> = <video_id>_<t0>
  raw/<video_id>.mp4                           the VR180 video, side by side, left eye first
  processed/<name>/<name>-left_rectified.mp4   rectify.py's pinhole views: one frame per
  processed/<name>/<name>-right_rectified.mp4  entry of the npz's ``timestamps``, in order,
                                               written at 30 fps from time 0 (the folder
                                               also holds its -raw_equirect and
                                               -rectified_equirect videos, unused here)

A clip's frames are found by index: in the raw video, the frame shown at each timestamp
(``round(t * fps)``: the timestamps are times in that video); in the rectified pair, the
timestamp's position in the npz's list (the pair's own frame rate says nothing about the
source's). Every clip of an npz is cut from one decoding pass per video that starts with a
seek to the first frame needed, so the work grows with the frames used, and only the
frames of the clip being assembled are held, with the few ``video_io.iter_frames`` decodes
ahead (an 8K frame is rectified as soon as it is handed over).
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import numpy as np

from data_builders.stereo4d import clips, rectification
from eye2eye_jax.data import frame_ops, video_io


class Skip(Exception):
  """An input that cannot be used; the message is the reason's name and detail."""

  def __init__(self, reason: str, detail: str):
    super().__init__(f'{reason}: {detail}')
    self.reason = reason


def _info(video: pathlib.Path) -> video_io.VideoInfo:
  try:
    return video_io.video_info(video)
  except video_io.VideoError as error:
    raise Skip('unreadable_video', str(error)) from error


def _require(video: pathlib.Path, npz_path: pathlib.Path) -> None:
  if not video.is_file():
    raise Skip('missing_video', f'{npz_path.name}: {video} does not exist')


class RawVR180:
  """The raw VR180 video of an npz, each frame rectified to the two pinhole views."""

  def __init__(self, video: pathlib.Path, npz: dict, npz_path: pathlib.Path, size: int,
               hfov_degrees: float, min_height: int):
    _require(video, npz_path)
    self.video, self._info = video, _info(video)
    info = self._info
    if info.height < min_height:
      raise Skip('below_vr180_resolution', f'{video}: {info.width}x{info.height}, needs a '
                 f'height of at least {min_height}')
    self.num_frames, self._fps = info.num_frames, info.fps
    self._rectify = rectification.Rectifier(
        rectification.FovBounds.from_array(npz['fov_bounds']), npz['rectified2rig'], size,
        hfov_degrees)

  def indices(self, plan: clips.ClipPlan) -> np.ndarray:
    return np.round(plan.times_us / 1e6 * self._fps).astype(np.int64)

  def frames(self, indices) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray]]]:
    for index, frame in video_io.iter_frames(self.video, indices, self._info):
      left, right = self._rectify(frame[None])
      yield index, (left[0], right[0])


class RectifiedPair:
  """rectify.py's pair for one npz, resized to the builder's size."""

  def __init__(self, left: pathlib.Path, right: pathlib.Path, timestamps: np.ndarray,
               npz_path: pathlib.Path, size: int):
    for video in (left, right):
      _require(video, npz_path)
    infos = [_info(left), _info(right)]
    sizes = [f'{i.width}x{i.height}' for i in infos]
    if sizes[0] != sizes[1]:
      raise Skip('mismatched_pair', f'{left} is {sizes[0]}, {right} is {sizes[1]}')
    for video, info in zip((left, right), infos):
      if info.num_frames != len(timestamps):
        reason = 'pair_shorter_than_timestamps' if info.num_frames < len(timestamps) else (
            'pair_longer_than_timestamps')
        raise Skip(reason, f'{video} has {info.num_frames} frames for the '
                   f'{len(timestamps)} timestamps of {npz_path.name}')
    self._videos, self._infos = (left, right), infos
    self._timestamps, self._size = timestamps, size
    self.num_frames = len(timestamps)

  def indices(self, plan: clips.ClipPlan) -> np.ndarray:
    return np.searchsorted(self._timestamps, plan.times_us)

  def frames(self, indices) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray]]]:
    resize = lambda frame: frame_ops.resize_clip(frame[None], self._size, self._size)[0]
    for (index, left), (_, right) in zip(*(video_io.iter_frames(v, indices, i)
                                           for v, i in zip(self._videos, self._infos))):
      yield index, (resize(left), resize(right))


def cut_clips(source: RawVR180 | RectifiedPair, plans: list[clips.ClipPlan]
              ) -> Iterator[tuple[clips.ClipPlan, np.ndarray, np.ndarray]]:
  """(plan, left, right) for each plan, in order, from one pass over ``source``; plans are
  in time order (as ``clips.plan_clips`` makes them). A video that fails part-way raises
  Skip('unreadable_video') after the clips before it."""
  wanted = [source.indices(plan) for plan in plans]
  every = np.unique(np.concatenate(wanted)) if wanted else np.zeros(0, np.int64)
  held, k = {}, 0
  try:
    for index, pair in source.frames(every):
      held[index] = pair
      while k < len(plans) and wanted[k].max() <= index:
        yield (plans[k], np.stack([held[i][0] for i in wanted[k]]),
               np.stack([held[i][1] for i in wanted[k]]))
        k += 1
        first_needed = wanted[k].min() if k < len(plans) else np.inf
        held = {i: v for i, v in held.items() if i >= first_needed}
  except video_io.VideoError as error:
    raise Skip('unreadable_video', str(error)) from error
