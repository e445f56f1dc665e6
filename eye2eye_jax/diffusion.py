"""Noise schedules, the training loss and the samplers, in continuous time t in [0, 1].

x_t = alpha(t) * x0 + sigma(t) * eps. The model predicts eps, v = alpha * eps - sigma * x0
or, on a flow schedule, the flow velocity eps - x0 (``config.diffusion.prediction``).
Schedules: 'cosine' and 'linear' keep alpha^2 + sigma^2 = 1; 'flow' is rectified flow,
alpha = 1 - sigma, with 'flow:S' shifting its times toward noise as Wan does
(sigma = S t / (1 + (S - 1) t); Wan 2.1 samples 480p with S = 3, 720p with 5). Samplers
(``SOLVERS``: DDIM/DDPM, which on a flow schedule is the Euler method, and DPM-Solver++(2M),
a second-order multistep solver in any of these schedules) run as one ``lax.fori_loop``, so
a jitted sampler is one compiled program per shape, whatever the number of steps.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

# A denoiser maps (x_t, t) -> the model's prediction (eps or v), t of shape (B,).
Denoiser = Callable[[jax.Array, jax.Array], jax.Array]

_LINEAR_BETAS = (1e-4, 0.02, 1000)  # DDPM's discrete linear schedule


# The flow schedules stop just short of pure noise, so the log-SNR stays finite.
_FLOW_MIN_ALPHA = 1e-4


def flow_shift(schedule: str) -> float | None:
  """The timestep shift of a flow schedule ('flow': 1, 'flow:S': S); None for the others."""
  name, _, shift = schedule.partition(':')
  if name != 'flow':
    return None
  try:
    value = float(shift) if shift else 1.0
  except ValueError:
    value = 0.0
  if value <= 0:
    raise ValueError(f"diffusion.schedule={schedule!r}: write 'flow' or 'flow:S' with a "
                     'shift S > 0')
  return value


def alpha_sigma(schedule: str, t: jax.Array, xp=jnp) -> tuple[jax.Array, jax.Array]:
  """Signal and noise scales of the named schedule at times t in [0, 1] (computed with
  ``xp``: jax.numpy, or numpy for host-side constants such as a time grid)."""
  shift = flow_shift(schedule)
  if shift is not None:
    sigma = xp.clip(shift * t / (1 + (shift - 1) * t), 0.0, 1.0 - _FLOW_MIN_ALPHA)
    return 1.0 - sigma, sigma
  if schedule == 'cosine':
    # Nichol & Dhariwal's cosine schedule, clipped so that alpha(1) > 0.
    s = 0.008
    f = lambda u: xp.cos((u + s) / (1 + s) * xp.pi / 2)
    alpha_bar = xp.clip(f(t)**2 / f(xp.zeros_like(t))**2, 1e-5, 1.0)
  elif schedule == 'linear':
    start, end, n = _LINEAR_BETAS
    # Continuous version of prod(1 - beta_i) with betas linear in i.
    u = t * n
    log_alpha_bar = -(start * u + (end - start) * u**2 / (2 * n))
    alpha_bar = xp.clip(xp.exp(log_alpha_bar), 1e-5, 1.0)
  else:
    raise ValueError(f"diffusion.schedule must be 'cosine', 'linear' or 'flow[:S]', got "
                     f'{schedule!r}')
  return xp.sqrt(alpha_bar), xp.sqrt(1 - alpha_bar)


def time_at_alpha(schedule: str, alpha: float) -> float:
  """The time at which the named schedule's signal scale is ``alpha`` (the inverse of
  ``alpha_sigma``), in [0, 1]."""
  shift = flow_shift(schedule)
  if shift is not None:
    sigma = min(max(1.0 - float(alpha), 0.0), 1.0 - _FLOW_MIN_ALPHA)
    return min(max(sigma / (shift - (shift - 1) * sigma), 0.0), 1.0)
  alpha_bar = min(max(float(alpha)**2, 1e-5), 1.0)
  if schedule == 'cosine':
    s = 0.008
    f0 = math.cos(s / (1 + s) * math.pi / 2)
    t = math.acos(min(math.sqrt(alpha_bar) * f0, 1.0)) * 2 * (1 + s) / math.pi - s
  elif schedule == 'linear':
    start, end, n = _LINEAR_BETAS
    a, log_alpha_bar = (end - start) / (2 * n), math.log(alpha_bar)
    u = (-start + math.sqrt(start**2 - 4 * a * log_alpha_bar)) / (2 * a)
    t = u / n
  else:
    raise ValueError(f"diffusion.schedule must be 'cosine', 'linear' or 'flow[:S]', got "
                     f'{schedule!r}')
  return min(max(t, 0.0), 1.0)


def alpha_at_log_snr(schedule: str, log_snr):
  """The signal scale where log(alpha / sigma) is ``log_snr`` (NumPy): alpha^2 + sigma^2 = 1
  on the variance-preserving schedules, alpha + sigma = 1 on a flow."""
  if flow_shift(schedule) is not None:
    return 1 / (1 + np.exp(-np.asarray(log_snr, np.float64)))
  return np.sqrt(1 / (1 + np.exp(-2 * np.asarray(log_snr, np.float64))))


def noise_level_time(schedule: str, cosine_t: float) -> float:
  """The time of the named schedule with the noise of the cosine schedule at ``cosine_t``.

  A noise level given as a cosine-schedule time (as SDEdit starts are quoted for cosine,
  Lumiere-like schedules) then means the same signal-to-noise ratio alpha / sigma whatever
  schedule a model was trained with: cosine 0.9 is alpha 0.156, which the linear schedule
  reaches at t 0.61 (its own t 0.9 leaves alpha 0.017); on a flow it is sigma 0.864.
  """
  if schedule == 'cosine':
    return float(cosine_t)
  alpha, sigma = alpha_sigma('cosine', np.float64(cosine_t), xp=np)
  return time_at_alpha(schedule, float(alpha_at_log_snr(schedule, np.log(alpha / sigma))))


def _bcast(x: jax.Array, like: jax.Array) -> jax.Array:
  return x.reshape(x.shape + (1,) * (like.ndim - x.ndim))


def add_noise(schedule: str, x0: jax.Array, eps: jax.Array, t: jax.Array) -> jax.Array:
  alpha, sigma = alpha_sigma(schedule, t)
  return _bcast(alpha, x0) * x0 + _bcast(sigma, x0) * eps


def to_x0_eps(prediction: str, schedule: str, x_t: jax.Array, t: jax.Array,
              output: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Converts a model output (eps or v) at (x_t, t) to estimates of x0 and eps."""
  alpha, sigma = alpha_sigma(schedule, t)
  alpha, sigma = _bcast(alpha, x_t), _bcast(sigma, x_t)
  if prediction == 'flow':
    _require_flow(schedule)
    return x_t - sigma * output, x_t + alpha * output  # output = eps - x0
  if prediction == 'eps':
    eps = output
    x0 = (x_t - sigma * eps) / alpha
  elif prediction == 'v':
    x0 = alpha * x_t - sigma * output
    eps = sigma * x_t + alpha * output
  else:
    raise ValueError(f"diffusion.prediction must be 'eps', 'v' or 'flow', got {prediction!r}")
  return x0, eps


