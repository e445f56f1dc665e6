"""The refiner on overlapping spatial tiles: the tiles cover the frame, the blend is exact,
and the bundled demo refiner's output barely changes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from eye2eye_jax.data import synthetic_scenes, video_io
from eye2eye_jax.evaluation import view_metrics
from eye2eye_jax.planning import compiled_programs
from eye2eye_jax.sampling import (memory_fit, stereo_sampler, video_conversion,
                                  window_blending)


def test_tiles_cover_the_frame_and_are_off_when_not_needed():
  assert window_blending.refiner_tiles(64, 64, 0, 16, 4) is None
  assert window_blending.refiner_tiles(64, 64, 64, 16, 4) is None  # one tile is the frame
  rows, columns, size = window_blending.refiner_tiles(64, 96, 32, 16, 4)
  assert size == (32, 32) and rows == (0, 16, 32) and columns == (0, 16, 32, 48, 64)
  rows, columns, size = window_blending.refiner_tiles(40, 100, 30, 8, 4)  # 30 -> 32 px
  assert size == (32, 32) and rows[-1] + 32 == 40 and columns[-1] + 32 == 100
  with pytest.raises(ValueError, match='refiner_tile'):
    window_blending.refiner_tiles(64, 64, -8, 16, 4)


@pytest.mark.parametrize('per_device', [1, 3, 8])
@pytest.mark.parametrize('tiled', [False, True])
def test_the_blend_of_a_pointwise_prediction_is_that_prediction(tiled, per_device):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(1, 7, 24, 40, 3)), jnp.float32)
  condition = jnp.asarray(rng.normal(size=(7, 24, 40, 3)), jnp.float32)
  # pieces (B, T, h, w, C) and times (B,)
  predict = lambda x, c, t: 2 * x + c * t[:, None, None, None, None]
  tiles = window_blending.refiner_tiles(24, 40, 16, 8, 4) if tiled else None
  starts = window_blending.window_starts(7, 4, 2)  # 3 windows, padded to whole calls
  denoise = window_blending.blended_denoiser(predict, condition, starts, 4, tiles, per_device)
  t = jnp.array([0.5])
  np.testing.assert_allclose(denoise(x, t), 2 * x + condition[None] * 0.5, atol=1e-5)


def test_the_blend_embeds_no_video_sized_constant_in_the_program():
  frames, height, width = 16, 64, 96
  condition = jax.ShapeDtypeStruct((frames, height, width, 3), jnp.float32)
  x = jax.ShapeDtypeStruct((1, frames, height, width, 3), jnp.float32)
  tiles = window_blending.refiner_tiles(height, width, 32, 8, 4)

  def blend(condition, x, t):
    denoise = window_blending.blended_denoiser(lambda x, c, t: x + c, condition,
                                               window_blending.window_starts(frames, 8, 4), 8,
                                               tiles)
    return denoise(x, t)

  compiled = jax.jit(blend).lower(condition, x, jax.ShapeDtypeStruct((1,), jnp.float32)).compile()
  # The normaliser alone would be frames x height x width float32 (393 KB here), a
  # piece's weights window x tile (32 KB).
  assert compiled_programs.constant_bytes(compiled) < 0.01 * frames * height * width * 4


def test_calls_are_as_few_as_the_batch_allows_with_little_padding():
  assert window_blending.group_size(3, 4, None) == 3
  assert window_blending.group_size(5, 4, None) == 3  # 2 calls of 3, not 4 + 4
  assert window_blending.group_size(45, 1, None) == 1


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


@pytest.mark.parametrize('height,width', [(64, 64), (128, 224), (256, 256)])
def test_the_piece_memory_estimate_bounds_what_xla_allocates(height, width):
  config = load_config('demo')
  estimate = memory_fit.piece_bytes(config.model, config.data.num_frames, height, width)
  compiled = compiled_programs.forward_figures(config, (1, config.data.num_frames, height,
                                                        width))['temp_bytes']
  # Measured: 1.7x at 64 px, 1.5x at 128x224, 1.4x at 256 px.
  assert compiled <= estimate < 3 * compiled


def test_tiles_are_chosen_from_the_frame_size_and_the_budget():
  model = load_config('demo').model
  choose = lambda *args: memory_fit.choose_refiner_tiling(model, 8, *args, overlap=16)
  assert choose(64, 64, 4, 2**30, 32) == (0, 4)  # whole frames, as before
  assert choose(720, 1280, 4, 8 * 2**30, 64) == (256, 2)  # about 3 GiB a 256 px piece
  assert choose(720, 1280, 4, 2 * 2**30, 64) == (192, 1)  # a smaller budget, a smaller tile
  assert choose(720, 1280, 4, 8 * 2**30, 32) == (128, 4)  # no wider than 4x the crops
  with pytest.raises(ValueError, match='sample.refiner_tile: no tile of 720x1280 frames fits'):
    choose(720, 1280, 4, 2**20, 32)


def test_a_720p_clip_converts_with_the_demo_defaults(tmp_path):
  """The whole-frame refiner would ask for about 1.7 TB here; the default tiles fit."""
  config = load_config('demo')
  config.sample.update(base_num_steps=1, refiner_num_steps=1, outputs=('sbs',))
  sampler = video_conversion.load_sampler(config)
  source = tmp_path / 'clip_720p.mp4'
  video_io.write_video(source, np.random.default_rng(0).integers(0, 255, (1, 720, 1280, 3),
                                                                 dtype=np.uint8), 24.0)
  written = video_conversion.convert_file(sampler, source, tmp_path / 'out')
  assert video_io.read_video(written.videos['sbs']).frames.shape == (1, 720, 2560, 3)
  assert sampler.plan_memory(720, 1280)[0] == 128  # 4x the demo refiner's 32 px crops
