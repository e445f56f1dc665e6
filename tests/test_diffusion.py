import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from eye2eye_jax import diffusion


def _config(schedule, prediction):
  return ml_collections.ConfigDict({'diffusion': {'schedule': schedule,
                                                  'prediction': prediction}})


@pytest.mark.parametrize('schedule', ['cosine', 'linear'])
def test_schedules_go_from_signal_to_noise(schedule):
  t = jnp.linspace(0, 1, 11)
  alpha, sigma = diffusion.alpha_sigma(schedule, t)
  assert float(alpha[0]) > 0.99 and float(alpha[-1]) < 0.01
  assert bool(jnp.all(jnp.diff(alpha) < 0))
  np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, rtol=1e-5)


@pytest.mark.parametrize('prediction', ['eps', 'v'])
def test_prediction_conversions_round_trip(prediction):
  key = jax.random.PRNGKey(0)
  x0 = jax.random.uniform(key, (2, 3, 4, 4, 3), minval=-1, maxval=1)
  eps = jax.random.normal(jax.random.PRNGKey(1), x0.shape)
  t = jnp.array([0.3, 0.8])
  alpha, sigma = diffusion.alpha_sigma('cosine', t)
  x_t = diffusion.add_noise('cosine', x0, eps, t)
  a, s = alpha[:, None, None, None, None], sigma[:, None, None, None, None]
  output = eps if prediction == 'eps' else a * eps - s * x0
  x0_hat, eps_hat = diffusion.to_x0_eps(prediction, 'cosine', x_t, t, output)
  np.testing.assert_allclose(x0_hat, x0, atol=1e-4)
  np.testing.assert_allclose(eps_hat, eps, atol=1e-4)


@pytest.mark.parametrize('eta', [0.0, 1.0])
def test_ddim_with_an_oracle_denoiser_recovers_the_clean_video(eta):
  config = _config('cosine', 'eps')
  x0 = jax.random.uniform(jax.random.PRNGKey(2), (1, 2, 4, 4, 3), minval=-0.9, maxval=0.9)

  def oracle(x_t, t):  # the exact eps for x0
    alpha, sigma = diffusion.alpha_sigma('cosine', t)
    return (x_t - alpha[:, None, None, None, None] * x0) / sigma[:, None, None, None, None]

  noise = jax.random.normal(jax.random.PRNGKey(3), x0.shape)
  out = jax.jit(lambda n: diffusion.ddim_sample(config, oracle, n, jax.random.PRNGKey(4), 10,
                                                eta=eta))(noise)
  np.testing.assert_allclose(out, x0, atol=1e-4)


def test_unknown_choices_are_clear_errors():
  with pytest.raises(ValueError, match='schedule'):
    diffusion.alpha_sigma('sigmoid', jnp.zeros(1))
  with pytest.raises(ValueError, match='prediction'):
    diffusion.to_x0_eps('x0', 'cosine', jnp.zeros((1, 1)), jnp.ones(1) * 0.5, jnp.zeros((1, 1)))


@pytest.mark.parametrize('schedule', ['cosine', 'linear'])
def test_time_at_alpha_inverts_the_schedule(schedule):
  for t in (0.05, 0.3, 0.6, 0.9, 0.99):
    alpha, _ = diffusion.alpha_sigma(schedule, jnp.asarray(t, jnp.float32))
    assert diffusion.time_at_alpha(schedule, float(alpha)) == pytest.approx(t, abs=1e-5)


def test_a_noise_level_means_the_same_signal_on_either_schedule():
  assert diffusion.noise_level_time('cosine', 0.9) == 0.9
  linear_t = diffusion.noise_level_time('linear', 0.9)
  cosine_alpha, _ = diffusion.alpha_sigma('cosine', jnp.asarray(0.9))
  linear_alpha, _ = diffusion.alpha_sigma('linear', jnp.asarray(linear_t))
  assert float(linear_alpha) == pytest.approx(float(cosine_alpha), rel=1e-4)
  assert float(cosine_alpha) == pytest.approx(0.155, abs=1e-3)
  assert linear_t == pytest.approx(0.607, abs=1e-3)  # the linear schedule's own 0.9: 0.017
  assert float(diffusion.alpha_sigma('linear', jnp.asarray(0.9))[0]) < 0.02