def _require_flow(schedule: str) -> None:
  if flow_shift(schedule) is None:
    raise ValueError(f"diffusion.prediction='flow' (the velocity eps - x0) needs a flow "
                     f"schedule ('flow' or 'flow:S'), got {schedule!r}")


def draw_time_and_noise(rng: jax.Array, shape: tuple, dtype) -> tuple[jax.Array, jax.Array]:
  """The loss's random diffusion time per example and its Gaussian noise of ``shape``."""
  t_rng, eps_rng = jax.random.split(rng)
  t = jax.random.uniform(t_rng, (shape[0],), minval=1e-4, maxval=1.0)
  return t, jax.random.normal(eps_rng, shape, dtype)


def diffusion_loss(config: ml_collections.ConfigDict, denoiser: Denoiser, x0: jax.Array,
                   rng: jax.Array | None, t_and_eps: tuple | None = None) -> jax.Array:
  """Mean squared error of the model's eps or v prediction at a random time (drawn from
  ``rng``, or given as ``t_and_eps`` from ``draw_time_and_noise``)."""
  d = config.diffusion
  t, eps = t_and_eps if t_and_eps is not None else draw_time_and_noise(rng, x0.shape, x0.dtype)
  x_t = add_noise(d.schedule, x0, eps, t)
  output = denoiser(x_t, t)
  if d.prediction == 'eps':
    target = eps
  elif d.prediction == 'v':
    alpha, sigma = alpha_sigma(d.schedule, t)
    target = _bcast(alpha, x0) * eps - _bcast(sigma, x0) * x0
  elif d.prediction == 'flow':
    _require_flow(d.schedule)
    target = eps - x0
  else:
    raise ValueError(f"diffusion.prediction must be 'eps', 'v' or 'flow', got "
                     f'{d.prediction!r}')
  return jnp.mean((output.astype(jnp.float32) - target)**2)


