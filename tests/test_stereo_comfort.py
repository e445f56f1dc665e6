"""The comfort report: measured on pairs of known disparity, from files, resumed; automatic
convergence measured on what it writes; flicker as an evaluation figure."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO, load_config, subprocess_env
from eye2eye_jax.data import synthetic_scenes, video_io
from eye2eye_jax.evaluation import stereo_file_report, stereo_metrics
from eye2eye_jax.sampling import auto_convergence, stereo_formats, video_conversion
from eye2eye_jax.stereo_analysis import comfort, comfort_report, disparity_estimation

_H, _W = 96, 128


def _texture(rng, height, width):
  coarse = rng.uniform(0, 255, (height // 4 + 1, width // 4 + 1, 3)).astype(np.float32)
  coarse = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
  return np.clip(coarse + rng.uniform(-40, 40, (height, width, 3)), 0, 255).astype(np.uint8)


def _scene(frames=6, background=-2, near=6, box=(30, 70, 40, 90), jitter=0, up=0, seed=0):
  """(left, right, true disparity at the right view's pixels) of a textured background at
  disparity ``background`` px behind a box at ``near`` px (rows and columns ``box`` of the
  right view, possibly beyond the frame); ``jitter``: the box's disparity moves by up to
  that many px from frame to frame; ``up``: the left view's content is that many px higher."""
  rng = np.random.default_rng(seed)
  pad = 20
  back = _texture(rng, _H + pad, _W + 2 * pad)
  front = _texture(rng, box[1] - box[0], box[3] - box[2])
  y0, y1, x0, x1 = box

  def view(shift_back, shift_front):
    out = back[:_H, pad - shift_back:pad - shift_back + _W].copy()
    a, b = max(x0 + shift_front, 0), min(x1 + shift_front, _W)
    if a < b:
      out[y0:y1, a:b] = front[:, a - x0 - shift_front:b - x0 - shift_front]
    return out

  right = np.stack([view(0, 0)] * frames)
  shifts = [near + (int(rng.integers(-jitter, jitter + 1)) if jitter else 0)
            for _ in range(frames)]
  left = np.stack([view(background, s) for s in shifts])
  if up:
    left = np.concatenate([left[:, up:], np.repeat(left[:, -1:], up, axis=1)], axis=1)
  truth = np.full((frames, _H, _W), float(background))
  truth[:, y0:y1, max(x0, 0):min(x1, _W)] = near
  return left, right, truth


def _report(left, right, fps=8.0, **comfort_overrides):
  config = load_config('tiny').sample.comfort
  config.update(comfort_overrides)
  meter = comfort_report.ComfortMeter(config, _W, _H, fps)
  for index, (l, r) in enumerate(zip(left, right)):
    meter.add(l, r, index)
  return meter.report


def test_a_side_by_side_file_reports_the_true_disparity_percentiles(tmp_path):
  left, right, truth = _scene()
  path = tmp_path / 'clip_LRF_Full_SBS.mp4'
  video_io.write_video(path, stereo_formats.side_by_side(left, right), 8.0, crf=0)
  result = subprocess.run(
      [sys.executable, '-m', 'eye2eye_jax.evaluate', f'--stereo_report={path}',
       f'--output_dir={tmp_path / "report"}'], cwd=REPO, env=subprocess_env(),
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  data = json.loads((tmp_path / 'report' / 'clip_LRF_Full_SBS_stereo.json').read_text())
  assert (tmp_path / 'report' / 'clip_LRF_Full_SBS_stereo.png').stat().st_size > 1000
  assert data['source']['layout'] == 'sbs' and (data['width'], data['height']) == (_W, _H)
  expected = np.percentile(truth, [5, 50, 95])
  measured = [data['summary']['disparity_px'][k] for k in ('p05', 'p50', 'p95')]
  np.testing.assert_allclose(measured, expected, atol=0.3)
  assert abs(data['summary']['nearest']['px'] - 6) < 0.3
  assert abs(data['summary']['farthest']['px'] + 2) < 0.3
  # 6 px of 128 is 4.7% in front of the screen: over the 1% limit in every frame.
  assert data['verdict'].startswith('exceeds: in front of the screen up to 4.6')
  assert 'in front of the screen' in result.stdout and '3D exceeds' in result.stdout

  # The same pair as two files of the eyes, and as half side-by-side (squeezed eyes).
  video_io.write_video(tmp_path / 'L.mp4', left, 8.0, crf=0)
  video_io.write_video(tmp_path / 'R.mp4', right, 8.0, crf=0)
  pair = stereo_file_report.open_source([str(tmp_path / 'L.mp4'), str(tmp_path / 'R.mp4')])
  assert pair.layout == 'pair'
  sample = load_config('tiny').sample
  figures = stereo_file_report.report_file(pair, tmp_path / 'pair', sample,
                                           show_progress=False)['summary']['disparity_px']
  np.testing.assert_allclose([figures[k] for k in ('p05', 'p50', 'p95')], expected, atol=0.3)


def test_stereo_layouts_are_read_from_names_and_shapes(tmp_path):
  assert stereo_formats.layout_of('film_LR_Half_SBS.mp4', 1920, 1080) == 'half_sbs'
  assert stereo_formats.layout_of('film_TB.mkv', 1920, 2160) == 'tb'
  assert stereo_formats.layout_of('film.mp4', 3840, 1080) == 'sbs'  # by shape
  with pytest.raises(ValueError, match=r'film.mp4: cannot tell how its 1920x1080 frames'):
    stereo_formats.layout_of('film.mp4', 1920, 1080)
  left, right, _ = _scene(frames=1)
  for layout in ('sbs', 'tb'):
    frame = stereo_formats.render(layout, left, right)[0]
    got = stereo_formats.split(layout, frame)
    np.testing.assert_array_equal(got[0], left[0])
    np.testing.assert_array_equal(got[1], right[0])
  assert stereo_formats.eye_size('half_sbs', 1920, 1080) == (1920, 1080)
  # Bad inputs are refused, each naming the file.
  (tmp_path / 'notes.mp4').write_text('not a video')
  with pytest.raises(video_io.VideoError, match='notes.mp4'):
    stereo_file_report.open_source([str(tmp_path / 'notes.mp4')])
  video_io.write_video(tmp_path / 'a.mp4', left, 8.0)
  video_io.write_video(tmp_path / 'b.mp4', np.concatenate([right, right]), 8.0)
  with pytest.raises(video_io.VideoError, match=r'b.mp4: 2 frames, but .*a.mp4 has 1'):
    stereo_file_report.open_source([str(tmp_path / 'a.mp4'), str(tmp_path / 'b.mp4')])


def test_window_violations_are_found_at_the_edge_they_cross():
  crossing_right = _report(*_scene(box=(30, 70, 100, 150))[:2]).summary()['window_violations']
  assert crossing_right['right'] == 6 and crossing_right['left'] == 0
  crossing_left = _report(*_scene(box=(30, 70, -30, 30))[:2]).summary()['window_violations']
  assert crossing_left['left'] == 6 and crossing_left['right'] == 0
  inside = _report(*_scene()[:2])
  assert inside.summary()['window_violations']['frames'] == 0
  assert 'window violations' not in inside.verdict()


def test_vertical_disparity_is_measured():
  shifted = _report(*_scene(up=2)[:2])
  vertical = shifted.summary()['vertical']
  assert abs(abs(vertical['px']) - 2) < 0.25 and vertical['px'] < 0  # content higher
  assert 'vertical disparity up to 2.0 px' in shifted.verdict()
  assert abs(_report(*_scene()[:2]).summary()['vertical']['px']) < 0.1


def test_a_jittered_pair_flickers_more_than_a_still_one():
  still = _report(*_scene(frames=8)[:2]).summary()['flicker']['px']
  jittered = _report(*_scene(frames=8, jitter=2)[:2]).summary()['flicker']['px']
  assert still < 0.05 and jittered > 0.15 + still
  # The evaluation's figure is the same definition, on a clip's estimate.
  for left, expected_low in ((_scene(frames=8)[0], True), (_scene(frames=8, jitter=2)[0], False)):
    right = _scene(frames=8)[1]
    estimate = disparity_estimation.estimate_disparity(left, right, min_disparity=-10,
                                                       max_disparity=10)
    flicker = stereo_metrics.disparity_statistics(estimate, right)['flicker_px']
    assert (flicker < 0.05) == expected_low, flicker


def test_a_true_synthetic_pair_barely_flickers_while_its_camera_pans():
  clip = synthetic_scenes.SceneGenerator(synthetic_scenes.SceneParams(
      num_frames=8, height=64, width=64, max_disparity=8)).generate(1)
  estimate = disparity_estimation.estimate_disparity(clip.left, clip.right, min_disparity=-8,
                                                     max_disparity=12, upsample=2)
  truth = stereo_metrics.disparity_statistics(estimate, clip.right)['flicker_px']
  jittered = clip.left.copy()
  jittered[1::2] = np.roll(clip.left[1::2], 1, axis=2)  # every other frame 1 px nearer
  estimate = disparity_estimation.estimate_disparity(jittered, clip.right, min_disparity=-8,
                                                     max_disparity=12, upsample=2)
  assert truth < 0.15 < stereo_metrics.disparity_statistics(estimate, clip.right)['flicker_px']


def test_comfort_settings_are_checked():
  config = load_config('tiny').sample.comfort
  config.in_front = -0.01
  with pytest.raises(ValueError, match=r'comfort.in_front=-0.01: must be > 0'):
    comfort.Limits.from_config(config)
  assert comfort.Limits().degrees(0.03) == pytest.approx(1.0, abs=0.02)  # 1 deg: 3% at 33 deg
  from eye2eye_jax.sampling import convergence
  with pytest.raises(ValueError, match=r"sample.convergence='near': accepted values"):
    convergence.check_convergence('near')
  convergence.check_convergence('auto')


class _TruthSampler:
  """Stands in for a StereoSampler whose generated (and base) left view is a known one."""

  def __init__(self, left, **sample):
    self.left = left
    self.sample_config = load_config('tiny').sample
    self.sample_config.update(scene_cut_threshold=0.0, **sample)
    self.base = type('Stage', (), {'num_frames': 4})()
    self.refiner = None

  def plan_memory(self, height, width):
    return 0, 1

  def convert(self, video, fps=0.0, seed=None, return_base=False, caption=None, first_frame=0):
    out = self.left[first_frame:first_frame + len(video)]
    out = np.concatenate([out, np.repeat(out[-1:], len(video) - len(out), 0)])
    return (out, out) if return_base else out


def test_automatic_convergence_brings_a_too_near_clip_within_the_limit(tmp_path):
  # Everything in front of the screen: background 3 px (2.3%), a box at 5 px (3.9%).
  left, right, _ = _scene(frames=12, background=3, near=5)
  path = tmp_path / 'near.mp4'
  video_io.write_video(path, right, 8.0, crf=0)
  reports, written_back = {}, {}
  for setting in (0.0, 'auto'):
    sampler = _TruthSampler(left, convergence=setting, crf=0, outputs=('sbs',))
    written = video_conversion.convert_file(sampler, path, tmp_path / str(setting))
    reports[setting] = json.loads(written.report[0].read_text())
    # The written file, read back through the file report.
    written_back[setting] = stereo_file_report.report_file(
        stereo_file_report.open_source([str(written.videos['sbs'])]), tmp_path / 'back',
        sampler.sample_config, show_progress=False)
    assert abs(written_back[setting]['summary']['disparity']['p50']
               - reports[setting]['summary']['disparity']['p50']) < 0.002
  limits = comfort.Limits()
  assert reports[0.0]['summary']['nearest']['fraction'] > 3 * limits.in_front
  for report in (reports['auto'], written_back['auto']):
    assert report['summary']['nearest']['fraction'] <= limits.in_front
    assert report['summary']['farthest']['fraction'] >= -limits.behind
    assert 'in front of the screen' not in report['verdict']
  assert min(reports['auto']['per_frame']['convergence']) > 0.02


def test_auto_convergence_ramps_within_a_scene_and_starts_afresh_at_a_cut():
  limits = comfort.Limits()
  smoother = auto_convergence.SceneSmoother(limits, radius=3)
  nearest = [0.005] * 10 + [0.025] * 10 + [0.005] * 6  # a near object enters; then a cut
  scenes = [0] * 20 + [1] * 6
  settled = []
  for index, (n, scene) in enumerate(zip(nearest, scenes)):
    settled += smoother.push(index, n, 0.0, scene)
  settled += smoother.finish()
  assert [item for item, _ in settled] == list(range(26))
  applied = np.array([c for _, c in settled])
  for n, c in zip(nearest, applied):  # every frame meets its own bounds
    low, high = auto_convergence.bounds(n, 0.0, limits)
    assert low - 1e-9 <= c <= high + 1e-9
  steps = np.abs(np.diff(applied[:20]))
  assert steps.max() < 0.5 * (applied[:20].max() - applied[:20].min())  # a ramp, not a jump
  assert applied[20] == 0.0 and applied[19] > 0.015  # the cut drops it at once
  # Deeper than both limits: the farthest content stays within the behind limit.
  low, high = auto_convergence.bounds(0.08, 0.0, limits)
  assert low > high and auto_convergence.choose(low, high) == pytest.approx(high)
  assert high / (1 - high) == pytest.approx(auto_convergence.AIM * limits.behind, rel=0.05)


def test_an_interrupted_file_report_resumes(tmp_path, monkeypatch):
  left, right, _ = _scene(frames=10, jitter=1)
  path = tmp_path / 'clip_LRF_Full_SBS.mp4'
  video_io.write_video(path, stereo_formats.side_by_side(left, right), 8.0, crf=0)
  sample = load_config('tiny').sample
  whole = stereo_file_report.report_file(stereo_file_report.open_source([str(path)]),
                                         tmp_path / 'whole', sample, show_progress=False)
  source = stereo_file_report.open_source([str(path)])
  frames = source.frames

  def interrupted(indices):
    for count, item in enumerate(frames(indices)):
      if count == 4:
        raise KeyboardInterrupt
      yield item

  monkeypatch.setattr(source, 'frames', interrupted)
  monkeypatch.setattr(stereo_file_report, 'SAVE_EVERY_S', -1.0)  # save after every frame
  with pytest.raises(KeyboardInterrupt):
    stereo_file_report.report_file(source, tmp_path / 'resumed', sample, show_progress=False)
  partial = tmp_path / 'resumed' / f'clip_LRF_Full_SBS{stereo_file_report.PARTIAL_SUFFIX}'
  assert len(json.loads(partial.read_text())['report']['per_frame']['frame']) == 4
  assert not (tmp_path / 'resumed' / 'clip_LRF_Full_SBS_stereo.json').exists()
  resumed = stereo_file_report.report_file(stereo_file_report.open_source([str(path)]),
                                           tmp_path / 'resumed', sample, show_progress=False)
  assert not partial.exists()
  for series in ('frame', 'p50', 'nearest', 'farthest'):
    assert resumed['per_frame'][series] == whole['per_frame'][series], series
  assert resumed['summary']['disparity'] == whole['summary']['disparity']
