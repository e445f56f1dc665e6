"""The run planner: its figures against real compiled runs and real sharded states, the
alternatives it suggests, and the command's errors."""

import dataclasses
import json
import math
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO, load_config, on_8_devices, subprocess_env
from eye2eye_jax.common import sharding
from eye2eye_jax.models import unet
from eye2eye_jax.planning import (accelerators, compiled_programs, data_estimate, planner,
                                  training_estimate)
from eye2eye_jax.training import train_state

_TOPOLOGY = '8xH100'


def _tiny(mesh_shape=(-1, 1, 1), remat='none', batch_size=8):
  config = load_config('tiny')
  config.data.batch_size = batch_size  # one example per device on 8 devices
  config.mesh.shape = mesh_shape
  config.model.remat = remat
  return config


@pytest.fixture(scope='module')
def tiny_plan():
  return planner.plan(_tiny(), accelerators.parse_topology(_TOPOLOGY), name='tiny')


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  return (cost[0] if isinstance(cost, (list, tuple)) else cost)['flops']


def _batch(size: int) -> dict:
  rng = np.random.default_rng(0)
  return {k: jnp.asarray(rng.uniform(-1, 1, (size, 4, 8, 8, 3)), jnp.float32)
          for k in ('right', 'left')}


def test_flops_and_parameter_bytes_match_a_real_compiled_run(tiny_plan):
  config = _tiny()
  state = train_state.init_train_state(config)
  param_bytes = sum(x.nbytes for x in jax.tree.leaves(state['params']))
  assert tiny_plan['model']['parameter_bytes'] == param_bytes
  assert tiny_plan['model']['parameters'] == unet.count_params(state['params'])
  assert sum(tiny_plan['model']['per_module'].values()) == tiny_plan['model']['parameters']
  assert tiny_plan['training']['memory']['parameters'] == param_bytes  # data parallel

  # The whole topology's step is the step at the global batch (XLA's count before
  # compiling: within 5% of the compiled one's) shared by the 8 devices.
  flops = tiny_plan['training']['flops']
  batch = _batch(8)
  compiled = train_state.make_train_step(config).lower(state, batch).compile()
  assert flops['train_step_global'] == pytest.approx(_flops(compiled), rel=0.05)
  assert flops['train_step_per_device'] == pytest.approx(flops['train_step_global'] / 8)
  _, metrics = compiled(jax.tree.map(jnp.copy, state), batch)  # it is a real, running step
  assert np.isfinite(float(metrics['loss']))

  time = tiny_plan['training']['time']
  peak = accelerators.CHIPS['H100'].peak_flops_fp32  # the tiny model computes in float32
  assert time['compute_s'] == pytest.approx(flops['train_step_per_device'] / (peak * 0.4))
  assert time['step_s'] == max(time['compute_s'], time['collective_s'])
  assert time['chip_hours'] == pytest.approx(time['step_s'] * 20 * 8 / 3600)

  # One UNet forward as the sampler runs it: windows_per_call windows of 4 frames at 8x8.
  s = tiny_plan['sampling']
  assert (s['grid'], s['windows'], s['windows_per_call']) == ([8, 8], 79, 2)
  graphdef = unet.model_graphdef(config)
  forward = jax.jit(lambda p, c, x, t: unet.make_denoiser(graphdef, p, c)(x, t))
  clips = _batch(2)
  compiled = forward.lower(state['params'], clips['right'], clips['left'],
                           jnp.full((2,), 0.5)).compile()
  assert 2 * s['flops_per_window_forward'] == _flops(compiled)
  assert s['flops_per_video'] == 79 * 4 * s['flops_per_window_forward']


def test_per_device_bytes_match_sharded_states_on_8_devices(tiny_plan):
  meshes = [(1, 8, 1), (2, 2, 2)]
  measured = on_8_devices('state_bytes', '-', json.dumps(meshes))
  topology = accelerators.parse_topology(_TOPOLOGY)
  for shape in meshes:
    # Batch ways: 8 for FSDP, 4 for (2, 2, 2); one example per device either way.
    config = _tiny(shape, batch_size=8 if shape[0] == 1 else 4)
    memory = training_estimate.estimate_training(config, topology, 0.4)['memory']
    real = measured[str(shape)]
    assert (memory['parameters'], memory['optimizer'], memory['ema']) == (
        real['params'], real['opt_state'], real['ema_params'])
  whole = tiny_plan['model']['parameter_bytes']
  assert whole / 8 <= measured['(1, 8, 1)']['params'] < 0.16 * whole


