"""How much of the parameters and optimizer state does one device hold under FSDP?

  python benchmarks/fsdp_memory.py [--config=configs/demo.py] [--num_devices=8]

Places the train state of a config (the layout the trainer gives it) on one device and on
an FSDP mesh ``(1, N, 1)``, and prints the bytes of parameters + optimizer state held by the
fullest device under FSDP over those on one device (ideal: 1/N; norms, biases and anything
that does not divide by N stay whole). With several accelerators it uses them; otherwise it
reruns itself with N simulated CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

import jax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from benchmarks import common  # noqa: E402
from eye2eye_jax.common import runtime, sharding  # noqa: E402
from eye2eye_jax.training import train_state  # noqa: E402

FIGURES = {
    'fsdp_memory_per_device': 'params + optimizer bytes on the fullest device under FSDP '
                              'over N devices, over the bytes on one device (ideal 1/N)',
}
_RESULT = 'RESULT '


def _state_bytes(config, state, devices, mesh_shape) -> int:
  """Bytes of params + optimizer state on the fullest device, laid out on a mesh."""
  config.mesh.shape = mesh_shape
  mesh = sharding.create_mesh(config, devices)
  placed = jax.device_put(state, sharding.state_shardings(state, mesh, config.mesh.rules))
  return sharding.bytes_per_device({'params': placed['params'],
                                    'opt_state': placed['opt_state']})


def measure_here(config: str, devices=None) -> dict:
  """The ratio on ``devices`` (default: all of this process's)."""
  devices = list(devices or jax.devices())
  if len(devices) < 2:
    raise ValueError(f'FSDP needs >= 2 devices, this process has {len(devices)}')
  cfg = common.load_config(config)
  state = train_state.init_train_state(cfg)
  single = _state_bytes(cfg, state, devices[:1], (1, 1, 1))
  fsdp = _state_bytes(cfg, state, devices, (1, len(devices), 1))
  return {
      'figures': {'fsdp_memory_per_device': fsdp / single},
      'details': {'config': config, 'num_devices': len(devices),
                  'device_kind': devices[0].device_kind, 'one_device_bytes': single,
                  'fsdp_bytes_per_device': fsdp, 'ideal': 1 / len(devices)},
  }


def measure(config: str = 'configs/demo.py', num_devices: int = 8) -> dict:
  """On this process's accelerators if it has several, else on ``num_devices`` simulated
  CPU devices in a subprocess."""
  devices = jax.devices()
  if len(devices) > 1:
    return measure_here(config, devices)
  flags = os.environ.get('XLA_FLAGS', '')
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS=f'{flags} --xla_force_host_platform_device_count={num_devices}'.strip())
  command = [sys.executable, str(pathlib.Path(__file__).resolve()), '--worker',
             f'--config={config}']
  process = subprocess.run(command, env=env, capture_output=True, text=True, cwd=common.REPO)
  lines = [line for line in process.stdout.splitlines() if line.startswith(_RESULT)]
  if process.returncode or not lines:
    raise RuntimeError(f'the FSDP worker failed (exit {process.returncode}): '
                       f'{process.stderr[-2000:]}')
  result = json.loads(lines[-1][len(_RESULT):])
  result['details']['simulated_cpu_devices'] = True
  return result


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='configs/demo.py')
  parser.add_argument('--num_devices', type=int, default=8,
                      help='Simulated CPU devices when there are not several accelerators.')
  parser.add_argument('--worker', action='store_true',
                      help='Measure on this process\'s devices and print one JSON line.')
  args = parser.parse_args(argv)
  runtime.enable_compilation_cache()
  if args.worker:
    print(_RESULT + json.dumps(measure_here(args.config)))
    return
  result = measure(args.config, args.num_devices)
  d = result['details']
  print(f'{d["num_devices"]} x {d["device_kind"]}: {d["fsdp_bytes_per_device"] / 1e6:.2f} MB '
        f'per device under FSDP vs {d["one_device_bytes"] / 1e6:.2f} MB on one device = '
        f'{result["figures"]["fsdp_memory_per_device"]:.3f} (ideal {d["ideal"]:.3f})')


if __name__ == '__main__':
  main()
