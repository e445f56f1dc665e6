import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from eye2eye_jax import diffusion
from eye2eye_jax.models import checkpoints, unet
from eye2eye_jax.sampling import stereo_sampler
from eye2eye_jax.training import loop, train_state


def test_loss_drops_when_fitting_one_batch(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.train.learning_rate = 3e-3
  config.train.warmup_steps = 1
  rng = np.random.default_rng(0)
  right = rng.uniform(-1, 1, (2, 4, 8, 8, 3)).astype(np.float32)
  batch = {'right': right, 'left': np.roll(right, 1, axis=3)}
  graphdef = unet.model_graphdef(config)

  @jax.jit
  def fixed_loss(params):  # the same times and noise every call
    denoiser = unet.make_denoiser(graphdef, params, batch['right'])
    keys = jax.random.split(jax.random.PRNGKey(7), 8)
    return jnp.mean(jnp.stack([diffusion.diffusion_loss(config, denoiser, batch['left'], k)
                               for k in keys]))

  state = train_state.init_train_state(config)
  before = float(fixed_loss(state['params']))
  step = train_state.make_train_step(config)
  for _ in range(80):
    state, _ = step(state, batch)
  after = float(fixed_loss(state['params']))
  assert after < 0.7 * before, (before, after)
  assert int(state['step']) == 80


def test_training_resumes_from_the_latest_checkpoint(tiny_config, tiny_checkpoint):
  steps = sorted(int(p.name) for p in (tiny_checkpoint / 'checkpoints').iterdir()
                 if p.name.isdigit())
  assert steps[-1] == tiny_config.train.num_steps
  config = tiny_config.copy_and_resolve_references()
  config.train.num_steps = tiny_config.train.num_steps + 5
  logged = []
  state = loop.train_and_evaluate(config, str(tiny_checkpoint),
                                  on_metrics=lambda step, m: logged.append(step))
  assert int(state['step']) == config.train.num_steps
  assert logged and min(logged) > tiny_config.train.num_steps  # no step was redone


def test_inference_checkpoint_round_trip_gives_identical_samples(tiny_checkpoint, tmp_path):
  config, params = checkpoints.load_for_inference(str(tiny_checkpoint))
  checkpoints.save_inference(str(tmp_path / 'lean'), params, config)
  config2, params2 = checkpoints.load_for_inference(str(tmp_path / 'lean'))
  assert config2.to_dict() == config.to_dict()
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params2)):
    np.testing.assert_array_equal(a, b)
  right = np.random.default_rng(0).integers(0, 255, (5, 16, 12, 3), dtype=np.uint8)
  sample_config = load_config('tiny').sample
  out1 = stereo_sampler.StereoSampler(stereo_sampler.Stage(config, params), None,
                                      sample_config).convert(right, seed=1)
  out2 = stereo_sampler.StereoSampler(stereo_sampler.Stage(config2, params2), None,
                                      sample_config).convert(right, seed=1)
  assert out1.shape == right.shape
  np.testing.assert_array_equal(out1, out2)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    checkpoints.load_for_inference(str(tmp_path / 'nope'))
  (tmp_path / 'empty').mkdir()
  with pytest.raises(FileNotFoundError, match='holds no checkpoint'):
    checkpoints.load_for_inference(str(tmp_path / 'empty'))


def test_condition_dropout_trains_without_the_right_view(tiny_config):
  rng = np.random.default_rng(1)
  left = rng.uniform(-1, 1, (2, 4, 8, 8, 3)).astype(np.float32)
  rights = (np.zeros_like(left), rng.uniform(-1, 1, left.shape).astype(np.float32))
  for dropout in (0.0, 1.0):
    config = tiny_config.copy_and_resolve_references()
    config.train.condition_dropout = dropout
    step = train_state.make_train_step(config)
    losses = []
    for right in rights:
      state = train_state.init_train_state(config)
      state['params'] = jax.tree.map(lambda p: p + 0.01, state['params'])  # a non-zero output
      _, metrics = step(state, {'right': right, 'left': left})
      losses.append(float(metrics['loss']))
    # With dropout 1 the right view never reaches the model; with 0 it always does.
    assert (losses[0] == losses[1]) == (dropout == 1.0), (dropout, losses)


def test_a_run_can_start_from_another_runs_weights(tiny_config, tiny_checkpoint, tmp_path):
  config = tiny_config.copy_and_resolve_references()
  config.train.init_checkpoint = str(tiny_checkpoint)
  _, source = checkpoints.load_for_inference(str(tiny_checkpoint))
  state, report = train_state.init_from_checkpoint(config, str(tiny_checkpoint))
  for a, b in zip(jax.tree.leaves(state['params']), jax.tree.leaves(source)):
    np.testing.assert_array_equal(a, b)
  assert len(report['copied']) == len(jax.tree.leaves(source))
  assert not any(report[k] for k in ('extended', 'inflated', 'new_identity', 'new_random',
                                     'unused'))
  config.model.channels = 12
  with pytest.raises(ValueError, match='does not fit config.model'):
    train_state.init_from_checkpoint(config, str(tiny_checkpoint))


