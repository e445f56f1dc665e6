"""How fast does a video convert, how does the cost grow with its length, and what does
the memory do?

  python benchmarks/conversion_speed.py [--frames=64] [--size=64] [--settings=...] \
      [--output=FILE.json]

With the bundled demo models (``configs/demo.py``), on a synthetic panning video of
``frames`` x ``size`` x ``size`` written as an mp4, each measured after an untimed run
that compiles its shapes:

* **speed per setting** (solver, base steps + refiner steps): seconds per output frame and
  frames per second of ``video_conversion.convert_file`` (decode, both stages, encode every
  layout), and the speed-up over the default 25 + 12 DDIM steps;
* **window overlap** (``sample.window_overlap``, the speed setting inside a chunk): seconds
  per frame and the seam it leaves, the mean frame-to-frame change where windows meet over
  the mean change elsewhere on a still video (1: no seam);
* **cost growth**: the time of 2x and 4x the frames over the time of ``frames``, at the
  fastest overlap (0) and the fast solver;
* **peak memory**: the peak resident memory of a process converting a video 4x and 20x the
  model's window, streamed in chunks (``sample.chunk_frames``) and, for contrast, as one
  chunk holding the whole video; and the growth of each over the process's memory before
  the conversion (the refiner on 128-px tiles, as a large video is converted).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from eye2eye_jax import config_base  # noqa: E402
from eye2eye_jax.common import atomic_files, runtime  # noqa: E402
from eye2eye_jax.data import synthetic_scenes, video_io  # noqa: E402
from eye2eye_jax.sampling import video_conversion, window_blending  # noqa: E402

DEMO = pathlib.Path(__file__).resolve().parent.parent / 'configs' / 'demo.py'
DEFAULT_SETTINGS = 'ddim:25+12,dpmpp_2m:4+2,dpmpp_2m:2+2,students'
MIB = 2**20


def panning_video(frames: int, size: int, seed: int = 0) -> np.ndarray:
  """A synthetic right-eye video: one scene whose camera pans for ``frames`` frames."""
  params = synthetic_scenes.SceneParams(num_frames=frames, height=size, width=size,
                                        max_disparity=size / 8, camera_speed_range=(0.1, 0.1))
  return synthetic_scenes.SceneGenerator(params).generate(seed).right


def _config(solver: str = 'ddim', base_steps: int = 25, refiner_steps: int = 12, **sample):
  config = config_base.load_config_file(DEMO)
  config.sample.update(solver=solver, base_num_steps=base_steps,
                       refiner_num_steps=refiner_steps, **sample)
  return config


def _seconds(config, path: pathlib.Path, out: pathlib.Path, repeats: int = 1) -> float:
  """Median seconds of converting the file ``path``, after one untimed (compiling) run."""
  sampler = video_conversion.load_sampler(config)
  times = []
  for _ in range(repeats + 1):
    start = time.perf_counter()
    video_conversion.convert_file(sampler, path, out)
    times.append(time.perf_counter() - start)
  return float(np.median(times[1:]))


def parse_settings(text: str) -> list[tuple[str, int, int]]:
  """'ddim:25+12,dpmpp_2m:2+2,students' -> [('ddim', 25, 12), ('dpmpp_2m', 2, 2),
  ('students', 0, 0)] (the students' steps are their own)."""
  settings = []
  for item in filter(None, text.split(',')):
    if item == 'students':
      settings.append(('students', 0, 0))
      continue
    solver, _, steps = item.partition(':')
    base, _, refiner = steps.partition('+')
    settings.append((solver, int(base), int(refiner)))
  return settings


def speed(work: pathlib.Path, frames: int, size: int, settings, repeats: int) -> dict:
  path = video_io.write_video(work / 'speed.mp4', panning_video(frames, size), 16.0)
  rows = {}
  for solver, base, refiner in settings:
    config = (_config(distilled=True) if solver == 'students'
              else _config(solver, base, refiner))
    seconds = _seconds(config, path, work / 'out', repeats)
    if solver == 'students':
      steps = video_conversion.load_sampler(config).sample_config
      base, refiner = steps.base_num_steps, steps.refiner_num_steps
    rows[f'{solver} {base}+{refiner}'] = {
        'evaluations_per_window': base + refiner, 'seconds_per_frame': seconds / frames,
        'frames_per_second': frames / seconds}
  first = next(iter(rows.values()))
  for row in rows.values():
    row['speed_up'] = first['seconds_per_frame'] / row['seconds_per_frame']
  return rows


def window_seam(generated: np.ndarray, window: int, overlap: int) -> float:
  """Mean frame-to-frame change where windows of ``window`` frames overlapping by
  ``overlap`` meet (the frames a window's edge falls between) over the mean elsewhere."""
  change = np.abs(np.diff(generated.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
  starts = window_blending.stage_windows(len(generated), window, overlap)
  edges = sorted({s - 1 for s in starts[1:]} | {s + window - 1 for s in starts[:-1]}
                 & set(range(len(change))))
  inside = [i for i in range(len(change)) if i not in edges]
  return float(change[edges].mean() / change[inside].mean())


def overlaps(work: pathlib.Path, frames: int, size: int, repeats: int) -> dict:
  """Seconds per frame and window seam per ``sample.window_overlap``, fast solver, base
  stage alone (the seam is the base's: the refiner starts from its output)."""
  path = video_io.write_video(work / 'overlap.mp4', panning_video(frames, size), 16.0)
  still = np.repeat(panning_video(1, size, seed=1), frames, axis=0)
  rows = {}
  for overlap in (4, 2, 1, 0):
    config = _config('dpmpp_2m', 4, 2, window_overlap=overlap, scene_cut_threshold=0.0)
    seconds = _seconds(config, path, work / 'out', repeats)
    config.sample.refiner_checkpoint = ''
    sampler = video_conversion.load_sampler(config)
    seams = [window_seam(sampler.convert(still, seed=seed), sampler.base.num_frames, overlap)
             for seed in (0, 1)]
    rows[f'window_overlap={overlap}'] = {'seconds_per_frame': seconds / frames,
                                         'window_seam': float(np.mean(seams))}
  return rows


def growth(work: pathlib.Path, frames: int, size: int, repeats: int) -> dict:
  """Seconds for 1x, 2x and 4x ``frames`` at window overlap 0 with the fast solver."""
  config = _config('dpmpp_2m', 2, 2, window_overlap=0)
  seconds = {}
  for factor in (1, 2, 4):
    path = video_io.write_video(work / f'growth{factor}.mp4',
                                panning_video(frames * factor, size), 16.0)
    seconds[factor] = _seconds(config, path, work / 'out', repeats)
  return {f'{factor}x_frames_time': seconds[factor] / seconds[1] for factor in (2, 4)} | {
      'seconds': seconds}


_MEMORY_CHILD = '''
import json, resource, sys, pathlib
sys.path.insert(0, {repo!r})
from benchmarks import conversion_speed as bench
from eye2eye_jax.sampling import video_conversion
config = bench._config('dpmpp_2m', 2, 2, chunk_frames={chunk}, refiner_tile={tile})
sampler = video_conversion.load_sampler(config)
video_conversion.convert_file(sampler, pathlib.Path({warm!r}), pathlib.Path({out!r}))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
video_conversion.convert_file(sampler, pathlib.Path({path!r}), pathlib.Path({out!r}))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print('RESULT ' + json.dumps({{'before_bytes': before, 'peak_bytes': peak}}))
'''


def memory(work: pathlib.Path, size: int, window: int = 8, tile: int = 128) -> dict:
  """Peak resident bytes converting videos 4x and 20x ``window``, each in a fresh process
  that first converts a one-window video (loading and compiling what it can), streamed
  (default chunks) and as a single chunk. The refiner works on ``tile``-px tiles, as it
  would on a large video: on whole frames its attention's temporaries (about 10 GB at
  256 px) would hide the video's own bytes."""
  warm = video_io.write_video(work / 'warm.mp4', panning_video(window, size), 16.0)
  rows = {}
  for factor in (4, 20):
    path = video_io.write_video(work / f'long{factor}.mp4',
                                panning_video(window * factor, size, seed=factor), 16.0)
    for mode, chunk in (('streamed', 0), ('whole', 100_000)):
      code = _MEMORY_CHILD.format(repo=str(DEMO.parent.parent), chunk=chunk, tile=tile,
                                  warm=str(warm),
                                  out=str(work / 'out'), path=str(path))
      result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                              check=False)
      lines = [line for line in result.stdout.splitlines() if line.startswith('RESULT ')]
      if result.returncode or not lines:
        raise RuntimeError(f'the memory run failed: {result.stderr[-2000:]}')
      rows[f'{mode} {factor}x'] = json.loads(lines[-1][len('RESULT '):])
  figures = {}
  for mode in ('streamed', 'whole'):
    long, short = rows[f'{mode} 20x'], rows[f'{mode} 4x']
    figures[f'{mode}: peak memory 20x over 4x window'] = long['peak_bytes'] / short['peak_bytes']
    for factor, row in (('4x', short), ('20x', long)):
      figures[f'{mode}: growth over the loaded process, {factor} (MiB)'] = (
          (row['peak_bytes'] - row['before_bytes']) / MIB)
  return {'figures': figures, 'runs': rows}


def speed_table(report: dict) -> str:
  """A row per sampler setting: evaluations, seconds per frame, frames per second."""
  lines = ['| setting | evaluations per window | s per frame | frames per s | speed-up |',
           '|---|---|---|---|---|']
  lines += [f'| {name} | {row["evaluations_per_window"]} | {row["seconds_per_frame"]:.3f} | '
            f'{row["frames_per_second"]:.2f} | {row["speed_up"]:.1f}x |'
            for name, row in report['speed'].items()]
  return '\n'.join(lines)


def overlap_table(report: dict) -> str:
  """A row per window overlap: seconds per frame and the seam it leaves."""
  lines = ['| `sample.window_overlap` (dpmpp_2m 4+2) | s per frame | window seam |',
           '|---|---|---|']
  lines += [f'| {name} | {row["seconds_per_frame"]:.3f} | {row["window_seam"]:.2f} |'
            for name, row in report['overlap'].items()]
  return '\n'.join(lines)


def memory_table(report: dict) -> str:
  """Every figure of the peak-memory runs, and the cost growth with the frames."""
  lines = ['| figure | value |', '|---|---|']
  lines += [f'| {name} | {value:.2f} |' for name, value in report['memory']['figures'].items()]
  if 'growth' in report:
    lines += [f'| time at {k.split("_")[0]} the frames over the time at 1x (dpmpp_2m 2+2, '
              f'window overlap 0) | {v:.2f} |' for k, v in report['growth'].items()
              if k.endswith('_frames_time')]
  return '\n'.join(lines)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--frames', type=int, default=64, help='frames of the speed video')
  parser.add_argument('--size', type=int, default=64, help='frame height and width')
  parser.add_argument('--memory_size', type=int, default=256,
                      help='frame height and width of the memory runs')
  parser.add_argument('--memory_tile', type=int, default=128,
                      help='the refiner\'s tile size in the memory runs (0: whole frames)')
  parser.add_argument('--settings', default=DEFAULT_SETTINGS,
                      help='solver:base+refiner steps, comma-separated; the first is the '
                           'reference of the speed-ups')
  parser.add_argument('--repeats', type=int, default=1)
  parser.add_argument('--parts', default='speed,overlap,growth,memory')
  parser.add_argument('--output', help='also write the figures here as JSON')
  args = parser.parse_args(argv)
  runtime.enable_compilation_cache()
  parts = set(args.parts.split(','))
  report = {'frames': args.frames, 'size': args.size}
  with tempfile.TemporaryDirectory() as scratch:
    work = pathlib.Path(scratch)
    if 'speed' in parts:
      report['speed'] = speed(work, args.frames, args.size, parse_settings(args.settings),
                              args.repeats)
      print(f'\nSpeed, {args.frames} frames of {args.size}x{args.size} (this machine):\n'
            f'{speed_table(report)}', flush=True)
    if 'overlap' in parts:
      report['overlap'] = overlaps(work, args.frames, args.size, args.repeats)
      print(f'\nWindow overlap (dpmpp_2m 4+2):\n{overlap_table(report)}', flush=True)
    if 'growth' in parts:
      report['growth'] = growth(work, args.frames, args.size, args.repeats)
      print(f'\nCost growth (dpmpp_2m 2+2, window overlap 0): 2x frames '
            f'{report["growth"]["2x_frames_time"]:.2f}x the time, 4x frames '
            f'{report["growth"]["4x_frames_time"]:.2f}x', flush=True)
    if 'memory' in parts:
      report['memory'] = memory(work, args.memory_size, tile=args.memory_tile)
      print(f'\nPeak memory:\n{memory_table(report)}', flush=True)
  if args.output:
    atomic_files.write_text(args.output, json.dumps(report, indent=1) + '\n')


if __name__ == '__main__':
  main()
