"""3D strength you can dial: the UNet's strength input, training examples whose disparity
scale is known (baselines, zoom), the sampler's strength and the convergence control."""

import re

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eye2eye_jax.data import datasets, input_pipeline, synthetic_scenes
from eye2eye_jax.evaluation import strength_response, synthetic_eval
from eye2eye_jax.models import surgery, unet
from eye2eye_jax.sampling import convergence, stereo_sampler


def _measured_disparity(left: np.ndarray, right: np.ndarray, max_shift: float) -> float:
  """The horizontal shift (to 1/8 px) that best maps ``right`` onto ``left`` (x -> x + d)."""
  left, right = (np.asarray(v, np.float32).mean(-1) for v in (left, right))
  width = left.shape[-1]
  columns = np.arange(width, dtype=np.float32)
  best, best_error = 0.0, np.inf
  for shift in np.arange(-max_shift, max_shift + 1e-6, 0.125):
    source = columns - shift  # left(x) = right(x - d)
    lo, hi = int(np.ceil(max(0, shift))) + 2, int(np.floor(min(width, width + shift))) - 3
    x0 = np.floor(source[lo:hi]).astype(int)
    frac = source[lo:hi] - x0
    warped = right[..., x0] * (1 - frac) + right[..., x0 + 1] * frac
    error = float(np.mean((left[..., lo:hi] - warped)**2))
    if error < best_error:
      best, best_error = float(shift), error
  return best


def _shifted_pair(disparity: float, size: int = 64, frames: int = 2):
  """A smooth random texture (right) and the same texture moved right by ``disparity`` px
  (left), both uint8 (T, size, size, 3)."""
  rng = np.random.default_rng(0)
  coarse = rng.uniform(0, 255, (frames, size // 4 + 2, size // 4 + 2, 3)).astype(np.float32)
  wide = np.stack([cv2.resize(f, (size * 2, size * 2), interpolation=cv2.INTER_CUBIC)
                   for f in coarse])[:, :size]
  right = wide[:, :, 16:16 + size]
  columns = 16 + np.arange(size, dtype=np.float32) - disparity
  x0 = np.clip(np.floor(columns).astype(int), 0, wide.shape[2] - 2)
  frac = (columns - np.floor(columns))[None, None, :, None]
  left = wide[:, :, x0] * (1 - frac) + wide[:, :, x0 + 1] * frac
  to_uint8 = lambda v: np.clip(np.round(v), 0, 255).astype(np.uint8)
  return to_uint8(left), to_uint8(right)


def _with_learned_output_layers(params, pattern: str = 'conv2/|^conv_out/', value=0.05):
  """``params`` with its zero-initialised output layers set to ``value``, as if they had
  learned something, so that the embeddings reach the prediction."""
  flat = {p: jnp.full_like(v, value) if re.search(pattern, p) else v
          for p, v in surgery.flatten(params).items()}
  return surgery.unflatten_like(params, flat)


def test_a_model_given_strength_conditioning_starts_as_the_one_it_came_from(tiny_config):
  plain = tiny_config.copy_and_resolve_references()
  conditioned = plain.copy_and_resolve_references()
  conditioned.model.strength_conditioning = True
  source = _with_learned_output_layers(unet.init_params(plain, 0))
  params, report = surgery.transplant(unet.init_params(conditioned, 1), source)
  assert sorted(report['new_identity']) == [
      'strength_mlp1/bias', 'strength_mlp1/kernel', 'strength_mlp2/bias',
      'strength_mlp2/kernel']
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 8, 8, 3))
  t = jnp.array([0.3, 0.8])
  before = unet.make_denoiser(unet.model_graphdef(plain), source, x)(x, t)
  graphdef = unet.model_graphdef(conditioned)
  for strength in (0.25, 1.0, 2.5):
    after = unet.make_denoiser(graphdef, params, x, strength=jnp.full((2,), strength))(x, t)
    np.testing.assert_allclose(after, before, atol=1e-6)
  # Once its last layer has learned something, the strength changes the prediction.
  params['strength_mlp2']['kernel'] = jnp.full_like(params['strength_mlp2']['kernel'], 0.02)
  low, high = (unet.make_denoiser(graphdef, params, x, strength=jnp.full((2,), s))(x, t)
               for s in (0.5, 2.0))
  assert float(jnp.abs(low - high).max()) > 1e-4


@pytest.mark.parametrize('view, resolution, zoom, expected', [
    ('downsample', 16, 1.0, 6.0 * 16 / 64),   # the whole frame: disparity / 4
    ('downsample', 16, 2.0, 6.0 * 16 / 32),   # a 32 px square: twice that
    ('crop', 32, 1.0, 6.0),                   # a crop at full resolution
    ('crop', 32, 0.5, 3.0),                   # a 64 px square down to 32: half
])
def test_zoom_multiplies_the_disparity_and_the_strength_says_by_how_much(view, resolution,
                                                                        zoom, expected):
  left, right = _shifted_pair(6.0)
  make = input_pipeline.TrainingView(view, resolution, 2, mirror_augment=False,
                                     zoom_range=(zoom, zoom), with_strength=True)
  example = make.random_map({'right': right, 'left': left, 'baseline': np.float32(1.5)},
                            np.random.default_rng(0))
  assert example['right'].shape == (2, resolution, resolution, 3)
  assert example['strength'] == pytest.approx(1.5 * zoom)
  measured = _measured_disparity(example['left'], example['right'], 8)
  assert measured == pytest.approx(expected, abs=0.2)


