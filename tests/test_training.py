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
                      eval_every=4, eval_batches=2)
  logged = {}
  loop.train_and_evaluate(config, str(tmp_path / 'run'),
                          on_metrics=lambda step, m: logged.setdefault(step, {}).update(m))
  assert sorted(logged) == [4, 8, 12]
  for step, figures in logged.items():
    # The rate of update ``step`` (the optimizer counts from 0): linear warmup over 8.
    assert figures['learning_rate'] == pytest.approx(1e-3 * min(step - 1, 8) / 8)
    assert figures['steps_per_second'] == pytest.approx(1 / figures['seconds_per_step'])
    assert figures['clips_per_second'] == pytest.approx(
        config.data.batch_size / figures['seconds_per_step'])
  # The first step compiles: its time is logged apart, not in the first interval's rate.
  from tensorboard.backend.event_processing import event_accumulator
  events = event_accumulator.EventAccumulator(str(tmp_path / 'run'))
  events.Reload()
  tags = events.Tags()['scalars'] + events.Tags().get('tensors', [])
  assert 'compile_seconds' in tags, tags