def _gaussian_problem(schedule, prediction, mean=0.1, std=0.2):
  """Data x0 ~ N(mean, std^2) per value: its exact denoiser and the exact end of the
  probability-flow ODE from x_1 (the noise's standardised value carried to the data's)."""
  config = _config(schedule, prediction)

  def denoiser(x_t, t):
    alpha, sigma = (a[:, None, None, None, None] for a in diffusion.alpha_sigma(schedule, t))
    x0 = mean + alpha * std**2 * (x_t - alpha * mean) / (alpha**2 * std**2 + sigma**2)
    eps = (x_t - alpha * x0) / sigma
    return {'eps': eps, 'v': alpha * eps - sigma * x0, 'flow': eps - x0}[prediction]

  noise = jax.random.normal(jax.random.PRNGKey(5), (1, 2, 8, 8, 3))
  alpha_1, sigma_1 = diffusion.alpha_sigma(schedule, jnp.ones(()))
  exact = mean + std * noise / jnp.sqrt(alpha_1**2 * std**2 + sigma_1**2)
  return config, denoiser, noise, exact


@pytest.mark.parametrize('schedule,prediction', [('cosine', 'v'), ('linear', 'eps')])
def test_dpm_solver_2m_converges_faster_than_ddim_on_the_exact_ode(schedule, prediction):
  config, denoiser, noise, exact = _gaussian_problem(schedule, prediction)
  run = jax.jit(lambda x, solver, n: diffusion.sample(config, denoiser, x, jax.random.PRNGKey(0),
                                                      n, solver=solver),
                static_argnums=(1, 2))
  error = {(solver, n): float(jnp.abs(run(noise, solver, n) - exact).max())
           for solver in diffusion.SOLVERS for n in (5, 10, 40, 80)}
  # Measured: 5 to 13 times closer at 5 and 10 steps.
  for n in (5, 10):
    assert error['dpmpp_2m', n] < 0.25 * error['ddim', n], error
  # Second order: twice the steps cut the error about 4x (measured 3.4-3.6x); DDIM's first
  # order about 2x.
  assert error['dpmpp_2m', 80] < 0.35 * error['dpmpp_2m', 40], error
  assert error['ddim', 80] > 0.45 * error['ddim', 40], error


def test_dpm_solver_2m_from_an_sdedit_start_lands_on_the_clean_video():
  config = _config('cosine', 'eps')
  x0 = jax.random.uniform(jax.random.PRNGKey(2), (1, 2, 4, 4, 3), minval=-0.9, maxval=0.9)

  def oracle(x_t, t):
    alpha, sigma = diffusion.alpha_sigma('cosine', t)
    return (x_t - alpha[:, None, None, None, None] * x0) / sigma[:, None, None, None, None]

  eps = jax.random.normal(jax.random.PRNGKey(3), x0.shape)
  start = diffusion.add_noise('cosine', x0, eps, jnp.full((1,), 0.6))
  out = diffusion.sample(config, oracle, start, jax.random.PRNGKey(4), 3, t_start=0.6,
                         solver='dpmpp_2m')
  # A single clean video's ODE path keeps its noise: the grid's end, sigma 2e-3, is on it.
  t_end = diffusion.log_snr_times('cosine', 0.6, 3)[-1]
  alpha, sigma = diffusion.alpha_sigma('cosine', t_end)
  assert float(sigma) == pytest.approx(diffusion.DPM_SOLVER_END_SIGMA, rel=0.02)
  np.testing.assert_allclose(out, alpha * x0 + sigma * eps, atol=1e-4)


def test_an_unknown_solver_or_noise_on_the_ode_solver_is_a_clear_error():
  with pytest.raises(ValueError, match=r"sample.solver must be one of \('ddim', 'dpmpp_2m'\)"):
    diffusion.check_solver('euler', 0.0)
  with pytest.raises(ValueError, match='deterministic; it needs eta=0'):
    diffusion.check_solver('dpmpp_2m', 1.0)


