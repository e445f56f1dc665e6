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
