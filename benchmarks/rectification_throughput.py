"""The Stereo4D builder's throughput: its whole work per frame, against decoding alone.

  python benchmarks/rectification_throughput.py [--eye_size=1920] [--frames=126] [--out_size=512]

Writes a synthetic VR180 side-by-side video at a real source's size (default 3840x1920 at
30 fps: each eye ``eye_size`` square, rendered at a quarter of the pixels and enlarged) with
an npz whose clip starts a second into it, laid out as the release's tree. Then it times,
``repeats`` times each (the median is reported):
- decoding alone: one pass over the frames the npz's clips use, as the builder reads them
  (``video_io.iter_frames``: a seek to the first, then every frame to the last);
- the whole builder: TFDS's ``download_and_prepare`` on that tree, from nothing to the
  finished ArrayRecord shards (probing the video, the decode pass, rectification to two
  ``out_size`` pinhole views, the disparity filter, the cache, record encoding, ArrayRecord's
  zstd compression and writing, TFDS's metadata), per output frame (16 fps clips of 8
  frames); and, inside it, the builder's per-npz work alone (``_process_to_cache``);
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
import tensorflow_datasets as tfds

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from data_builders.stereo4d import clips, frame_sources, rectification, vr180_sample  # noqa: E402,E501
from data_builders.stereo4d import stereo4d_dataset_builder as builder  # noqa: E402
from eye2eye_jax.data import video_io  # noqa: E402

FIGURES = {
    'builder_over_decode': 'the Stereo4D builder from its release tree to finished shards '
                           '(decode pass, rectification, disparity filter, cache, record '
                           'encoding and writing) over decoding the same frames alone',
    'decode_over_rectify': 'VR180 decode time over rectification time per frame (above 1: '
                           'decoding bounds the Stereo4D builder)',
}
_CLIP_FRAMES = 8
_FPS = 30.0


def measure(eye_size: int = 1920, frames: int = 126, out_size: int = 512,
            repeats: int = 3) -> dict:
  """Builder, decode and rectify times on a synthetic VR180 source of 2*eye_size x eye_size."""
  first = int(_FPS)  # the npz starts 1 s into its video, as real ones start inside theirs
  if (frames - first) * 16 < _CLIP_FRAMES * _FPS:
    raise ValueError(f'frames={frames}: the builder needs at least '
                     f'{first + -(-_CLIP_FRAMES * int(_FPS) // 16)} frames for one clip')
  config = builder.Stereo4DConfig(name='benchmark', size=out_size, clip_frames=_CLIP_FRAMES,
                                  min_equirect_height=eye_size, validation_per_mille=0)
  times = {'decode': [], 'builder': [], 'npz': []}
  with tempfile.TemporaryDirectory() as directory:
    manual = pathlib.Path(directory) / 'release'
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
    info = video_io.video_info(video_path)
    for repeat in range(repeats):
      start = time.perf_counter()
      for _, frame in video_io.iter_frames(video_path, used, info):
        pass  # decoded and dropped, as the builder drops each frame once rectified
      times['decode'].append(time.perf_counter() - start)
      tfds_builder = builder.Builder(config=config, file_format='array_record',
                                     data_dir=str(pathlib.Path(directory) / f'tfds{repeat}'))
      start = time.perf_counter()
      tfds_builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
      times['builder'].append(time.perf_counter() - start)
      start = time.perf_counter()
      builder._process_to_cache(config, str(manual), str(npz_path),
                                str(pathlib.Path(directory) / f'cache{repeat}.npz'))
      times['npz'].append(time.perf_counter() - start)
    clips_built = tfds_builder.info.splits['train'].num_examples
    decoded = [frame for _, frame in video_io.iter_frames(video_path, used[:16], info)]
  if not clips_built:
    raise RuntimeError('the builder made no clip from the sample')
  decode, build, npz_work = (float(np.median(times[k])) for k in ('decode', 'builder', 'npz'))
  rectifier = rectification.Rectifier(vr180_sample.VR180_FOV, vr180_sample.rig_rotations(0),
                                      out_size)
  rectifier(decoded[0][None])  # builds the lookup tables once
  start = time.perf_counter()
  for frame in decoded:  # one at a time, as the builder does
    rectifier(frame[None])
  rectify = time.perf_counter() - start
  decoded_frames = int(used.max() - used.min() + 1)  # the pass decodes the whole span
  output_frames = clips_built * _CLIP_FRAMES
  return {
      'figures': {'builder_over_decode': build / decode,
                  'decode_over_rectify': decode / decoded_frames / (rectify / len(decoded))},
      'details': {'source': f'{2 * eye_size}x{eye_size} VR180 at {_FPS:g} fps',
                  'out_size': out_size, 'clips': clips_built, 'output_frames': output_frames,
                  'decoded_frames': decoded_frames, 'repeats': repeats,
                  'decode_seconds': decode, 'builder_seconds': build,
                  'builder_npz_seconds': npz_work,
                  'npz_work_over_decode': npz_work / decode,
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
  parser.add_argument('--repeats', type=int, default=3, help='Timings of each (median).')
  args = parser.parse_args(argv)
  result = measure(args.eye_size, args.frames, args.out_size, args.repeats)
  d = result['details']
  print(f'{d["source"]} -> 2 x {d["out_size"]}^2: decode {d["decode_ms_per_frame"]:.1f} '
        f'ms/frame, rectify {d["rectify_ms_per_frame"]:.1f} ms/frame')
  print(f'builder: {d["clips"]} clips, {d["builder_ms_per_output_frame"]:.0f} ms per output '
        f'frame; {result["figures"]["builder_over_decode"]:.2f} x decoding the same '
        f'{d["decoded_frames"]} frames alone (its per-npz work alone: '
        f'{d["npz_work_over_decode"]:.2f} x)')


if __name__ == '__main__':
  main()
