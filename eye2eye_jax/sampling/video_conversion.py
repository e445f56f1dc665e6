"""Converting video files to stereo files with trained models, one or many at a time."""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
from collections.abc import Iterable, Iterator

import ml_collections
import numpy as np
import tqdm

from eye2eye_jax.common import atomic_files
from eye2eye_jax.data import video_io
from eye2eye_jax.models import checkpoints, networks
from eye2eye_jax.sampling import (auto_convergence, chunked_conversion, convergence,
                                  stereo_formats, stereo_sampler)
from eye2eye_jax.stereo_analysis import comfort, comfort_report


def list_inputs(path: str) -> list[pathlib.Path]:
  """The videos named by ``path``: a video file, a directory of videos, or a .txt list file
  (one path per line, relative to the list's folder; blank lines and # comments ignored)."""
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
  if p.suffix.lower() == '.txt':
    entries = [line.strip() for line in p.read_text().splitlines()]
    entries = [e for e in entries if e and not e.startswith('#')]
    if not entries:
      raise FileNotFoundError(f'{p}: the list names no videos')
    return [(p.parent / e) if not pathlib.Path(e).is_absolute() else pathlib.Path(e)
            for e in entries]
  return [p]


def check_output_settings(sample_config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming an output setting (layouts, anaglyph, crf) that cannot be
  made, so that it is one config error, not a failure of every input."""
  s = sample_config
  unknown = [layout for layout in s.outputs if layout not in stereo_formats.SUFFIXES]
  if unknown:
    raise ValueError(f'sample.outputs: unknown layout {unknown[0]!r}; choose from '
                     f'{sorted(stereo_formats.SUFFIXES)}')
  if s.anaglyph not in stereo_formats.ANAGLYPH_METHODS:
    raise ValueError(f'sample.anaglyph={s.anaglyph!r}: choose from '
                     f'{", ".join(stereo_formats.ANAGLYPH_METHODS)}')
  if not 0 <= s.crf <= 51:
    raise ValueError(f'sample.crf={s.crf}: H.264 quality must be in [0, 51] (0 lossless)')


def output_paths(output_dir: str | pathlib.Path, stem: str,
                 sample_config: ml_collections.ConfigDict) -> dict[str, pathlib.Path]:
  """Where each configured layout of input ``stem`` is written (the output settings
  checked first: ``check_output_settings``)."""
  check_output_settings(sample_config)
  out = pathlib.Path(output_dir)
  paths = {}
  for layout in sample_config.outputs:
    suffix = stereo_formats.SUFFIXES[layout]
    if layout == 'left' and sample_config.input_eye == 'left':
      suffix = '_right'  # the generated eye
    paths[layout] = out / f'{stem}{suffix}.mp4'
  return paths


@dataclasses.dataclass
class ConvertedVideo:
  """What the conversion of one input wrote: each layout's video and, with
  ``sample.report``, the comfort report (JSON and plot) and its one-line verdict."""
  videos: dict[str, pathlib.Path]
  report: tuple[pathlib.Path, pathlib.Path] | None = None
  verdict: str | None = None


def all_outputs(output_dir: str | pathlib.Path, stem: str,
                sample_config: ml_collections.ConfigDict) -> list[pathlib.Path]:
  """Every file the conversion of input ``stem`` writes: its videos, then its report."""
  report = (comfort_report.report_paths(output_dir, stem) if sample_config.report else ())
  return list(output_paths(output_dir, stem, sample_config).values()) + list(report)


def check_inputs_kept(inputs: list[pathlib.Path], output_dir: str | pathlib.Path,
                      sample_config: ml_collections.ConfigDict) -> None:
  """Raises ValueError if an output of one of ``inputs`` would overwrite one of them."""
  kept = {p.resolve(): p for p in inputs}
  for path in inputs:
    for target in output_paths(output_dir, path.stem, sample_config).values():
      if target.resolve() in kept:
        raise ValueError(f'{kept[target.resolve()]}: the output of {path} would overwrite this '
                         'input; choose another output directory')


def check_distinct_outputs(inputs: list[pathlib.Path]) -> None:
  """Raises ValueError when two inputs share a stem (``clip.mov`` and ``clip.mp4``): their
  outputs would have the same names, and the second would replace the first."""
  seen: dict[str, pathlib.Path] = {}
  for path in inputs:
    if path.stem in seen and seen[path.stem] != path:
      raise ValueError(f'{seen[path.stem]} and {path} would write the same outputs '
                       f'({path.stem}_*.mp4); rename one or convert them into separate '
                       'output directories')
    seen[path.stem] = path


def prepare_output_dir(output_dir: str | pathlib.Path) -> None:
  """Creates ``output_dir`` and checks that a file can be written there, before any work."""
  out = pathlib.Path(output_dir)
  if out.exists() and not out.is_dir():
    raise NotADirectoryError(f'{out}: the output directory is a file')
  try:
    out.mkdir(parents=True, exist_ok=True)
    with atomic_files.scratch_path(out / '.write_check', 'probe') as probe:
      pathlib.Path(probe).write_bytes(b'')
  except OSError as error:
    raise OSError(f'{out}: cannot write to the output directory ({error.strerror or error})'
                  ) from error


def load_sampler(config: ml_collections.ConfigDict, checkpoint: str | None = None,
                 refiner_checkpoint: str | None = None) -> stereo_sampler.StereoSampler:
  """The base model (``checkpoint`` or config.sample.checkpoint) and, when one is named
  (``refiner_checkpoint`` or config.sample.refiner_checkpoint), the refiner; with
  ``sample.distilled``, the distilled students (``sample.distilled_checkpoint`` and
  ``sample.distilled_refiner_checkpoint``) in the step counts they were distilled for."""
  s = config.sample
  if s.dtype not in ('', 'float32', 'bfloat16'):
    raise ValueError(f"sample.dtype must be '', 'float32' or 'bfloat16', got {s.dtype!r}")
  if s.distilled:
    checkpoint = checkpoint or s.distilled_checkpoint
    refiner_checkpoint = (s.distilled_refiner_checkpoint if refiner_checkpoint is None
                          else refiner_checkpoint)
    if not checkpoint:
      raise ValueError('sample.distilled: no student; set sample.distilled_checkpoint (or '
                       'pass --checkpoint)')
  base_source = checkpoint or s.checkpoint
  if not base_source:
    raise ValueError('no checkpoint: pass --checkpoint or set config.sample.checkpoint')

  def stage(source: str) -> stereo_sampler.Stage:
    model_config, params = checkpoints.load_for_inference(source, s.use_ema)
    networks.validate(model_config)
    if not model_config.model.condition_channels:
      raise ValueError(f'{source}: a video backbone (model.condition_channels=0, e.g. an '
                       'imported Wan release) cannot convert; fine-tune a stereo model from '
                       'it (train.init_checkpoint)')
    if s.dtype:  # the weights stay float32; the UNet computes in sample.dtype
      model_config.model.dtype = s.dtype
    return stereo_sampler.Stage(model_config, params)

  refiner_source = s.refiner_checkpoint if refiner_checkpoint is None else refiner_checkpoint
  base = stage(base_source)
  refiner = stage(refiner_source) if refiner_source else None
  if s.distilled:
    s = student_settings(s, base, refiner)
  return stereo_sampler.StereoSampler(base, refiner, s)


def student_settings(sample_config: ml_collections.ConfigDict, base: stereo_sampler.Stage,
                     refiner: stereo_sampler.Stage | None) -> ml_collections.ConfigDict:
  """``sample_config`` with the step counts, solver and refiner start the students were
  distilled for (their ``distill`` sections); ValueError names a stage that is no student."""
  for name, student in (('sample.distilled_checkpoint', base),
                        ('sample.distilled_refiner_checkpoint', refiner)):
    if student is not None and not student.config.distill.teacher_steps:
      raise ValueError(f'sample.distilled: the model of {name} is not a distilled student '
                       '(its config has no distill.teacher_steps)')
  s = sample_config.copy_and_resolve_references()
  s.update(solver='ddim', eta=0.0, guidance_scale=0.0, text_guidance_scale=0.0,
           base_num_steps=int(base.config.distill.student_steps))
  if refiner is not None:
    s.update(refiner_num_steps=int(refiner.config.distill.student_steps),
             refiner_t_start=float(refiner.config.distill.t_start))
  return s


def convert_file(sampler: stereo_sampler.StereoSampler, path: pathlib.Path,
                 output_dir: str | pathlib.Path, progress: tqdm.tqdm | None = None
                 ) -> ConvertedVideo:
  """Converts one video file; returns what it wrote. The input's audio is kept.

  The video streams through (``chunked_conversion``): frames are decoded, converted chunk
  by chunk and encoded as they come, so memory does not grow with the video's length.
  The outputs are written all or none: each is encoded to a temporary file and they are
  renamed into place together at the end, so a failure (or an interrupt) leaves the output
  directory as it was. ``progress``, if given, counts the video's frames.
  """
  s = sampler.sample_config
  paths = output_paths(output_dir, path.stem, s)
  check_inputs_kept([path], output_dir, s)
  info = video_io.video_info(path)  # raises VideoError naming the file
  if not info.fps > 0:
    raise video_io.VideoError(f'{path}: the video has no valid frame rate')
  sampler.plan_memory(info.height, info.width)  # a frame size that cannot fit fails here
  blank = np.zeros((1, info.height, info.width, 3), np.uint8)
  for layout in paths:  # a layout that cannot be made at this size fails before sampling
    stereo_formats.render(layout, blank, blank, s.anaglyph)
  if progress is not None:
    progress.reset(total=info.num_frames)
  frames = (frame for _, frame in video_io.iter_frames(path, range(info.num_frames), info))
  auto = convergence.is_auto(s.convergence)
  stream = chunked_conversion.convert_stream(sampler, frames, info.num_frames, info.fps,
                                             with_scenes=auto)
  audio = path if video_io.has_audio(path) else None
  report = comfort_report.report_paths(output_dir, path.stem) if s.report else None
  verdict = write_pairs(s, paths, stereo_frames(s, stream, info.fps), info.fps, audio,
                        progress, name=str(path), output_dir=output_dir, report_to=report)
  return ConvertedVideo(paths, report, verdict)


def stereo_pair(sample_config: ml_collections.ConfigDict, source: np.ndarray,
                generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(left, right) (1, H, W, 3) of one (input eye's, generated eye's) (H, W, 3) frame pair:
  the eyes in order (``sample.input_eye``) and a fixed ``sample.convergence`` applied."""
  s = sample_config
  left, right = (source, generated) if s.input_eye == 'left' else (generated, source)
  return convergence.converge(left[None], right[None], s.convergence)


def stereo_frames(sample_config: ml_collections.ConfigDict, stream: Iterable[tuple],
                  fps: float) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
  """(left, right (1, H, W, 3), convergence applied) of each frame of
  ``chunked_conversion.convert_stream`` (``with_scenes`` for 'auto'): the eyes in order and
  ``sample.convergence`` applied, or chosen per scene (``auto_convergence``)."""
  s = sample_config
  if not convergence.is_auto(s.convergence):
    for source, generated in stream:
      yield (*stereo_pair(s, source, generated), float(s.convergence))
    return
  radius = round(float(s.convergence_smoothing_s) * fps)
  yield from auto_convergence.converge_stream(
      stream, comfort.Limits.from_config(s.comfort), radius,
      comfort.PairAnalyzer(s.comfort.analysis_width, s.comfort.search), s.input_eye)


def write_pairs(sample_config: ml_collections.ConfigDict, paths: dict[str, pathlib.Path],
                pairs: Iterable[tuple], fps: float, audio_from: pathlib.Path | None = None,
                progress: tqdm.tqdm | None = None, name: str = 'the video',
                output_dir: str | pathlib.Path = '',
                report_to: tuple[pathlib.Path, pathlib.Path] | None = None) -> str | None:
  """Writes each layout in ``paths`` of (left, right) (1, H, W, 3) ``pairs`` (or (left,
  right, convergence applied), ``stereo_frames``), all or none: each to a temporary file,
  renamed into place together when every frame is written. With ``report_to`` (JSON, plot)
  the written pairs are measured as they go (``stereo_analysis.comfort``) and the comfort
  report is written with them; returns its verdict."""
  s = sample_config
  targets = list(paths.values()) + list(report_to or ())
  meter = None
  try:
    with atomic_files.atomic_paths(targets) as temporaries, \
        contextlib.ExitStack() as encoders:  # closed (files finished) before the renames
      open_encoders = {}
      for index, (left, right, *applied) in enumerate(pairs):
        if report_to is not None:
          if meter is None:
            meter = comfort_report.ComfortMeter(s.comfort, left.shape[2], left.shape[1], fps,
                                                {'video': name})
          meter.add(left[0], right[0], index, **({'convergence': applied[0]} if applied else {}))
        for (layout, target), temporary in zip(paths.items(), temporaries):
          frame = ((right if s.input_eye == 'left' else left) if layout == 'left'
                   else stereo_formats.render(layout, left, right, s.anaglyph))
          if layout not in open_encoders:
            open_encoders[layout] = encoders.enter_context(video_io.VideoEncoder(
                temporary, frame.shape[1], frame.shape[2], fps, s.crf, audio_from, target))
          open_encoders[layout].add(frame)
        if progress is not None:
          progress.update(1)
      if not open_encoders:
        raise video_io.VideoError(f'{name}: no frames to write')
      if meter is not None:
        return meter.report.write(*temporaries[len(paths):])['verdict']
  except OSError as error:  # the temporary files could not be made or renamed
    raise video_io.VideoError(f'{output_dir or "the output directory"}: could not write the '
                              f'outputs of {name} ({error})') from error
  return None


class ConversionError(ValueError):
  """An input that could not be converted; the message names it. ``result``: what the
  batch had done before it stopped."""

  def __init__(self, message: str, result: 'BatchResult | None' = None):
    super().__init__(message)
    self.result = result


@dataclasses.dataclass
class BatchResult:
  converted: list[pathlib.Path] = dataclasses.field(default_factory=list)
  skipped: list[pathlib.Path] = dataclasses.field(default_factory=list)
  failed: list[tuple[pathlib.Path, str]] = dataclasses.field(default_factory=list)
  verdicts: dict[pathlib.Path, str] = dataclasses.field(default_factory=dict)

  def summary(self) -> str:
    lines = [f'{len(self.converted)} converted, {len(self.skipped)} skipped (already done), '
             f'{len(self.failed)} failed']
    lines += [f'  {path.name}: 3D {verdict}' for path, verdict in self.verdicts.items()]
    lines += [f'  failed: {reason}' for _, reason in self.failed]
    return '\n'.join(lines)


def process_share(inputs: list[pathlib.Path], process_index: int, process_count: int
                  ) -> list[pathlib.Path]:
  """The inputs process ``process_index`` of ``process_count`` converts: each input goes to
  exactly one process, the largest files first, each to the process with the fewest bytes
  so far (sizes read from the files, so every process computes the same split)."""
  if not 0 <= process_index < process_count:
    raise ValueError(f'process {process_index} of {process_count} does not exist')
  size = lambda p: p.stat().st_size if p.is_file() else 0
  loads = [0] * process_count
  mine = set()
  for position, path in sorted(enumerate(inputs), key=lambda item: -size(item[1])):
    owner = loads.index(min(loads))
    loads[owner] += size(path) or 1
    if owner == process_index:
      mine.add(position)
  return [path for position, path in enumerate(inputs) if position in mine]


def convert_many(sampler: stereo_sampler.StereoSampler, inputs: list[pathlib.Path],
                 output_dir: str | pathlib.Path, skip_existing: bool = False,
                 continue_on_error: bool = False, show_progress: bool = True,
                 process_index: int = 0, process_count: int = 1) -> BatchResult:
  """Converts ``inputs`` in order, with a progress bar over the batch.

  skip_existing: inputs whose every output exists are not redone (resuming a batch).
  continue_on_error: a failing input is recorded and the rest go on; otherwise it raises.
  With several processes (hosts), this one converts its ``process_share`` of the inputs.
  """
  check_inputs_kept(inputs, output_dir, sampler.sample_config)
  check_distinct_outputs(inputs)
  chunked_conversion.check_settings(sampler)
  created = not pathlib.Path(output_dir).exists()
  prepare_output_dir(output_dir)
  try:
    return _convert_share(sampler, process_share(inputs, process_index, process_count),
                          output_dir, skip_existing, continue_on_error, show_progress)
  finally:
    if created and not any(pathlib.Path(output_dir).iterdir()):
      pathlib.Path(output_dir).rmdir()  # nothing was written: leave no empty folder


def _convert_share(sampler, inputs, output_dir, skip_existing, continue_on_error,
                   show_progress) -> BatchResult:
  """``convert_many``'s loop over this process's inputs."""
  result = BatchResult()
  bar = tqdm.tqdm(inputs, unit='video', disable=not show_progress)
  for path in bar:
    bar.set_description(path.name)
    if skip_existing and all(p.exists() for p in all_outputs(output_dir, path.stem,
                                                             sampler.sample_config)):
      result.skipped.append(path)
      continue
    try:
      with tqdm.tqdm(unit='frame', leave=False, disable=not show_progress,
                     desc=f'  {path.name}') as video_bar:
        converted = convert_file(sampler, path, output_dir, video_bar)
      result.converted.append(path)
      if converted.verdict is not None:
        result.verdicts[path] = converted.verdict
    except (ValueError, OSError) as error:
      reason = str(error) if str(path) in str(error) else f'{path}: {error}'
      result.failed.append((path, reason))
      if not continue_on_error:
        raise ConversionError(reason, result) from error
  return result
