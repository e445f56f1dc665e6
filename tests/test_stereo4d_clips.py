"""Stereo4D clip preparation: frame selection, frame fetching, the disparity filter, captions."""

import json
import threading

import numpy as np
import pytest

from data_builders.stereo4d import captions, clips, disparity_filter
from eye2eye_jax.data import text_encoding, video_io
from eye2eye_jax.evaluation import stereo_metrics


def test_clips_are_resampled_to_16_fps_and_cut_into_80_frames():
  timestamps = np.round(np.arange(360) * 1e6 / 30).astype(np.int64)  # 12 s at 30 fps
  plans = clips.plan_clips('vid_0', timestamps)
  assert [p.name for p in plans] == ['vid_0_000', 'vid_0_001']  # 192 frames -> 2 clips
  for plan in plans:
    assert len(plan.times_us) == 80 and np.isin(plan.times_us, timestamps).all()
    steps = np.diff(plan.times_us) / 1e3
    assert np.all(np.abs(steps - 62.5) <= 1e3 / 30)  # 16 fps, to the nearest source frame


def test_bad_timestamps_are_named():
  with pytest.raises(ValueError, match='no timestamps'):
    clips.plan_clips('x', [])
  with pytest.raises(ValueError, match='strictly increasing'):
    clips.plan_clips('x', [0, 10, 10])


def test_frames_are_fetched_by_time(tmp_path):
  frames = np.zeros((10, 16, 16, 3), np.uint8)
  frames[:, :, :] = (np.arange(10) * 25)[:, None, None, None]  # frame i is grey 25 i
  path = video_io.write_video(tmp_path / 'grey.mp4', frames, 10.0, crf=0)
  info = video_io.video_info(path)
  assert (info.width, info.height, info.num_frames, info.fps) == (16, 16, 10, 10.0)
  got = video_io.read_frames_at(path, [0.0, 0.31, 0.7, 0.3])
  np.testing.assert_allclose(got.mean(axis=(1, 2, 3)), [0, 75, 175, 75], atol=2)
  with pytest.raises(video_io.VideoError, match='grey.mp4.*past the end'):
    video_io.read_frames_at(path, [1.5])
  # By index, in one pass from a seek to the first index asked for: the same pixels.
  got = dict(video_io.iter_frames(path, [7, 3, 3, 4]))
  assert sorted(got) == [3, 4, 7]
  for index, frame in got.items():
    np.testing.assert_array_equal(frame, video_io.read_frames_at(path, [index / 10])[0])
  with pytest.raises(video_io.VideoError, match='grey.mp4: frame 10 is past the end'):
    list(video_io.iter_frames(path, [2, 10]))


def test_frame_counts_come_from_packets_and_reading_ahead_stops_with_its_reader(tmp_path):
  frames = np.zeros((30, 16, 16, 3), np.uint8)
  path = video_io.write_video(tmp_path / 'grey.mp4', frames, 10.0)
  assert video_io.video_info(path).num_frames == 30
  truncated = tmp_path / 'cut.mp4'
  truncated.write_bytes(path.read_bytes()[:len(path.read_bytes()) * 2 // 3])
  with pytest.raises(video_io.VideoError, match='cut.mp4'):
    video_io.video_info(truncated)
  def readers() -> int:  # other tests' libraries may start or end threads meanwhile
    return sum(t.name == video_io.READ_AHEAD_THREAD for t in threading.enumerate())

  for _ in range(3):  # stopped after one frame: the decoding thread ends with the loop
    reader = video_io.iter_frames(path, range(30), read_ahead=2)
    assert next(reader)[0] == 0 and readers() == 1
    reader.close()
    assert readers() == 0
  assert [i for i, _ in video_io.iter_frames(path, [29, 5])] == [5, 29]


def _pair(disparity: float, size: int = 128, frames: int = 2):
  import skimage.data
  import skimage.transform
  texture = skimage.transform.resize(skimage.data.astronaut(), (size, size + 64)) * 255
  right = texture[:, 32:32 + size]
  left = stereo_metrics.shift_columns(texture, -disparity)[:, 32:32 + size]
  as_clip = lambda x: np.repeat(np.round(x).astype(np.uint8)[None], frames, 0)
  return as_clip(left), as_clip(right)


@pytest.mark.parametrize('disparity, kept', [(4.0, True), (10.0, True), (25.0, False)])
def test_the_disparity_filter_keeps_and_drops_the_right_clips(disparity, kept):
  f = disparity_filter.DisparityFilter()  # 60 px at 512 = 15 px at 128
  left, right = _pair(disparity)
  statistics = f.measure(left, right)
  assert statistics['median_px'] == pytest.approx(disparity, abs=0.5)
  assert f.keep(statistics, 128) == ((True, '') if kept else (False, 'disparity_too_large'))


@pytest.mark.parametrize('disparity, kept', [(20.0, True), (80.0, False)])
def test_a_512_px_clip_matched_at_half_size_is_judged_in_its_own_pixels(disparity, kept):
  f = disparity_filter.DisparityFilter()  # matches at 256 px, reports at 512
  left, right = _pair(disparity, size=512, frames=1)
  statistics = f.measure(left, right)
  assert statistics['median_px'] == pytest.approx(disparity, abs=1.0)
  assert f.keep(statistics, 512) == ((True, '') if kept else (False, 'disparity_too_large'))


def describe(frame: np.ndarray) -> str:
  return f'a {frame.shape[1]}x{frame.shape[0]} frame'


def encode(caption: str) -> np.ndarray:
  return np.ones((len(caption.split()), 4), np.float32)


def test_captions_come_from_a_callable_a_sidecar_or_nothing(tmp_path):
  frame = np.zeros((8, 12, 3), np.uint8)
  assert captions.Captioner(f'{__name__}:describe')('c', 'n', 'v', frame) == 'a 12x8 frame'
  sidecar = tmp_path / 'captions.json'
  sidecar.write_text(json.dumps({'vid_0': 'a street at night', 'vid_0_001': 'a cat'}))
  captioner = captions.Captioner(sidecar=sidecar)
  assert captioner('vid_0_001', 'vid_0', 'abc', frame) == 'a cat'
  assert captioner('vid_0_002', 'vid_0', 'abc', frame) == 'a street at night'
  assert captions.Captioner()('c', 'n', 'v', frame) == ''
  encoder = text_encoding.TextEncoder.from_spec(f'{__name__}:encode', 4)
  assert encoder('two words').shape == (2, 4)
  with pytest.raises(ValueError, match='expected'):
    text_encoding.TextEncoder.from_spec(f'{__name__}:encode', 8)('x')
  with pytest.raises(ValueError, match='cannot load'):
    captions.Captioner('no_such_module:caption')
  sidecar.write_text('[1, 2]')
  with pytest.raises(ValueError, match='captions.json.*JSON object'):
    captions.Captioner(sidecar=sidecar)
