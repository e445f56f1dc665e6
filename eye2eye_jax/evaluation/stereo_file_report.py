"""The comfort report of any stereo video file, made without a model (``evaluate
--stereo_report``): a full or half side-by-side file, a full or half top-bottom one, or a
pair of left and right files.

Frames stream from the decoder, are measured one by one (``stereo_analysis.comfort``) and
dropped, so a feature film needs the memory of one frame. Progress is kept every
``SAVE_EVERY_S`` seconds in ``<stem>_stereo.partial.json`` beside the report; run the same
command again and it goes on from there (the partial file is kept only while it matches the
input files and the settings, and removed once the report is written).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from collections.abc import Iterator

import numpy as np
import tqdm

from eye2eye_jax.common import atomic_files
from eye2eye_jax.data import video_io
from eye2eye_jax.sampling import stereo_formats
from eye2eye_jax.stereo_analysis import comfort_report

SAVE_EVERY_S = 60.0
PARTIAL_SUFFIX = '_stereo.partial.json'


@dataclasses.dataclass
class StereoSource:
  """A stereo video: one file holding both eyes in ``layout``, or (left, right) files."""
  paths: tuple[pathlib.Path, ...]
  layout: str  # a stereo_formats.READ_LAYOUTS layout, or 'pair'
  info: video_io.VideoInfo  # of the (first) file
  eye_width: int
  eye_height: int

  @property
  def stem(self) -> str:
    return self.paths[0].stem

  def signature(self) -> list:
    """What identifies the input: each file's path, size and modification time."""
    return [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in self.paths]

  def frames(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(index, left, right) for each of ``indices`` (ascending), decoded in one pass."""
    if self.layout != 'pair':
      for index, frame in video_io.iter_frames(self.paths[0], indices, self.info):
        yield (index, *stereo_formats.split(self.layout, frame))
      return
    left_info = self.info
    right_info = video_io.video_info(self.paths[1])
    for (index, left), (_, right) in zip(video_io.iter_frames(self.paths[0], indices, left_info),
                                         video_io.iter_frames(self.paths[1], indices,
                                                              right_info)):
      yield index, left, right


def open_source(paths: list[str], layout: str = '') -> StereoSource:
  """The stereo video of ``paths``: one file (``layout`` from READ_LAYOUTS, or told by its
  name or shape), or two: the left eye's file, then the right eye's. Errors name the file."""
  files = tuple(pathlib.Path(p) for p in paths)
  if not 1 <= len(files) <= 2:
    raise ValueError(f'--stereo_report takes one stereo file or a left and a right file, got '
                     f'{len(files)}')
  infos = [video_io.video_info(p) for p in files]  # raises VideoError naming the file
  info = infos[0]
  if not info.fps > 0:
    raise video_io.VideoError(f'{files[0]}: the video has no valid frame rate')
  if len(files) == 2:
    other = infos[1]
    if (other.width, other.height) != (info.width, info.height):
      raise video_io.VideoError(f'{files[1]}: its {other.width}x{other.height} frames differ '
                                f'from the {info.width}x{info.height} of {files[0]}')
    if other.num_frames != info.num_frames:
      raise video_io.VideoError(f'{files[1]}: {other.num_frames} frames, but {files[0]} has '
                                f'{info.num_frames}')
    return StereoSource(files, 'pair', info, info.width, info.height)
  if layout and layout not in stereo_formats.READ_LAYOUTS:
    raise ValueError(f'--stereo_layout={layout!r}: choose from '
                     f'{", ".join(stereo_formats.READ_LAYOUTS)}')
  layout = layout or stereo_formats.layout_of(files[0].name, info.width, info.height)
  width, height = stereo_formats.eye_size(layout, info.width, info.height)
  return StereoSource(files, layout, info, width, height)


def analysed_frames(num_frames: int, every: int) -> list[int]:
  """The frames measured: all (``every`` = 1), or the pair (k * every, k * every + 1) of
  each ``every`` frames, so every sample still has its flicker."""
  if every < 1:
    raise ValueError(f'--report_every={every}: must be >= 1')
  if every == 1:
    return list(range(num_frames))
  return [i for start in range(0, num_frames, every) for i in (start, start + 1)
          if i < num_frames]


def _settings(sample_config, source: StereoSource, every: int) -> dict:
  return {'inputs': source.signature(), 'layout': source.layout, 'every': every,
          'comfort': sample_config.comfort.to_dict()}


def report_file(source: StereoSource, output_dir: str | pathlib.Path, sample_config,
                every: int = 1, show_progress: bool = True) -> dict:
  """Measures ``source`` and writes ``<stem>_stereo.json`` and ``<stem>_stereo.png`` in
  ``output_dir`` (comfort limits from ``sample_config.comfort``); returns the JSON's
  content. Resumes from ``<stem>_stereo.partial.json`` when it matches."""
  out = pathlib.Path(output_dir)
  json_path, plot_path = comfort_report.report_paths(out, source.stem)
  if any(p.resolve() == path.resolve() for p in source.paths for path in (json_path, plot_path)):
    raise ValueError(f'{json_path}: the report would overwrite its input; choose another '
                     '--output_dir')
  partial = out / f'{source.stem}{PARTIAL_SUFFIX}'
  settings = _settings(sample_config, source, every)
  resumed = None
  if partial.is_file():
    try:
      saved = json.loads(partial.read_text())
    except (OSError, json.JSONDecodeError):
      saved = None
    if saved and saved.get('settings') == settings:
      resumed = comfort_report.ComfortReport.from_json(saved['report'])
  meter = comfort_report.ComfortMeter(
      sample_config.comfort, source.eye_width, source.eye_height, source.info.fps,
      {'files': [str(p) for p in source.paths], 'layout': source.layout, 'every': every},
      resumed)
  report = meter.report
  done = set(int(f) for f in report.series['frame'])
  todo = [i for i in analysed_frames(source.info.num_frames, every) if i not in done]
  out.mkdir(parents=True, exist_ok=True)
  last_save = time.monotonic()
  with tqdm.tqdm(total=len(todo) + len(done), initial=len(done), unit='frame',
                 disable=not show_progress, desc=source.stem) as bar:
    for index, left, right in source.frames(todo):
      meter.add(left, right, index)
      bar.update(1)
      if time.monotonic() - last_save > SAVE_EVERY_S:
        _save_partial(partial, settings, report)
        last_save = time.monotonic()
  data = report.write(json_path, plot_path)
  partial.unlink(missing_ok=True)
  return data


def _save_partial(path: pathlib.Path, settings: dict, report: comfort_report.ComfortReport):
  atomic_files.write_text(path, json.dumps({'settings': settings, 'report': report.to_json()}))
