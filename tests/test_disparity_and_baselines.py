"""The evaluation's instruments: disparity estimation, view metrics and the warp baselines."""

import numpy as np
import pytest
import skimage.data
import skimage.transform

from eye2eye_jax.data import synthetic_scenes
from eye2eye_jax.data.synthetic_scenes import LayerKind
from eye2eye_jax.evaluation import stereo_metrics, view_metrics, warp_baselines
from eye2eye_jax.stereo_analysis import disparity_estimation


def _texture(height=48, width=96):
  image = skimage.transform.resize(skimage.data.astronaut(), (height, width))
  return (image * 255).astype(np.uint8)


def _shifted_pair(disparity: float, width=64):
  """A right view and its left view with every pixel at u_left = u_right + disparity."""
  texture = _texture().astype(np.float32)
  right = texture[:, 16:16 + width]
  left = stereo_metrics.shift_columns(texture, -disparity)[:, 16:16 + width]
  return np.round(left).astype(np.uint8)[None], right.astype(np.uint8)[None]


@pytest.mark.parametrize('method', ['sgbm', 'flow'])
@pytest.mark.parametrize('disparity', [0.0, 2.5, 5.25])
def test_estimator_recovers_a_known_uniform_disparity(method, disparity):
  left, right = _shifted_pair(disparity)
  estimate = disparity_estimation.estimate_disparity(left, right, max_disparity=8,
                                                     method=method)
  assert estimate.valid.mean() > 0.85
  assert np.median(estimate.valid_values()) == pytest.approx(disparity, abs=0.15)
  assert np.abs(estimate.valid_values() - disparity).mean() < 0.25


def test_estimator_from_the_left_eye_has_the_same_sign():
  left, right = _shifted_pair(4.0)
  estimate = disparity_estimation.estimate_disparity(left, right, max_disparity=8,
                                                     reference='left')
  assert np.median(estimate.valid_values()) == pytest.approx(4.0, abs=0.15)


def test_estimator_recovers_each_layer_of_a_scene():
  clip = synthetic_scenes.SceneGenerator(synthetic_scenes.SceneParams(
      transparent_probability=0, mirror_probability=0)).generate(5)
  estimate = disparity_estimation.estimate_disparity(clip.left, clip.right, max_disparity=10)
  checked = 0
  for i, kind in enumerate(clip.layer_kind):
    mask = clip.layer_masks[i] & estimate.valid
    if kind == LayerKind.PADDING or mask.sum() < 100:
      continue
    assert np.median(estimate.disparity[mask]) == pytest.approx(clip.layer_disparity[i],
                                                                abs=0.3)
    checked += 1
  assert checked >= 2


def test_occluded_pixels_are_invalid():
  """Background just right of a near square (in the right view) is hidden from the left eye."""
  texture = _texture(64, 128).astype(np.float32)
  background = texture[:, :64]
  square = texture[8:40, 80:112]
  def view(offset):
    image = background.copy()
    image[16:48, 20 + offset:52 + offset] = square
    return np.round(image).astype(np.uint8)[None]
  right, left = view(0), view(6)  # the square's disparity is 6 px; the background's 0
  estimate = disparity_estimation.estimate_disparity(left, right, max_disparity=8)
  occluded = estimate.valid[0, 20:44, 53:57]  # 1 px in from the edge to skip blending
  visible = estimate.valid[0, 20:44, 24:48]
  assert occluded.mean() < 0.3
  assert visible.mean() > 0.9
  assert np.median(estimate.disparity[0, 20:44, 24:48]) == pytest.approx(6, abs=0.2)


def test_fill_invalid_takes_the_farther_neighbour():
  disparity = np.array([[[1.0, 1.0, 0.0, 0.0, 6.0, 6.0]]], np.float32)
  valid = np.array([[[True, True, False, False, True, True]]])
  filled = disparity_estimation.fill_invalid(
      disparity_estimation.DisparityEstimate(disparity, valid))
  np.testing.assert_allclose(filled[0, 0], [1, 1, 1, 1, 6, 6])


def test_estimator_on_the_middlebury_motorcycle():
  """Real photographs: scikit-image's Middlebury pair and its ground-truth disparity."""
  left, right, truth = skimage.data.stereo_motorcycle()
  estimate = disparity_estimation.estimate_disparity(left, right, max_disparity=64,
                                                     reference='left')
  scored = estimate.valid[0] & np.isfinite(truth)
  error = np.abs(estimate.disparity[0] - truth)[scored]
  assert scored.mean() > 0.75
  assert np.median(error) < 0.5
  assert error.mean() < 1.5
  assert (error > 2).mean() < 0.1


def test_bad_estimator_input_is_named():
  left, right = _shifted_pair(1.0)
  with pytest.raises(ValueError, match='differ in shape'):
    disparity_estimation.estimate_disparity(left, right[:, :, :32], max_disparity=4)
  with pytest.raises(ValueError, match='unknown disparity method'):
    disparity_estimation.estimate_disparity(left, right, max_disparity=4, method='raft')
  with pytest.raises(ValueError, match='uint8'):
    disparity_estimation.estimate_disparity(left.astype(float), right, max_disparity=4)


