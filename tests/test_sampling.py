"""The two-stage sampler: windows, frame sizes, mirroring, seams, audio and batch helpers."""

import dataclasses
import gc
import weakref

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import load_config
from eye2eye_jax import diffusion
from eye2eye_jax.data import frame_ops, video_io
from eye2eye_jax.models import checkpoints
from eye2eye_jax.sampling import stereo_sampler, video_conversion, window_blending


@pytest.fixture(scope='module')
def stage(tiny_checkpoint):
  return stereo_sampler.Stage(*checkpoints.load_for_inference(str(tiny_checkpoint)))


def _sampler(stage, refiner=None, **overrides):
  sample_config = load_config('tiny').sample
  for key, value in overrides.items():
    sample_config[key] = value
  return stereo_sampler.StereoSampler(stage, refiner, sample_config)


def test_window_starts_cover_every_frame_and_end_at_the_last():
  assert window_blending.window_starts(4, 4, 2) == (0,)
  assert window_blending.window_starts(12, 4, 2) == (0, 2, 4, 6, 8)
  assert window_blending.window_starts(11, 4, 2) == (0, 2, 4, 6, 7)
  with pytest.raises(ValueError):
    window_blending.window_starts(3, 4, 2)


def test_base_grid_keeps_the_aspect_ratio():
  assert stereo_sampler.base_grid(1080, 1920, 32, 4) == (32, 56)
  assert stereo_sampler.base_grid(64, 64, 32, 4) == (32, 32)
  assert stereo_sampler.base_grid(21, 34, 8, 2) == (8, 12)


def test_frame_rate_resampling_indices():
  np.testing.assert_array_equal(frame_ops.resample_frame_indices(6, 30.0, 30.0), np.arange(6))
  np.testing.assert_array_equal(frame_ops.resample_frame_indices(6, 30.0, 15.0), [0, 2, 4])


def test_two_stage_output_has_the_input_shape_and_frame_rate_resampling(stage):
  sampler = _sampler(stage, stage, model_fps=8.0)
  video = np.random.default_rng(0).integers(0, 255, (10, 13, 22, 3), np.uint8)
  left, base = sampler.convert(video, fps=24.0, return_base=True)
  assert left.shape == base.shape == video.shape
  assert not np.array_equal(left, base)  # the refiner changed the base output


def test_left_input_is_mirrored_through_the_model(stage):
  video = np.random.default_rng(1).integers(0, 255, (4, 16, 16, 3), np.uint8)
  right_from_left = _sampler(stage, input_eye='left').convert(video, seed=3)
  left_from_mirror = _sampler(stage).convert(video[:, :, ::-1], seed=3)
  np.testing.assert_array_equal(right_from_left, left_from_mirror[:, :, ::-1])


def test_long_videos_have_no_seam_at_window_boundaries():
  """A still video 3 windows long: frame-to-frame change at window edges is as elsewhere.

  A trained model is needed (the bundled demo base): within a window its temporal layers
  make the frames agree, so independent windows show a jump where they meet.
  """
  from eye2eye_jax.data import synthetic_scenes
  stage = stereo_sampler.Stage(*checkpoints.load_for_inference('bundled:demo'))
  window = stage.num_frames
  total = 3 * window
  scene = synthetic_scenes.SceneGenerator(synthetic_scenes.SceneParams(
      num_frames=1, height=32, width=32)).generate(5)
  video = np.repeat(scene.right, total, axis=0)  # a still scene: any jump comes from the sampler
  starts = window_blending.window_starts(total, window, 2)
  seams = [window - 1, 2 * window - 1]  # where non-overlapping windows meet

  def seam_ratio(overlap: int) -> float:
    sample_config = load_config('demo').sample
    sample_config.update(window_overlap=overlap, base_num_steps=10, refiner_checkpoint='')
    sampler = stereo_sampler.StereoSampler(stage, None, sample_config)
    change = np.mean([np.abs(np.diff(sampler.convert(video, seed=seed).astype(np.float32),
                                     axis=0)).mean(axis=(1, 2, 3)) for seed in (0, 1)], axis=0)
    edges = seams if overlap == 0 else sorted({s + window - 1 for s in starts[:-1]} |
                                              {s - 1 for s in starts[1:]})
    inside = [i for i in range(total - 1) if i not in edges]
    return float(change[seams].mean() / change[inside].mean())

  blended, independent = seam_ratio(2), seam_ratio(0)
  assert blended < 1.2, blended  # measured 1.07-1.09
  assert independent > 1.2 and independent > blended + 0.1, (independent, blended)  # 1.3


