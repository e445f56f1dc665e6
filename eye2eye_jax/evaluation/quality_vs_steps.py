"""What fewer model evaluations cost in quality: the same held-out clips converted with
several sampler settings (solver, base steps, refiner steps), each measured against the
true left view and against the first setting (the reference).

Per setting: ``evaluations`` (UNet evaluations per window over both stages: base steps +
refiner steps, doubled by classifier-free guidance), ``seconds_per_clip`` (wall time of
the conversions alone, after one warm-up conversion has compiled the setting's programs),
PSNR against the true view, the disparity ``scale``, ``spearman`` and ``depth_order``, and
their differences from the reference row.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from eye2eye_jax.common import atomic_files  # noqa: E402
from eye2eye_jax.data.synthetic_scenes import SceneParams  # noqa: E402
from eye2eye_jax.evaluation import metrics_report, synthetic_eval  # noqa: E402
from eye2eye_jax.sampling import video_conversion  # noqa: E402
from eye2eye_jax.sampling.stereo_sampler import StereoSampler  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Setting:
  """A sampler setting: ``solver`` (``diffusion.SOLVERS``) and its steps per stage; with
  ``distilled``, the distilled students in the steps they were distilled for (their
  configs') instead of the models."""
  solver: str
  base_num_steps: int
  refiner_num_steps: int
  distilled: bool = False

  @property
  def name(self) -> str:
    who = 'students' if self.distilled else self.solver
    return f'{who} {self.base_num_steps}+{self.refiner_num_steps}'


# The demo's default first (the reference), then fewer steps with each solver, then the
# distilled students.
SETTINGS = (Setting('ddim', 25, 12), Setting('ddim', 8, 4), Setting('ddim', 4, 2),
            Setting('ddim', 2, 2), Setting('dpmpp_2m', 8, 4), Setting('dpmpp_2m', 4, 2),
            Setting('dpmpp_2m', 2, 2), Setting('ddim', 2, 2, distilled=True))


def _variant(sampler: StereoSampler, setting: Setting, students=None) -> StereoSampler:
  if setting.distilled:
    if students is None:
      raise ValueError(f'setting {setting.name}: no students were given to measure')
    base, refiner = students
    sample_config = video_conversion.student_settings(sampler.sample_config, base, refiner)
    if (sample_config.base_num_steps, sample_config.refiner_num_steps) != (
        setting.base_num_steps, setting.refiner_num_steps):
      raise ValueError(f'setting {setting.name}: the students were distilled for '
                       f'{sample_config.base_num_steps}+{sample_config.refiner_num_steps} '
                       'steps')
    return StereoSampler(base, refiner, sample_config)
  sample_config = sampler.sample_config.copy_and_resolve_references()
  sample_config.update(solver=setting.solver, base_num_steps=setting.base_num_steps,
                       refiner_num_steps=setting.refiner_num_steps)
  return StereoSampler(sampler.base, sampler.refiner, sample_config)


def evaluations_per_window(sampler: StereoSampler) -> int:
  """UNet evaluations per window over both stages (guidance runs the UNet twice a step)."""
  s = sampler.sample_config
  steps = s.base_num_steps + (s.refiner_num_steps if sampler.refiner is not None else 0)
  return steps * (1 + bool(s.guidance_scale)) * (1 + bool(s.text_guidance_scale))


def measure_setting(sampler: StereoSampler, records: list[dict], params: SceneParams) -> dict:
  """One row (see the module's docstring) for ``sampler`` as it is configured."""
  synthetic_eval.convert_clip(sampler, records[0], 0)  # compiles; not timed
  start = time.perf_counter()
  converted = {i: synthetic_eval.convert_clip(sampler, r, i) for i, r in enumerate(records)}
  seconds = (time.perf_counter() - start) / len(records)
  figures = synthetic_eval.evaluate(sampler, records, params, baselines=False,
                                    converted=converted)
  geometry = figures['geometry']['generated']['all']
  return {'evaluations': evaluations_per_window(sampler), 'seconds_per_clip': seconds,
          'psnr': figures['image']['generated']['psnr'], 'scale': geometry.get('scale'),
          'spearman': geometry.get('spearman'),
          'depth_order': geometry.get('depth_order_accuracy')}


def measure(sampler: StereoSampler, records: list[dict], params: SceneParams,
            settings=None, progress=None, students=None) -> list[dict]:
  """One row per setting (default ``SETTINGS``), the first the reference of the others'
  differences; ``students`` (base, refiner or None, each a ``Stage``) for distilled settings."""
  rows = []
  for setting in settings or SETTINGS:
    row = {'name': setting.name, **dataclasses.asdict(setting),
           **measure_setting(_variant(sampler, setting, students), records, params)}
    rows.append(row)
    if progress is not None:
      progress(row)
  add_differences(rows)
  return rows


def add_differences(rows: list[dict]) -> None:
  """Each row's differences from the first: PSNR, scale, Spearman and depth order, and
  the first's seconds per clip over its own (its speed-up)."""
  reference = rows[0]
  for row in rows:
    for key in ('psnr', 'scale', 'spearman', 'depth_order'):
      both = row[key] is not None and reference[key] is not None
      row[f'{key}_change'] = row[key] - reference[key] if both else None
    row['speedup'] = reference['seconds_per_clip'] / row['seconds_per_clip']


def _fmt(value, spec: str = '.2f') -> str:
  return '-' if value is None else format(value, spec)


def table(rows: list[dict]) -> str:
  """A row per sampler setting: its cost, its quality and the change from the first row."""
  lines = ['| setting | evaluations | s / clip | speed-up | PSNR (dB) | change | scale | change '
           '| Spearman | change | depth order | change |',
           '|---|---|---|---|---|---|---|---|---|---|---|---|']
  for r in rows:
    lines.append(
        f'| {r["name"]} | {r["evaluations"]} | {r["seconds_per_clip"]:.2f} | '
        f'{r["speedup"]:.1f}x | {r["psnr"]:.2f} | {_fmt(r["psnr_change"], "+.2f")} | '
        f'{_fmt(r["scale"])} | {_fmt(r["scale_change"], "+.2f")} | {_fmt(r["spearman"])} | '
        f'{_fmt(r["spearman_change"], "+.2f")} | {_fmt(r["depth_order"])} | '
        f'{_fmt(r["depth_order_change"], "+.2f")} |')
  return '\n'.join(lines)


def markdown(rows: list[dict], num_clips: int, split: str, plot: str | None) -> str:
  """The table of settings as a readable report."""
  lines = ['# Quality against model evaluations', '',
           f'{num_clips} clips of `{split}`, converted with each setting. Evaluations: UNet '
           'evaluations per window over both stages. Seconds per clip: the conversions '
           f'alone, on this machine, after a warm-up. Changes are from `{rows[0]["name"]}`.',
           '', table(rows), '']
  if plot:
    lines += [f'![quality against evaluations]({plot})', '']
  return '\n'.join(lines)


def _figure(rows: list[dict]):
  figure, (psnr_axis, scale_axis) = plt.subplots(1, 2, figsize=(9, 3.8))
  family = lambda r: 'distilled students' if r.get('distilled') else r['solver']
  for name in dict.fromkeys(map(family, rows)):
    mine = sorted((r for r in rows if family(r) == name), key=lambda r: r['evaluations'])
    evaluations = [r['evaluations'] for r in mine]
    marker = '*' if name == 'distilled students' else 'o-'
    psnr_axis.plot(evaluations, [r['psnr'] for r in mine], marker, label=name, markersize=9)
    scale_axis.plot(evaluations, [r['scale'] for r in mine], marker, label=name, markersize=9)
  for axis, label in ((psnr_axis, 'PSNR against the true view (dB)'),
                      (scale_axis, 'disparity scale')):
    axis.set_xscale('log')
    axis.set_xlabel('UNet evaluations per window (both stages)')
    axis.set_ylabel(label)
    axis.grid(alpha=0.3)
    axis.legend()
  figure.tight_layout()
  return figure


def write(output_dir: str | pathlib.Path, rows: list[dict], num_clips: int, split: str) -> None:
  """steps.json, steps.md and plots/quality_vs_evaluations.png under ``output_dir``."""
  out = pathlib.Path(output_dir)
  metrics_report.save_figure(out / 'plots' / 'quality_vs_evaluations.png', _figure(rows))
  atomic_files.write_text(out / 'steps.json', json.dumps(
      {'split': split, 'num_clips': num_clips, 'rows': rows}, indent=2))
  report = markdown(rows, num_clips, split, 'plots/quality_vs_evaluations.png')
  atomic_files.write_text(out / 'steps.md', report + '\n' + metrics_report.manual_link(
      out, 'converting.md', 'Converting videos'))