def test_zooms_that_would_up_sample_are_refused_naming_the_range(tiny_config, tiny_dataset):
  config = tiny_config.copy_and_resolve_references()
  config.data.zoom_range = (0.5, 1.0)  # 'downsample' only zooms in
  source = datasets.data_source(config, 'train', tiny_dataset)
  with pytest.raises(ValueError, match=r"zoom_range=\(0.5, 1.0\).*accepts zooms in \[1, 2\]"):
    input_pipeline.check_records_fit(config, source)


def test_train_clips_are_rendered_at_their_stored_baselines(tiny_strength_config):
  scenes = datasets.builder_class('synthetic_stereo').builder_configs['tiny_strength']
  generator = synthetic_scenes.SceneGenerator(scenes.scene_params('train'))
  data_dir = tiny_strength_config.data.data_dir
  train = datasets.data_source(tiny_strength_config, 'train', data_dir)
  baselines = [float(train[i]['baseline']) for i in range(len(train))]
  assert min(baselines) >= 0.25 and max(baselines) <= 2.5
  assert max(baselines) / min(baselines) > 3  # spread over the range
  for i in (0, 1):
    record = train[i]
    truth = generator.generate(int(record['seed']), baseline=float(record['baseline']))
    np.testing.assert_array_equal(record['left'], truth.left)
    np.testing.assert_allclose(record['layer_disparity'], truth.layer_disparity)
  validation = datasets.data_source(tiny_strength_config, 'validation', data_dir)
  assert {float(validation[i]['baseline']) for i in range(len(validation))} == {1.0}


@pytest.fixture(scope='module')
def strength_stage(tiny_strength_checkpoint):
  """The tiny strength model with its zero-initialised output layers set as if they had
  learned (a few steps barely move them)."""
  from eye2eye_jax.models import checkpoints
  config, params = checkpoints.load_for_inference(str(tiny_strength_checkpoint))
  return stereo_sampler.Stage(config, _with_learned_output_layers(
      params, 'conv2/|^conv_out/|^strength_mlp2/', 0.01))


def test_a_strength_model_samples_every_strength_with_one_program(tiny_strength_config,
                                                                   strength_stage):
  video = np.random.default_rng(0).integers(0, 255, (4, 8, 8, 3), np.uint8)
  outputs, before = [], stereo_sampler.run_stage._cache_size()
  for strength in (0.5, 2.0):
    sample = tiny_strength_config.sample.copy_and_resolve_references()
    sample.strength = strength
    outputs.append(stereo_sampler.StereoSampler(strength_stage, None, sample).convert(video))
  assert np.abs(outputs[0].astype(int) - outputs[1]).max() > 0
  assert stereo_sampler.run_stage._cache_size() - before <= 1


def test_the_response_curve_is_measured_against_the_view_each_strength_asks_for(
    tiny_strength_config, strength_stage, tmp_path):
  split = 'validation'
  clips = datasets.data_source(tiny_strength_config, split, tiny_strength_config.data.data_dir)
  records = [clips[i] for i in range(2)]
  sample = tiny_strength_config.sample.copy_and_resolve_references()
  sampler = stereo_sampler.StereoSampler(strength_stage, None, sample)
  params = synthetic_eval.scene_params(tiny_strength_config, split)
  rows = strength_response.measure(sampler, records, params)
  assert [r['strength'] for r in rows] == list(strength_response.STRENGTHS)
  # The truth moves further from the right view as the strength grows: copying it scores
  # lower and lower.
  copy = [r['copy_psnr'] for r in rows]
  assert copy == sorted(copy, reverse=True) and copy[0] > copy[-1] + 1
  unit = next(r for r in rows if r['strength'] == 1.0)['generated']
  if unit['scale']:
    assert unit['ratio'] == pytest.approx(1.0)
  strength_response.write(tmp_path, rows, len(records), split)
  assert '| 2 |' in (tmp_path / 'strength.md').read_text()
  assert (tmp_path / 'plots' / 'strength_response.png').read_bytes()[:4] == b'\x89PNG'


def test_strengths_a_model_cannot_make_are_clear_errors(tiny_strength_config, tiny_config):
  conditioned = tiny_strength_config.copy_and_resolve_references()
  for bad in (-1.0, 0.0, 10.0):
    with pytest.raises(ValueError, match=r'trained for strengths in \[0.25, 2.5\]'):
      stereo_sampler.check_strength(bad, conditioned)
  stereo_sampler.check_strength(2.5, conditioned)
  with pytest.raises(ValueError, match='has no strength conditioning'):
    stereo_sampler.check_strength(2.0, tiny_config)
  stereo_sampler.check_strength(1.0, tiny_config)


def test_convergence_moves_the_screen_plane_by_what_it_says():
  left, right = _shifted_pair(6.0)
  width = left.shape[2]
  for setting in (-0.05, 0.0, 0.05, 0.1):
    new_left, new_right = convergence.converge(left, right, setting)
    assert new_left.shape == left.shape and new_right.shape == right.shape
    k = convergence.border_crop(width, setting)
    expected = (6.0 - setting * width) * width / (width - 2 * k)
    assert _measured_disparity(new_left, new_right, 12) == pytest.approx(expected, abs=0.2)
  for bad in (0.3, -1.0):
    with pytest.raises(ValueError, match=r'frame width in \[-0.25, 0.25\], or .auto.'):
      convergence.converge(left, right, bad)
