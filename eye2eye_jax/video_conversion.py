"""Converting right-eye video files to stereo files with a trained model."""

from __future__ import annotations

import pathlib

import ml_collections
from absl import logging

from eye2eye_jax import checkpointing, sampling, stereo_formats, video_io


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
