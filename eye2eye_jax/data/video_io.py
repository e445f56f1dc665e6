"""Reading and writing videos with the ffmpeg binary of imageio-ffmpeg (through mediapy and
imageio-ffmpeg's frame reader).

No system ffmpeg is needed. Writes are atomic: a video is encoded to a temporary file next
to its destination and renamed into place, so a failure never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import queue
import re
import subprocess
import threading
from collections.abc import Iterator

import mediapy
import numpy as np

from eye2eye_jax.common import atomic_files

VIDEO_SUFFIXES = ('.mp4', '.mov', '.mkv', '.webm', '.avi', '.m4v', '.gif')
_ffmpeg_ready = False


def ffmpeg_path() -> str:
  """The ffmpeg binary shipped in the imageio-ffmpeg wheel."""
  import imageio_ffmpeg
  return imageio_ffmpeg.get_ffmpeg_exe()


def _ensure_ffmpeg() -> None:
  global _ffmpeg_ready
  if not _ffmpeg_ready:
    mediapy.set_ffmpeg(ffmpeg_path())
    _ffmpeg_ready = True


class VideoError(ValueError):
  """A video that cannot be read or written; the message names the file."""


@dataclasses.dataclass
class Video:
  frames: np.ndarray  # (T, H, W, 3) uint8
  fps: float


@dataclasses.dataclass
class VideoInfo:
  width: int
  height: int
  fps: float
  num_frames: int

  @property
  def duration_s(self) -> float:
    return self.num_frames / self.fps


def _ffmpeg_reason(message: str) -> str:
  """The informative line of an ffmpeg failure (its output starts with a long banner)."""
  if ('Stream #' in message or 'Input #' in message) and 'Video:' not in message:
    return 'the file has no video stream'
  lines = [line.strip() for line in message.splitlines() if line.strip()]
  errors = [line for line in lines if 'rror' in line or 'Invalid' in line]
  return (errors or lines or ['unknown error'])[-1][:300]


def read_video(path: str | os.PathLike, max_bytes: int = 0) -> Video:
  """Reads all frames of a video as RGB uint8; raises VideoError naming the file.

  With ``max_bytes`` > 0, a video whose header declares more decoded bytes (frames x height
  x width x 3) is refused before any frame is decoded. A truncated file (its video data
  ends before its index does) is refused too, rather than read as a shorter video. For a
  video too long to hold, ``iter_frames`` streams it.
  """
  _ensure_ffmpeg()
  path = pathlib.Path(path)
  if not path.is_file():
    raise VideoError(f'{path}: no such video file')
  if path.stat().st_size == 0:
    raise VideoError(f'{path}: the file is empty')
  header = video_header(path)  # refuses a file with no video stream
  if max_bytes > 0:
    _check_decoded_size(path, header, max_bytes)
  _check_complete(path)
  try:
    frames = mediapy.read_video(path)
  except Exception as error:  # ffmpeg's failures surface as several exception types
    raise VideoError(f'{path}: not a readable video ({_ffmpeg_reason(str(error))})') from error
  if frames.ndim != 4 or frames.shape[0] == 0:
    raise VideoError(f'{path}: the video has no frames')
  fps = float(frames.metadata.fps) if frames.metadata and frames.metadata.fps else 0.0
  if not fps > 0:
    raise VideoError(f'{path}: the video has no valid frame rate')
  return Video(np.asarray(frames[..., :3], np.uint8), fps)


def video_header(path: str | os.PathLike) -> VideoInfo:
  """Size, frame rate and frame count (duration x rate) as the file's header declares them,
  without decoding a frame; ``num_frames`` is -1 when the header gives no duration."""
  path = pathlib.Path(path)
  probe = subprocess.run([ffmpeg_path(), '-hide_banner', '-nostdin', '-i', str(path)],
                         capture_output=True, text=True)
  return _parse_header(path, probe.stderr)


def _parse_header(path: pathlib.Path, log: str) -> VideoInfo:
  """The VideoInfo of ffmpeg's description of its input (what it prints on stderr)."""
  stream = re.search(r'Stream #\d+:\d+.*: Video: .*', log)
  size = stream and re.search(r', (\d+)x(\d+)', stream.group(0))
  if not size:
    raise VideoError(f'{path}: not a readable video ({_ffmpeg_reason(log)})')
  rate = re.search(r', ([\d.]+)(k?) (fps|tbr)', stream.group(0))
  fps = float(rate.group(1)) * (1000 if rate.group(2) else 1) if rate else 0.0
  duration = re.search(r'Duration: (\d+):(\d+):([\d.]+)', log)
  num_frames = -1
  if duration and fps > 0:
    hours, minutes, seconds = duration.groups()
    num_frames = round((int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * fps)
  return VideoInfo(int(size.group(1)), int(size.group(2)), fps, num_frames)


def _check_complete(path: pathlib.Path) -> None:
  """Reads the video stream's packets without decoding them; a cut-off file shows there."""
  result = subprocess.run([ffmpeg_path(), '-v', 'error', '-nostdin', '-i', str(path), '-map',
                           '0:v:0', '-c', 'copy', '-f', 'null', '-'], capture_output=True,
                          text=True)
  if 'partial file' in result.stderr:
    raise VideoError(f'{path}: truncated: the file ends before the video data its index '
                     'lists')


def _check_decoded_size(path: pathlib.Path, header: VideoInfo, max_bytes: int) -> None:
  if header.num_frames < 0:
    raise VideoError(f'{path}: its header declares no duration, so its decoded size cannot '
                     'be checked against the limit; remux it (ffmpeg -i IN -c copy OUT.mp4) '
                     'or turn the limit off')
  needed = header.num_frames * header.height * header.width * 3
  if needed > max_bytes:
    raise VideoError(f'{path}: too large: {header.num_frames} frames of {header.width}x'
                     f'{header.height} take {needed / 2**20:.0f} MiB decoded, over the limit '
                     f'of {max_bytes / 2**20:.0f} MiB')


def has_audio(path: str | os.PathLike) -> bool:
  """Whether the media file has an audio stream."""
  probe = subprocess.run([ffmpeg_path(), '-hide_banner', '-i', str(path)], capture_output=True,
                         text=True)
  return 'Audio:' in probe.stderr


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float, crf: float = 18,
                audio_from: str | os.PathLike | None = None) -> pathlib.Path:
  """Encodes (T, H, W, 3) uint8 frames as H.264 at ``path`` atomically; returns the path.

  With ``audio_from`` (a media file with an audio stream), its audio is copied into the
  output (re-encoded as AAC, cut to the video's length).
  """
  path = pathlib.Path(path)
  try:
    with atomic_files.atomic_path(path) as temporary:
      encode_video(temporary, frames, fps, crf, audio_from, name=path)
  except OSError as error:  # the temporary file could not be made or renamed
    raise VideoError(f'{path}: could not write the video ({error})') from error
  return path


