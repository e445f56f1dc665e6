"""Training at scale, shown on simulated devices and local processes.

Meshes of 8 simulated CPU devices run in subprocesses (the device count is fixed when JAX
starts); two processes on localhost train together through ``jax.distributed``; the train
command is killed and resumed.
"""

import json
import shutil
import signal
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np
import pytest

from conftest import REPO, free_port, load_config, on_8_devices, subprocess_env, worker_result
from eye2eye_jax import config_base
from eye2eye_jax.common import sharding
from eye2eye_jax.data import grain_state, input_pipeline
from eye2eye_jax.models import checkpoints
from eye2eye_jax.planning import accelerators, training_estimate
from eye2eye_jax.training import checkpoint_manager, loop, train_state


def test_meshes_train_alike_and_fsdp_splits_the_state(tiny_dataset):
  runs = on_8_devices('meshes', tiny_dataset)
  single = runs['single']
  for name in ('data', 'fsdp', 'mixed'):
    np.testing.assert_allclose(runs[name]['losses'], single['losses'], rtol=1e-5)
  for run in runs.values():
    assert run['compilations'] == 1  # the train step compiles once per run
  # Data parallel replicates the state; FSDP over 8 devices holds about an eighth of it
  # (norms and biases too small to split stay replicated); (2 data, 2 fsdp, 2 tensor) a quarter.
  assert runs['data']['param_bytes_per_device'] == runs['data']['param_bytes']
  for key in ('param', 'opt'):
    fsdp = runs['fsdp'][f'{key}_bytes_per_device'] / runs['fsdp'][f'{key}_bytes']
    mixed = runs['mixed'][f'{key}_bytes_per_device'] / runs['mixed'][f'{key}_bytes']
    assert 1 / 8 <= fsdp < 0.16
    assert 1 / 4 <= mixed < 0.3
  # One step's work shared by all 8 devices, whatever the axes (a tensor axis included), and
  # the planner's estimate for each mesh is the figure the trainer logs.
  for name in ('data', 'fsdp', 'mixed'):
    assert runs[name]['flops_per_device'] == pytest.approx(single['flops_per_device'] / 8)
  config = load_config('tiny')  # the mesh with a tensor axis, where the two used to differ
  config.data.batch_size, config.mesh.shape = 8, (2, 2, 2)
  planned = training_estimate.estimate_training(config, accelerators.parse_topology('8xH100'),
                                                0.4)['flops']
  assert planned['train_step_per_device'] == pytest.approx(runs['mixed']['flops_per_device'])


def test_a_one_device_run_resumes_on_eight_devices(tiny_config, tiny_checkpoint, tmp_path):
  for name in ('one', 'eight'):
    shutil.copytree(tiny_checkpoint, tmp_path / name)
  config = tiny_config.copy_and_resolve_references()
  config.train.sample_every = 0
  config.train.num_steps += 4
  config.train.log_every = 1
  on_one = []
  loop.train_and_evaluate(config, str(tmp_path / 'one'),
                          on_metrics=lambda step, m: on_one.append((step, m['loss'])))
  on_eight = on_8_devices('grow', tiny_config.data.data_dir, str(tmp_path / 'eight'))
  assert [s for s, _ in on_one] == [s for s, _ in on_eight] == list(
      range(tiny_config.train.num_steps + 1, config.train.num_steps + 1))
  np.testing.assert_allclose([l for _, l in on_eight], [l for _, l in on_one], rtol=1e-5)


def test_a_warm_start_lands_directly_in_the_fsdp_layout(tiny_checkpoint):
  result = on_8_devices('warm_start', '', str(tiny_checkpoint))
  assert result['laid_out'] and result['max_error'] == 0.0
  assert result['params_bytes_per_device'] < 0.3 * result['params_bytes']