def _clipped(diffusion_config: ml_collections.ConfigDict, x: jax.Array) -> jax.Array:
  """``x`` clipped to [-1, 1], the pixels' range, unless ``diffusion.clip_x0`` is off (latents
  have no fixed range)."""
  return jnp.clip(x, -1.0, 1.0) if diffusion_config.get('clip_x0', True) else x


def ddim_step(schedule: str, x0: jax.Array, x: jax.Array, t: jax.Array,
              s: jax.Array) -> jax.Array:
  """One deterministic DDIM step of x (B, ...) from times t to s (B,), given its x0 estimate."""
  alpha_t, sigma_t = (_bcast(a, x) for a in alpha_sigma(schedule, t))
  alpha_s, sigma_s = (_bcast(a, x) for a in alpha_sigma(schedule, s))
  return alpha_s * x0 + sigma_s * (x - alpha_t * x0) / sigma_t


def ddim_sample(config: ml_collections.ConfigDict, denoiser: Denoiser, x_start: jax.Array,
                rng: jax.Array, num_steps: int, t_start: float = 1.0,
                eta: float = 0.0) -> jax.Array:
  """Runs DDIM from ``x_start`` at time ``t_start`` down to t=0 in ``num_steps`` steps.

  eta=0 is deterministic DDIM; eta=1 is DDPM's ancestral sampling on this time grid.
  ``x_start`` is pure noise for t_start=1, or a noised estimate for SDEdit-style refining.
  Predictions of x0 are clipped to [-1, 1].
  """
  d = config.diffusion
  times = jnp.linspace(t_start, 0.0, num_steps + 1)
  batch = x_start.shape[0]

  def step(i, carry):
    x, key = carry
    t, s = times[i], times[i + 1]
    output = denoiser(x, jnp.full((batch,), t))
    x0, eps = to_x0_eps(d.prediction, d.schedule, x, jnp.full((batch,), t), output)
    x0 = _clipped(d, x0)
    alpha_t, sigma_t = alpha_sigma(d.schedule, t)
    alpha_s, sigma_s = alpha_sigma(d.schedule, s)
    eps = (x - alpha_t * x0) / sigma_t  # consistent with the clipped x0
    # DDIM's noise level for the step t -> s; zero at the last step.
    ratio = jnp.clip((sigma_s**2 / sigma_t**2) * (1 - (alpha_t / alpha_s)**2), 0.0, 1.0)
    noise_scale = eta * jnp.sqrt(ratio) * jnp.where(s > 0, 1.0, 0.0)
    direction = jnp.sqrt(jnp.clip(sigma_s**2 - noise_scale**2, 0.0))
    key, noise_key = jax.random.split(key)
    noise = jax.random.normal(noise_key, x.shape, x.dtype)
    x = alpha_s * x0 + direction * eps + noise_scale * noise
    x = jnp.where(s > 0, x, x0)
    return x, key

  x, _ = jax.lax.fori_loop(0, num_steps, step, (x_start, rng))
  return x


# DPM-Solver++'s grid ends where the noise is this small (about a quarter of a uint8 level
# of data in [-1, 1]) and returns x there, instead of a last step that jumps to t=0.
DPM_SOLVER_END_SIGMA = 2e-3


