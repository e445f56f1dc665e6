"""Converting a video of any length in bounded memory: a stream of overlapping chunks.

Frames arrive one at a time (decoded from a file) and leave one at a time (to encoders),
so a feature film never has to fit in memory. At the model's frame rate the video is cut
into chunks of ``sample.chunk_frames`` frames; each chunk is converted whole by
``StereoSampler.convert`` (its windows blended at every denoising step), and consecutive
chunks share ``sample.chunk_overlap`` frames that are cross-faded from the earlier chunk's
output to the later one's. Every frame's noise is drawn by its place in the video
(``stereo_sampler.frame_noise``), so the two chunks' versions of a shared frame start
alike and the fade hides what differs.

Chunks have few lengths, so each stage compiles a few programs whatever the video's
length: every chunk but a scene's last has ``chunk_frames`` frames; the last holds what is
left (with the frames it fades over), padded by repeating its last frame up to a whole
number of the model's windows. The cost grows with the frames, not with the chunks.

A scene cut (``scene_cuts``, or given as ``sample.scene_cuts``) ends the chunk stream: the
next scene starts fresh chunks, and nothing is blended across the cut.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Iterator

import ml_collections
import numpy as np

from eye2eye_jax.data import frame_ops
from eye2eye_jax.sampling import scene_cuts, stereo_sampler


def chunk_layout(sample_config: ml_collections.ConfigDict, window: int) -> tuple[int, int]:
  """(chunk frames, overlap frames) of ``sample.chunk_frames`` (0: 8 windows) and
  ``sample.chunk_overlap`` (-1: half a window) for a model window of ``window`` frames;
  ValueError names the setting that cannot be met."""
  s = sample_config
  chunk = int(s.chunk_frames) or 8 * window
  overlap = int(s.chunk_overlap) if s.chunk_overlap >= 0 else window // 2
  if chunk < window:
    raise ValueError(f'sample.chunk_frames={s.chunk_frames}: a chunk must hold at least the '
                     f"model's window of {window} frames (0: 8 windows)")
  if not 0 <= overlap < chunk:
    raise ValueError(f'sample.chunk_overlap={s.chunk_overlap}: must be in [0, '
                     f'{chunk - 1}] for chunks of {chunk} frames (-1: half a window)')
  return chunk, overlap


def check_settings(sampler: stereo_sampler.StereoSampler) -> None:
  """Raises ValueError naming an impossible chunk or scene-cut setting, before any work."""
  ChunkedConverter(sampler)
  scene_cuts.SceneCutDetector(float(sampler.sample_config.scene_cut_threshold))
  if any(int(c) < 0 for c in sampler.sample_config.scene_cuts):
    raise ValueError(f'sample.scene_cuts={tuple(sampler.sample_config.scene_cuts)}: frame '
                     'indices must be >= 0')


def fade_weights(overlap: int) -> np.ndarray:
  """Weights of the earlier chunk over ``overlap`` shared frames, falling from near 1 to
  near 0 (the later chunk gets one minus these)."""
  return (overlap - np.arange(overlap, dtype=np.float32)) / (overlap + 1)


class ChunkedConverter:
  """Converts a video fed frame by frame (at the model's frame rate), in chunks.

  ``push(frame, new_scene)`` and ``finish()`` return the generated frames that are final,
  in order; at most a chunk's frames are held between calls.
  """

  def __init__(self, sampler: stereo_sampler.StereoSampler, seed: int | None = None):
    self.sampler, self.seed = sampler, seed
    windows = [sampler.base.num_frames] + ([sampler.refiner.num_frames]
                                           if sampler.refiner is not None else [])
    self.window = max(windows)
    self.chunk, self.overlap = chunk_layout(sampler.sample_config, self.window)
    self._scene: collections.deque[np.ndarray] = collections.deque(maxlen=self.chunk)
    self._next = 0  # index (in the video) of the first frame not yet returned
    self._seen = 0  # frames pushed so far
    self._pending = 0  # frames of this scene pushed but not yet converted
    self._held: np.ndarray | None = None  # the last chunk's output over the shared frames
    self.chunks_converted = 0

  def push(self, frame: np.ndarray, new_scene: bool = False) -> list[np.ndarray]:
    """Adds the next frame; ``new_scene``: it starts a new scene (a cut before it)."""
    done = self._end_scene() if new_scene and self._seen > self._next else []
    self._scene.append(frame)
    self._seen += 1
    self._pending += 1
    if len(self._scene) == self.chunk and self._pending == self.chunk - (
        self.overlap if self._held is not None else 0):
      done += self._convert(list(self._scene), keep=self.overlap)
    return done

  def finish(self) -> list[np.ndarray]:
    """The rest of the video's frames, once the last frame has been pushed."""
    return self._end_scene()

  def _end_scene(self) -> list[np.ndarray]:
    """Converts what is left of the scene; the next frame starts fresh chunks."""
    done = []
    if self._pending:  # the frames not yet final: those held for the fade and the new ones
      used = self._pending + (len(self._held) if self._held is not None else 0)
      frames = list(self._scene)[-used:]
      padded = math.ceil(used / self.window) * self.window  # whole windows
      frames += [frames[-1]] * (padded - used)
      done = self._convert(frames, keep=0, used=used)
    elif self._held is not None:
      done = list(self._held)
      self._next += len(done)
    self._scene.clear()
    self._held, self._pending = None, 0
    return done

  def _convert(self, frames: list[np.ndarray], keep: int,
               used: int | None = None) -> list[np.ndarray]:
    """Converts ``frames`` (the scene's last ``used`` pushed frames, then padding) and
    returns its final frames; holds its last ``keep`` for the next chunk's fade."""
    used = len(frames) if used is None else used
    first = self._seen - used  # the video index of frames[0]
    out = self.sampler.convert(np.stack(frames), seed=self.seed, first_frame=first)[:used]
    self.chunks_converted += 1
    new = out[self._next - first:]  # frames before self._next were returned already
    if self._held is not None:
      shared = len(self._held)
      weights = fade_weights(shared)[:, None, None, None]
      faded = weights * self._held + (1 - weights) * new[:shared].astype(np.float32)
      new = np.concatenate([np.round(faded).astype(np.uint8), new[shared:]])
    final = len(new) - keep
    self._held = new[final:] if keep else None
    self._next += final
    self._pending = 0
    return list(new[:final])


def convert_stream(sampler: stereo_sampler.StereoSampler, frames: Iterable[np.ndarray],
                   num_frames: int, fps: float = 0.0, cuts: Iterable[int] = (),
                   seed: int | None = None, with_scenes: bool = False) -> Iterator[tuple]:
  """Yields (input frame, generated frame) for each of the ``num_frames`` frames of
  ``frames`` (an iterable of (H, W, 3) uint8 frames at ``fps``), in order; ``with_scenes``:
  (input frame, generated frame, scene number), the scene counted from 0 at each cut.

  The model works at ``sample.model_fps`` (frames are picked from the input's rate and
  the output mapped back, as ``StereoSampler.convert`` does); ``cuts`` are input frames
  that start a new scene, besides those found with ``sample.scene_cut_threshold``.
  """
  s = sampler.sample_config
  picks = (frame_ops.resample_frame_indices(num_frames, fps, float(s.model_fps)) if fps
           else np.arange(num_frames))
  model_frames = len(picks)
  back = (np.arange(num_frames) if model_frames == num_frames else np.clip(
      np.round(np.arange(num_frames) * model_frames / num_frames).astype(int), 0,
      model_frames - 1))  # the model frame each output frame shows
  converter = ChunkedConverter(sampler, seed)
  scenes: list[int] = []  # the scene of each model frame picked so far
  detector = scene_cuts.SceneCutDetector(float(s.scene_cut_threshold))
  given = set(int(c) for c in cuts) | set(int(c) for c in s.scene_cuts)
  inputs: collections.deque[np.ndarray] = collections.deque()  # waiting for their output
  generated: collections.deque[np.ndarray] = collections.deque()
  first_generated = 0  # the model frame generated[0] is
  picked, emitted, cut_pending = 0, 0, False

  def ready():  # the outputs whose generated frame has come
    nonlocal first_generated, emitted
    while inputs and back[emitted] < first_generated + len(generated):
      while back[emitted] > first_generated:  # a generated frame no output shows any more
        generated.popleft()
        first_generated += 1
      scene = (scenes[back[emitted]],) if with_scenes else ()
      yield (inputs.popleft(), generated[0], *scene)
      emitted += 1

  count = 0
  for index, frame in enumerate(frames):
    if index >= num_frames:
      break
    frame = np.asarray(frame)
    cut_pending |= detector.is_cut(frame) or (index in given and index > 0)
    inputs.append(frame)
    while picked < model_frames and picks[picked] == index:
      scenes.append((scenes[-1] + cut_pending) if scenes else 0)
      generated.extend(converter.push(frame, new_scene=cut_pending))
      cut_pending = False
      picked += 1
    yield from ready()
    count = index + 1
  if count < num_frames:
    raise ValueError(f'the video ended after {count} of its {num_frames} frames')
  generated.extend(converter.finish())
  yield from ready()
