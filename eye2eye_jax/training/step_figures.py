"""What the training log reports each ``train.log_every`` steps, and how it is measured.

Figures per logged step: the loss (mean since the last log), grad_norm, learning_rate,
seconds_per_step, steps_per_second, clips_per_second, tflops_per_device (the step's
FLOPs per device, ``flops_per_device``, over the measured step time), mfu (that over the
device's peak FLOP/s, when the trainer knows it) and device_memory_gib /
device_peak_memory_gib (the largest of this host's devices, where the backend reports
memory; CPUs do not).

Values are fetched one step late, the way large-scale trainers do it: step N's metrics are
read once step N+1 is queued on the device, so the host never leaves the device idle
waiting for a number to print. Step times count neither the compilation (done ahead of the
loop and logged once as compile_seconds) nor the time ``paused`` for evaluation, samples
and checkpoints.
"""

from __future__ import annotations

import contextlib
import time

import jax
import ml_collections
import numpy as np

from eye2eye_jax.training import train_state

_GIB = 2**30


def compiled_flops(compiled) -> float:
  """FLOPs of one call of a compiled program on one device, by XLA's cost analysis."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # older JAX: one dict per program
    cost = cost[0]
  flops = float((cost or {}).get('flops', 0.0))
  if not flops > 0:
    raise ValueError(f'XLA reported no FLOPs for the program ({cost})')
  return flops


def model_step_flops(config: ml_collections.ConfigDict, state, batch) -> float:
  """FLOPs of one whole train step at ``batch``'s (global) shape: XLA's count on the
  unsharded program as lowered (nothing compiled or allocated), with every micro-batch of
  ``train.grad_accum_steps`` counted (XLA counts a loop's body once)."""
  shapes = lambda tree: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
  state, batch = shapes(state), shapes(batch)
  flops = float(train_state.make_train_step(config).lower(state, batch).cost_analysis()['flops'])
  k = config.train.grad_accum_steps
  if k > 1:
    flops += (k - 1) * train_state.micro_batch_flops(config, state['params'], batch)
  return flops


def flops_per_device(config: ml_collections.ConfigDict, state, batch, num_devices: int
                     ) -> float:
  """The train step's FLOPs per device, as the trainer logs it (tflops_per_device, mfu) and
  the planner estimates it: ``model_step_flops`` at the global ``batch``, shared evenly over
  all ``num_devices`` of the mesh, whatever its axes (a device that repeats work another
  one does, e.g. across a tensor axis, does no more of the model's work)."""
  return model_step_flops(config, state, batch) / num_devices


def device_memory() -> dict[str, float]:
  """GiB in use and at peak on the fullest of this host's devices; {} where the backend
  keeps no account (CPU)."""
  stats = [d.memory_stats() for d in jax.local_devices()]
  if not all(stats):
    return {}
  return {'device_memory_gib': max(s.get('bytes_in_use', 0) for s in stats) / _GIB,
          'device_peak_memory_gib': max(s.get('peak_bytes_in_use', 0) for s in stats) / _GIB}


class StepLog:
  """Turns each step's metrics into the logged figures, one step late (module docstring).

  ``add(step, metrics)`` after each step is dispatched; ``flush()`` before work that needs
  the step finished (a checkpoint: the losses are checked for NaN first). A NaN or inf loss
  raises FloatingPointError naming the first bad step.
  """

  def __init__(self, config: ml_collections.ConfigDict, write, learning_rate,
               flops_per_step: float, peak_flops: float | None):
    self._config = config
    self._write = write  # (step, scalars) -> None
    self._learning_rate = learning_rate
    self._flops = flops_per_step
    self._peak = peak_flops
    self._unchecked = []  # (step, loss) not yet checked for NaN
    self._losses = []  # losses since the last logged step
    self._pending = None  # (step, metrics, losses) of a logged step not yet written
    self._last = None  # (time, step) of the last reading of the clock
    self._paused_s = 0.0

  def add(self, step: int, metrics: dict) -> None:
    """Counts a dispatched step; writes the previous logged step's figures if pending."""
    self._losses.append(metrics['loss'])
    self._unchecked.append((step, metrics['loss']))
    if self._last is None:  # the run's first step: the clock starts when it is done
      jax.block_until_ready(metrics['loss'])
      self._last = (time.perf_counter(), step)
    self._write_pending()
    t = self._config.train
    if step % t.log_every == 0 or step == t.num_steps:
      self._pending, self._losses = (step, metrics, self._losses), []

  def flush(self) -> None:
    """Writes any pending figures and checks every loss so far (waits for the device)."""
    self._write_pending()
    self._check(self._unchecked)

  @contextlib.contextmanager
  def paused(self, metrics: dict):
    """Time in this block (after ``metrics``' step is done) is not step time."""
    jax.block_until_ready(metrics['loss'])
    start = time.perf_counter()
    try:
      yield
    finally:
      self._paused_s += time.perf_counter() - start

  def _write_pending(self) -> None:
    if self._pending is None:
      return
    step, metrics, losses = self._pending
    self._pending = None
    losses = np.asarray(jax.device_get(losses), np.float64)
    self._check([(s, l) for s, l in self._unchecked if s <= step])
    now, (then, since) = time.perf_counter(), self._last
    seconds = (now - then - self._paused_s) / (step - since) if step > since else float('nan')
    self._last, self._paused_s = (now, step), 0.0
    scalars = {'loss': float(losses.mean()), 'grad_norm': float(metrics['grad_norm']),
               'learning_rate': float(self._learning_rate(step - 1)),
               'seconds_per_step': seconds, 'steps_per_second': 1 / seconds,
               'clips_per_second': self._config.data.batch_size / seconds,
               'tflops_per_device': self._flops / seconds / 1e12, **device_memory()}
    scalars |= {name: float(value) for name, value in metrics.items()  # the step's own
                if name not in ('loss', 'grad_norm')}  # (distillation: student_steps)
    if self._peak:
      scalars['mfu'] = self._flops / seconds / self._peak
    self._write(step, scalars)

  def _check(self, losses: list) -> None:
    """Raises FloatingPointError at the first NaN or inf among (step, loss) pairs."""
    if not losses:
      return
    values = np.asarray(jax.device_get([l for _, l in losses]), np.float64).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(values))
    checked = {s for s, _ in losses}
    self._unchecked = [(s, l) for s, l in self._unchecked if s not in checked]
    if bad.size:
      raise FloatingPointError(f'training diverged: the loss is {values[bad[0]]} at step '
                               f'{losses[bad[0]][0]}')
