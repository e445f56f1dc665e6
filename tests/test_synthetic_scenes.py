import dataclasses

import numpy as np
import pytest

from eye2eye_jax.data import scene_textures, synthetic_scenes
from eye2eye_jax.data.synthetic_scenes import LayerKind, SceneGenerator, SceneParams
from eye2eye_jax.evaluation import stereo_metrics

PARAMS = SceneParams(num_frames=4, height=48, width=48, max_disparity=6.0,
                     transparent_probability=1.0, mirror_probability=1.0)


@pytest.fixture(scope='module')
def clips():
  generator = SceneGenerator(PARAMS)
  return [generator.generate(seed) for seed in range(6)]


def test_deterministic_from_seed():
  a, b = SceneGenerator(PARAMS).generate(3), SceneGenerator(PARAMS).generate(3)
  np.testing.assert_array_equal(a.right, b.right)
  np.testing.assert_array_equal(a.left, b.left)
  c = SceneGenerator(PARAMS).generate(4)
  assert not np.array_equal(a.right, c.right)


def test_shapes_and_layer_kinds(clips):
  for clip in clips:
    assert clip.right.shape == clip.left.shape == (4, 48, 48, 3)
    assert clip.right.dtype == np.uint8
    assert clip.layer_masks.shape == (synthetic_scenes.MAX_LAYERS, 4, 48, 48)
    kinds = set(clip.layer_kind.tolist())
    assert {LayerKind.BACKGROUND, LayerKind.OPAQUE, LayerKind.TRANSPARENT,
            LayerKind.REFLECTION} <= kinds
    real = clip.layer_kind != LayerKind.PADDING
    assert np.all(clip.layer_disparity[real] >= 0)
    assert np.all(clip.layer_disparity[real] <= PARAMS.max_disparity)


def test_each_opaque_layer_moves_by_its_disparity_between_eyes(clips):
  errors = []
  for clip in clips:
    right = clip.right.astype(np.float32)
    left = clip.left.astype(np.float32)
    for i, kind in enumerate(clip.layer_kind):
      if kind not in (LayerKind.OPAQUE, LayerKind.BACKGROUND) or clip.layer_masks[i].sum() < 60:
        continue
      measured = stereo_metrics.measure_layer_shift(left, right, clip.layer_masks[i], 8.0)
      errors.append(abs(measured - clip.layer_disparity[i]))
  errors = np.array(errors)
  assert len(errors) >= 10
  # Matching is exact up to interpolation, except on the odd weakly textured layer.
  assert np.all(errors < 0.5)
  assert np.mean(errors < 0.2) >= 0.85


def test_reflection_content_shifts_by_virtual_depth_not_mirror_depth(clips):
  checked = 0
  for clip in clips:
    for i, kind in enumerate(clip.layer_kind):
      if kind != LayerKind.REFLECTION or clip.layer_masks[i].sum() < 60:
        continue
      mirror_frame = clip.layer_disparity[i + 1]  # the frame is added right after its content
      measured = stereo_metrics.measure_layer_shift(
          clip.left.astype(np.float32), clip.right.astype(np.float32), clip.layer_masks[i], 8.0)
      assert measured == pytest.approx(clip.layer_disparity[i], abs=0.2)
      assert clip.layer_disparity[i] < mirror_frame
      checked += 1
  assert checked >= 2


def test_motion_parallax_is_proportional_to_disparity(clips):
  """Between frames the camera pans: a layer moves by -camera_speed * disparity."""
  checked = 0
  for clip in clips:
    for i, kind in enumerate(clip.layer_kind):
      if kind != LayerKind.OPAQUE or clip.layer_masks[i, 0].sum() < 60:
        continue
      moved = stereo_metrics.measure_layer_shift(
          clip.right[1:2].astype(np.float32), clip.right[0:1].astype(np.float32),
          clip.layer_masks[i, 0:1], 8.0)
      assert moved == pytest.approx(-clip.camera_speed * clip.layer_disparity[i], abs=0.3)
      checked += 1
  assert checked >= 5


def test_nearer_layers_are_lower_and_larger_on_average():
  generator = SceneGenerator(SceneParams(num_frames=1, height=48, width=48,
                                         transparent_probability=0, mirror_probability=0))
  rows, disparities = [], []
  for seed in range(40):
    clip = generator.generate(seed)
    for i, kind in enumerate(clip.layer_kind):
      if kind == LayerKind.OPAQUE and clip.layer_masks[i, 0].any():
        rows.append(np.nonzero(clip.layer_masks[i, 0])[0].mean())
        disparities.append(clip.layer_disparity[i])
  assert np.corrcoef(rows, disparities)[0, 1] > 0.3


def test_bad_params_are_rejected():
  with pytest.raises(ValueError, match='max_disparity'):
    SceneGenerator(SceneParams(max_disparity=100.0))
  with pytest.raises(ValueError, match='frame'):
    SceneGenerator(SceneParams(num_frames=0))


