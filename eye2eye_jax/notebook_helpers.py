"""What the Colab notebook (notebooks/eye2eye_demo.ipynb) calls, so its cells stay short.

Load a sampler from checkpoints, make a synthetic clip, convert a clip array or a video
file, and turn the result into frames, videos, a disparity plot and the comfort report that
``sample`` writes beside each video, to show inline.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys

import numpy as np

from eye2eye_jax import config_base
from eye2eye_jax.data import frame_ops, synthetic_scenes, video_io
from eye2eye_jax.sampling import (chunked_conversion, convergence, stereo_formats,
                                  stereo_sampler, video_conversion)
from eye2eye_jax.stereo_analysis import comfort_report, disparity_estimation


def in_colab() -> bool:
  """Whether this runs in a Google Colab runtime."""
  return 'google.colab' in sys.modules


def repo_config(name: str = 'demo') -> pathlib.Path:
  """The path of ``configs/<name>.py`` in the checkout the package runs from."""
  path = pathlib.Path(__file__).resolve().parent.parent / 'configs' / f'{name}.py'
  if not path.is_file():
    raise FileNotFoundError(f'config {name!r}: {path} does not exist (the configs come with '
                            'a clone of the repository, not with the package alone)')
  return path


def load_sampler(checkpoint: str = 'bundled:demo',
                 refiner_checkpoint: str | None = 'bundled:demo_refiner',
                 config_file: str | pathlib.Path | None = None,
                 **sample_overrides) -> stereo_sampler.StereoSampler:
  """A sampler from a base checkpoint and a refiner checkpoint ('' for none).

  Each is a training workdir, a checkpoint directory or ``bundled:NAME``. The sampling
  settings are ``config.sample`` of ``config_file`` (default: configs/demo.py) with
  ``sample_overrides`` (e.g. ``base_num_steps=10``) applied; an unknown setting is an error.
  The models themselves come from the checkpoints' own configs.
  """
  config = config_base.load_config_file(config_file or repo_config('demo'))
  config.sample = _overridden(config.sample, sample_overrides)
  return video_conversion.load_sampler(config, checkpoint, refiner_checkpoint)


def _overridden(sample_config, overrides: dict):
  """A copy of ``sample_config`` with ``overrides`` set; an unknown setting is a KeyError."""
  config = sample_config.copy_and_resolve_references()
  for key, value in overrides.items():
    if key not in config:
      raise KeyError(f'unknown sample setting {key!r}; have {sorted(config.keys())}')
    config[key] = value
  return config


def with_settings(sampler: stereo_sampler.StereoSampler, **sample_overrides
                  ) -> stereo_sampler.StereoSampler:
  """The same models with other sampling settings (e.g. ``strength=2``), checked as at
  loading; compiled programs are shared with ``sampler``."""
  return stereo_sampler.StereoSampler(sampler.base, sampler.refiner,
                                      _overridden(sampler.sample_config, sample_overrides))


def synthetic_clip(num_frames: int = 8, size: int = 64, seed: int = 0,
                   max_disparity: float | None = None) -> synthetic_scenes.StereoClip:
  """A procedural stereo clip (the demo dataset's kind of scene) with its true left view.

  ``max_disparity`` defaults to an eighth of ``size``, as in the demo dataset.
  """
  params = synthetic_scenes.SceneParams(num_frames=num_frames, height=size, width=size,
                                        max_disparity=max_disparity or size / 8)
  return synthetic_scenes.SceneGenerator(params).generate(seed)


@dataclasses.dataclass
class StereoResult:
  """A converted clip: both eyes as uint8 (T, H, W, 3), the true left view if known, and
  the convergence applied to each frame."""
  left: np.ndarray
  right: np.ndarray
  fps: float
  true_left: np.ndarray | None = None
  convergence: np.ndarray | None = None


def _check_frames(frames: np.ndarray, name: str) -> np.ndarray:
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
    raise ValueError(f'{name}: expected a (frames, height, width, 3) video with >= 1 frame, '
                     f'got shape {frames.shape}')
  if frames.dtype != np.uint8:
    raise ValueError(f'{name}: expected uint8 pixels, got {frames.dtype}')
  if min(frames.shape[1:3]) < 8:
    raise ValueError(f'{name}: frames of {frames.shape[1]}x{frames.shape[2]} are too small '
                     '(at least 8x8)')
  return frames


def convert_clip(sampler: stereo_sampler.StereoSampler, frames: np.ndarray, fps: float = 8.0,
                 true_left: np.ndarray | None = None, name: str = 'frames') -> StereoResult:
  """Generates the other eye of a uint8 (T, H, W, 3) clip through the conversion ``sample``
  runs (``chunked_conversion.convert_stream``: chunks, scene cuts, per-frame noise; then
  ``video_conversion.stereo_frames``: the eyes in order, ``sample.convergence`` applied or
  chosen per scene); ``name`` is used in errors."""
  frames = _check_frames(frames, name)
  sampler.plan_memory(*frames.shape[1:3])
  s = sampler.sample_config
  stream = chunked_conversion.convert_stream(sampler, frames, len(frames), fps,
                                             with_scenes=convergence.is_auto(s.convergence))
  left, right, applied = zip(*video_conversion.stereo_frames(s, stream, fps))
  left, right, applied = np.concatenate(left), np.concatenate(right), np.asarray(applied)
  if true_left is not None and s.input_eye == 'right':  # shifted and cropped as generated
    true_left = np.concatenate([convergence.converge(true_left[i:i + 1], frames[i:i + 1], c)[0]
                                for i, c in enumerate(applied)])
  return StereoResult(left=left, right=right, fps=fps,
                      true_left=true_left if s.input_eye == 'right' else None,
                      convergence=applied)


def convert_video_file(sampler: stereo_sampler.StereoSampler, path: str | pathlib.Path,
                       max_frames: int = 16, max_side: int = 128,
                       output_dir: str | pathlib.Path | None = None) -> StereoResult:
  """Converts the first ``max_frames`` frames of a video, shrunk so its long side is at most
  ``max_side`` (0: neither limit); with ``output_dir``, also writes the configured layouts
  (``<stem>_left.mp4``, ``<stem>_LRF_Full_SBS.mp4``, ...) there."""
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f'{path}: no such video file')
  info = video_io.video_info(path)  # raises VideoError naming the file
  count = min(info.num_frames, max_frames) if max_frames else info.num_frames
  frames = np.stack([frame for _, frame in video_io.iter_frames(path, range(count), info)])
  height, width = frames.shape[1:3]
  if max_side and max(height, width) > max_side:
    scale = max_side / max(height, width)
    frames = frame_ops.resize_clip(frames, max(8, round(height * scale)),
                                   max(8, round(width * scale)))
  result = convert_clip(sampler, frames, info.fps, name=str(path))
  if output_dir is not None:  # the layouts and report as ``sample`` writes them
    s = sampler.sample_config
    video_conversion.write_pairs(
        s, video_conversion.output_paths(output_dir, path.stem, s),
        zip(result.left[:, None], result.right[:, None], result.convergence), info.fps,
        name=str(path), output_dir=output_dir,
        report_to=comfort_report.report_paths(output_dir, path.stem) if s.report else None)
  return result


def comfort_of(result: StereoResult, sample_config) -> comfort_report.ComfortReport:
  """The comfort report ``sample`` writes beside a converted video, of ``result``: its
  ``verdict()``, ``summary()`` and ``figure()`` (the disparity range over time against the
  limits of ``sample_config.comfort``)."""
  height, width = result.right.shape[1:3]
  meter = comfort_report.ComfortMeter(sample_config.comfort, width, height, result.fps,
                                      {'video': 'notebook clip'})
  applied = result.convergence if result.convergence is not None else np.zeros(len(result.left))
  for index, (left, right) in enumerate(zip(result.left, result.right)):
    meter.add(left, right, index, convergence=applied[index])
  return meter.report


def upload_video(directory: str | pathlib.Path = 'uploads') -> pathlib.Path:
  """Asks for a video in Colab's upload widget, saves it in ``directory``; returns its path."""
  if not in_colab():
    raise RuntimeError('upload_video needs Google Colab; elsewhere set the video path instead')
  from google.colab import files  # pylint: disable=import-error
  uploaded = files.upload()
  if not uploaded:
    raise FileNotFoundError('no file was uploaded')
  name, data = next(iter(uploaded.items()))
  target = pathlib.Path(directory) / pathlib.Path(name).name
  target.parent.mkdir(parents=True, exist_ok=True)
  target.write_bytes(data)
  return target


def display_frames(result: StereoResult, frame: int | None = None) -> dict[str, np.ndarray]:
  """One frame (default: the middle one) of each view and layout, by title."""
  count = len(result.right)
  index = count // 2 if frame is None else frame
  if not -count <= index < count:
    raise IndexError(f'frame {index} is outside the clip of {count} frames')
  index %= count
  left, right = result.left[index:index + 1], result.right[index:index + 1]
  frames = {'input right': right[0], 'generated left': left[0]}
  if result.true_left is not None:
    frames['true left'] = result.true_left[index]
  frames['side-by-side (L | R)'] = stereo_formats.side_by_side(left, right)[0]
  frames['anaglyph (red-cyan)'] = stereo_formats.anaglyph(left, right)[0]
  return frames


def display_videos(result: StereoResult) -> dict[str, np.ndarray]:
  """The side-by-side and anaglyph videos, by title."""
  return {'side-by-side (L | R)': stereo_formats.side_by_side(result.left, result.right),
          'anaglyph (red-cyan)': stereo_formats.anaglyph(result.left, result.right)}


def measure_disparity(result: StereoResult, max_disparity: float | None = None
                      ) -> dict[str, disparity_estimation.DisparityEstimate]:
  """The disparity (left x minus right x) of the generated pair and, if known, the true pair,
  estimated by SGBM at the right view's pixels. ``max_disparity`` (px) bounds the search
  (default: a quarter of the width); swapped eyes (negative values) are searched too."""
  width = result.right.shape[2]
  high = float(max_disparity or max(4.0, width / 4))
  pairs = {'generated': result.left}
  if result.true_left is not None:
    pairs['true'] = result.true_left
  return {name: disparity_estimation.estimate_disparity(left, result.right,
                                                        max_disparity=high,
                                                        min_disparity=-high / 4)
          for name, left in pairs.items()}


def disparity_figure(result: StereoResult, max_disparity: float | None = None):
  """A matplotlib figure: the middle frame's disparity map per pair, and the median
  disparity of every frame (unmatched pixels left out)."""
  import matplotlib.pyplot as plt
  estimates = measure_disparity(result, max_disparity)
  middle = len(result.right) // 2
  figure, axes = plt.subplots(1, len(estimates) + 1, figsize=(3.6 * (len(estimates) + 1), 3.2))
  values = np.concatenate([e.valid_values() for e in estimates.values()] + [np.zeros(1)])
  vmin, vmax = np.percentile(values, [1, 99])
  for axis, (name, estimate) in zip(axes, estimates.items()):
    shown = np.where(estimate.valid[middle], estimate.disparity[middle], np.nan)
    image = axis.imshow(shown, cmap='magma', vmin=vmin, vmax=max(vmax, vmin + 1e-3))
    axis.set_title(f'{name} pair, frame {middle} (px)', fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])
    figure.colorbar(image, ax=axis, fraction=0.046)
  per_frame = axes[-1]
  for name, estimate in estimates.items():
    medians = [np.median(d[v]) if v.any() else np.nan
               for d, v in zip(estimate.disparity, estimate.valid)]
    per_frame.plot(medians, marker='o', label=name)
  per_frame.set_xlabel('frame')
  per_frame.set_ylabel('median disparity (px)')
  per_frame.legend(fontsize=8)
  figure.tight_layout()
  return figure
