"""Converts right-eye videos to stereo with a trained model.

  python -m eye2eye_jax.sample --config=configs/demo.py --input=RIGHT.mp4 --output_dir=DIR
  python -m eye2eye_jax.sample --config=configs/demo.py --input=VIDEOS/ --output_dir=DIR \
      [--checkpoint=WORKDIR_OR_CHECKPOINT] [--config.sample.num_steps=50]

For each input ``<stem>.<ext>`` it writes, with the input's frame count, size and rate:
  DIR/<stem>_left.mp4            the generated left-eye video
  DIR/<stem>_LRF_Full_SBS.mp4    full side-by-side, left | right (VR players detect the suffix)
  DIR/<stem>_anaglyph.mp4        red-cyan (Dubois) anaglyph
The checkpoint is ``--checkpoint`` if given, else ``config.sample.checkpoint`` (the demo
config names the bundled demo checkpoint). The checkpoint's own config defines the model.
"""

from __future__ import annotations

import pathlib
import sys

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from eye2eye_jax import checkpointing, runtime, sampling, stereo_formats, video_io

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.',
                                          lock_config=True)
_INPUT = flags.DEFINE_string('input', None, 'A right-eye video, or a directory of videos.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where the stereo videos go.')
_CHECKPOINT = flags.DEFINE_string('checkpoint', None,
                                  'Training workdir, checkpoint directory or bundled:NAME; '
                                  'overrides config.sample.checkpoint.')


def list_inputs(path: str) -> list[pathlib.Path]:
  """The video files named by ``path`` (a file, or the videos directly in a directory)."""
  p = pathlib.Path(path)
  if p.is_dir():
    videos = sorted(f for f in p.iterdir()
                    if f.is_file() and f.suffix.lower() in video_io.VIDEO_SUFFIXES)
    if not videos:
      raise FileNotFoundError(f'{p}: no videos ({", ".join(video_io.VIDEO_SUFFIXES)}) in '
                              'this directory')
    return videos
  if not p.exists():
    raise FileNotFoundError(f'{p}: no such file or directory')
  return [p]


def output_paths(output_dir: str | pathlib.Path, stem: str) -> dict[str, pathlib.Path]:
  out = pathlib.Path(output_dir)
  return {
      'left': out / f'{stem}_left.mp4',
      'sbs': out / f'{stem}_LRF_Full_SBS.mp4',
      'anaglyph': out / f'{stem}_anaglyph.mp4',
  }


def load_sampler(config: ml_collections.ConfigDict,
                 checkpoint: str | None = None) -> sampling.BaseSampler:
  """Loads the checkpoint named by ``checkpoint`` or the config, ready to sample."""
  source = checkpoint or config.sample.checkpoint
  if not source:
    raise ValueError('no checkpoint: pass --checkpoint or set config.sample.checkpoint')
  model_config, params = checkpointing.load_for_inference(source, config.sample.use_ema)
  return sampling.BaseSampler(model_config, params, config.sample)


def convert_file(sampler: sampling.BaseSampler, path: pathlib.Path,
                 output_dir: str | pathlib.Path) -> dict[str, pathlib.Path]:
  """Converts one right-eye video file; returns the written paths."""
  video = video_io.read_video(path)
  logging.info('%s: %d frames of %dx%d at %.3g fps', path, *video.frames.shape[:3], video.fps)
  left = sampler.convert(video.frames, progress=lambda done, total: logging.info(
      '%s: sampled %d/%d clips', path.name, done, total))
  paths = output_paths(output_dir, path.stem)
  video_io.write_video(paths['left'], left, video.fps)
  video_io.write_video(paths['sbs'], stereo_formats.side_by_side(left, video.frames), video.fps)
  video_io.write_video(paths['anaglyph'], stereo_formats.anaglyph(left, video.frames), video.fps)
  return paths


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if _CONFIG.value is None or not _INPUT.value or not _OUTPUT_DIR.value:
    raise app.UsageError('--config, --input and --output_dir are required')
  runtime.enable_compilation_cache()
  try:
    inputs = list_inputs(_INPUT.value)
    sampler = load_sampler(_CONFIG.value, _CHECKPOINT.value)
  except (FileNotFoundError, ValueError) as error:
    sys.exit(f'error: {error}')
  failures = 0
  for path in inputs:
    try:
      written = convert_file(sampler, path, _OUTPUT_DIR.value)
      print(f'{path} -> ' + ', '.join(str(p) for p in written.values()))
    except (video_io.VideoError, ValueError) as error:
      failures += 1
      print(f'error: {error}', file=sys.stderr)
  if failures:
    sys.exit(f'error: {failures} of {len(inputs)} videos could not be converted')


if __name__ == '__main__':
  app.run(main)