def test_surface_disparity_is_the_nearest_surface(clips):
  """Opaque layers show their own disparity; a mirror shows the mirror's, not its content's."""
  for clip in clips:
    for i, kind in enumerate(clip.layer_kind):
      mask = clip.layer_masks[i]
      if not mask.any():
        continue
      surface = clip.surface_disparity[mask]
      if kind in (LayerKind.OPAQUE, LayerKind.TRANSPARENT, LayerKind.BACKGROUND):
        np.testing.assert_allclose(np.median(surface), clip.layer_disparity[i], atol=1e-5)
      elif kind == LayerKind.REFLECTION:
        assert np.median(surface) > clip.layer_disparity[i] + 0.5  # the mirror is nearer


@pytest.mark.parametrize('family', sorted(scene_textures.TEXTURES))
def test_every_texture_family_and_shape_renders_with_exact_layer_shifts(family):
  """Each opaque layer, the background and mirror content shift between the eyes by their
  own disparity, measured by matching inside the layer's mask, for every texture family
  (with every shape). Flat colour and vertical ramps (the gradient family) carry nothing to
  match, so there only most layers must measure right."""
  params = dataclasses.replace(PARAMS, texture_families=(family,),
                               shapes=tuple(scene_textures.SHAPES))
  generator = SceneGenerator(params)
  errors = []
  for seed in range(4):
    clip = generator.generate(seed)
    left, right = clip.left.astype(np.float32), clip.right.astype(np.float32)
    for i, kind in enumerate(clip.layer_kind):
      mask = clip.layer_masks[i]
      if kind in (LayerKind.PADDING, LayerKind.TRANSPARENT) or mask.sum() < 30:
        continue
      measured = stereo_metrics.measure_layer_shift(left, right, mask, 8.0)
      errors.append(abs(measured - clip.layer_disparity[i]))
  assert len(errors) >= 8
  if family == 'gradient':
    assert np.median(errors) < 0.2, errors
  else:
    assert max(errors) < 0.35, errors


def test_unknown_texture_families_and_shapes_are_named():
  with pytest.raises(ValueError, match="texture families.*'marble'"):
    SceneParams(texture_families=('photo', 'marble')).validate()
  with pytest.raises(ValueError, match='shapes'):
    SceneParams(shapes=()).validate()


def test_a_still_camera_with_moving_objects_keeps_every_layer_shift_exact():
  params = dataclasses.replace(PARAMS, static_camera_probability=1.0, object_speed_max=1.0,
                               mirror_probability=0.0)
  moved, checked = [], 0
  for seed in range(4):
    clip = SceneGenerator(params).generate(seed)
    assert clip.camera_speed == 0 and describe_ends(clip, 'the camera is still')
    left, right = clip.left.astype(np.float32), clip.right.astype(np.float32)
    for i, kind in enumerate(clip.layer_kind):
      mask = clip.layer_masks[i]
      if kind not in (LayerKind.BACKGROUND, LayerKind.OPAQUE) or mask[0].sum() < 40:
        continue
      assert stereo_metrics.measure_layer_shift(left, right, mask, 8.0) == pytest.approx(
          clip.layer_disparity[i], abs=0.3)
      shift = stereo_metrics.measure_layer_shift(right[1:2], right[0:1], mask[0:1], 3.0)
      if kind == LayerKind.BACKGROUND:
        assert shift == pytest.approx(0.0, abs=0.1)  # the camera is still
      else:
        moved.append(abs(shift))
      checked += 1
  assert checked >= 6 and max(moved) > 0.3  # objects move on their own


def describe_ends(clip, text: str) -> bool:
  return synthetic_scenes.describe(clip).endswith(text)


def test_several_panes_and_mirrors_whose_content_is_nearer_or_farther():
  params = dataclasses.replace(PARAMS, max_opaque_objects=1, max_panes=2, max_mirrors=2,
                               mirror_virtual_range=(1.2, 1.5), disparity_range=(0.5, 1.0))
  nearer = 0
  largest = []
  for seed in range(3):
    clip = SceneGenerator(params).generate(seed)
    kinds = list(clip.layer_kind)
    assert kinds.count(LayerKind.TRANSPARENT) == 2 and kinds.count(LayerKind.REFLECTION) == 2
    assert 'two glass panes and two mirrors' in synthetic_scenes.describe(clip)
    real = clip.layer_kind != LayerKind.PADDING
    largest.append(clip.layer_disparity[real].max())
    left, right = clip.left.astype(np.float32), clip.right.astype(np.float32)
    for i, kind in enumerate(kinds):
      if kind != LayerKind.REFLECTION:
        continue
      mirror = clip.layer_disparity[i + 1]  # the frame follows its content
      assert clip.layer_disparity[i] > mirror or clip.layer_disparity[i] == PARAMS.max_disparity
      if clip.layer_masks[i].sum() >= 40:
        assert stereo_metrics.measure_layer_shift(
            left, right, clip.layer_masks[i], 8.0) == pytest.approx(
                clip.layer_disparity[i], abs=0.3)
        nearer += 1
  assert nearer >= 2
  assert max(largest) <= PARAMS.max_disparity and np.ptp(largest) > 0.3
  with pytest.raises(ValueError, match='is 9 layers; at most 8'):
    dataclasses.replace(params, max_opaque_objects=2).validate()
