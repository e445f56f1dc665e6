import numpy as np
import pytest
from scipy import ndimage

from eye2eye_jax.data import video_io
from eye2eye_jax.evaluation import stereo_metrics
from eye2eye_jax.evaluation.stereo_metrics import LayerMeasurement
from eye2eye_jax.sampling import stereo_formats


def test_side_by_side_puts_the_left_eye_on_the_left():
  left = np.zeros((2, 4, 5, 3), np.uint8)
  right = np.full((2, 4, 5, 3), 255, np.uint8)
  sbs = stereo_formats.side_by_side(left, right)
  assert sbs.shape == (2, 4, 10, 3)
  assert sbs[:, :, :5].max() == 0 and sbs[:, :, 5:].min() == 255


def test_half_side_by_side_and_top_bottom_layouts():
  left = np.zeros((1, 4, 6, 3), np.uint8)
  right = np.full((1, 4, 6, 3), 200, np.uint8)
  left[:, :, :3] = 100  # left eye: its left half 100, right half 0
  half = stereo_formats.half_side_by_side(left, right)
  assert half.shape == (1, 4, 6, 3)
  np.testing.assert_array_equal(half[0, 0, :, 0], [100, 50, 0, 200, 200, 200])
  tb = stereo_formats.top_bottom(left, right)
  assert tb.shape == (1, 8, 6, 3)
  np.testing.assert_array_equal(tb[0, :4], left[0])
  np.testing.assert_array_equal(tb[0, 4:], right[0])


def test_colour_and_grey_anaglyphs():
  left = np.array([[[10, 20, 30]]], np.uint8)
  right = np.array([[[40, 50, 60]]], np.uint8)
  np.testing.assert_array_equal(stereo_formats.anaglyph(left, right, 'color'), [[[10, 50, 60]]])
  gray = stereo_formats.anaglyph(left, right, 'gray')[0, 0]
  assert gray[0] == round(0.299 * 10 + 0.587 * 20 + 0.114 * 30)
  assert gray[1] == gray[2] == round(0.299 * 40 + 0.587 * 50 + 0.114 * 60)
  with pytest.raises(ValueError, match='anaglyph'):
    stereo_formats.anaglyph(left, right, 'green-magenta')


def test_anaglyph_takes_red_from_the_left_eye():
  white = np.full((1, 2, 2, 3), 255, np.uint8)
  black = np.zeros_like(white)
  left_only = stereo_formats.anaglyph(white, black)[0, 0, 0]
  right_only = stereo_formats.anaglyph(black, white)[0, 0, 0]
  assert left_only[0] > 200 and left_only[1] < 30
  assert right_only[0] < 30 and right_only[1] > 200 and right_only[2] > 200


@pytest.mark.parametrize('shift', [0.0, 1.5, 3.25])
def test_measure_layer_shift_recovers_a_known_shift(shift):
  rng = np.random.default_rng(0)
  # A smooth texture, as photographs are (white noise makes interpolation biased).
  right = ndimage.gaussian_filter(rng.uniform(0, 1, (2, 12, 40, 3)), (0, 1, 1.5, 0))
  left = stereo_metrics.shift_columns(right, -shift)  # content moves right by `shift`
  mask = np.zeros((2, 12, 40), bool)
  mask[:, :, 8:28] = True
  assert stereo_metrics.measure_layer_shift(left, right, mask, 6.0) == pytest.approx(shift,
                                                                                    abs=0.15)


def test_geometry_summary_of_flat_and_perfect_outputs():
  true = [(0, 1.0), (0, 3.0), (0, 5.0), (1, 2.0), (1, 4.0)]
  perfect = [LayerMeasurement(c, 1, d, 2 * d) for c, d in true]
  flat = [LayerMeasurement(c, 1, d, 0.0) for c, d in true]
  good = stereo_metrics.geometry_summary(perfect)
  assert good['scale'] == pytest.approx(2.0)
  assert good['spearman'] == pytest.approx(1.0)
  assert good['depth_order_accuracy'] == 1.0
  assert good['mean_abs_error_after_scale_px'] == pytest.approx(0.0)
  bad = stereo_metrics.geometry_summary(flat)
  assert bad['scale'] == pytest.approx(0.0)
  assert bad['depth_order_accuracy'] == 0.0


def test_video_write_read_round_trip(tmp_path):
  frames = np.zeros((6, 16, 24, 3), np.uint8)
  frames[:, 4:12, 8:16] = 200
  path = video_io.write_video(tmp_path / 'v.mp4', frames, 10.0)
  video = video_io.read_video(path)
  assert video.frames.shape == frames.shape and video.fps == pytest.approx(10.0)
  assert np.abs(video.frames.astype(int) - frames).mean() < 4


def test_writing_nothing_is_an_error_and_leaves_no_file(tmp_path):
  with pytest.raises(video_io.VideoError, match='v.mp4'):
    video_io.write_video(tmp_path / 'v.mp4', np.zeros((0, 4, 4, 3), np.uint8), 10.0)
  assert not list(tmp_path.iterdir())
