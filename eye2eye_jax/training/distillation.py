"""Progressive distillation: a student that samples in half the teacher's DDIM steps, in
rounds, down to a few steps.

Salimans & Ho 2022, "Progressive Distillation for Fast Sampling of Diffusion Models"
(arXiv:2202.00512), Algorithm 2. The student starts as a copy of the teacher
(``train.init_checkpoint``). In a round where the student takes N steps over the sampling
interval [0, T] (``distill.t_start``: 1 for a base model, the refiner's start for a
refiner), a training example's left view x is noised to z_t at a time t on the student's
grid (t = T i / N), the teacher takes two deterministic DDIM steps t -> t - T/2N -> t - T/N
(its x0 clipped where the sampler clips it), and the student learns the x~ from which one DDIM
step lands where the teacher's two did:

  x~ = (z'' - (sigma'' / sigma_t) z_t) / (alpha'' - (sigma'' / sigma_t) alpha_t),

with the loss ``|x^ - x~|^2 / sigma_t^2`` (the paper's "SNR + 1" weighting; for a v model it
is the squared error of v). Every ``distill.steps_per_round`` steps the student's EMA
weights become the teacher and N halves, from ``distill.teacher_steps / 2`` down to
``distill.student_steps``. The sampler then runs the student with DDIM in that many steps
(``sample.distilled``).

Why this method: it distils into exactly our sampler (DDIM on a uniform grid, x0 clipped,
v prediction), needs no extra network or discriminator, and every round is an ordinary,
resumable training run of the same UNet: the teacher's weights ride in the train state, so
a preempted run resumes mid-round. Consistency distillation would need a second
parametrisation and an ODE solver inside the loss for a single-step model; two steps per
stage are within the budget of 4 evaluations per window without it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import optax

from eye2eye_jax import diffusion
from eye2eye_jax.models import networks


def enabled(config: ml_collections.ConfigDict) -> bool:
  """Whether ``config`` trains a distilled student (``distill.teacher_steps`` > 0)."""
  return int(config.distill.teacher_steps) > 0


def rounds(config: ml_collections.ConfigDict) -> int:
  """How many halvings take ``distill.teacher_steps`` to ``distill.student_steps``."""
  return round(math.log2(config.distill.teacher_steps / config.distill.student_steps))


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the setting a distillation run cannot have."""
  d, t = config.distill, config.train
  teacher, student = int(d.teacher_steps), int(d.student_steps)
  if student < 1 or teacher <= student or teacher != student * 2**rounds(config):
    raise ValueError(f'distill.teacher_steps={teacher} must be distill.student_steps='
                     f'{student} times a power of 2 (each round halves the steps)')
  if not t.init_checkpoint:
    raise ValueError('distillation starts from its teacher: set train.init_checkpoint to the '
                     'trained model to distil')
  if config.diffusion.prediction not in ('v', 'flow'):
    raise ValueError("distillation needs a model that predicts v or a flow velocity "
                     "(diffusion.prediction='v' or 'flow'): an eps model's x0 estimate is "
                     'unstable at the start of sampling, where the student must be accurate '
                     '(Salimans & Ho 2022, section 4)')
  if not 0 < d.t_start <= 1:
    raise ValueError(f'distill.t_start must be in (0, 1], got {d.t_start}')
  if int(t.num_steps) != rounds(config) * int(d.steps_per_round):
    raise ValueError(f'train.num_steps={t.num_steps}: a distillation run is {rounds(config)} '
                     f'rounds of distill.steps_per_round={d.steps_per_round} steps, so '
                     f'{rounds(config) * int(d.steps_per_round)}')
  if t.grad_accum_steps != 1 or t.condition_dropout or t.caption_dropout:
    raise ValueError('distillation takes whole batches with their conditions: '
                     'train.grad_accum_steps must be 1 and the dropouts 0')


