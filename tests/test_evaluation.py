"""Evaluation end to end: the scoring of methods, the evaluate command, training samples."""

import json
import os
import subprocess
import sys

import types

import pytest

from conftest import REPO
from eye2eye_jax.data import synthetic_scenes
from eye2eye_jax.evaluation import (checkpoint_report, pair_eval, split_comparison,
                                    synthetic_eval)


@pytest.fixture(scope='module')
def scene_records():
  """Clips of the demo's scene size with panes and mirrors, as dataset records."""
  params = synthetic_scenes.SceneParams(transparent_probability=0.7, mirror_probability=0.7)
  generator = synthetic_scenes.SceneGenerator(params)
  records = []
  for seed in range(5):
    clip = generator.generate(seed)
    records.append({'right': clip.right, 'left': clip.left, 'layer_masks': clip.layer_masks,
                    'layer_disparity': clip.layer_disparity, 'layer_kind': clip.layer_kind,
                    'seed': seed})
  return params, records


def test_baselines_are_scored_per_layer_type(scene_records):
  params, records = scene_records
  metrics = synthetic_eval.evaluate(None, records, params)
  assert metrics['methods'] == ['true_left', 'copy_right', 'global_shift', 'warp_depth',
                                'warp_stereo']
  geometry = metrics['geometry']
  # The truth recovers its own disparities on opaque layers, after one global scale.
  assert geometry['true_left']['opaque']['scale'] == pytest.approx(1.0, abs=0.03)
  assert geometry['true_left']['opaque']['mean_abs_error_px'] < 0.1
  assert geometry['true_left']['all']['scale'] == pytest.approx(1.0, abs=0.03)
  assert geometry['true_left']['all']['depth_order_accuracy'] > 0.95
  # No 3D: scale 0 and no pair ordered; a global shift cannot order depths either.
  assert abs(geometry['copy_right']['all']['scale']) < 0.02
  assert geometry['copy_right']['all']['depth_order_accuracy'] == 0
  assert geometry['global_shift']['all']['depth_order_accuracy'] < 0.3
  # Warping with a true depth gets opaque layers right, and mirror content wrong: it moves
  # with the mirror's surface instead of the reflection's virtual depth.
  for warp in ('warp_depth', 'warp_stereo'):
    assert geometry[warp]['opaque']['mean_abs_error_px'] < 0.3
  assert geometry['warp_depth']['reflection']['mean_abs_error_px'] > 1.0
  assert geometry['warp_depth']['reflection']['scale'] > 1.5
  image = metrics['image']
  assert image['warp_depth']['psnr'] > image['global_shift']['psnr'] > image['copy_right']['psnr']
  assert image['warp_depth']['stereo_iou'] > image['copy_right']['stereo_iou']
  # Inside panes and mirrors the true view is closer to itself than to a single-depth warp.
  comparison = metrics['single_depth_comparison']
  assert comparison['true_left']['transparent']['closer_to_truth_fraction'] == 1.0
  assert comparison['true_left']['reflection']['closer_to_truth_fraction'] == 1.0
  assert set(comparison['copy_right']) == {'scale'}  # flat: nothing to compare
  statistics = metrics['disparity_statistics']
  assert statistics['copy_right']['range_px'] < 0.2
  assert statistics['true_left']['median_px'] > 1.0
  json.dumps(metrics)  # every figure is JSON


@pytest.mark.parametrize('baseline', [0.5, 1.0])
def test_real_pair_evaluation_reports_the_disparity_scale_of_the_output(baseline):
  """A left view rendered at a known share of the true eye distance scores that share, as
  the synthetic evaluation does: a model that halves the 3D effect reads 0.5."""
  generator = synthetic_scenes.SceneGenerator(synthetic_scenes.SceneParams(
      num_frames=2, height=48, width=64, max_disparity=8.0, texture_families=('noise',)))
  records, converted = [], {}
  for index, seed in enumerate((3, 4)):
    truth, output = generator.generate(seed), generator.generate(seed, baseline=baseline)
    records.append({'right': truth.right, 'left': truth.left})
    converted[index] = (output.left, output.left)
  sampler = types.SimpleNamespace(refiner=None)
  metrics = pair_eval.evaluate(sampler, records, max_disparity=16.0, baselines=False,
                               converted=converted)
  assert metrics['agreement']['generated']['scale'] == pytest.approx(baseline, abs=0.08)
  assert metrics['agreement']['copy_right']['scale'] == pytest.approx(0.0, abs=0.08)


