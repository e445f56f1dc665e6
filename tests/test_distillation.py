"""Progressive distillation: the student's target, the rounds, resuming, the sampler switch."""

import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from eye2eye_jax import diffusion
from eye2eye_jax.models import checkpoints
from eye2eye_jax.sampling import stereo_sampler, video_conversion
from eye2eye_jax.training import distillation, loop


def test_a_student_that_learns_its_target_samples_in_half_the_steps():
  """With x~ as its x0 estimate, the student's 2-step DDIM run (the sampler's, x0 clipped)
  lands where the teacher's 4-step run does, for any teacher: x~ is a convex combination
  of the teacher's two clipped x0 estimates, so clipping it changes nothing."""
  config = load_config('tiny')
  weights = jax.random.normal(jax.random.PRNGKey(0), (3, 3))

  def teacher(z, t):  # an arbitrary v predictor
    return jnp.tanh(z @ weights) * (1 + t[:, None, None, None, None])

  def student(z, t):  # predicts the v of x~, for one step of half the teacher's grid
    half = jnp.where(t > 0.75, 0.25, 0.25)
    x0 = distillation.student_target(config, teacher, z, t, t - half, t - 2 * half)
    alpha, sigma = diffusion.alpha_sigma('cosine', t)
    a, s = alpha[:, None, None, None, None], sigma[:, None, None, None, None]
    return (a * z - x0) / s

  noise = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 8, 8, 3)) * 3
  key = jax.random.PRNGKey(2)
  four = diffusion.ddim_sample(config, teacher, noise, key, 4)
  two = diffusion.ddim_sample(config, student, noise, key, 2)
  np.testing.assert_allclose(two, four, atol=2e-5)
  assert float(jnp.abs(diffusion.ddim_sample(config, teacher, noise, key, 2) - four).mean()) > 0.01


def _distill_config(tiny_config, tiny_checkpoint, per_round=12):
  config = tiny_config.copy_and_resolve_references()
  config.train.init_checkpoint = str(tiny_checkpoint)
  config.distill.update(teacher_steps=8, student_steps=2, steps_per_round=per_round)
  config.train.update(num_steps=2 * per_round, checkpoint_every=100, sample_every=0,
                      ema_decay=0.9, learning_rate=1e-3, warmup_steps=2, log_every=1)
  return config


@pytest.mark.parametrize('change,message', [
    (dict(teacher_steps=6), 'teacher_steps=6 must be distill.student_steps=2 times a power'),
    (dict(steps_per_round=5), 'a distillation run is 2 rounds of distill.steps_per_round=5 '
                              'steps, so 10'),
    (dict(t_start=0.0), r't_start must be in \(0, 1\]')])
def test_impossible_distillation_settings_are_refused(tiny_config, tiny_checkpoint, change,
                                                      message):
  config = _distill_config(tiny_config, tiny_checkpoint)
  config.distill.update(change)
  with pytest.raises(ValueError, match=message):
    distillation.check_config(config)
  config = _distill_config(tiny_config, tiny_checkpoint)
  config.diffusion.prediction = 'eps'
  with pytest.raises(ValueError, match='needs a model that predicts v'):
    distillation.check_config(config)


def test_distillation_rounds_halve_the_steps_and_resume_mid_round(tiny_config, tiny_checkpoint,
                                                                  tmp_path):
  """Two rounds (8 -> 4 -> 2 steps): the loss is finite and the steps halve; a run stopped
  in its second round (SIGTERM) and resumed ends with the weights of one that was not."""
  config = _distill_config(tiny_config, tiny_checkpoint)
  logged = {}
  whole = loop.train_and_evaluate(config, str(tmp_path / 'whole'),
                                  on_metrics=lambda step, s: logged.update({step: s}))
  steps = {step: s['student_steps'] for step, s in logged.items() if 'student_steps' in s}
  assert steps[1] == 4 and steps[12] == 4 and steps[13] == 2 and steps[24] == 2
  assert all(np.isfinite(s['loss']) for s in logged.values() if 'loss' in s)

  def stop_at_16(step, scalars):
    if step == 16:
      os.kill(os.getpid(), signal.SIGTERM)

  with pytest.raises(loop.Preempted):
    loop.train_and_evaluate(config, str(tmp_path / 'stopped'), on_metrics=stop_at_16)
  resumed = loop.train_and_evaluate(config, str(tmp_path / 'stopped'))
  for key in ('ema_params', 'teacher_params'):
    for a, b in zip(jax.tree.leaves(whole[key]), jax.tree.leaves(resumed[key])):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # The teacher of round 2 is the EMA student at the end of round 1: not the start weights.
  start = checkpoints.load_for_inference(str(tiny_checkpoint))[1]
  assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(start),
                                                   jax.tree.leaves(whole['teacher_params'])))


def test_the_sampler_runs_students_in_their_own_steps(tiny_checkpoint, tmp_path):
  student_config = load_config('tiny')
  student_config.distill.update(teacher_steps=8, student_steps=2, t_start=0.5)
  params = checkpoints.load_for_inference(str(tiny_checkpoint))[1]
  student = stereo_sampler.Stage(student_config, params)
  teacher = stereo_sampler.Stage(load_config('tiny'), params)
  sample = load_config('tiny').sample
  sample.update(distilled=True, base_num_steps=25, refiner_num_steps=12, solver='dpmpp_2m')
  settings = video_conversion.student_settings(sample, student, student)
  assert (settings.solver, settings.base_num_steps, settings.refiner_num_steps,
          settings.refiner_t_start) == ('ddim', 2, 2, 0.5)
  with pytest.raises(ValueError, match='distilled_refiner_checkpoint is not a distilled'):
    video_conversion.student_settings(sample, student, teacher)
  sample.distilled_checkpoint = ''
  config = load_config('tiny')
  config.sample = sample
  with pytest.raises(ValueError, match='sample.distilled: no student'):
    video_conversion.load_sampler(config)
