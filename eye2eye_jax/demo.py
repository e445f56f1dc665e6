"""The main job, end to end on synthetic stereo scenes.

  python -m eye2eye_jax.demo --output_dir=outputs/demo

1. builds the synthetic stereo dataset (TFDS, ArrayRecord) if it is missing;
2. trains the demo config for ``--train_steps`` steps, to show that training runs and the
   loss drops (a real model needs far longer: the bundled checkpoint had hours);
3. converts held-out clips with the bundled demo checkpoint (or ``--checkpoint``) through
   the same path as ``eye2eye_jax.sample``, writing left, side-by-side and anaglyph videos
   and each one's comfort report (``<stem>_stereo.json`` / ``.png``), and again with
   automatic convergence (``videos/auto/``); ``comfort.md`` sets their figures side by side;
4. measures the 3D effect on held-out clips, next to the baselines (copy-right, global
   shift, warp-and-inpaint), with the evaluation ``evaluate`` runs
   (``evaluation/evaluator.py``), and writes ``metrics.json``, ``report.md`` and ``plots/``; where
   the dataset holds texture families out (``diverse``), the same for ``validation_unseen``
   in its own folder, and ``splits.md`` / ``splits.json`` setting the two side by side;
5. measures the 3D strength: how the base sampling resolution changes the disparity, and,
   with the strength-conditioned models of ``--strength_config``, the disparity made at
   each requested strength (``strength/strength.md``, on the held-out families);
6. measures quality against model evaluations: the same held-out clips converted with
   fewer steps and with each solver (``steps/steps.md``).
"""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np

from absl import flags, logging

from eye2eye_jax.common import cli_flags, runtime
from eye2eye_jax.data import datasets, video_io
from eye2eye_jax import config_base
from eye2eye_jax.evaluation import (evaluator, metrics_report, quality_vs_steps,
                                    split_comparison, strength_response, synthetic_eval)
from eye2eye_jax.sampling import stereo_formats, stereo_sampler, video_conversion
from eye2eye_jax.training import loop

_REPO = pathlib.Path(__file__).resolve().parent.parent
_CONFIG = cli_flags.define_config(str(_REPO / 'configs' / 'demo.py'), lock=False)
_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'outputs/demo', 'Where everything is written.')
_TRAIN_STEPS = flags.DEFINE_integer('train_steps', 60,
                                    'Steps of the short training run (0: skip it).')
_CHECKPOINT, _REFINER = cli_flags.define_checkpoints('default: config.sample.checkpoint')
_NUM_VIDEOS = flags.DEFINE_integer('num_videos', 4, 'Held-out clips written as videos.')
_NUM_EVAL = flags.DEFINE_integer('num_eval_clips', 32, 'Held-out clips measured.')
_STRENGTH_CLIPS = flags.DEFINE_integer('num_strength_clips', 8,
                                       'Held-out clips measured per base resolution '
                                       'and per requested strength.')
_STRENGTH_CONFIG = flags.DEFINE_string(
    'strength_config', str(_REPO / 'configs' / 'strength_demo.py'),
    'Config whose sample.checkpoint / refiner_checkpoint are strength-conditioned models, '
    'measured at strengths 0.5-2 in step 5 ("": skip).')
_STEPS_CLIPS = flags.DEFINE_integer('num_steps_clips', 24,
                                    'Held-out clips converted per sampler setting in step 6 '
                                    '(0: skip it).')
_FPS = 8.0  # frame rate of the demo's videos