def test_audio_of_the_input_is_kept(stage, tmp_path):
  frames = np.random.default_rng(3).integers(0, 255, (8, 16, 16, 3), np.uint8)
  silent = video_io.write_video(tmp_path / 'silent.mp4', frames, 8.0)
  with_audio = tmp_path / 'talk.mp4'
  import subprocess
  subprocess.run([video_io.ffmpeg_path(), '-loglevel', 'error', '-i', str(silent), '-f', 'lavfi',
                  '-i', 'sine=frequency=440:duration=1', '-c:v', 'copy', '-c:a', 'aac',
                  '-shortest', str(with_audio)], check=True)
  assert video_io.has_audio(with_audio) and not video_io.has_audio(silent)
  paths = video_conversion.convert_file(_sampler(stage), with_audio, tmp_path / 'out')
  for path in paths.videos.values():
    assert video_io.has_audio(path), path
    assert video_io.read_video(path).frames.shape[0] == 8


def test_list_file_inputs(tmp_path):
  (tmp_path / 'a.mp4').write_bytes(b'x')
  (tmp_path / 'list.txt').write_text('# videos\na.mp4\n\n/abs/b.mp4\n')
  assert video_conversion.list_inputs(str(tmp_path / 'list.txt')) == [
      tmp_path / 'a.mp4', video_conversion.pathlib.Path('/abs/b.mp4')]


def test_bad_sample_settings_are_clear_errors(stage):
  with pytest.raises(ValueError, match='input_eye'):
    _sampler(stage, input_eye='center')
  with pytest.raises(ValueError, match='refiner_t_start'):
    _sampler(stage, refiner_t_start=1.5)
  with pytest.raises(ValueError, match='unknown layout'):
    video_conversion.output_paths('/tmp', 'x', _sampler(stage, outputs=('sbs', 'mpo')).sample_config)


def test_the_refiner_starts_at_the_same_noise_level_whatever_its_schedule(stage, monkeypatch):
  starts = []

  def record(params, condition, x_start, rng, *args, t_start, **kwargs):
    starts.append(t_start)
    return jnp.zeros_like(x_start)

  monkeypatch.setattr(stereo_sampler, 'run_stage', record)
  linear = ml_collections.ConfigDict(stage.config.to_dict())
  linear.diffusion.schedule = 'linear'
  video = np.zeros((4, 16, 16, 3), np.uint8)
  for refiner_config in (stage.config, linear):
    refiner = stereo_sampler.Stage(refiner_config, stage.params)
    _sampler(stage, refiner, refiner_t_start=0.9).convert(video)
  # base from noise, refiner from 0.9 (cosine); base, then the linear refiner's equal level
  assert starts[:3] == [1.0, 0.9, 1.0]
  assert starts[3] == pytest.approx(diffusion.noise_level_time('linear', 0.9))
  assert starts[3] == pytest.approx(0.607, abs=1e-3)


def test_samplers_built_and_dropped_are_freed_with_their_weights(stage):
  """What jit caches is the stage's immutable config, never the stage or its weights."""
  video = np.zeros((4, 16, 16, 3), np.uint8)
  alive = []
  for seed in range(3):
    params = jax.tree.map(lambda a: jnp.asarray(a) * 1.0, stage.params)
    built = stereo_sampler.Stage(stage.config, params)
    _sampler(built).convert(video, seed=seed)
    alive.append((weakref.ref(built), weakref.ref(jax.tree.leaves(params)[0])))
    del built, params
  gc.collect()
  assert not any(ref() is not None for pair in alive for ref in pair)
  with pytest.raises(dataclasses.FrozenInstanceError):
    stage.params = {}
  with pytest.raises(Exception):  # a stage's config cannot change under its compiled program
    stage.config.model.channels = 4