def encode_video(destination: str | os.PathLike, frames: np.ndarray, fps: float,
                 crf: float = 18, audio_from: str | os.PathLike | None = None,
                 name: str | os.PathLike | None = None) -> None:
  """``write_video``'s encoding, straight to ``destination`` (a temporary file of an atomic
  write); errors name ``name`` (the final path), else ``destination``."""
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3:
    raise VideoError(f'{pathlib.Path(name or destination)}: expected (frames, height, width, '
                     f'3) with >= 1 frame, got {frames.shape}')
  with VideoEncoder(destination, frames.shape[1], frames.shape[2], fps, crf, audio_from,
                    name) as encoder:
    encoder.add(frames)


class VideoEncoder:
  """Encodes frames to H.264 at ``destination`` as they come, so a video need not be held
  whole: ``with VideoEncoder(...) as e: e.add(frames)``. With ``audio_from`` the audio of
  that file is added when the block ends (re-encoded as AAC, cut to the video's length).
  Errors are VideoErrors naming ``name`` (the final path), else ``destination``."""

  def __init__(self, destination: str | os.PathLike, height: int, width: int, fps: float,
               crf: float = 18, audio_from: str | os.PathLike | None = None,
               name: str | os.PathLike | None = None):
    self.destination, self.audio_from = str(destination), audio_from
    self.name = pathlib.Path(name or destination)
    self.shape, self.fps, self.crf = (int(height), int(width)), fps, crf
    self._stack = contextlib.ExitStack()
    self._writer = None

  def __enter__(self) -> 'VideoEncoder':
    _ensure_ffmpeg()
    with self._failures(), contextlib.ExitStack() as on_failure:
      on_failure.enter_context(self._stack)
      target = self.destination
      if self.audio_from is not None:  # the silent video waits here for its audio
        self._silent = target = self._stack.enter_context(atomic_files.scratch_path(self.name))
      self._writer = mediapy.VideoWriter(target, self.shape, fps=self.fps, crf=self.crf)
      self._writer.__enter__()
      on_failure.pop_all()
    return self

  def add(self, frames: np.ndarray) -> None:
    """Appends (T, H, W, 3) uint8 frames (or one (H, W, 3) frame)."""
    frames = np.asarray(frames, np.uint8)
    frames = frames[None] if frames.ndim == 3 else frames
    if frames.shape[1:] != self.shape + (3,):
      raise VideoError(f'{self.name}: frames of {frames.shape[1:]} do not match the video\'s '
                       f'{self.shape + (3,)}')
    with self._failures():
      for frame in frames:
        self._writer.add_image(frame)

  def __exit__(self, kind, error, traceback) -> None:
    with self._failures(), self._stack:  # the silent scratch file is removed last
      self._writer.__exit__(kind, error, traceback)  # finishes the file (or abandons it)
      if kind is None and self.audio_from is not None:
        _mux_audio(self._silent, self.audio_from, self.destination, self.name)

  @contextlib.contextmanager
  def _failures(self):
    try:
      yield
    except VideoError:
      raise
    except Exception as error:  # ffmpeg's failures surface as several exception types
      raise VideoError(f'{self.name}: could not write the video '
                       f'({_ffmpeg_reason(str(error))})') from error


