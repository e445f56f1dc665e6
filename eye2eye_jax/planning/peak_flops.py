"""The peak FLOP/s of one device: the denominator of the training log's MFU.

A chip in ``accelerators.CHIPS`` has its published peak for the model's dtype. Any other
device (a CPU) is measured: the FLOP/s of a large square matmul on it, XLA's FLOPs over the
median time of a few calls. ``benchmarks/train_step_flops.py`` reports the train step
against the same measurement.
"""

from __future__ import annotations

import functools
import statistics
import time

import jax
import jax.numpy as jnp

from eye2eye_jax.planning import accelerators
from eye2eye_jax.training import step_figures


def measured_matmul_flops(device: jax.Device | None = None, size: int = 1024,
                          dtype: str = 'float32', repeats: int = 5) -> float:
  """FLOP/s of a (size x size) @ (size x size) matmul in ``dtype`` on ``device`` (default:
  the first), median over ``repeats`` calls after a warm-up call; measured once per process
  for each set of arguments."""
  return _measure(device or jax.devices()[0], size, dtype, repeats)


@functools.cache
def _measure(device: jax.Device, size: int, dtype: str, repeats: int) -> float:
  a, b = jax.device_put(jax.random.normal(jax.random.PRNGKey(0), (2, size, size), dtype),
                        device)
  compiled = jax.jit(jnp.matmul).lower(a, b).compile()
  jax.block_until_ready(compiled(a, b))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(a, b))
    times.append(time.perf_counter() - start)
  return step_figures.compiled_flops(compiled) / statistics.median(times)


def peak_flops_per_device(device: jax.Device, dtype: str) -> tuple[float, str]:
  """(peak FLOP/s, where the figure comes from) for one device running ``dtype``."""
  chip = accelerators.chip_of(device.device_kind)
  if chip is not None:
    return chip.peak_flops(dtype), f'published peak of {chip.name} ({chip.source})'
  return (measured_matmul_flops(device, dtype=dtype),
          f'measured: a 1024x1024 {dtype} matmul on {device.device_kind}')
