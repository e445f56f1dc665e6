"""What the benchmarks share: timing compiled calls, XLA's FLOP counts, machine facts."""

from __future__ import annotations

import ast
import os
import pathlib
import platform
import statistics
import time

import jax
import jaxlib
import ml_collections

from eye2eye_jax import config_base

REPO = pathlib.Path(__file__).resolve().parent.parent


def load_config(path: str | pathlib.Path) -> ml_collections.ConfigDict:
  """A config file, relative to the repository root unless absolute."""
  path = pathlib.Path(path)
  return config_base.load_config_file(path if path.is_absolute() else REPO / path)


def parse_overrides(text: str) -> dict:
  """``'data.batch_size=16,model.remat=dots'`` as {'data.batch_size': 16, ...}: values read
  as Python literals, else kept as strings."""
  overrides = {}
  for item in filter(None, text.split(',')):
    key, sep, value = item.partition('=')
    if not sep:
      raise ValueError(f'--set {item!r}: expected KEY=VALUE')
    try:
      overrides[key.strip()] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      overrides[key.strip()] = value
  return overrides


def median_seconds(call, repeats: int, warmup: int = 1) -> float:
  """Median wall seconds of ``call()`` (its result waited for on the device) over
  ``repeats`` calls, after ``warmup`` untimed calls (compilation, caches)."""
  if repeats < 1:
    raise ValueError(f'repeats must be >= 1, got {repeats}')
  for _ in range(warmup):
    jax.block_until_ready(call())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(call())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def machine_info() -> dict:
  """The machine and the JAX devices a run used."""
  devices = jax.devices()
  return {
      'cpu_count': os.cpu_count(),
      'platform': platform.platform(),
      'python': platform.python_version(),
      'jax': jax.__version__,
      'jaxlib': jaxlib.__version__,
      'backend': jax.default_backend(),
      'device_kind': devices[0].device_kind,
      'device_count': len(devices),
      'process_count': jax.process_count(),
  }