def test_evaluate_command_writes_a_report(tiny_config, tiny_dataset, tiny_checkpoint, tmp_path):
  metrics = checkpoint_report.evaluate_checkpoint(tiny_config, tmp_path,
                                                  checkpoint=str(tiny_checkpoint),
                                                  refiner_checkpoint='', num_clips=2)
  saved = json.loads((tmp_path / 'metrics.json').read_text())
  assert saved['methods'] == metrics['methods'] == [
      'generated', 'true_left', 'copy_right', 'global_shift', 'warp_depth', 'warp_stereo']
  assert saved['num_clips'] == 2
  report = (tmp_path / 'report.md').read_text()
  assert '### background' in report and '## Disparity without ground truth' in report
  assert sorted(p.name for p in (tmp_path / 'plots').iterdir()) == [
      'anaglyphs.png', 'disparity_histogram.png', 'layer_error.png', 'layer_shift.png']


def test_seen_and_held_out_splits_are_reported_side_by_side(tiny_config, tiny_checkpoint,
                                                           tmp_path):
  config = tiny_config.copy_and_resolve_references()
  config.data.builder_config = 'tiny_diverse'
  config.data.data_dir = str(tmp_path / 'tfds')
  splits = split_comparison.default_splits(config)
  assert splits == ['validation', 'validation_unseen']
  by_split = {split: checkpoint_report.evaluate_checkpoint(
      config, tmp_path / split, checkpoint=str(tiny_checkpoint), refiner_checkpoint='',
      num_clips=2, split=split, baselines=False) for split in splits}
  report = split_comparison.write_comparison(tmp_path, by_split).read_text()
  assert '| method | validation | validation_unseen |' in report
  psnr = {s: m['image']['generated']['psnr'] for s, m in by_split.items()}
  assert f'| generated | {psnr["validation"]:.2f} | {psnr["validation_unseen"]:.2f} |' in report
  headline = json.loads((tmp_path / 'splits.json').read_text())
  copy = {s: m['image']['copy_right']['psnr'] for s, m in by_split.items()}
  assert headline['generalisation_gap_db'] == pytest.approx(
      (psnr['validation'] - psnr['validation_unseen']) -
      (copy['validation'] - copy['validation_unseen']))
  assert (tmp_path / 'validation_unseen' / 'report.md').is_file()
  assert split_comparison.default_splits(tiny_config) == ['validation']


def test_evaluate_command_rejects_bad_arguments(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(REPO))
  result = subprocess.run([sys.executable, '-m', 'eye2eye_jax.evaluate',
                           f'--config={REPO / "configs" / "tiny.py"}', '--num_clips=0',
                           f'--output_dir={tmp_path / "out"}'],
                          capture_output=True, text=True, env=env, timeout=300)
  assert result.returncode != 0
  assert '--num_clips must be >= 1' in result.stderr
  assert not (tmp_path / 'out').exists()


def test_training_writes_samples_to_tensorboard(tiny_config, tiny_checkpoint):
  """The tiny run samples validation clips every train.sample_every steps."""
  from tensorboard.backend.event_processing import event_accumulator
  events = event_accumulator.EventAccumulator(str(tiny_checkpoint), size_guidance={
      event_accumulator.TENSORS: 0, event_accumulator.IMAGES: 0})
  events.Reload()
  tags = events.Tags()['tensors']
  assert 'samples/disparity_scale' in tags and 'samples/psnr' in tags
  steps = [e.step for e in events.Tensors('samples/psnr')]
  assert steps == list(range(tiny_config.train.sample_every, tiny_config.train.num_steps + 1,
                             tiny_config.train.sample_every))
  images = events.Tensors('samples/anaglyph_generated_vs_true')
  assert len(images) == len(steps)
  # An image summary holds width, height, then one encoded PNG per clip.
  width, height = (int(v) for v in images[-1].tensor_proto.string_val[:2])
  assert (width, height) == (32, 16)  # generated | true, 16x16 clips
  assert len(images[-1].tensor_proto.string_val) == 2 + tiny_config.train.sample_clips