def test_two_processes_train_together_and_read_disjoint_shards(tiny_dataset, tmp_path):
  port = free_port()
  workers = [subprocess.Popen(
      [sys.executable, str(REPO / 'tests' / 'multiprocess_worker.py'), tiny_dataset,
       str(tmp_path / 'run')], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      env=subprocess_env(JAX_COORDINATOR_ADDRESS=f'localhost:{port}', JAX_NUM_PROCESSES='2',
               JAX_PROCESS_ID=str(i))) for i in range(2)]
  outputs = [w.communicate(timeout=600)[0] for w in workers]
  assert all(w.returncode == 0 for w in workers), outputs[0][-2000:] + outputs[1][-2000:]
  results = sorted((worker_result(o) for o in outputs), key=lambda r: r['process'])
  assert [(r['process'], r['count'], r['devices']) for r in results] == [(0, 2, 2), (1, 2, 2)]
  first, second = results[0]['read'], results[1]['read']
  # Over one epoch each record is read once, by one process.
  assert len(first) == len(set(first)) == len(second) == len(set(second)) == 8
  assert sorted(first + second) == list(range(16))
  # One model: both processes see the same global loss at every step.
  assert results[0]['losses'] == results[1]['losses'] and len(results[0]['losses']) == 4
  assert sorted(int(p.name) for p in (tmp_path / 'run' / 'checkpoints').iterdir()) == [2, 4]
  _resume_with_one_process(tiny_dataset, tmp_path / 'run')


def _resume_with_one_process(data_dir, workdir):
  """The two processes' run goes on in one: the model resumes at step 4 and the data
  position is re-derived from the step, as if this one process had read every batch."""
  config = config_base.load_config_file(REPO / 'configs' / 'tiny.py')
  config.data.data_dir = data_dir
  config.data.batch_size, config.train.sample_every = 4, 0
  config.train.num_steps, config.train.checkpoint_every = 6, 2
  steps = []
  loop.train_and_evaluate(config, str(workdir), on_metrics=lambda s, m: steps.append(s))
  assert steps == [5, 6]
  saved = next((workdir / 'checkpoints' / '6' / 'data').glob(grain_state.STATE_FILES)
               ).read_bytes()
  alone = iter(input_pipeline.create_train_loader(config, data_dir))
  for _ in range(6):
    next(alone)
  assert json.loads(saved)['last_seen_indices'] == json.loads(alone.get_state())[
      'last_seen_indices']


def test_hosts_that_do_not_share_the_data_dir_are_refused_before_any_work(tmp_path):
  """Two hosts with the default data_dir (outputs/tfds, each on its own disk)."""
  port = free_port()
  hosts = [tmp_path / f'host{i}' for i in range(2)]
  workers = []
  for i, host in enumerate(hosts):
    host.mkdir()
    workers.append(subprocess.Popen(
        [sys.executable, '-m', 'eye2eye_jax.train', f'--config={REPO / "configs" / "tiny.py"}',
         f'--workdir={tmp_path / "run"}'], cwd=host, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
        env=subprocess_env(JAX_COORDINATOR_ADDRESS=f'localhost:{port}', JAX_NUM_PROCESSES='2',
                           JAX_PROCESS_ID=str(i))))
  outputs = [w.communicate(timeout=300)[0] for w in workers]
  for worker, output in zip(workers, outputs):
    assert worker.returncode == 1, output[-2000:]
    assert ('error: data.data_dir=outputs/tfds is not shared by the processes of this run: '
            'process(es) [1] cannot see') in output
  assert not list((tmp_path / 'run').iterdir())  # no checkpoint, no log
  assert [list(h.rglob('*.array_record*')) for h in hosts] == [[], []]  # nothing built


_STEPS = 60


class _Training:
  """The train command on the tiny config, its output going to a file (a pipe nobody reads
  while we wait would fill up and stall it)."""

  def __init__(self, workdir, data_dir):
    self.log = workdir.parent / f'{workdir.name}.{time.monotonic_ns()}.log'
    with open(self.log, 'w') as log:
      self.process = subprocess.Popen(
          [sys.executable, '-m', 'eye2eye_jax.train', f'--config={REPO / "configs" / "tiny.py"}',
           f'--workdir={workdir}', f'--config.data.data_dir={data_dir}',
           '--config.train.sample_every=0', f'--config.train.num_steps={_STEPS}',
           '--config.train.checkpoint_every=5', '--config.train.log_every=5',
           '--alsologtostderr'], stdout=log, stderr=subprocess.STDOUT, env=subprocess_env())

  def finish(self) -> tuple[int, str]:
    code = self.process.wait(timeout=600)
    return code, self.log.read_text()


