"""The benchmark suite at its smallest size: every figure is written, finite and positive.

No timing is asserted (the figures are speed ratios); only byte counts and compile counts.
"""

import json
import math

import pytest

from benchmarks import run_all


def test_suite_writes_every_figure(tiny_dataset, tmp_path, capsys):
  status = run_all.main(['--size=tiny', f'--output_dir={tmp_path}',
                         f'--data_dir={tiny_dataset}'])
  printed = capsys.readouterr().out
  report = json.loads((tmp_path / 'benchmarks.json').read_text())
  table = (tmp_path / 'benchmarks.md').read_text()
  assert status == 0, {k: v.get('error') for k, v in report['benchmarks'].items()}
  assert table in printed

  machine = report['machine']
  assert machine['device_count'] >= 1 and machine['cpu_count'] >= 1 and machine['jax']
  assert f'{machine["device_count"]} x {machine["device_kind"]}' in table
  assert list(report['benchmarks']) == list(run_all.BENCHMARKS)
  for name, module in run_all.BENCHMARKS.items():
    figures = report['benchmarks'][name]['figures']
    assert set(figures) == set(module.FIGURES), name
    for figure, value in figures.items():
      assert math.isfinite(value) and value > 0, (name, figure, value)
      assert f'| {name} | {figure} | {value:.3f} |' in table

  details = {name: entry['details'] for name, entry in report['benchmarks'].items()}
  # A second video of the same shape compiles nothing.
  assert details['sampler_overhead']['second_video_backend_compiles'] == 0
  # FSDP over 8 devices keeps at least 1/8 of the bytes on a device, and well under half.
  fsdp = report['benchmarks']['fsdp_memory']['figures']['fsdp_memory_per_device']
  assert details['fsdp_memory']['num_devices'] == 8
  assert 1 / 8 <= fsdp < 0.5
  assert details['train_step_flops']['train_step_gflop'] > 0


def test_unknown_size_or_benchmark_is_an_error():
  with pytest.raises(ValueError, match="unknown size 'huge'"):
    run_all.run('huge')
  with pytest.raises(ValueError, match='nonesuch'):
    run_all.run('tiny', only=['nonesuch'])


class _Fake:
  """A stand-in benchmark module."""

  def __init__(self, figures=None, error=None):
    self.FIGURES = {name: f'{name} explained' for name in (figures or {'x': 1.0})}
    self._figures, self._error = figures, error

  def measure(self, **kwargs):
    if self._error:
      raise self._error
    return {'figures': self._figures, 'details': kwargs}


def test_a_failing_benchmark_is_reported_and_the_others_still_run(monkeypatch, tmp_path):
  monkeypatch.setattr(run_all, 'BENCHMARKS', {
      'broken': _Fake(error=RuntimeError('no such device')),
      'fine': _Fake(figures={'speedup': 2.5})})
  monkeypatch.setitem(run_all.SIZES, 'tiny', {'broken': {}, 'fine': {'n': 3}})
  status = run_all.main(['--size=tiny', f'--output_dir={tmp_path}'])
  assert status == 1
  report = json.loads((tmp_path / 'benchmarks.json').read_text())
  assert report['benchmarks']['broken']['error'] == 'RuntimeError: no such device'
  assert report['benchmarks']['fine']['figures'] == {'speedup': 2.5}
  assert report['benchmarks']['fine']['details'] == {'n': 3}
  table = (tmp_path / 'benchmarks.md').read_text()
  assert '| broken | FAILED | - | RuntimeError: no such device |' in table
  assert '| fine | speedup | 2.500 | speedup explained |' in table
