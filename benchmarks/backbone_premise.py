"""Does a backbone pretrained on monocular clips make a better stereo model? Measured.

  python benchmarks/backbone_premise.py --output_dir=outputs/premise \
      [--backbone_steps=1000] [--stereo_steps=500] [--eval_clips=16]

1. trains the text-to-video backbone of ``configs/backbone_demo.py`` (the demo UNet without
   the right view, on the right views of the synthetic clips, with their captions);
2. trains the stereo model of ``configs/demo.py`` twice for the same number of steps, with
   the same batches, noise and optimizer: once from the backbone (conditioning surgery:
   zero weights on the right view's channels) and once from random weights;
3. records both held-out loss curves (the EMA weights on fixed validation batches, fixed
   noise) and scores both final models' base stage on held-out clips with the synthetic
   evaluation (per-layer shift error after scale, scale, depth order, PSNR).

Writes ``premise.json``, ``premise.md`` and ``premise.png`` to the output directory. Every
run resumes from its checkpoints, so an interrupted experiment continues where it stopped.
"""

from __future__ import annotations

import json
import pathlib
import sys

import matplotlib
from absl import app, flags

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from eye2eye_jax import config_base  # noqa: E402
from eye2eye_jax.common import atomic_files, runtime  # noqa: E402
from eye2eye_jax.data import datasets  # noqa: E402
from eye2eye_jax.evaluation import synthetic_eval  # noqa: E402
from eye2eye_jax.models import checkpoints  # noqa: E402
from eye2eye_jax.sampling import stereo_sampler  # noqa: E402
from eye2eye_jax.training import loop  # noqa: E402

_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'outputs/premise', 'Where runs and results go.')
_BACKBONE_STEPS = flags.DEFINE_integer('backbone_steps', 1000, 'Backbone pretraining steps.')
_STEREO_STEPS = flags.DEFINE_integer('stereo_steps', 500, 'Stereo training steps per arm.')
_EVAL_EVERY = flags.DEFINE_integer('eval_every', 50, 'Steps between held-out losses.')
_EVAL_CLIPS = flags.DEFINE_integer('eval_clips', 16, 'Held-out clips scored at the end.')

_CONFIGS = pathlib.Path(__file__).resolve().parent.parent / 'configs'


def _train(config, workdir: pathlib.Path) -> list[tuple[int, float]]:
  """Trains (or resumes) a run; returns its held-out loss curve, kept in curve.json."""
  curve_path = workdir / 'curve.json'
  curve = dict(json.loads(curve_path.read_text())) if curve_path.exists() else {}

  def on_metrics(step, scalars):
    if 'eval/loss' in scalars:
      curve[str(step)] = scalars['eval/loss']
      atomic_files.write_text(curve_path, json.dumps(curve))

  workdir.mkdir(parents=True, exist_ok=True)
  loop.train_and_evaluate(config, str(workdir), on_metrics=on_metrics)
  return sorted((int(k), v) for k, v in curve.items())


# The demo's EMA (0.999) would still hold 60% of the initial weights after 500 steps and
# so favour the arm that starts from trained weights; 0.99 averages the last ~100 steps.
_EMA_DECAY = 0.99


def _stereo_config(steps: int):
  config = config_base.load_config_file(_CONFIGS / 'demo.py')
  config.train.num_steps = steps
  config.train.ema_decay = _EMA_DECAY
  config.train.eval_every = _EVAL_EVERY.value
  config.train.checkpoint_every = steps
  config.train.sample_every = 0
  return config


def _score(config, workdir: pathlib.Path, num_clips: int) -> dict:
  """Synthetic evaluation of the run's base model (EMA weights), no refiner."""
  stage = stereo_sampler.Stage(*checkpoints.load_for_inference(str(workdir)))
  sampler = stereo_sampler.StereoSampler(stage, None, config.sample)
  data_dir = datasets.resolve_data_dir(config)
  records = datasets.data_source(config, 'validation', data_dir)
  metrics = synthetic_eval.evaluate(sampler, (records[i] for i in range(num_clips)),
                                    synthetic_eval.scene_params(config), baselines=False)
  geometry = metrics['geometry']['generated']
  return {
      'shift_error_after_scale_px': geometry['all']['mean_abs_error_after_scale_px'],
      'shift_error_px': geometry['all']['mean_abs_error_px'],
      'disparity_scale': geometry['all']['scale'],
      'spearman': geometry['all']['spearman'],
      'depth_order_accuracy': geometry['all']['depth_order_accuracy'],
      'mirror_content_shift_error_px': geometry['reflection'].get(
          'mean_abs_error_after_scale_px'),
      'psnr_db': metrics['image']['generated']['psnr'],
  }