def test_a_flow_schedule_is_rectified_flow_shifted_toward_noise():
  t = jnp.linspace(0, 1, 11)
  alpha, sigma = diffusion.alpha_sigma('flow', t)
  np.testing.assert_allclose(alpha + sigma, 1.0, atol=1e-6)
  np.testing.assert_allclose(sigma[:-1], t[:-1], atol=1e-6)  # unshifted: sigma = t
  assert float(alpha[-1]) > 0  # short of pure noise: a finite log-SNR
  _, shifted = diffusion.alpha_sigma('flow:3', jnp.asarray([0.25, 0.5]))
  np.testing.assert_allclose(shifted, [0.5, 0.75], atol=1e-6)  # 3t / (1 + 2t)
  for bad in ('flow:0', 'flow:x'):
    with pytest.raises(ValueError, match="'flow' or 'flow:S' with a shift S > 0"):
      diffusion.alpha_sigma(bad, t)


def test_the_flow_velocity_converts_to_x0_and_eps_and_needs_a_flow_schedule():
  x0 = jax.random.uniform(jax.random.PRNGKey(0), (2, 3, 4, 4, 3), minval=-2, maxval=2)
  eps = jax.random.normal(jax.random.PRNGKey(1), x0.shape)
  t = jnp.array([0.3, 0.8])
  x_t = diffusion.add_noise('flow:3', x0, eps, t)
  x0_hat, eps_hat = diffusion.to_x0_eps('flow', 'flow:3', x_t, t, eps - x0)
  np.testing.assert_allclose(x0_hat, x0, atol=1e-5)
  np.testing.assert_allclose(eps_hat, eps, atol=1e-5)
  with pytest.raises(ValueError, match="needs a flow schedule"):
    diffusion.to_x0_eps('flow', 'cosine', x_t, t, eps - x0)


def test_time_at_alpha_inverts_a_shifted_flow():
  for t in (0.05, 0.3, 0.6, 0.9, 0.99):
    alpha, _ = diffusion.alpha_sigma('flow:5', jnp.asarray(t, jnp.float32))
    assert diffusion.time_at_alpha('flow:5', float(alpha)) == pytest.approx(t, abs=1e-5)


def test_an_sdedit_start_means_the_same_signal_to_noise_on_a_flow():
  """The refiner's start, quoted as a cosine time, keeps its alpha / sigma on a flow (and on
  the linear schedule, where matching it is matching alpha)."""
  cosine_alpha, cosine_sigma = diffusion.alpha_sigma('cosine', jnp.asarray(0.9))
  for schedule in ('flow', 'flow:3', 'linear'):
    alpha, sigma = diffusion.alpha_sigma(
        schedule, jnp.asarray(diffusion.noise_level_time(schedule, 0.9)))
    assert float(alpha / sigma) == pytest.approx(float(cosine_alpha / cosine_sigma), rel=1e-3)
  _, flow_sigma = diffusion.alpha_sigma('flow', jnp.asarray(diffusion.noise_level_time('flow',
                                                                                       0.9)))
  assert float(flow_sigma) == pytest.approx(0.864, abs=1e-3)


def test_on_a_flow_euler_and_dpm_solver_2m_converge_at_their_orders():
  """Gaussian data's exact velocity on the 'flow:3' schedule: Euler (solver 'ddim') is first
  order, DPM-Solver++(2M) second order and closer at few steps; unclipped, as for latents."""
  config, denoiser, noise, exact = _gaussian_problem('flow:3', 'flow', mean=1.5, std=0.8)
  config.diffusion.clip_x0 = False
  run = jax.jit(lambda x, solver, n: diffusion.sample(config, denoiser, x, jax.random.PRNGKey(0),
                                                      n, solver=solver),
                static_argnums=(1, 2))
  error = {(solver, n): float(jnp.abs(run(noise, solver, n) - exact).max())
           for solver in diffusion.SOLVERS for n in (5, 10, 40, 80)}
  # Measured: 3.4 times closer at 5 steps, 5.6 at 10; twice the steps cut DPM-Solver++'s
  # error 5x from 40 to 80 (second order or better), Euler's 2x (first order).
  assert error['dpmpp_2m', 5] < 0.35 * error['ddim', 5], error
  assert error['dpmpp_2m', 10] < 0.25 * error['ddim', 10], error
  assert error['dpmpp_2m', 80] < 0.3 * error['dpmpp_2m', 40], error
  assert 0.4 * error['ddim', 40] < error['ddim', 80] < 0.65 * error['ddim', 40], error
  assert float(jnp.abs(exact).max()) > 1  # beyond [-1, 1]: clipping would have broken it
  with pytest.raises(ValueError, match='samples deterministically'):
    diffusion.sample(config, denoiser, noise, jax.random.PRNGKey(0), 5, eta=1.0)
