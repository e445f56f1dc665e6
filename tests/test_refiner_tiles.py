"""The refiner on overlapping spatial tiles: the tiles cover the frame, the blend is exact,
and the bundled demo refiner's output barely changes."""

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from eye2eye_jax.data import synthetic_scenes
from eye2eye_jax.evaluation import view_metrics
from eye2eye_jax.sampling import stereo_sampler, video_conversion


def test_tiles_cover_the_frame_and_are_off_when_not_needed():
  assert stereo_sampler.refiner_tiles(64, 64, 0, 16, 4) is None
  assert stereo_sampler.refiner_tiles(64, 64, 64, 16, 4) is None  # one tile is the frame
  rows, columns, size = stereo_sampler.refiner_tiles(64, 96, 32, 16, 4)
  assert size == (32, 32) and rows == (0, 16, 32) and columns == (0, 16, 32, 48, 64)
  rows, columns, size = stereo_sampler.refiner_tiles(40, 100, 30, 8, 4)  # 30 -> 32 px
  assert size == (32, 32) and rows[-1] + 32 == 40 and columns[-1] + 32 == 100
  with pytest.raises(ValueError, match='refiner_tile'):
    stereo_sampler.refiner_tiles(64, 64, -8, 16, 4)


def test_the_tiled_blend_of_a_pointwise_prediction_is_that_prediction():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(1, 6, 24, 40, 3)), jnp.float32)
  condition = jnp.asarray(rng.normal(size=(6, 24, 40, 3)), jnp.float32)
  predict = lambda args: 2 * args[0] + args[1] * args[2]  # (x tile, condition tile, t)
  tiles = stereo_sampler.refiner_tiles(24, 40, 16, 8, 4)
  denoise = stereo_sampler._tiled(predict, condition, (0, 2), 4, tiles)
  t = jnp.array([0.5])
  np.testing.assert_allclose(denoise(x, t), 2 * x + condition[None] * 0.5, atol=1e-5)


def test_the_demo_refiner_on_tiles_stays_within_40_db_of_whole_frames():
  clip = synthetic_scenes.SceneGenerator(synthetic_scenes.SceneParams(
      num_frames=8, height=64, width=64, max_disparity=8.0)).generate(3)
  config = load_config('demo')
  outputs = {}
  for tile in (0, 32):
    config.sample.refiner_tile, config.sample.refiner_tile_overlap = tile, 16
    sampler = video_conversion.load_sampler(config, None, None)
    outputs[tile] = sampler.convert(np.asarray(clip.right), seed=0)
  assert not np.array_equal(outputs[32], outputs[0])  # the tiles really ran
  # Measured: 45.0 dB between them; against the true left view 28.2 dB tiled, 28.1 whole.
  assert view_metrics.psnr(outputs[32], outputs[0]) > 40
  truth = np.asarray(clip.left)
  assert view_metrics.psnr(outputs[32], truth) > view_metrics.psnr(outputs[0], truth) - 0.5