def log_snr_times(schedule: str, t_start: float, num_steps: int) -> np.ndarray:
  """``num_steps + 1`` times from ``t_start`` to the time where sigma is
  ``DPM_SOLVER_END_SIGMA``, uniform in log(alpha / sigma) (DPM-Solver's grid for pixel
  models)."""
  end_alpha = (1 - DPM_SOLVER_END_SIGMA if flow_shift(schedule) is not None
               else math.sqrt(1 - DPM_SOLVER_END_SIGMA**2))
  t_end = time_at_alpha(schedule, end_alpha)
  alpha, sigma = alpha_sigma(schedule, np.asarray([t_start, t_end]), xp=np)
  lambdas = np.linspace(*np.log(alpha / sigma), num_steps + 1)
  times = [time_at_alpha(schedule, a) for a in alpha_at_log_snr(schedule, lambdas)]
  return np.asarray([t_start] + times[1:-1] + [t_end], np.float32)


def dpm_solver_2m_sample(config: ml_collections.ConfigDict, denoiser: Denoiser,
                         x_start: jax.Array, num_steps: int, t_start: float = 1.0) -> jax.Array:
  """DPM-Solver++(2M) from ``x_start`` at ``t_start`` to (almost) t=0 in ``num_steps`` steps.

  Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
  Models" (arXiv:2211.01095), Algorithm 2: a deterministic second-order multistep solver of
  the probability-flow ODE in the data prediction, one model evaluation per step, the
  previous step's x0 estimate giving the second order (the first step is first order). Its
  grid is uniform in log-SNR (``log_snr_times``); x0 estimates are clipped to [-1, 1], as in
  ``ddim_sample``.
  """
  d = config.diffusion
  times = jnp.asarray(log_snr_times(d.schedule, t_start, num_steps))
  batch = x_start.shape[0]

  def log_snr(t):
    alpha, sigma = alpha_sigma(d.schedule, t)
    return jnp.log(alpha) - jnp.log(sigma)

  def step(i, carry):
    x, previous_x0, previous_h = carry
    t, s = times[i], times[i + 1]
    output = denoiser(x, jnp.full((batch,), t))
    x0, _ = to_x0_eps(d.prediction, d.schedule, x, jnp.full((batch,), t), output)
    x0 = _clipped(d, x0)
    _, sigma_t = alpha_sigma(d.schedule, t)
    alpha_s, sigma_s = alpha_sigma(d.schedule, s)
    h = log_snr(s) - log_snr(t)
    half_over_r = jnp.where(i > 0, h / (2 * previous_h), 0.0)
    x0_extrapolated = (1 + half_over_r) * x0 - half_over_r * previous_x0
    x = (sigma_s / sigma_t) * x - alpha_s * jnp.expm1(-h) * x0_extrapolated
    return x, x0, h

  x, _, _ = jax.lax.fori_loop(0, num_steps, step,
                              (x_start, jnp.zeros_like(x_start), jnp.float32(1.0)))
  return _clipped(d, x)


SOLVERS = ('ddim', 'dpmpp_2m')


def check_solver(solver: str, eta: float, schedule: str = 'cosine') -> None:
  """Raises ValueError unless ``solver`` is one of ``SOLVERS`` and can use ``eta`` on the
  model's ``schedule`` (DDIM's ancestral noise is written for alpha^2 + sigma^2 = 1)."""
  if solver not in SOLVERS:
    raise ValueError(f'sample.solver must be one of {SOLVERS}, got {solver!r}')
  if eta != 0 and flow_shift(schedule) is not None:
    raise ValueError(f'sample.eta={eta}: a flow schedule ({schedule!r}) samples '
                     "deterministically: eta=0 (solver 'ddim' is then the Euler method)")
  if solver == 'dpmpp_2m' and eta != 0:
    raise ValueError(f"sample.eta={eta}: solver 'dpmpp_2m' is deterministic; it needs eta=0 "
                     "(eta > 0 is DDIM's ancestral noise: solver 'ddim')")


def sample(config: ml_collections.ConfigDict, denoiser: Denoiser, x_start: jax.Array,
           rng: jax.Array, num_steps: int, t_start: float = 1.0, eta: float = 0.0,
           solver: str = 'ddim') -> jax.Array:
  """Runs the named solver (``SOLVERS``) from ``x_start`` at ``t_start`` to t=0 in
  ``num_steps`` model evaluations."""
  check_solver(solver, eta, config.diffusion.schedule)
  if solver == 'dpmpp_2m':
    return dpm_solver_2m_sample(config, denoiser, x_start, num_steps, t_start)
  return ddim_sample(config, denoiser, x_start, rng, num_steps, t_start=t_start, eta=eta)