def student_steps_at(config: ml_collections.ConfigDict, step: jax.Array) -> jax.Array:
  """The student's number of steps in the round of (0-based) train step ``step``."""
  round_index = jnp.minimum(step // int(config.distill.steps_per_round), rounds(config) - 1)
  return (int(config.distill.teacher_steps) // 2) // (2**round_index)


def _per_example(values: jax.Array, like: jax.Array) -> jax.Array:
  return values.reshape(values.shape + (1,) * (like.ndim - values.ndim))


def student_target(config: ml_collections.ConfigDict, teacher, z: jax.Array, t: jax.Array,
                   middle: jax.Array, end: jax.Array) -> jax.Array:
  """x~ (B, ...): the x0 estimate from which one DDIM step of z from t to ``end`` lands
  where the ``teacher``'s (a denoiser's) two land, through ``middle`` (times (B,))."""
  d = config.diffusion

  def clipped_x0(z, t):  # as the sampler clips it (pixels; latents are not)
    x0 = diffusion.to_x0_eps(d.prediction, d.schedule, z, t, teacher(z, t))[0]
    return jnp.clip(x0, -1.0, 1.0) if d.clip_x0 else x0

  z_middle = diffusion.ddim_step(d.schedule, clipped_x0(z, t), z, t, middle)
  z_end = diffusion.ddim_step(d.schedule, clipped_x0(z_middle, middle), z_middle, middle, end)
  alpha_t, sigma_t = (_per_example(a, z) for a in diffusion.alpha_sigma(d.schedule, t))
  alpha_e, sigma_e = (_per_example(a, z) for a in diffusion.alpha_sigma(d.schedule, end))
  ratio = sigma_e / sigma_t  # 0 at the last step (end = 0): x~ is the teacher's x0 there
  return (z_end - ratio * z) / (alpha_e - ratio * alpha_t)


def distillation_loss(config: ml_collections.ConfigDict, graphdef, params, teacher_params,
                      batch: dict, rng: jax.Array, step: jax.Array) -> jax.Array:
  """The student's loss on one batch at train step ``step`` (which fixes the round)."""
  d = config.diffusion
  target, condition = networks.encode_videos(config, params, batch['left'], batch['right'])
  model = lambda weights: networks.make_denoiser(config, graphdef, weights, condition,
                                                 batch.get('text'), batch.get('text_mask'),
                                                 None, batch.get('strength'))
  n = student_steps_at(config, step)
  interval = diffusion.noise_level_time(d.schedule, float(config.distill.t_start))
  i_rng, eps_rng = jax.random.split(rng)
  i = jax.random.randint(i_rng, (target.shape[0],), 1, n + 1).astype(jnp.float32)
  t, middle, end = (interval * (i - k) / n for k in (0.0, 0.5, 1.0))
  eps = jax.random.normal(eps_rng, target.shape, target.dtype)
  z = diffusion.add_noise(d.schedule, target, eps, t)
  x_target = jax.lax.stop_gradient(
      student_target(config, model(teacher_params), z, t, middle, end))
  x_student = diffusion.to_x0_eps(d.prediction, d.schedule, z, t, model(params)(z, t))[0]
  _, sigma = diffusion.alpha_sigma(d.schedule, t)
  return jnp.mean((x_student.astype(jnp.float32) - x_target)**2
                  / _per_example(sigma, target)**2)


def make_train_step(config: ml_collections.ConfigDict, optimizer: optax.GradientTransformation):
  """The distillation step ``(state, batch) -> (state, metrics)``, not yet jitted
  (``train_state.make_train_step`` compiles it like the ordinary step);
  ``state['teacher_params']`` becomes the student's EMA weights at each new round."""
  graphdef = networks.graphdef(config)
  decay = config.train.ema_decay
  base_rng = jax.random.PRNGKey(config.seed)
  per_round = int(config.distill.steps_per_round)

  def train_step(state, batch):
    step = state['step']
    new_round = jnp.logical_and(step > 0, step % per_round == 0)
    teacher = jax.lax.cond(new_round, lambda: state['ema_params'],
                           lambda: state['teacher_params'])
    loss_fn = lambda p: distillation_loss(config, graphdef, p, teacher, batch,
                                          jax.random.fold_in(base_rng, step), step)
    loss, grads = jax.value_and_grad(loss_fn)(state['params'])
    updates, opt_state = optimizer.update(grads, state['opt_state'], state['params'])
    params = optax.apply_updates(state['params'], updates)
    ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state['ema_params'], params)
    new_state = {'step': step + 1, 'params': params, 'opt_state': opt_state,
                 'ema_params': ema, 'teacher_params': teacher}
    return new_state, {'loss': loss, 'grad_norm': optax.tree.norm(grads),
                       'student_steps': student_steps_at(config, step).astype(jnp.float32)}

  return train_step