def _mux_audio(video: str, audio_from: str | os.PathLike, output: str,
               name: pathlib.Path) -> None:
  result = subprocess.run(
      [ffmpeg_path(), '-y', '-loglevel', 'error', '-i', video, '-i', str(audio_from), '-map',
       '0:v:0', '-map', '1:a:0', '-c:v', 'copy', '-c:a', 'aac', '-shortest', output],
      capture_output=True, text=True)
  if result.returncode:
    raise VideoError(f'{name}: could not add the audio of {audio_from} '
                     f'({_ffmpeg_reason(result.stderr)})')


def video_info(path: str | os.PathLike) -> VideoInfo:
  """Size, frame rate and exact frame count of a video, without decoding it: the count is
  of the video stream's packets (one per frame), read from the file as ffmpeg demuxes it,
  so it costs a read of the file, not a decode (mediapy's count decodes every frame)."""
  path = pathlib.Path(path)
  if not path.is_file() or path.stat().st_size == 0:
    raise VideoError(f'{path}: no such video file, or it is empty')
  listing = subprocess.run([ffmpeg_path(), '-hide_banner', '-nostdin', '-i', str(path),
                            '-map', '0:v:0', '-c', 'copy', '-f', 'framecrc', '-'],
                           capture_output=True, text=True)
  header = _parse_header(path, listing.stderr)
  packets = sum(1 for line in listing.stdout.splitlines() if line and not line.startswith('#'))
  if listing.returncode != 0 or packets == 0:
    raise VideoError(f'{path}: not a readable video ({_ffmpeg_reason(listing.stderr)})')
  if 'partial file' in listing.stderr:
    raise VideoError(f'{path}: truncated: the file ends before the video data its index '
                     'lists')
  return dataclasses.replace(header, num_frames=packets)


