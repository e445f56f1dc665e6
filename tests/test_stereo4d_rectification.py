"""VR180 rectification on the synthetic Stereo4D-format sample, against known geometry."""

import numpy as np
import pytest

from data_builders.stereo4d import rectification, vr180_sample
from eye2eye_jax.data import video_io

SIZE, HFOV = 128, 60.0  # a 128 px view keeps the sample small; the math is size-free


def _marker_centre(view: np.ndarray, guess, radius: int = 3):
  """Centroid (column, row) of the bright marker (inside its black ring) near ``guess``."""
  column, row = (int(round(g)) for g in guess)
  rows = slice(max(row - radius, 0), row + radius + 1)
  columns = slice(max(column - radius, 0), column + radius + 1)
  ys, xs = np.mgrid[rows, columns]
  near = (xs - guess[0])**2 + (ys - guess[1])**2 <= radius**2  # inside the black ring
  weight = np.clip(view[rows, columns].astype(np.float64).mean(-1) - 60, 0, None) * near
  assert weight.sum() > 0, f'no marker near {guess}'
  return (weight * xs).sum() / weight.sum(), (weight * ys).sum() / weight.sum()


@pytest.fixture(scope='module')
def scene_and_views():
  scene = vr180_sample.default_scene()
  rotations = vr180_sample.rig_rotations(seed=3)
  frame = vr180_sample.render_sbs(scene, rotations, (384, 384))
  rectifier = rectification.Rectifier(vr180_sample.VR180_FOV, rotations, SIZE, HFOV)
  left, right = rectifier(frame)
  return scene, left[0], right[0]


def test_markers_land_where_the_pinhole_formula_puts_them(scene_and_views):
  scene, left, right = scene_and_views
  for marker in scene.markers:
    for view, eye_x in ((left, -vr180_sample.BASELINE_M / 2), (right, vr180_sample.BASELINE_M / 2)):
      expected = vr180_sample.pinhole_position(marker, eye_x, SIZE, HFOV)
      found = _marker_centre(view, expected)
      assert np.abs(np.subtract(found, expected)).max() < 0.5, (marker, expected, found)


def test_rectified_rows_line_up_and_columns_give_the_disparity(scene_and_views):
  scene, left, right = scene_and_views
  focal = rectification.focal_length(SIZE, HFOV)
  half = vr180_sample.BASELINE_M / 2
  for marker in scene.markers:
    lx, ly = _marker_centre(left, vr180_sample.pinhole_position(marker, -half, SIZE, HFOV))
    rx, ry = _marker_centre(right, vr180_sample.pinhole_position(marker, half, SIZE, HFOV))
    assert abs(ly - ry) < 0.5  # no vertical disparity after rectification
    assert lx - rx == pytest.approx(focal * vr180_sample.BASELINE_M / marker[2], abs=0.5)


def test_without_rectification_the_rows_do_not_line_up():
  """The rig rotations matter: ignoring them leaves vertical disparity (sanity check)."""
  scene = vr180_sample.default_scene()
  rotations = vr180_sample.rig_rotations(seed=3)
  frame = vr180_sample.render_sbs(scene, rotations, (384, 384))
  naive = rectification.Rectifier(vr180_sample.VR180_FOV, np.stack([np.eye(3)] * 2), SIZE,
                                  HFOV)
  left, right = naive(frame)
  offsets = []
  for marker in scene.markers:
    guess = vr180_sample.pinhole_position(marker, 0.0, SIZE, HFOV)
    try:
      offsets.append(abs(_marker_centre(left[0], guess)[1] - _marker_centre(right[0], guess)[1]))
    except AssertionError:
      offsets.append(np.inf)  # moved out of the search window: even further off
  assert max(offsets) > 1.0


def test_the_written_sample_has_the_release_format_and_survives_encoding(tmp_path):
  video_path, npz_path = vr180_sample.write_sample(tmp_path, num_frames=4, eye_hw=(384, 384),
                                                   seed=1)
  assert video_path.name == 'synthetic_vr180.mp4'
  record = np.load(npz_path)
  assert npz_path.stem == str(record['name']) == f'{record["video_id"]}_{record["timestamps"][0]}'
  assert record['timestamps'].dtype == np.int64 and record['timestamps'][1] == 33333
  assert record['camera2world'].shape == (4, 3, 4)
  assert record['rectified2rig'].shape == (2, 3, 3)
  np.testing.assert_allclose(record['fov_bounds'], [-90, 90, -90, 90])
  video = video_io.read_video(video_path)
  assert video.frames.shape == (4, 384, 768, 3)
  rectifier = rectification.Rectifier(
      rectification.FovBounds.from_array(record['fov_bounds']), record['rectified2rig'],
      SIZE, HFOV)
  left, right = rectifier(video.frames[:1])
  scene = vr180_sample.default_scene()
  for marker in scene.markers:
    for view, eye_x in ((left[0], -vr180_sample.BASELINE_M / 2),
                        (right[0], vr180_sample.BASELINE_M / 2)):
      expected = vr180_sample.pinhole_position(marker, eye_x, SIZE, HFOV)
      assert np.abs(np.subtract(_marker_centre(view, expected), expected)).max() < 0.5


def test_bad_geometry_is_named():
  with pytest.raises(ValueError, match='4 angles'):
    rectification.FovBounds.from_array([0, 90, 0])
  with pytest.raises(ValueError, match='must exceed its start'):
    rectification.FovBounds.from_array([90, -90, -90, 90])
  with pytest.raises(ValueError, match=r'\(2, 3, 3\)'):
    rectification.Rectifier(vr180_sample.VR180_FOV, np.eye(3))
  rectifier = rectification.Rectifier(vr180_sample.VR180_FOV, np.stack([np.eye(3)] * 2), 8)
  with pytest.raises(ValueError, match='side-by-side'):
    rectifier(np.zeros((1, 10, 11, 3), np.uint8))
