"""Long videos in bounded memory: chunks, their cross-faded seams, scene cuts, streaming."""

import numpy as np
import pytest

from conftest import load_config
from eye2eye_jax.data import synthetic_scenes, video_io
from eye2eye_jax.models import checkpoints
from eye2eye_jax.sampling import (chunked_conversion, scene_cuts, stereo_sampler,
                                  video_conversion)


@pytest.fixture(scope='module')
def stage(tiny_checkpoint):
  return stereo_sampler.Stage(*checkpoints.load_for_inference(str(tiny_checkpoint)))


def _sampler(stage, refiner=None, **overrides):
  sample_config = load_config('tiny').sample
  sample_config.update(overrides)
  return stereo_sampler.StereoSampler(stage, refiner, sample_config)


def _scenes(count: int, frames: int, size: int = 32) -> list[np.ndarray]:
  generator = synthetic_scenes.SceneGenerator(synthetic_scenes.SceneParams(
      num_frames=frames, height=size, width=size, max_disparity=size / 4))
  return [generator.generate(seed).right for seed in range(count)]


def _stream(sampler, video, fps=0.0, cuts=()):
  pairs = list(chunked_conversion.convert_stream(sampler, iter(video), len(video), fps, cuts))
  source, generated = (np.stack(views) for views in zip(*pairs))
  np.testing.assert_array_equal(source, video)  # every input frame comes back, in order
  return generated


def test_chunk_settings_and_fade():
  config = load_config('tiny').sample
  assert chunked_conversion.chunk_layout(config, 8) == (64, 4)  # 8 windows, half a window
  config.update(chunk_frames=12, chunk_overlap=3)
  assert chunked_conversion.chunk_layout(config, 8) == (12, 3)
  np.testing.assert_allclose(chunked_conversion.fade_weights(3), [0.75, 0.5, 0.25])
  config.update(chunk_frames=6)
  with pytest.raises(ValueError, match=r"chunk_frames=6: a chunk must hold at least the "
                                       r"model's window of 8 frames"):
    chunked_conversion.chunk_layout(config, 8)
  config.update(chunk_frames=12, chunk_overlap=12)
  with pytest.raises(ValueError, match=r'chunk_overlap=12: must be in \[0, 11\]'):
    chunked_conversion.chunk_layout(config, 8)


class _IndexSampler:
  """Stands in for a StereoSampler: a frame's output is its index in the video (so any
  misplaced, dropped or doubled frame shows), and each call's length is recorded."""

  def __init__(self, window: int, **sample):
    self.sample_config = load_config('tiny').sample
    self.sample_config.update(scene_cut_threshold=0.0, **sample)
    self.base = type('Stage', (), {'num_frames': window})()
    self.refiner = None
    self.lengths = []

  def convert(self, video, seed=None, first_frame=0):
    self.lengths.append(len(video))
    index = first_frame + np.arange(len(video), dtype=np.uint8)
    return np.broadcast_to(index[:, None, None, None], video.shape).copy()


@pytest.mark.parametrize('frames,chunk,overlap,cuts', [
    (40, 8, 2, ()), (41, 8, 3, ()), (40, 8, 0, ()), (5, 8, 2, ()), (8, 8, 4, ()),
    (50, 12, 4, (7, 20, 21, 33)), (30, 8, 2, (29,))])
def test_every_frame_comes_out_once_in_place_from_chunks_of_few_lengths(frames, chunk, overlap,
                                                                      cuts):
  sampler = _IndexSampler(4, chunk_frames=chunk, chunk_overlap=overlap)
  video = np.zeros((frames, 2, 2, 3), np.uint8)
  generated = _stream(sampler, video, cuts=cuts)
  np.testing.assert_array_equal(generated[:, 0, 0, 0], np.arange(frames))
  # Whole chunks, and each scene's rest padded to whole windows: few program shapes, and
  # the frames converted are the video's, plus the faded ones, plus padding.
  assert all(n == chunk or (n % 4 == 0 and n < chunk) for n in sampler.lengths), sampler.lengths
  scenes = len(cuts) + 1
  assert sum(sampler.lengths) <= frames + overlap * (len(sampler.lengths) - scenes) + 3 * scenes
  # Each output frame's scene number, counted at the cuts (what automatic convergence uses).
  numbered = [scene for *_, scene in chunked_conversion.convert_stream(
      _IndexSampler(4, chunk_frames=chunk, chunk_overlap=overlap), iter(video), frames,
      cuts=cuts, with_scenes=True)]
  np.testing.assert_array_equal(numbered, np.searchsorted(sorted(cuts), np.arange(frames),
                                                          side='right'))


def test_scene_cuts_are_found_where_scenes_change_and_not_in_camera_pans():
  scenes = _scenes(5, 20)
  video = np.concatenate(scenes)
  assert scene_cuts.find_scene_cuts(video, 20.0) == [20, 40, 60, 80]
  assert scene_cuts.find_scene_cuts(video, 0.0) == []  # off
  with pytest.raises(ValueError, match='scene_cut_threshold must be >= 0'):
    scene_cuts.SceneCutDetector(-1.0)