def test_view_metrics_reward_the_truth():
  left, right = _shifted_pair(4.0)
  assert view_metrics.psnr(left, left) == pytest.approx(100.0)
  assert view_metrics.ssim(left, left) == pytest.approx(1.0)
  assert view_metrics.stereo_iou(left, left, right) == pytest.approx(1.0)
  assert view_metrics.ssim(right, left) < 0.9
  assert view_metrics.stereo_iou(right, left, right) < 0.5
  noisy = np.clip(left + np.random.default_rng(0).normal(0, 4, left.shape), 0, 255)
  assert view_metrics.stereo_iou(noisy.astype(np.uint8), left, right) > \
      view_metrics.stereo_iou(right, left, right)


def test_disparity_statistics_show_flat_swapped_and_flickering_pairs():
  estimate = lambda left, right: stereo_metrics.disparity_statistics(
      disparity_estimation.estimate_disparity(left, right, min_disparity=-8, max_disparity=8))
  pairs = [_shifted_pair(d) for d in (3.0, 3.0, 3.0, 3.0)]
  steady = estimate(np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]))
  assert steady['median_px'] == pytest.approx(3.0, abs=0.15)
  assert steady['negative_fraction'] < 0.05 and steady['frame_median_change_px'] < 0.1
  left, right = _shifted_pair(3.0)
  assert estimate(right, right)['range_px'] < 0.2
  assert estimate(right, left)['negative_fraction'] > 0.8  # eyes swapped
  pairs = [_shifted_pair(d) for d in (0.0, 4.0, 0.0, 4.0)]
  flicker = estimate(np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]))
  assert flicker['frame_median_change_px'] > 3.5


def test_forward_splat_moves_pixels_and_puts_the_nearer_on_top():
  right = np.arange(8, dtype=np.float32)[None, None, :, None] * np.ones((1, 1, 1, 3))
  left, holes = warp_baselines.forward_splat(right, np.full((1, 1, 8), 2.0, np.float32))
  np.testing.assert_allclose(left[0, 0, 2:, 0], np.arange(6))
  assert holes[0, 0].tolist() == [True, True] + [False] * 6
  disparity = np.zeros((1, 1, 8), np.float32)
  disparity[0, 0, 3] = 2.0  # pixel 3 lands on pixel 5, in front of pixel 5 itself
  left, holes = warp_baselines.forward_splat(right, disparity)
  assert left[0, 0, 5, 0] == pytest.approx(3.0, abs=0.05)
  assert holes[0, 0, 3]  # what pixel 3 covered is now a disocclusion


def _layer_psnr(view, clip, kinds):
  """PSNR of ``view`` against the true left view where layers of ``kinds`` are."""
  region = np.zeros(clip.left.shape[:3], bool)
  for i, kind in enumerate(clip.layer_kind):
    if kind in kinds:
      region |= stereo_metrics._shift_mask(clip.layer_masks[i], clip.layer_disparity[i])
  return view_metrics.psnr(view, clip.left, region)


def test_warp_and_inpaint_reproduces_an_opaque_scene():
  generator = synthetic_scenes.SceneGenerator(synthetic_scenes.SceneParams(
      transparent_probability=0, mirror_probability=0))
  for seed in range(3):
    clip = generator.generate(seed)
    matched = warp_baselines.stereo_matched_disparity(clip.left, clip.right, 10)
    for disparity in (clip.surface_disparity, matched):
      warped = warp_baselines.warp_and_inpaint(clip.right, disparity)
      assert _layer_psnr(warped, clip, (LayerKind.BACKGROUND, LayerKind.OPAQUE)) > 36
      assert view_metrics.psnr(warped, clip.left) > view_metrics.psnr(clip.right, clip.left) + 6


def test_warp_and_inpaint_fails_on_a_pane_over_a_far_background():
  """One disparity per pixel cannot move a pane and what is behind it by different amounts."""
  generator = synthetic_scenes.SceneGenerator(synthetic_scenes.SceneParams(
      transparent_probability=1, mirror_probability=0, max_opaque_objects=1))
  pane, opaque = [], []
  for seed in range(6):
    clip = generator.generate(seed)
    kinds = list(clip.layer_kind)
    pane_disparity = clip.layer_disparity[kinds.index(LayerKind.TRANSPARENT)]
    if pane_disparity - clip.layer_disparity[kinds.index(LayerKind.BACKGROUND)] < 3:
      continue  # the pane is not far enough in front of the background
    warped = warp_baselines.warp_and_inpaint(clip.right, clip.surface_disparity)
    pane.append(_layer_psnr(warped, clip, (LayerKind.TRANSPARENT,)))
    opaque.append(_layer_psnr(warped, clip, (LayerKind.BACKGROUND, LayerKind.OPAQUE)))
  assert len(pane) >= 5
  assert np.mean(pane) < np.mean(opaque) - 5
  assert np.mean(np.array(pane) < np.array(opaque)) >= 0.8


def test_scenes_render_at_any_baseline():
  generator = synthetic_scenes.SceneGenerator(synthetic_scenes.SceneParams(
      transparent_probability=0, mirror_probability=0))
  full, half, none = (generator.generate(2, baseline=b) for b in (1.0, 0.5, 0.0))
  np.testing.assert_array_equal(full.left, generator.generate(2).left)
  np.testing.assert_array_equal(none.left, none.right)
  np.testing.assert_allclose(half.layer_disparity, 0.5 * full.layer_disparity)
  for i, kind in enumerate(half.layer_kind):
    if kind == LayerKind.OPAQUE and half.layer_masks[i].sum() > 100:
      shift = stereo_metrics.measure_layer_shift(half.left, half.right, half.layer_masks[i], 8)
      assert shift == pytest.approx(half.layer_disparity[i], abs=0.15)
