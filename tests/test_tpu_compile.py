"""Compiling for a TPU slice with the TPU compiler, on this CPU: names, errors, and a tiny
config's train step and sampling stage compiled for a v5p-8 through the plan command."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, subprocess_env, worker_result
from eye2eye_jax.planning import accelerators, tpu_compile

# make test installs libtpu into a folder of its own, seen only by these subprocesses.
_LIBTPU_DIR = REPO / '.venv' / 'libtpu'
_HAS_LIBTPU = (_LIBTPU_DIR / 'libtpu').is_dir() or importlib.util.find_spec('libtpu') is not None


@pytest.mark.parametrize('name, libtpu_name', [
    ('v5p-64', 'v5p:4x4x2'), ('v5p-8', 'v5p:2x2x1'), ('v5p-2', 'v5p:1x1x1'),
    ('v4-32', 'v4:4x2x2'), ('v5e-16', 'v5e:4x4'), ('v5e-1', 'v5e:1x1'), ('v5e-256', 'v5e:16x16'),
])
def test_planner_topologies_name_their_slice_shape(name, libtpu_name):
  assert tpu_compile.topology_name(accelerators.parse_topology(name)) == libtpu_name


@pytest.mark.parametrize('name, message', [
    ('8xH100', 'compiles for TPU slices'), ('v5p-12', 'not a power of two'),
])
def test_topologies_the_tpu_compiler_cannot_make_are_refused(name, message):
  with pytest.raises(ValueError, match=message):
    tpu_compile.topology_name(accelerators.parse_topology(name))


def test_a_missing_libtpu_says_how_to_install_it(monkeypatch):
  monkeypatch.setitem(sys.modules, 'libtpu', None)  # import libtpu now raises ImportError
  with pytest.raises(ValueError, match=r"needs libtpu: pip install -e '\.\[tpu\]'"):
    tpu_compile.abstract_tpu_devices(accelerators.parse_topology('v5p-8'))


def _plan(*args, tmp_path):
  env = subprocess_env(JAX_PLATFORMS='cpu')
  env['PYTHONPATH'] = os.pathsep.join([env['PYTHONPATH'], str(_LIBTPU_DIR)])
  return subprocess.run([sys.executable, '-m', 'eye2eye_jax.plan',
                         f'--config={REPO / "configs" / "tiny.py"}', '--compile', *args],
                        capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)


@pytest.mark.skipif(not _HAS_LIBTPU, reason=f'libtpu is not installed: {tpu_compile.LIBTPU_HINT}')
def test_the_plan_command_compiles_the_train_step_and_the_sampler_for_a_tpu_slice(tmp_path):
  result = _plan('--topology=v5p-8', '--config.data.batch_size=4', '--compression_ratio=2',
                 '--video=16x16x8', '--output=plan.json', tmp_path=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  plan = json.loads((tmp_path / 'plan.json').read_text())
  step, stage = plan['compiled']['train_step'], plan['compiled']['sampling']
  assert step['topology'] == 'v5p:2x2x1'
  assert step['mesh'] == {'data': 4, 'fsdp': 1, 'tensor': 1} and step['per_device_batch'] == 1
  assert min(step['argument_bytes'], step['output_bytes'], step['temp_bytes']) > 0
  # The state is donated: its outputs are written into its inputs' buffers.
  assert 0 < step['alias_bytes'] <= step['output_bytes']
  assert step['total_bytes'] == (step['argument_bytes'] + step['output_bytes']
                                 + step['temp_bytes'] - step['alias_bytes'])
  assert step['fits'] and plan['fits'] and plan['fits_source'] == 'TPU compiler'
  # The TPU compiler and this CPU's compiler count the same program's FLOPs per device.
  cpu_flops = plan['training']['flops']['train_step_per_device']
  assert 0.7 < step['flops'] / cpu_flops < 1.3
  assert stage['program'] == 'base' and stage['grid'] == plan['sampling']['grid']
  assert stage['windows'] == plan['sampling']['windows'] and stage['total_bytes'] > 0
  assert 'TPU compiler (v5p:2x2x1), train_step: mesh data 4' in result.stdout
  assert 'TPU compiler (v5p:2x2x1), base: one chip' in result.stdout


@pytest.mark.skipif(not _HAS_LIBTPU, reason=f'libtpu is not installed: {tpu_compile.LIBTPU_HINT}')
@pytest.mark.parametrize('args, message', [
    (['--topology=8xH100'], 'compiles for TPU slices'),
    (['--topology=v5p-8', "--config.mesh.shape=(3,-1,1)"], 'cannot fill 4 devices'),
    (['--topology=v5p-8', '--config.data.batch_size=6'], 'batch_size=6 does not split'),
])
def test_compile_errors_are_one_line_and_exit_1(args, message, tmp_path):
  result = _plan(*args, tmp_path=tmp_path)
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and message in last, result.stderr[-2000:]


def _run_with_libtpu(script: str) -> dict:
  """The RESULT of a Python script run from the repository root with libtpu importable."""
  env = subprocess_env(JAX_PLATFORMS='cpu')
  env['PYTHONPATH'] = os.pathsep.join([env['PYTHONPATH'], str(_LIBTPU_DIR)])
  result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=900, env=env, cwd=REPO)
  assert result.returncode == 0, result.stderr[-3000:]
  return worker_result(result.stdout)


_FLASH_AND_MESH = '''
import json
from jax.experimental.pallas.ops.tpu import flash_attention as flash
from eye2eye_jax import config_base
from eye2eye_jax.planning import accelerators, tpu_compile
calls = []
kernel = flash.flash_attention
flash.flash_attention = lambda *a, **k: calls.append(1) or kernel(*a, **k)
config = config_base.load_config_file('configs/tiny.py')
config.data.batch_size = 4
config.data.resolution = 32  # 256 tokens per frame at the coarsest level: the kernel runs
config.model.attention_kernel = 'pallas_flash'
config.model.row_attention = (0, 1)  # its weights take the sharding rules; rows of 32 and 16
v5p_8 = accelerators.parse_topology('v5p-8')
step = tpu_compile.compile_train_step(config, v5p_8)
rows = tpu_compile.compile_sampling_stage(config, v5p_8, (32, 32, 8), mesh_shape=(1, 4))
print('RESULT ' + json.dumps({'step': step, 'rows': rows, 'kernel_calls': len(calls)}))
'''


@pytest.mark.skipif(not _HAS_LIBTPU, reason=f'libtpu is not installed: {tpu_compile.LIBTPU_HINT}')
def test_the_pallas_kernel_row_attention_and_a_row_split_window_compile_for_a_tpu_slice():
  figures = _run_with_libtpu(_FLASH_AND_MESH)
  # The flash kernel runs per chip inside the data-parallel train step (shard_map).
  assert figures['kernel_calls'] >= 2  # traced in the train step and in the sampling stage
  assert figures['step']['fits'] and figures['step']['mesh']['data'] == 4
  # One sampling window's rows over the slice's 4 chips.
  assert figures['rows']['mesh'] == {'windows': 1, 'rows': 4} and figures['rows']['fits']


@pytest.mark.skipif(not _HAS_LIBTPU, reason=f'libtpu is not installed: {tpu_compile.LIBTPU_HINT}')
def test_the_plan_command_compiles_a_wan_step_with_split_tokens_for_a_tpu_slice(tmp_path):
  """A tiny Wan's fine-tuning step on latent records on a v5p-8 with its clips over 2 chips
  and each clip's 240 tokens over 2 more (the flash kernel maps over both), and one VAE
  decode chunk."""
  env = subprocess_env(JAX_PLATFORMS='cpu')
  env['PYTHONPATH'] = os.pathsep.join([env['PYTHONPATH'], str(_LIBTPU_DIR)])
  result = subprocess.run(
      [sys.executable, '-m', 'eye2eye_jax.plan', f'--config={REPO / "configs" / "wan_tiny.py"}',
       '--topology=v5p-8', '--compile', '--video=160x128x9', '--config.data.batch_size=2',
       '--config.mesh.shape=(1,2,2)', '--config.data.latents=True', '--output=plan.json'],
      capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  plan = json.loads((tmp_path / 'plan.json').read_text())
  step, decode = plan['compiled']['train_step'], plan['compiled']['vae_decode']
  assert plan['training']['tokens_per_clip'] == 3 * 8 * 10
  assert plan['training']['tokens_per_device'] == 120
  assert step['mesh'] == {'data': 1, 'fsdp': 2, 'tensor': 2} and step['fits']
  assert 0 < step['alias_bytes'] <= step['output_bytes']  # the state is donated
  assert decode['total_bytes'] > 0 and decode['flops'] > 0
  assert 'TPU compiler, train_step on v5p:2x2x1' in result.stdout
