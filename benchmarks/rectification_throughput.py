"""The Stereo4D builder's throughput: its whole work per frame, against decoding alone.

  python benchmarks/rectification_throughput.py [--eye_size=1920] [--frames=126] [--out_size=512]

Writes a synthetic VR180 side-by-side video at a real source's size (default 3840x1920 at
30 fps: each eye ``eye_size`` square, rendered at a quarter of the pixels and enlarged) with
an npz whose clip starts a second into it, laid out as the release's tree. Then it times:
- decoding alone: one pass over the frames the npz's clips use, as the builder reads them
  (``video_io.iter_frames``: a seek to the first, then every frame to the last);
- the whole builder on that npz: its per-npz work (``_process_to_cache``: the same pass,
  rectification to two ``out_size`` pinhole views, the disparity filter, the cache written
  to disk) and the encoding of its clips into dataset records (TFDS's zlib-compressed
  tensors, what the ArrayRecord shards hold), per output frame (16 fps clips of 8 frames);
- rectification alone on the decoded frames.
and prints builder / decode (the goal is at most 1.25) and decode / rectify.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from data_builders.stereo4d import clips, frame_sources, rectification, vr180_sample  # noqa: E402,E501
from data_builders.stereo4d import stereo4d_dataset_builder as builder  # noqa: E402
from eye2eye_jax.data import video_io  # noqa: E402

FIGURES = {
    'builder_over_decode': 'the Stereo4D builder\'s whole work on an npz (decode pass, '
                           'rectification, disparity filter, cache, record encoding) over '
                           'decoding the same frames alone',
    'decode_over_rectify': 'VR180 decode time over rectification time per frame (above 1: '
                           'decoding bounds the Stereo4D builder)',
}
_CLIP_FRAMES = 8
_FPS = 30.0


def measure(eye_size: int = 1920, frames: int = 126, out_size: int = 512) -> dict:
  """Builder, decode and rectify times on a synthetic VR180 source of 2*eye_size x eye_size."""
  first = int(_FPS)  # the npz starts 1 s into its video, as real ones start inside theirs
  if (frames - first) * 16 < _CLIP_FRAMES * _FPS:
    raise ValueError(f'frames={frames}: the builder needs at least '
                     f'{first + -(-_CLIP_FRAMES * int(_FPS) // 16)} frames for one clip')
  config = builder.Stereo4DConfig(name='benchmark', size=out_size, clip_frames=_CLIP_FRAMES,
                                  min_equirect_height=eye_size)
  with tempfile.TemporaryDirectory() as directory:
    manual = pathlib.Path(directory)
    video_path, npz_path = vr180_sample.write_sample(
        manual / 'raw', num_frames=frames, fps=_FPS, eye_hw=(eye_size, eye_size),
        first_frame=first, upscale=2 if eye_size >= 512 else 1)
    (manual / 'npz').mkdir()
    npz_path = npz_path.rename(manual / 'npz' / npz_path.name)
    with np.load(npz_path) as npz:
      source = frame_sources.RawVR180(video_path, dict(npz), npz_path, out_size, 60.0,
                                              eye_size)
      plans = clips.plan_clips(str(npz['name']), npz['timestamps'], 16, _CLIP_FRAMES)
    used = np.unique(np.concatenate([source.indices(p) for p in plans]))
    start = time.perf_counter()
    decoded = [frame for _, frame in video_io.iter_frames(video_path, used)]
    decode = time.perf_counter() - start
    decoded_frames = int(used.max() - used.min() + 1)  # the pass decodes the whole span
    start = time.perf_counter()
    builder._process_to_cache(config, str(manual), str(npz_path), str(manual / 'cache.npz'))
    process = time.perf_counter() - start
    report, records = builder._read_cache(manual / 'cache.npz')
    features = builder.Builder(config=config, data_dir=str(manual / 'tfds')).info.features
    start = time.perf_counter()
    for record in records:  # what writing the ArrayRecord shards encodes (zlib per view)
      features.encode_example(record)
    encode = time.perf_counter() - start
    build = process + encode
  if not records:
    raise RuntimeError(f'the builder made no clip from the sample: {report}')
  rectifier = rectification.Rectifier(vr180_sample.VR180_FOV, vr180_sample.rig_rotations(0),
                                      out_size)
  rectifier(decoded[0][None])  # builds the lookup tables once
  start = time.perf_counter()
  for frame in decoded:  # one at a time, as the builder does
    rectifier(frame[None])
  rectify = time.perf_counter() - start
  output_frames = len(records) * _CLIP_FRAMES
  return {
      'figures': {'builder_over_decode': build / decode,
                  'decode_over_rectify': decode / decoded_frames / (rectify / len(decoded))},
      'details': {'source': f'{2 * eye_size}x{eye_size} VR180 at {_FPS:g} fps',
                  'out_size': out_size, 'clips': len(records), 'output_frames': output_frames,
                  'decoded_frames': decoded_frames, 'decode_seconds': decode,
                  'builder_seconds': build, 'builder_npz_seconds': process,
                  'builder_encode_seconds': encode,
                  'builder_ms_per_output_frame': build / output_frames * 1e3,
                  'decode_ms_per_frame': decode / decoded_frames * 1e3,
                  'rectify_ms_per_frame': rectify / len(decoded) * 1e3},
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--eye_size', type=int, default=1920,
                      help='Side of each eye\'s equirect image.')
  parser.add_argument('--frames', type=int, default=126,
                      help='Frames of the test video (the npz uses those after the first 30).')
  parser.add_argument('--out_size', type=int, default=512, help='Side of the rectified views.')
  args = parser.parse_args(argv)
  result = measure(args.eye_size, args.frames, args.out_size)
  d = result['details']
  print(f'{d["source"]} -> 2 x {d["out_size"]}^2: decode {d["decode_ms_per_frame"]:.1f} '
        f'ms/frame, rectify {d["rectify_ms_per_frame"]:.1f} ms/frame')
  print(f'builder: {d["clips"]} clips, {d["builder_ms_per_output_frame"]:.0f} ms per output '
        f'frame; {result["figures"]["builder_over_decode"]:.2f} x decoding the same '
        f'{d["decoded_frames"]} frames alone')


if __name__ == '__main__':
  main()