def test_one_chunk_is_the_whole_video_conversion(stage):
  """Chunking and frame-rate resampling in the stream change nothing when one chunk holds
  the video: the frames are those of ``StereoSampler.convert``."""
  video = np.random.default_rng(0).integers(0, 255, (24, 16, 16, 3), np.uint8)
  sampler = _sampler(stage, stage, model_fps=8.0, chunk_frames=8, scene_cut_threshold=0.0)
  np.testing.assert_array_equal(_stream(sampler, video, fps=24.0),
                                sampler.convert(video, fps=24.0))


def test_the_stream_holds_a_chunk_of_frames_whatever_the_length(stage):
  sampler = _sampler(stage, chunk_frames=8, chunk_overlap=2, scene_cut_threshold=0.0)
  video = np.random.default_rng(1).integers(0, 255, (40, 8, 8, 3), np.uint8)
  read = 0

  def frames():
    nonlocal read
    for frame in video:
      read += 1
      yield frame

  held = []
  for written, _ in enumerate(chunked_conversion.convert_stream(sampler, frames(), 40), 1):
    held.append(read - written)
  assert len(held) == 40
  assert max(held) <= 8  # input frames read but not yet written: at most one chunk


def test_nothing_is_blended_across_a_scene_cut(stage):
  """What comes after a cut does not depend on what came before it, found or given."""
  a, b, c = _scenes(3, 11, size=16)
  sampler = _sampler(stage, chunk_frames=8, chunk_overlap=2)
  after = [_stream(sampler, np.concatenate([first, c])) for first in (a, b)]
  np.testing.assert_array_equal(after[0][11:], after[1][11:])
  assert not np.array_equal(after[0][:11], after[1][:11])
  undetected = _sampler(stage, chunk_frames=8, chunk_overlap=2, scene_cut_threshold=0.0)
  given = [_stream(undetected, np.concatenate([first, c]), cuts=[11]) for first in (a, b)]
  np.testing.assert_array_equal(given[0][11:], after[0][11:])
  blended = [_stream(undetected, np.concatenate([first, c])) for first in (a, b)]
  assert not np.array_equal(blended[0][11:], blended[1][11:])  # without the cut they mix


def test_chunk_seams_are_no_larger_than_the_change_inside_a_chunk():
  """A still video 6 windows long, in chunks of 2 windows: cross-faded seams change the
  frames no more than frames change inside a chunk; chunks butted together (no overlap)
  show a jump. The trained demo base is needed: its temporal layers make a chunk's frames
  agree, so separately converted chunks differ."""
  stage = stereo_sampler.Stage(*checkpoints.load_for_inference('bundled:demo'))
  window = stage.num_frames
  chunk, total = 2 * window, 6 * window
  still = np.repeat(_scenes(1, 1)[0], total, axis=0)

  def change(overlap: int) -> np.ndarray:
    config = load_config('demo').sample
    config.update(refiner_checkpoint='', base_num_steps=6, solver='dpmpp_2m',
                  chunk_frames=chunk, chunk_overlap=overlap, scene_cut_threshold=0.0)
    changes = []
    for seed in (0, 1):
      config.seed = seed
      generated = _stream(stereo_sampler.StereoSampler(stage, None, config), still)
      changes.append(np.abs(np.diff(generated.astype(np.float32), axis=0)).mean(axis=(1, 2, 3)))
    return np.mean(changes, axis=0)

  def seams(overlap: int) -> list[int]:  # frame i -> i + 1 changes where chunks meet
    starts = range(chunk - overlap, total - overlap, chunk - overlap)
    return sorted({i for start in starts for i in range(start - 1, start + overlap)})

  def ratios(change: np.ndarray, overlap: int) -> tuple[float, float]:
    at_seams = seams(overlap)
    inside = [i for i in range(total - 1) if i not in at_seams]
    return (change[at_seams].mean() / change[inside].mean(),
            change[at_seams].max() / change[inside].max())

  faded, butted = ratios(change(window // 2), window // 2), ratios(change(0), 0)
  # Measured: faded 1.05 (mean) and 1.04 (largest); butted 1.99 and 1.83.
  assert faded[0] < 1.15 and faded[1] < 1.1, faded
  assert butted[0] > 1.4 and butted[1] > 1.4, butted


def test_a_file_streams_through_to_every_layout(stage, tmp_path):
  video = np.concatenate(_scenes(2, 10, size=16))
  path = video_io.write_video(tmp_path / 'film.mp4', video, 8.0, crf=0)
  sampler = _sampler(stage, chunk_frames=8, chunk_overlap=2, crf=0)
  paths = video_conversion.convert_file(sampler, path, tmp_path / 'out')
  decoded = video_io.read_video(path).frames
  expected = video_io.write_video(tmp_path / 'expected.mp4', _stream(sampler, decoded), 8.0,
                                  crf=0)  # through the same encoder
  left = video_io.read_video(paths.videos['left']).frames
  assert left.shape == decoded.shape
  np.testing.assert_array_equal(left, video_io.read_video(expected).frames)
  sbs = video_io.read_video(paths.videos['sbs']).frames
  assert sbs.shape == (20, 16, 32, 3)
