"""The main job's wiring, on the tiny config."""

import json

from conftest import REPO
from eye2eye_jax import demo
from eye2eye_jax.evaluation import checkpoint_report, evaluator, quality_vs_steps
from eye2eye_jax.data import video_io


def test_main_job_writes_videos_metrics_and_report(tiny_config, tiny_checkpoint,
                                                  tiny_strength_checkpoint, tmp_path,
                                                  monkeypatch):
  config = tiny_config.copy_and_resolve_references()
  config.data.builder_config = 'tiny_diverse'  # seen and held-out texture families
  config.data.data_dir = str(tmp_path / 'tfds')
  strength_config = tmp_path / 'strength_config.py'  # the strength model's sampling config
  strength_config.write_text(
      'from eye2eye_jax.config_base import load_config_file\n\n\n'
      'def get_config():\n'
      f'  c = load_config_file({str(REPO / "configs" / "tiny.py")!r})\n'
      f'  c.sample.checkpoint = {str(tiny_strength_checkpoint)!r}\n'
      '  return c\n')
  monkeypatch.setattr(quality_vs_steps, 'SETTINGS', (quality_vs_steps.Setting('ddim', 2, 1),
                                                     quality_vs_steps.Setting('dpmpp_2m', 2, 1)))
  evaluated = []  # (split, clips) of every evaluation through the one shared evaluator
  run = evaluator.Evaluator.run
  monkeypatch.setattr(evaluator.Evaluator, 'run', lambda self, *a, **k: evaluated.append(
      (self.split, len(self.records))) or run(self, *a, **k))
  by_split = demo.run(config, tmp_path, train_steps=4, checkpoint=str(tiny_checkpoint),
                      num_videos=1, num_eval_clips=2, refiner_checkpoint=str(tiny_checkpoint),
                      num_strength_clips=1, strength_config=str(strength_config),
                      num_steps_clips=1)
  assert list(by_split) == ['validation', 'validation_unseen']
  # Step 2's samples (training), step 4 (both splits) and step 5's base resolutions.
  assert evaluated == [('validation', 2)] + [('validation', 2), ('validation_unseen', 2)] + [
      ('validation', 1)] * 4
  # The same figures as the evaluate command's on the same clips and models.
  evaluated_by_command = checkpoint_report.evaluate_checkpoint(
      config, tmp_path / 'evaluate', str(tiny_checkpoint), str(tiny_checkpoint), num_clips=2)
  for key in ('image', 'geometry'):
    assert evaluated_by_command[key] == by_split['validation'][key]
  saved = json.loads((tmp_path / 'metrics.json').read_text())
  assert saved['num_clips'] == 2 == by_split['validation']['num_clips']
  assert set(saved['image']) == {'generated', 'base_only', 'copy_right', 'global_shift',
                                 'warp_depth', 'warp_stereo'}
  # The true left view is the sanity ceiling: its measured shifts are the true disparities.
  assert saved['geometry']['true_left']['all']['scale'] > 0.8
  assert abs(saved['geometry']['copy_right']['all']['scale']) < 0.05
  assert [step for step, _ in saved['training']['loss_by_step']][-1] == 4
  assert [row['base_resolution'] for row in saved['strength']] == [4, 6, 8, 12]
  report_text = (tmp_path / 'report.md').read_text()
  assert '# Stereo quality' in report_text and '## Per layer type' in report_text
  for plot in ('layer_shift', 'layer_error', 'disparity_histogram', 'anaglyphs'):
    assert (tmp_path / 'plots' / f'{plot}.png').stat().st_size > 1000
    assert f'plots/{plot}.png' in report_text
  for name in ('validation_000_left.mp4', 'validation_000_LRF_Full_SBS.mp4',
               'validation_000_LR_Half_SBS.mp4', 'validation_000_TB.mp4',
               'validation_000_anaglyph.mp4', 'validation_000_truth_LRF_Full_SBS.mp4'):
    video = video_io.read_video(tmp_path / 'videos' / name)
    assert video.frames.shape[0] == 4
  # Each converted clip's comfort report, with the configured and automatic convergence.
  comfort = json.loads((tmp_path / 'comfort.json').read_text())
  assert [(r['clip'], r['convergence']) for r in comfort['clips']] == [
      ('validation_000', '0.0'), ('validation_000', 'auto')]
  for folder in ('videos', 'videos/auto'):
    report = json.loads((tmp_path / folder / 'validation_000_stereo.json').read_text())
    assert report['summary']['frames_analysed'] == 4 and report['verdict']
  assert '| validation_000 | auto |' in (tmp_path / 'comfort.md').read_text()
  # Flicker, for the model beside the baselines (the truth's is the estimator's noise).
  assert all(saved['disparity_statistics'][m]['flicker_px'] is not None
             for m in ('generated', 'warp_depth', 'true_left'))
  assert 'flicker (px)' in report_text
  # The held-out textures: their own report, and both splits side by side.
  unseen = json.loads((tmp_path / 'validation_unseen' / 'metrics.json').read_text())
  assert unseen['num_clips'] == 2 and 'strength' not in unseen
  assert (tmp_path / 'validation_unseen' / 'plots' / 'layer_shift.png').is_file()
  splits = (tmp_path / 'splits.md').read_text()
  assert '| method | validation | validation_unseen |' in splits
  assert json.loads((tmp_path / 'splits.json').read_text())['generalisation_gap_db'] is not None
  # The strength-conditioned model, asked for each strength on the held-out families.
  rows = by_split['validation_unseen']['strength_response']
  assert [r['strength'] for r in rows] == [0.5, 1.0, 1.5, 2.0]
  saved = json.loads((tmp_path / 'strength' / 'strength.json').read_text())
  assert saved['split'] == 'validation_unseen' and saved['rows'] == rows
  assert (tmp_path / 'strength' / 'plots' / 'strength_response.png').is_file()
  # Quality against model evaluations, each setting on the held-out families.
  rows = by_split['validation_unseen']['quality_vs_steps']
  assert [(r['name'], r['evaluations']) for r in rows] == [('ddim 2+1', 3), ('dpmpp_2m 2+1', 3)]
  assert rows[0]['speedup'] == 1.0 and rows[0]['psnr_change'] == 0.0
  assert (tmp_path / 'steps' / 'plots' / 'quality_vs_evaluations.png').is_file()