def test_logged_figures_are_per_step_rates_without_compilation(tiny_config, tiny_dataset,
                                                              tmp_path):
  config = tiny_config.copy_and_resolve_references()
  config.train.update(num_steps=12, log_every=4, warmup_steps=8, learning_rate=1e-3,
                      eval_every=4, eval_batches=2, eval_splits=('validation', 'train'))
  logged = {}
  loop.train_and_evaluate(config, str(tmp_path / 'run'),
                          on_metrics=lambda step, m: logged.setdefault(step, {}).update(m))
  assert sorted(logged) == [4, 8, 12]
  # A held-out loss per split, each on its own fixed batches.
  assert all(figures['eval/loss'] != figures['eval/loss_train'] for figures in logged.values())
  for step, figures in logged.items():
    # The rate of update ``step`` (the optimizer counts from 0): linear warmup over 8.
    assert figures['learning_rate'] == pytest.approx(1e-3 * min(step - 1, 8) / 8)
    assert figures['steps_per_second'] == pytest.approx(1 / figures['seconds_per_step'])
    assert figures['clips_per_second'] == pytest.approx(
        config.data.batch_size / figures['seconds_per_step'])
  # The step is compiled ahead of the loop: its time is logged apart, once.
  from tensorboard.backend.event_processing import event_accumulator
  events = event_accumulator.EventAccumulator(str(tmp_path / 'run'))
  events.Reload()
  tags = events.Tags()['scalars'] + events.Tags().get('tensors', [])
  assert 'compile_seconds' in tags, tags


def test_logged_mfu_is_the_step_flops_over_step_time_over_the_measured_cpu_peak(
    tiny_config, tiny_dataset, tmp_path):
  from benchmarks import train_step_flops
  from eye2eye_jax.planning import peak_flops
  config = tiny_config.copy_and_resolve_references()
  config.train.update(num_steps=8, log_every=4, sample_every=0, profile_steps=(3, 5))
  peak, source = peak_flops.peak_flops_per_device(jax.devices()[0], config.model.dtype)
  # On a CPU the peak is measured: the matmul the benchmark measures too.
  assert source.startswith('measured') and peak == peak_flops.measured_matmul_flops()
  logged = {}
  loop.train_and_evaluate(config, str(tmp_path / 'run'), peak_flops_per_device=peak,
                          on_metrics=lambda step, m: logged.setdefault(step, {}).update(m))
  _, flops = train_step_flops.time_train_step(config, repeats=1)  # the benchmark's FLOPs
  assert sorted(logged) == [4, 8]
  for figures in logged.values():
    assert figures['tflops_per_device'] == pytest.approx(
        flops / figures['seconds_per_step'] / 1e12, rel=1e-6)
    assert figures['mfu'] == pytest.approx(figures['tflops_per_device'] * 1e12 / peak)
    assert 0 < figures['mfu'] < 1
    assert 'device_memory_gib' not in figures  # a CPU keeps no account of its memory
  # train.profile_steps: a jax.profiler trace TensorBoard's Profile tab opens.
  traces = list((tmp_path / 'run' / 'plugins' / 'profile').glob('*/*.xplane.pb'))
  assert len(traces) == 1 and traces[0].stat().st_size > 0


def test_bad_profile_steps_are_refused(tiny_config, tiny_dataset, tmp_path):
  config = tiny_config.copy_and_resolve_references()
  config.train.update(num_steps=2, sample_every=0, profile_steps=(3, 1))
  with pytest.raises(ValueError, match=r'train.profile_steps must be \(first, last\)'):
    loop.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()  # refused before anything is written


def test_a_workdir_that_is_a_file_is_refused_naming_it(tiny_config, tmp_path):
  workdir = tmp_path / 'notes.txt'
  workdir.write_text('not a run')
  with pytest.raises(NotADirectoryError, match=f'--workdir {workdir} is a file; it must be a '
                     'directory'):
    loop.train_and_evaluate(tiny_config, str(workdir))
  assert workdir.read_text() == 'not a run'


def test_gradient_accumulation_makes_the_update_of_the_whole_batch(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.data.batch_size = 8
  config.train.condition_dropout = 0.5  # the dropout masks follow their examples too
  rng = np.random.default_rng(0)
  right = rng.uniform(-1, 1, (8, 4, 8, 8, 3)).astype(np.float32)
  batch = {'right': right, 'left': np.roll(right, 1, axis=3)}
  results, temp_bytes = {}, {}
  for k in (1, 4):
    config.train.grad_accum_steps = k
    step = train_state.make_train_step(config)
    state = train_state.init_train_state(config)
    compiled = step.lower(state, batch).compile()
    temp_bytes[k] = compiled.memory_analysis().temp_size_in_bytes
    results[k] = compiled(state, batch)
  (one, one_metrics), (four, four_metrics) = results[1], results[4]
  np.testing.assert_allclose(four_metrics['loss'], one_metrics['loss'], rtol=1e-5)
  np.testing.assert_allclose(four_metrics['grad_norm'], one_metrics['grad_norm'], rtol=1e-4)
  for a, b in zip(jax.tree.leaves(four['params']), jax.tree.leaves(one['params'])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  # One micro-batch's activations at a time.
  assert temp_bytes[4] < 0.5 * temp_bytes[1], temp_bytes


def test_accumulation_that_does_not_divide_each_devices_share_is_refused(tiny_config):
  from eye2eye_jax.common import sharding
  config = tiny_config.copy_and_resolve_references()
  config.data.batch_size, config.train.grad_accum_steps = 6, 4
  with pytest.raises(ValueError, match='train.grad_accum_steps=4 must be >= 1 and divide'):
    sharding.per_device_batch(config, sharding.create_mesh(config))
