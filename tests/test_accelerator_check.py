"""The prepared accelerator check, in its tiny mode on this CPU: it runs end to end and
reports what it measures; the plan comparison runs where the chip is known."""

import json
import subprocess

import pytest

from benchmarks import accelerator_check
from conftest import REPO, subprocess_env
from eye2eye_jax.planning import accelerators


def test_the_check_script_runs_both_checks_and_prints_a_summary(tmp_path):
  result = subprocess.run(['bash', str(REPO / 'benchmarks' / 'accelerator_check.sh'),
                           '--size=tiny', str(tmp_path)], capture_output=True, text=True,
                          timeout=600, env=subprocess_env())
  assert result.returncode == 0, result.stderr[-3000:]
  train = json.loads((tmp_path / 'train.json').read_text())
  sample = json.loads((tmp_path / 'sample.json').read_text())
  assert train['steps'] == 3 and train['flops_per_device'] > 0 and train['step_s'] > 0
  assert sample['finite'] and sample['seconds_per_step'] > 0 and sample['windows'] >= 1
  assert 'train step (configs/tiny.py, bfloat16' in result.stdout
  assert 'sampling window (configs/tiny.py' in result.stdout


def test_on_a_known_chip_the_check_compares_with_the_plan(monkeypatch):
  monkeypatch.setattr(accelerator_check, '_chip',
                      lambda: ('NVIDIA H200', accelerators.CHIPS['H200']))
  result = accelerator_check.check_training('configs/tiny.py', 3, 1, 'float32')
  peak = accelerators.CHIPS['H200'].peak_flops('float32')
  assert result['mfu'] == pytest.approx(result['flops_per_device'] / result['step_s'] / peak)
  assert result['plan']['memory_bytes'] > 0
  # The plan's FLOPs are the same program's (one device, the same batch).
  assert result['plan']['flops_per_device'] == pytest.approx(result['flops_per_device'],
                                                             rel=0.05)


@pytest.mark.parametrize('kind, chip', [('NVIDIA H200', 'H200'), ('NVIDIA H100 80GB HBM3', 'H100'),
                                        ('NVIDIA A100-SXM4-80GB', 'A100-80GB'),
                                        ('TPU v5 lite', 'v5e'), ('TPU v5p', 'v5p'),
                                        ('TPU v4', 'v4'), ('cpu', None)])
def test_device_kinds_name_their_chips(kind, chip):
  assert accelerators.chip_of(kind) == (accelerators.CHIPS[chip] if chip else None)