def run(config, output_dir: pathlib.Path, train_steps: int, checkpoint: str | None,
        num_videos: int, num_eval_clips: int, refiner_checkpoint: str | None = None,
        num_strength_clips: int = 0, strength_config: str = '',
        num_steps_clips: int = 0) -> dict[str, dict]:
  """Runs the six steps; returns each evaluated split's metrics."""
  output_dir.mkdir(parents=True, exist_ok=True)
  data_dir = datasets.resolve_data_dir(config)
  print(f'[1/6] Dataset {config.data.builder}/{config.data.builder_config} in {data_dir}')
  datasets.ensure_dataset(config, data_dir)

  training_summary = None
  if train_steps > 0:
    print(f'[2/6] Training the demo config for {train_steps} steps '
          f'(workdir {output_dir / "train"})')
    train_config = config.copy_and_resolve_references()
    train_config.train.num_steps = train_steps
    train_config.train.log_every = max(1, train_steps // 6)
    train_config.train.checkpoint_every = train_steps
    train_config.train.sample_every = train_steps  # shows the TensorBoard samples once
    losses = []
    shutil.rmtree(output_dir / 'train', ignore_errors=True)  # a fresh run each time
    loop.train_and_evaluate(train_config, str(output_dir / 'train'),
                            on_metrics=lambda step, m: losses.append((step, m['loss'])))
    training_summary = {'steps': train_steps, 'loss_by_step': losses}
    if losses:
      print(f'      loss {losses[0][1]:.4f} (step {losses[0][0]}) -> {losses[-1][1]:.4f} '
            f'(step {losses[-1][0]})')

  source = checkpoint or config.sample.checkpoint
  refiner = (config.sample.refiner_checkpoint if refiner_checkpoint is None
             else refiner_checkpoint)
  print(f'[3/6] Converting {num_videos} held-out clips with base {source}'
        + (f' and refiner {refiner}' if refiner else ' (no refiner)'))
  sampler = video_conversion.load_sampler(config, source, refiner)
  auto_config = config.sample.copy_and_resolve_references()
  with auto_config.ignore_type():  # convergence takes a number or 'auto'
    auto_config.update(convergence='auto', report=True)
  auto_sampler = stereo_sampler.StereoSampler(sampler.base, sampler.refiner, auto_config)
  validation = datasets.data_source(config, 'validation', data_dir)
  inputs_dir, videos_dir = output_dir / 'inputs', output_dir / 'videos'
  comfort = []
  for index in range(min(num_videos, len(validation))):
    record = validation[index]
    stem = f'validation_{index:03d}'
    right_path = video_io.write_video(inputs_dir / f'{stem}.mp4', record['right'], _FPS)
    video_io.write_video(videos_dir / f'{stem}_truth_LRF_Full_SBS.mp4',
                         stereo_formats.side_by_side(record['left'], record['right']), _FPS)
    written = video_conversion.convert_file(sampler, right_path, videos_dir)
    print(f'      {right_path.name} -> {", ".join(p.name for p in written.videos.values())}')
    auto = video_conversion.convert_file(auto_sampler, right_path, videos_dir / 'auto')
    for converted, setting in ((written, config.sample.convergence), (auto, 'auto')):
      if converted.report is not None:
        comfort.append(_comfort_row(stem, setting, converted))
        print(f'        convergence {setting}: 3D {converted.verdict} '
              f'({converted.report[0].relative_to(output_dir)})')
  if comfort:
    metrics_report.write_comfort(output_dir, comfort, config.sample.comfort)

  by_split, examples = {}, {}
  for split in split_comparison.default_splits(config):
    held_out = evaluator.Evaluator(config, split, data_dir, num_eval_clips)
    count = len(held_out.records)
    print(f'[4/6] Measuring the 3D effect on {count} clips of {split}, with the baselines')
    examples[split] = []
    by_split[split] = held_out.run(
        sampler, progress=lambda done: done % 8 == 0 and print(f'      {done}/{count} clips'),
        examples=examples[split])
  by_split['validation']['strength'] = _strength_sweep(config, sampler, data_dir,
                                                       num_strength_clips)
  by_split['validation']['training'] = training_summary
  for split, metrics in by_split.items():
    metrics['checkpoint'] = source
    metrics['refiner_checkpoint'] = refiner
    metrics_report.write_report(output_dir if split == 'validation' else output_dir / split,
                                metrics, examples[split])
  if len(by_split) > 1:
    split_comparison.write_comparison(output_dir, by_split, report_name='splits.md')
  if strength_config and num_strength_clips:
    split = 'validation_unseen' if 'validation_unseen' in by_split else 'validation'
    by_split[split]['strength_response'] = _strength_response(
        strength_config, config, split, data_dir, num_strength_clips, output_dir / 'strength')
  if num_steps_clips:
    split = 'validation_unseen' if 'validation_unseen' in by_split else 'validation'
    by_split[split]['quality_vs_steps'] = _quality_vs_steps(
        sampler, config, split, data_dir, num_steps_clips, output_dir / 'steps')
  return by_split


def _comfort_row(stem: str, convergence, converted: video_conversion.ConvertedVideo) -> dict:
  """The comfort figures of one converted clip, for ``comfort.md``."""
  report = json.loads(converted.report[0].read_text())
  s = report['summary']
  return {'clip': stem, 'convergence': str(convergence),
          'nearest': s['nearest']['fraction'], 'farthest': s['farthest']['fraction'],
          'in_front_frames': s['nearest']['frames_over_limit'],
          'window_frames': s['window_violations']['share'], 'flicker_px': s['flicker']['px'],
          'mean_convergence': float(np.mean(report['per_frame']['convergence'])),
          'exceeded': report['exceeded']}


def _strength_response(config_file: str, config, split: str, data_dir: str, count: int,
                       output_dir: pathlib.Path) -> list[dict]:
  """The response curve (its rows) of the strength-conditioned models of ``config_file`` on
  ``split`` of the demo dataset, written to ``output_dir``. Validation clips are at
  baseline 1 in every config, so any config's validation clips can measure it."""
  strength_config = config_base.load_config_file(config_file)
  clips = datasets.data_source(config, split, data_dir)
  records = [clips[i] for i in range(min(count, len(clips)))]
  checkpoint = strength_config.sample.checkpoint
  sampler = video_conversion.load_sampler(strength_config, checkpoint,
                                          strength_config.sample.refiner_checkpoint)
  print(f'      requested strengths {strength_response.STRENGTHS} with {checkpoint} on '
        f'{len(records)} clips of {split}')
  rows = strength_response.measure(
      sampler, records, synthetic_eval.scene_params(config, split),
      progress=lambda r: print(f'      strength {r["strength"]:g}: disparity scale '
                               f'{r["generated"]["scale"] or 0:.2f}, PSNR '
                               f'{r["generated"]["psnr"]:.2f} dB (copy {r["copy_psnr"]:.2f})'))
  strength_response.write(output_dir, rows, len(records), split)
  return rows


def _quality_vs_steps(sampler, config, split: str, data_dir: str, count: int,
                      output_dir: pathlib.Path) -> list[dict]:
  """``quality_vs_steps`` rows of ``sampler``'s models on ``split``, written to
  ``output_dir``."""
  clips = datasets.data_source(config, split, data_dir)
  records = [clips[i] for i in range(min(count, len(clips)))]
  print(f'[6/6] Quality against model evaluations on {len(records)} clips of {split}')
  settings, students = quality_vs_steps.SETTINGS, None
  if not config.sample.distilled_checkpoint:  # no students to measure
    settings = [setting for setting in settings if not setting.distilled]
  elif any(setting.distilled for setting in settings):
    student_config = config.copy_and_resolve_references()
    student_config.sample.distilled = True
    student_sampler = video_conversion.load_sampler(student_config)
    students = (student_sampler.base, student_sampler.refiner)
  rows = quality_vs_steps.measure(
      sampler, records, synthetic_eval.scene_params(config, split), settings=settings,
      students=students,
      progress=lambda r: print(f'      {r["name"]:<15} {r["evaluations"]:3d} evaluations, '
                               f'{r["seconds_per_clip"]:.2f} s per clip: PSNR '
                               f'{r["psnr"]:.2f} dB, disparity scale {r["scale"] or 0:.2f}'))
  quality_vs_steps.write(output_dir, rows, len(records), split)
  return rows


def _strength_sweep(config, sampler, data_dir: str, count: int) -> list[dict]:
  """Disparity measured at several base sampling resolutions (the 3D-strength control)."""
  if not count:
    return []
  held_out = evaluator.Evaluator(config, 'validation', data_dir, count, baselines=False)
  count = len(held_out.records)
  base = sampler.base.resolution
  resolutions = (base // 2, base * 3 // 4, base, base * 3 // 2)
  print(f'[5/6] 3D strength: base sampling resolutions {resolutions} on {count} clips')
  sweep = []
  for resolution in resolutions:
    sample_config = config.sample.copy_and_resolve_references()
    sample_config.base_resolution = resolution
    variant = stereo_sampler.StereoSampler(sampler.base, sampler.refiner, sample_config)
    figures = held_out.run(variant)
    geometry = figures['geometry']['generated']['all']
    row = {'base_resolution': resolution, 'scale': geometry['scale'],
           'mean_measured_shift_px': geometry['mean_measured_shift_px'],
           'psnr': figures['image']['generated']['psnr']}
    if 'base_only' in figures['geometry']:
      row['base_only_scale'] = figures['geometry']['base_only']['all']['scale']
    sweep.append(row)
    print(f'      base at {resolution:3d} px: disparity scale {geometry["scale"]:.2f}'
          + (f' (base stage alone {row["base_only_scale"]:.2f})' if 'base_only_scale' in row
             else ''))
  return sweep


def main(argv):
  cli_flags.require(argv)
  runtime.enable_compilation_cache()
  logging.set_verbosity(logging.WARNING)
  output_dir = pathlib.Path(_OUTPUT_DIR.value)
  with cli_flags.exit_on_error(FloatingPointError):
    by_split = run(_CONFIG.value, output_dir, _TRAIN_STEPS.value, _CHECKPOINT.value,
                   _NUM_VIDEOS.value, _NUM_EVAL.value, _REFINER.value, _STRENGTH_CLIPS.value,
                   _STRENGTH_CONFIG.value, _STEPS_CLIPS.value)
  for split, metrics in by_split.items():
    g = metrics['geometry']['generated']['all']
    image = metrics['image']
    print(f'\n{split}: PSNR vs true left: generated {image["generated"]["psnr"]:.2f} dB, '
          f'warp-and-inpaint (true surface depth) {image["warp_depth"]["psnr"]:.2f} dB, '
          f'copy-right {image["copy_right"]["psnr"]:.2f} dB')
    print(f'  disparity scale {g["scale"]:.2f}, Spearman {g["spearman"]}, depth order '
          f'{g["depth_order_accuracy"]}')
    flicker = {m: metrics['disparity_statistics'][m].get('flicker_px') for m in
               ('generated', 'warp_depth', 'warp_stereo', 'true_left')}
    print('  disparity flicker (px per frame): ' + ', '.join(
        f'{m} {value:.3f}' for m, value in flicker.items() if value is not None)
          + ' (true_left: the estimator\'s own noise)')
  reports = ['report.md'] + [f'{s}/report.md' for s in by_split if s != 'validation']
  if len(by_split) > 1:
    reports.append('splits.md (the splits side by side)')
  if (output_dir / 'strength' / 'strength.md').is_file():
    reports.append('strength/strength.md (the 3D strength asked for and made)')
  if (output_dir / 'comfort.md').is_file():
    reports.append('comfort.md (the comfort of the converted clips, fixed and automatic '
                   'convergence)')
  if (output_dir / 'steps' / 'steps.md').is_file():
    reports.append('steps/steps.md (quality against model evaluations)')
  print(f'\nVideos in {output_dir / "videos"}; reports in {output_dir}: {", ".join(reports)}')


if __name__ == '__main__':
  cli_flags.run(main)