def _write_results(output_dir: pathlib.Path, results: dict) -> None:
  atomic_files.write_text(output_dir / 'premise.json', json.dumps(results, indent=1))
  arms = results['arms']
  rows = ['| figure | from the backbone | from scratch |', '|---|---|---|']
  final = {a: arms[a]['held_out_loss'][-1][1] for a in arms}
  rows.append(f'| held-out loss at step {results["stereo_steps"]} | '
              f'{final["from_backbone"]:.4f} | {final["from_scratch"]:.4f} |')
  for key, label in (('shift_error_after_scale_px', 'shift error after scale (px)'),
                     ('shift_error_px', 'shift error (px)'),
                     ('disparity_scale', 'disparity scale'),
                     ('spearman', 'Spearman'), ('depth_order_accuracy', 'depth order'),
                     ('mirror_content_shift_error_px', 'mirror content error (px)'),
                     ('psnr_db', 'PSNR (dB)')):
    values = [arms[a]['scores'][key] for a in ('from_backbone', 'from_scratch')]
    rows.append(f'| {label} | ' + ' | '.join('–' if v is None else f'{v:.3f}'
                                              for v in values) + ' |')
  text = (f'# Backbone premise\n\nBackbone: {results["backbone_steps"]} steps of '
          f'configs/backbone_demo.py. Each stereo arm: {results["stereo_steps"]} steps of '
          f'configs/demo.py, same batches and noise. Scores: base stage, '
          f'{results["eval_clips"]} held-out clips.\n\n' + '\n'.join(rows) + '\n')
  atomic_files.write_text(output_dir / 'premise.md', text)

  figure, axis = plt.subplots(figsize=(6, 4))
  for arm, style in (('from_backbone', 'C0-'), ('from_scratch', 'C1-')):
    steps, losses = zip(*arms[arm]['held_out_loss'])
    axis.plot(steps, losses, style, label=arm.replace('_', ' '))
  axis.set_xlabel('stereo training step')
  axis.set_ylabel('held-out loss (EMA weights)')
  axis.set_yscale('log')
  axis.legend()
  figure.tight_layout()
  with atomic_files.atomic_path(output_dir / 'premise.png') as path:
    figure.savefig(path, format='png', dpi=120)
  plt.close(figure)


def main(argv):
  del argv
  runtime.enable_compilation_cache()
  output_dir = pathlib.Path(_OUTPUT_DIR.value)
  backbone = config_base.load_config_file(_CONFIGS / 'backbone_demo.py')
  backbone.train.num_steps = _BACKBONE_STEPS.value
  backbone.train.eval_every = _EVAL_EVERY.value
  backbone.train.checkpoint_every = _BACKBONE_STEPS.value
  backbone.train.ema_decay = _EMA_DECAY
  backbone_curve = _train(backbone, output_dir / 'backbone')

  arms = {}
  for arm in ('from_backbone', 'from_scratch'):
    config = _stereo_config(_STEREO_STEPS.value)
    if arm == 'from_backbone':
      config.train.init_checkpoint = str(output_dir / 'backbone')
    curve = _train(config, output_dir / arm)
    arms[arm] = {'held_out_loss': curve,
                 'scores': _score(config, output_dir / arm, _EVAL_CLIPS.value)}
    print(arm, arms[arm]['scores'], flush=True)
  results = {'backbone_steps': _BACKBONE_STEPS.value, 'stereo_steps': _STEREO_STEPS.value,
             'eval_clips': _EVAL_CLIPS.value, 'backbone_held_out_loss': backbone_curve,
             'arms': arms,
             'init_report': json.loads((output_dir / 'from_backbone' /
                                        'init_report.json').read_text())}
  _write_results(output_dir, results)
  print((output_dir / 'premise.md').read_text())


if __name__ == '__main__':
  app.run(main)