def test_an_abstract_mesh_lays_out_like_the_real_one():
  config = _tiny()
  config.mesh.shape, config.mesh.dcn_shape = (1, -1, 2), (2, 1, 1)
  mesh = sharding.abstract_mesh(config, 32)
  assert dict(mesh.shape) == {'data': 2, 'fsdp': 8, 'tensor': 2}
  config.data.batch_size = 32  # split over data x fsdp: 16 ways
  assert sharding.per_device_batch(config, mesh) == 2
  config.data.batch_size = 8
  with pytest.raises(ValueError, match='does not split over the 16 ways'):
    sharding.per_device_batch(config, mesh)


def test_a_config_that_does_not_fit_gets_the_setting_that_does():
  config = _tiny(remat='full')
  h100 = accelerators.parse_topology(_TOPOLOGY)
  fsdp = training_estimate.estimate_training(_tiny((1, -1, 1), 'full'), h100,
                                             0.4)['memory']['total']
  small = dataclasses.replace(h100.chip, hbm_bytes=fsdp + 1)
  topology = accelerators.Topology('small', small, 8)
  estimate = training_estimate.estimate_training(config, topology, 0.4)
  assert not estimate['memory']['fits'] and estimate['memory']['overflow']
  [alternative] = training_estimate.suggest(config, topology, 0.4)
  assert alternative['fits'] and alternative['total_bytes'] == fsdp
  assert alternative['flags'] == "--config.mesh.shape='(1, -1, 1)' --config.model.remat=full"
  # Remat policies that keep less are candidates too, alone and with FSDP.
  assert training_estimate.candidate_settings(_tiny()) == [
      ((-1, 1, 1), 'dots'), ((-1, 1, 1), 'full'), ((1, -1, 1), 'none'), ((1, -1, 1), 'dots'),
      ((1, -1, 1), 'full')]
  less = compiled_programs.activation_bytes(config, 1)
  more = compiled_programs.activation_bytes(_tiny(), 1)
  assert less['saved'] < more['saved'] and more['recomputed_block'] == 0


def test_gradient_accumulation_holds_fewer_activations_for_the_same_work():
  h100 = accelerators.parse_topology(_TOPOLOGY)
  config = _tiny(batch_size=32)  # 4 clips per device
  whole = training_estimate.estimate_training(config, h100, 0.4)
  config.train.grad_accum_steps = 4
  accumulated = training_estimate.estimate_training(config, h100, 0.4)
  assert accumulated['grad_accum_steps'] == 4 and accumulated['per_device_batch'] == 4
  assert accumulated['memory']['activations'] < 0.5 * whole['memory']['activations']
  # XLA counts a loop's body once; the estimate counts every micro-batch.
  assert accumulated['flops']['train_step_per_device'] == pytest.approx(
      whole['flops']['train_step_per_device'], rel=0.05)
  config.train.grad_accum_steps = 3
  with pytest.raises(ValueError, match='train.grad_accum_steps=3'):
    training_estimate.estimate_training(config, h100, 0.4)


def test_configs_that_differ_only_in_the_data_get_their_own_figures():
  """Every figure is cached under one key (``_program_key``): a stale key gave the same
  figures. The activations (traced, not compiled) check each data field; one compiled
  step checks the compiled figures' cache."""
  config = _tiny(batch_size=1)
  config.model.text_embed_dim, config.text.encoder = 8, 'hashed_words'
  first_saved = compiled_programs.activation_bytes(config, 1)['saved']
  for field, value in (('data.resolution', 16), ('data.num_frames', 8),
                       ('text.max_tokens', 64)):
    section, name = field.split('.')
    other = config.copy_and_resolve_references()
    other[section][name] = value
    assert compiled_programs.activation_bytes(other, 1)['saved'] > first_saved, field
  larger = config.copy_and_resolve_references()
  larger.data.resolution = 16
  assert (compiled_programs.train_step_figures(larger, 1)['flops']
          > compiled_programs.train_step_figures(config, 1)['flops'])


def test_topologies_and_collectives():
  v5p = accelerators.parse_topology('v5p-64')
  assert (v5p.num_devices, v5p.num_hosts, v5p.chip.hbm_bytes) == (32, 8, 95 * 2**30)
  assert accelerators.parse_topology('v4-32').num_devices == 16
  assert accelerators.parse_topology('v5e-16').num_hosts == 2
  one_host, two_hosts = (accelerators.parse_topology(n) for n in ('8xH100', '16xA100-80GB'))
  assert one_host.collective_bandwidth == 900e9  # NVLink
  assert two_hosts.collective_bandwidth == 25e9  # InfiniBand, per GPU
  for bad, message in (('v5p-63', 'multiple of 2'), ('12xH100', 'fill hosts'),
                       ('tpu-8', 'unknown topology')):
    with pytest.raises(ValueError, match=message):
      accelerators.parse_topology(bad)
  # Data parallel all-reduces everything; FSDP gathers twice and reduce-scatters once.
  assert training_estimate.collective_bytes(800, 800, 8) == pytest.approx(2 * 7 / 8 * 800)
  assert training_estimate.collective_bytes(800, 100, 8) == pytest.approx(3 * 700)


