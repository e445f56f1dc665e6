"""The notebook's helpers: conversion of arrays and files, display frames, clear errors."""

import json

import numpy as np
import pytest

from eye2eye_jax import notebook_helpers
from eye2eye_jax.data import video_io
from eye2eye_jax.sampling import stereo_formats, video_conversion


@pytest.fixture(scope='module')
def sampler(tiny_checkpoint):
  return notebook_helpers.load_sampler(str(tiny_checkpoint), str(tiny_checkpoint),
                                       notebook_helpers.repo_config('tiny'),
                                       base_num_steps=2, refiner_num_steps=2)


def test_load_sampler_applies_settings_and_rejects_unknown_ones(sampler, tiny_checkpoint):
  assert sampler.sample_config.base_num_steps == 2
  assert sampler.refiner is not None and sampler.base.resolution == 8
  with pytest.raises(KeyError, match='base_steps'):
    notebook_helpers.load_sampler(str(tiny_checkpoint), '', notebook_helpers.repo_config('tiny'),
                                  base_steps=2)
  with pytest.raises(FileNotFoundError, match='nowhere'):
    notebook_helpers.repo_config('nowhere')


def test_convert_clip_and_display_frames(sampler):
  clip = notebook_helpers.synthetic_clip(num_frames=3, size=16, seed=2)
  assert clip.right.shape == (3, 16, 16, 3) and clip.left.shape == (3, 16, 16, 3)
  result = notebook_helpers.convert_clip(sampler, clip.right, true_left=clip.left)
  assert result.left.shape == result.right.shape == (3, 16, 16, 3)
  np.testing.assert_array_equal(result.right, clip.right)
  frames = notebook_helpers.display_frames(result, frame=-1)
  assert list(frames) == ['input right', 'generated left', 'true left', 'side-by-side (L | R)',
                          'anaglyph (red-cyan)']
  np.testing.assert_array_equal(frames['true left'], clip.left[2])
  np.testing.assert_array_equal(frames['side-by-side (L | R)'],
                                np.concatenate([result.left[2], clip.right[2]], axis=1))
  np.testing.assert_array_equal(frames['anaglyph (red-cyan)'],
                                stereo_formats.anaglyph(result.left[2:], clip.right[2:])[0])
  videos = notebook_helpers.display_videos(result)
  assert videos['side-by-side (L | R)'].shape == (3, 16, 32, 3)
  with pytest.raises(IndexError, match='frame 3'):
    notebook_helpers.display_frames(result, frame=3)


def test_measure_disparity_of_a_known_shift(sampler):
  right = notebook_helpers.synthetic_clip(num_frames=2, size=32, seed=4).right
  left = np.roll(right, 2, axis=2)  # every pixel 2 px to the right in the left view
  result = notebook_helpers.StereoResult(left=left, right=right, fps=8.0)
  estimate = notebook_helpers.measure_disparity(result)['generated']
  inner = estimate.valid[:, :, 4:-4]
  assert inner.mean() > 0.5
  assert abs(np.median(estimate.disparity[:, :, 4:-4][inner]) - 2.0) < 0.2
  figure = notebook_helpers.disparity_figure(result)
  assert len(figure.axes) == 3  # one map, its colour bar and the per-frame plot


def test_bad_inputs_are_named(sampler, tmp_path):
  with pytest.raises(ValueError, match=r'my_clip: .*got shape \(4, 16, 16\)'):
    notebook_helpers.convert_clip(sampler, np.zeros((4, 16, 16), np.uint8), name='my_clip')
  with pytest.raises(ValueError, match='frames: expected uint8 pixels, got float32'):
    notebook_helpers.convert_clip(sampler, np.zeros((4, 16, 16, 3), np.float32))
  missing = tmp_path / 'missing.mp4'
  with pytest.raises(FileNotFoundError, match='missing.mp4'):
    notebook_helpers.convert_video_file(sampler, missing)
  text = tmp_path / 'notes.txt'
  text.write_text('not a video')
  with pytest.raises(video_io.VideoError, match='notes.txt'):
    notebook_helpers.convert_video_file(sampler, text)
  with pytest.raises(RuntimeError, match='Colab'):
    notebook_helpers.upload_video(tmp_path)


def test_convert_video_file_shrinks_trims_and_writes_layouts(sampler, tmp_path):
  frames = notebook_helpers.synthetic_clip(num_frames=6, size=32, seed=5).right
  path = video_io.write_video(tmp_path / 'clip.mp4', frames, fps=12.0)
  result = notebook_helpers.convert_video_file(sampler, path, max_frames=4, max_side=16,
                                               output_dir=tmp_path / 'out')
  assert result.left.shape == result.right.shape == (4, 16, 16, 3) and result.fps == 12.0
  sbs = video_io.read_video(tmp_path / 'out' / 'clip_LRF_Full_SBS.mp4')
  assert sbs.frames.shape == (4, 16, 32, 3) and sbs.fps == 12.0
  assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
      'clip_LRF_Full_SBS.mp4', 'clip_LR_Half_SBS.mp4', 'clip_TB.mp4', 'clip_anaglyph.mp4',
      'clip_left.mp4', 'clip_stereo.json', 'clip_stereo.png']


def test_the_notebook_converts_a_file_as_the_sample_command_does(sampler, tmp_path):
  """Chunks, a scene cut and per-frame noise, as ``sample`` streams them: the same frames."""
  streamed = notebook_helpers.with_settings(sampler, chunk_frames=8, scene_cut_threshold=0.0,
                                            scene_cuts=(8,), outputs=('left', 'sbs'))
  rng = np.random.default_rng(0)
  frames = np.concatenate([np.repeat(rng.integers(0, 255, (1, 16, 16, 3), np.uint8), 8, 0),
                           np.repeat(rng.integers(0, 255, (1, 16, 16, 3), np.uint8), 12, 0)])
  path = tmp_path / 'clip.mp4'
  video_io.write_video(path, frames, 8.0)
  result = notebook_helpers.convert_video_file(streamed, path, max_frames=0, max_side=0,
                                               output_dir=tmp_path / 'notebook')
  written = video_conversion.convert_file(streamed, path, tmp_path / 'sample')
  by_command = video_io.read_video(written.videos['left']).frames
  by_notebook = video_io.read_video(tmp_path / 'notebook' / 'clip_left.mp4').frames
  np.testing.assert_array_equal(by_notebook, by_command)
  # The same comfort report, written by both and shown by the notebook.
  report = json.loads(written.report[0].read_text())
  assert json.loads((tmp_path / 'notebook' / 'clip_stereo.json').read_text()) == report
  shown = notebook_helpers.comfort_of(result, streamed.sample_config)
  assert shown.verdict() == report['verdict']
  assert shown.summary()['disparity'] == report['summary']['disparity']
  # Not one whole-clip call, as the notebook converted before.
  whole = streamed.convert(video_io.read_video(path).frames, fps=8.0)
  assert np.abs(whole.astype(int) - result.left).max() > 0
