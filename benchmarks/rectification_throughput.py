"""Is rectifying VR180 frames faster than decoding them?

  python benchmarks/rectification_throughput.py [--eye_size=1024] [--frames=8] [--out_size=512]

Writes a synthetic VR180 side-by-side video (each eye ``eye_size`` square), then times
decoding it and rectifying the decoded frames to two ``out_size`` pinhole views (60 degrees),
and prints decode time / rectify time: above 1, decoding is the bottleneck.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile
import time

from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from data_builders.stereo4d import rectification, vr180_sample  # noqa: E402
from eye2eye_jax import video_io  # noqa: E402

_EYE_SIZE = flags.DEFINE_integer('eye_size', 1024, 'Side of each eye\'s equirect image.')
_FRAMES = flags.DEFINE_integer('frames', 8, 'Frames of the test video.')
_OUT_SIZE = flags.DEFINE_integer('out_size', 512, 'Side of the rectified views.')


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as directory:
    video_path, npz_path = vr180_sample.write_sample(
        directory, num_frames=_FRAMES.value, eye_hw=(_EYE_SIZE.value, _EYE_SIZE.value))
    start = time.perf_counter()
    frames = video_io.read_video(video_path).frames
    decode = time.perf_counter() - start
  rectifier = rectification.Rectifier(vr180_sample.VR180_FOV, vr180_sample.rig_rotations(0),
                                      _OUT_SIZE.value)
  rectifier(frames[:1])  # builds the lookup tables once
  start = time.perf_counter()
  rectifier(frames)
  rectify = time.perf_counter() - start
  print(f'{len(frames)} frames of {frames.shape[2]}x{frames.shape[1]} -> 2 x '
        f'{_OUT_SIZE.value}^2: decode {decode / len(frames) * 1e3:.1f} ms/frame, rectify '
        f'{rectify / len(frames) * 1e3:.1f} ms/frame; decode / rectify = {decode / rectify:.1f}')


if __name__ == '__main__':
  app.run(main)