def _saved_steps(workdir) -> list[int]:
  directory = workdir / 'checkpoints'
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if (
      directory.exists()) else []


def _interrupt(workdir, data_dir, signum: int, after_step: int) -> tuple[int, str]:
  """Starts training, sends ``signum`` once a checkpoint at >= ``after_step`` exists."""
  run = _Training(workdir, data_dir)
  deadline = time.time() + 600
  while run.process.poll() is None and max(_saved_steps(workdir), default=0) < after_step:
    assert time.time() < deadline
    time.sleep(0.02)
  run.process.send_signal(signum)
  return run.finish()


def _final_weights(workdir):
  return [checkpoints.load_for_inference(str(workdir), use_ema=e)[1] for e in (False, True)]


def test_killed_and_preempted_training_resumes_exactly(tiny_dataset, tmp_path):
  straight = tmp_path / 'straight'
  code, output = _Training(straight, tiny_dataset).finish()
  assert code == 0, output[-3000:]

  resumed = tmp_path / 'resumed'
  code, _ = _interrupt(resumed, tiny_dataset, signal.SIGKILL, after_step=15)
  assert code == -signal.SIGKILL
  saved = max(_saved_steps(resumed))
  # SIGTERM (preemption): saves the step it is at, then exits with 143 (to be requeued).
  code, output = _interrupt(resumed, tiny_dataset, signal.SIGTERM, after_step=saved + 15)
  assert f'Resumed from step {saved}' in output  # nothing lost beyond the last checkpoint
  if 'Preempted: saved step' in output:
    assert code == 143 and 'run the same command again to resume' in output
    stopped = int(output.split('Preempted: saved step ')[1].split()[0])
    assert max(_saved_steps(resumed)) == stopped
  saved = max(_saved_steps(resumed))
  code, output = _Training(resumed, tiny_dataset).finish()
  assert code == 0, output[-3000:]
  assert max(_saved_steps(resumed)) == _STEPS
  assert saved == _STEPS or f'Resumed from step {saved}' in output
  for a, b in zip(_final_weights(straight), _final_weights(resumed)):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y))  # bit-exact on CPU


def test_an_unreadable_latest_checkpoint_falls_back_to_the_one_before(tiny_config,
                                                                     tiny_checkpoint, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_checkpoint, workdir)
  steps = _saved_steps(workdir)
  assert len(steps) >= 2
  for path in (workdir / 'checkpoints' / str(steps[-1]) / 'state').rglob('*'):
    if path.is_file():
      path.write_bytes(b'not a checkpoint')
  abstract = jax.eval_shape(lambda: train_state.init_train_state(tiny_config))
  manager = checkpoint_manager.create_manager(str(workdir / 'checkpoints'), tiny_config)
  iterator = iter(input_pipeline.create_train_loader(tiny_config, tiny_config.data.data_dir))
  state = checkpoint_manager.restore_training(manager, abstract, iterator, tiny_config)
  manager.close()
  assert int(state['step']) == steps[-2]


def test_impossible_meshes_are_clear_errors():
  config = config_base.base_config()
  config.mesh.shape = (3, -1, 1)
  with pytest.raises(ValueError, match='cannot fill 8 devices'):
    sharding.mesh_shape(config, 8)
  config.mesh.shape = (2, 2, 1)
  with pytest.raises(ValueError, match='holds 4 devices'):
    sharding.mesh_shape(config, 8)
  config.mesh.shape, config.mesh.dcn_shape = (-1, 1, 1), (3, 1, 1)
  with pytest.raises(ValueError, match='does not divide'):
    sharding.mesh_shape(config, 8)
  config.mesh.dcn_shape = (2, 1, 1)
  assert sharding.mesh_shape(config, 8) == (4, 1, 1)
  rules = (('batch', 'nope'),)
  mesh = sharding.create_mesh(ml_collections.ConfigDict(
      {'mesh': {'axes': ('data',), 'shape': (-1,), 'dcn_shape': (1,)}}))
  with pytest.raises(ValueError, match='not a mesh axis'):
    sharding.spec_for(('batch',), (4,), mesh, rules)