def test_data_side():
  config = load_config('base_paper')
  topology = accelerators.parse_topology('v5p-64')
  data = data_estimate.estimate_data(config, topology, step_s=0.5, num_clips=100_000,
                                     compression_ratio=1.5, builder_ms_per_frame=56.7,
                                     builder_cores=8)
  raw = 2 * 80 * 512 * 512 * 3
  assert data['raw_bytes_per_record'] == raw
  assert data['dataset_bytes'] == pytest.approx(100_000 * raw / 1.5)
  assert data['input_bytes_per_s_per_host'] == pytest.approx(4 * raw / 1.5 / 0.5)  # 32 / 8
  assert data['build_s'] == pytest.approx(100_000 * 80 * 0.0567 * 2 / 8)
  assert data['epochs'] == pytest.approx(120_000 * 32 / 100_000)


def test_measured_compression_of_the_synthetic_views(tiny_plan):
  data = tiny_plan['data']
  assert 1 < data['compression_ratio'] < 10
  assert data['compression_ratio_source'].startswith('measured')
  assert data['bytes_per_record'] == pytest.approx(2 * 4 * 16 * 16 * 3 /
                                                   data['compression_ratio'])


def _plan_command(*args, tmp_path):
  return subprocess.run([sys.executable, '-m', 'eye2eye_jax.plan',
                         f'--config={REPO / "configs" / "tiny.py"}', *args],
                        capture_output=True, text=True, timeout=600, env=subprocess_env(),
                        cwd=tmp_path)


def test_the_command_writes_the_plan(tiny_plan, tmp_path):
  result = _plan_command(f'--topology={_TOPOLOGY}', '--config.data.batch_size=8',
                         '--compression_ratio=2', '--output=plan.json', tmp_path=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  written = json.loads((tmp_path / 'plan.json').read_text())
  assert written['training']['flops'] == tiny_plan['training']['flops']
  assert written['data']['compression_ratio'] == 2
  assert 'Memory per device: mesh data 8 x fsdp 1 x tensor 1' in result.stdout
  assert [p.name for p in tmp_path.iterdir()] == ['plan.json']  # no partial file left


@pytest.mark.parametrize('args, message', [
    (['--topology=v9-8'], 'unknown topology .v9-8.; known: v4-N'),
    (['--topology=8xH100', "--config.mesh.shape=(3,-1,1)"], 'cannot fill 8 devices'),
    (['--topology=8xH100', '--config.data.batch_size=12'], 'batch_size=12 does not split'),
])
def test_wrong_inputs_are_clear_errors(args, message, tmp_path):
  result = _plan_command(*args, '--output=plan.json', tmp_path=tmp_path)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1].startswith('error: ')
  assert re.search(message, result.stderr), result.stderr[-2000:]
  assert not (tmp_path / 'plan.json').exists()


def test_activations_leave_out_the_norm_and_activation_intermediates_the_compiler_fuses():
  saved_residuals = compiled_programs.saved_residuals
  config = _tiny()
  loss = train_state.make_loss(config)
  args = (compiled_programs.abstract_train_state(config)['params'],
          compiled_programs.batch_struct(config, 1), jax.ShapeDtypeStruct((), jnp.int32))
  residuals = [why for _, why in saved_residuals(loss, *args)]
  # Each marker still names residuals of this flax/jax (else the filter would do nothing).
  for marker in compiled_programs._FUSED_INTERMEDIATES:
    assert any(marker in why for why in residuals), marker
  everything = sum(math.prod(r.shape) * np.dtype(r.dtype).itemsize
                   for r, why in saved_residuals(loss, *args)
                   if not why.startswith('from the argument'))
  kept = compiled_programs.activation_bytes(config, 1)['saved']
  assert 0.1 * everything < kept < 0.5 * everything


def test_the_paper_refiner_trains_the_paper_base_models_program():
  """Their train steps are one program (the TPU figures of one stand for both)."""
  base, refiner = load_config('base_paper'), load_config('refiner_paper')
  assert base.model.to_dict() == refiner.model.to_dict()
  assert base.diffusion.to_dict() == refiner.diffusion.to_dict()
  assert base.train.to_dict() == refiner.train.to_dict() and base.mesh == refiner.mesh
  assert (compiled_programs.batch_struct(base, 32) == compiled_programs.batch_struct(refiner, 32))
  assert (base.data.view, refiner.data.view) == ('downsample', 'crop')  # only what feeds it
