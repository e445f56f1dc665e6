"""Is rectifying VR180 frames faster than decoding them, and what does the builder add?

  python benchmarks/rectification_throughput.py [--eye_size=1024] [--frames=8] [--out_size=512]

Writes a synthetic VR180 side-by-side video (each eye ``eye_size`` square) with its npz,
then times decoding it and rectifying the decoded frames to two ``out_size`` pinhole views
(60 degrees), and prints decode time / rectify time: above 1, decoding is the bottleneck.
It also times the Stereo4D builder's whole work on that npz (fetching the frames at the
npz's timestamps resampled to 16 fps, rectifying, the disparity filter) in clips of 4
frames, over the time of decoding the video alone.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from data_builders.stereo4d import rectification, vr180_sample  # noqa: E402
from data_builders.stereo4d import stereo4d_dataset_builder as builder  # noqa: E402
from eye2eye_jax.data import video_io  # noqa: E402

FIGURES = {
    'decode_over_rectify': 'VR180 decode time over rectification time per frame (above 1: '
                           'decoding bounds the Stereo4D builder)',
    'builder_over_decode': 'Stereo4D builder time on the sample\'s npz (frames at its '
                           'timestamps, rectified, disparity-filtered) over decoding its video',
}
_CLIP_FRAMES = 4


def measure(eye_size: int = 1024, frames: int = 8, out_size: int = 512) -> dict:
  """Decode and rectify times of a synthetic VR180 video, and their ratio."""
  if frames * 16 < _CLIP_FRAMES * 30:
    raise ValueError(f'frames={frames}: the builder needs at least '
                     f'{-(-_CLIP_FRAMES * 30 // 16)} frames for one clip')
  config = builder.Stereo4DConfig(name='benchmark', size=out_size, clip_frames=_CLIP_FRAMES,
                                  min_equirect_height=eye_size)
  with tempfile.TemporaryDirectory() as directory:
    manual = pathlib.Path(directory)
    video_path, npz_path = vr180_sample.write_sample(manual / 'raw', num_frames=frames,
                                                     eye_hw=(eye_size, eye_size))
    start = time.perf_counter()
    decoded = video_io.read_video(video_path).frames
    decode = time.perf_counter() - start
    start = time.perf_counter()
    built = builder.process_npz(config, manual, npz_path)
    build = time.perf_counter() - start
  if not built['clips']:
    raise RuntimeError(f'the builder made no clip from the sample: {built}')
  rectifier = rectification.Rectifier(vr180_sample.VR180_FOV, vr180_sample.rig_rotations(0),
                                      out_size)
  rectifier(decoded[:1])  # builds the lookup tables once
  start = time.perf_counter()
  rectifier(decoded)
  rectify = time.perf_counter() - start
  return {
      'figures': {'decode_over_rectify': decode / rectify,
                  'builder_over_decode': build / decode},
      'details': {'frames': len(decoded), 'video_size': [decoded.shape[2], decoded.shape[1]],
                  'out_size': out_size, 'decode_ms_per_frame': decode / len(decoded) * 1e3,
                  'rectify_ms_per_frame': rectify / len(decoded) * 1e3,
                  'builder_clips': len(built['clips']), 'builder_seconds': build,
                  'decode_seconds': decode},
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--eye_size', type=int, default=1024,
                      help='Side of each eye\'s equirect image.')
  parser.add_argument('--frames', type=int, default=8, help='Frames of the test video.')
  parser.add_argument('--out_size', type=int, default=512, help='Side of the rectified views.')
  args = parser.parse_args(argv)
  result = measure(args.eye_size, args.frames, args.out_size)
  d = result['details']
  print(f'{d["frames"]} frames of {d["video_size"][0]}x{d["video_size"][1]} -> 2 x '
        f'{d["out_size"]}^2: decode {d["decode_ms_per_frame"]:.1f} ms/frame, rectify '
        f'{d["rectify_ms_per_frame"]:.1f} ms/frame; decode / rectify = '
        f'{result["figures"]["decode_over_rectify"]:.1f}')
  print(f'builder on its npz ({d["builder_clips"]} clips of {_CLIP_FRAMES} frames): '
        f'{d["builder_seconds"]:.2f} s, {result["figures"]["builder_over_decode"]:.1f} x the '
        f'time of decoding the video ({d["decode_seconds"]:.2f} s)')


if __name__ == '__main__':
  main()