def read_frames_at(path: str | os.PathLike, times_s) -> np.ndarray:
  """The frames shown at ``times_s`` (seconds; the nearest frame each), in the order asked,
  from one decoding pass (``iter_frames``): (len(times_s), H, W, 3) uint8."""
  path = pathlib.Path(path)
  times_s = np.asarray(times_s, np.float64)
  info = video_info(path)
  wanted = np.clip(np.round(times_s * info.fps).astype(np.int64), 0, None)
  if wanted.size and wanted.max() >= info.num_frames:
    raise VideoError(f'{path}: time {times_s.max():.3f} s is past the end of the video '
                     f'({info.duration_s:.3f} s)')
  found = dict(iter_frames(path, wanted, info))
  return np.stack([found[i] for i in wanted.tolist()]) if wanted.size else np.zeros(
      (0, info.height, info.width, 3), np.uint8)


def iter_frames(path: str | os.PathLike, indices, info: VideoInfo | None = None,
                read_ahead: int = 3) -> Iterator[tuple[int, np.ndarray]]:
  """Yields (index, frame) for each distinct frame index in ``indices``, in order, from one
  decoding pass that starts with a seek to the first of them: the cost grows with the span
  of frames asked for, not with where it starts. A thread keeps up to ``read_ahead`` frames
  decoded ahead of the caller, so ffmpeg decodes while the caller works on the last frame
  (at most that many frames are held, whatever the video's length).
  Raises VideoError naming the file if it cannot be read or ends before the last index.
  ``info``: the file's ``video_info``, when the caller has it."""
  path = pathlib.Path(path)
  wanted = sorted({int(i) for i in np.asarray(indices).reshape(-1)})
  if not wanted:
    return
  if wanted[0] < 0:
    raise VideoError(f'{path}: frame index {wanted[0]} is negative')
  info = info or video_info(path)
  if wanted[-1] >= info.num_frames:
    raise VideoError(f'{path}: frame {wanted[-1]} is past the end of the video '
                     f'({info.num_frames} frames)')
  yield from _ahead(_decode(path, wanted, info), max(read_ahead, 1))


def _decode(path: pathlib.Path, wanted: list[int], info: VideoInfo
            ) -> Iterator[tuple[int, np.ndarray]]:
  import imageio_ffmpeg
  first = wanted[0]
  # Half a frame before the first one wanted: ffmpeg decodes from the keyframe before it
  # and starts its output at the first frame whose time is not earlier.
  seek = ['-ss', f'{(first - 0.5) / info.fps:.6f}'] if first > 0 else []
  index, pending = first, iter(wanted)
  target = next(pending)
  reader = imageio_ffmpeg.read_frames(str(path), input_params=seek)
  try:
    width, height = next(reader)['size']
    for data in reader:
      if index == target:
        yield index, np.frombuffer(data, np.uint8).reshape(height, width, 3)
        target = next(pending, None)
        if target is None:
          return
      index += 1
  except Exception as error:  # ffmpeg's failures surface as several exception types
    raise VideoError(f'{path}: not a readable video ({_ffmpeg_reason(str(error))})') from error
  finally:
    reader.close()
  raise VideoError(f'{path}: the video ends at frame {index} before frame {target}')


_END = object()
READ_AHEAD_THREAD = 'video_io.read_ahead'  # the name of each read-ahead thread


def _ahead(items: Iterator, depth: int) -> Iterator:
  """``items``, pulled by a thread at most ``depth`` ahead of the consumer; an exception
  there is raised here, in order. Stopping early stops the thread and closes ``items``."""
  pending, stop = queue.Queue(depth), threading.Event()

  def put(item) -> bool:
    while not stop.is_set():
      try:
        pending.put(item, timeout=0.05)
        return True
      except queue.Full:
        continue
    return False

  def pull():
    try:
      for item in items:
        if not put(item):
          return
      put(_END)
    except BaseException as error:  # handed to the consumer, which raises it
      put(error)
    finally:
      items.close()

  thread = threading.Thread(target=pull, name=READ_AHEAD_THREAD, daemon=True)
  thread.start()
  try:
    while (item := pending.get()) is not _END:
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()
    thread.join()
