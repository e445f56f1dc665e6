"""A real stereo pair as a small rectified-pair clip: Middlebury's motorcycle, panned.

scikit-image ships one real rectified stereo pair with ground-truth disparity
(``skimage.data.stereo_motorcycle``: Middlebury 2014, 741x500, disparities 7-60 px). This
module turns it into what the Stereo4D builder's ``rectified`` configs read, in the
release's layout: a square window slides slowly left to right across both eyes at once (a
camera pan, so the pair stays rectified), each frame resized to ``size``, written as
``processed/<name>/<name>-{left,right}_rectified.mp4`` at 30 fps with an npz whose
timestamps start 10 s in. The ground-truth disparity of the right view's pixels is not
shipped (Middlebury gives the left's), so the clip's true median disparity is returned for
checking the instruments.
"""

from __future__ import annotations

import pathlib

import numpy as np

from eye2eye_jax.data import frame_ops, video_io

NAME = 'middlebury_motorcycle_10000000'
VIDEO_ID = 'middlebury_motorcycle'


def pan(frames: int, size: int) -> tuple[np.ndarray, np.ndarray, float]:
  """(left, right) (frames, size, size, 3) uint8 clips of the pan, and the median
  ground-truth disparity of the left frames in pixels at ``size``."""
  import skimage.data
  left, right, disparity = skimage.data.stereo_motorcycle()
  height, width = left.shape[:2]
  starts = np.round(np.linspace(0, width - height, frames)).astype(int)
  crop = lambda image: np.stack([image[:, x:x + height] for x in starts])
  resize = lambda clip: frame_ops.resize_clip(clip, size, size)
  truth = crop(disparity)
  return (resize(crop(left)), resize(crop(right)),
          float(np.median(truth[np.isfinite(truth)])) * size / height)


def write_clip(manual_dir: str | pathlib.Path, frames: int = 32, size: int = 128) -> float:
  """Writes the pan as the release's tree under ``manual_dir`` (npz/ and processed/);
  returns its median true disparity in pixels at ``size``."""
  manual_dir = pathlib.Path(manual_dir)
  left, right, median = pan(frames, size)
  folder = manual_dir / 'processed' / NAME
  for eye, clip in (('left', left), ('right', right)):
    video_io.write_video(folder / f'{NAME}-{eye}_rectified.mp4', clip, 30.0, crf=12)
  (manual_dir / 'npz').mkdir(parents=True, exist_ok=True)
  timestamps = 10_000_000 + np.round(np.arange(frames) * 1e6 / 30).astype(np.int64)
  np.savez(manual_dir / 'npz' / f'{NAME}.npz', name=NAME, video_id=VIDEO_ID,
           timestamps=timestamps)
  return median
