"""How much faster is sampling on every device than on one?

  python benchmarks/multi_device_sampling.py [--config=configs/demo.py] [--devices=8] \
      [--frames=32] [--size=64]

Converts one random video with the config's UNet (random weights) as base and refiner,
once with ``sample.mesh_shape=(1, 1)`` (one device) and once spread over ``--devices``
devices (``(-1, 1)``: the windows of every step over the devices), each timed after a
compiling call, and prints the throughput ratio. On a CPU the devices are simulated
(``--xla_force_host_platform_device_count``, in a subprocess: the device count is fixed
when JAX starts) and share its cores, so the figure there is the cost or gain of the
partitioned program on this machine; on an accelerator host each device is a chip.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
FIGURES = {
    'multi_device_sampling_speedup': 'conversion time on one device over the time with the '
                                     'windows spread over every device (throughput ratio)',
}


def _time_conversions(config: str, frames: int, size: int, base_num_steps: int,
                      refiner_num_steps: int) -> dict:
  """Runs where the devices are: seconds per conversion on one device and on all."""
  import jax
  import numpy as np

  sys.path.insert(0, str(REPO))
  from benchmarks import common
  from eye2eye_jax.common import runtime
  from eye2eye_jax.models import unet
  from eye2eye_jax.sampling import stereo_sampler

  runtime.enable_compilation_cache()
  cfg = common.load_config(config)
  stage = stereo_sampler.Stage(cfg, unet.init_params(cfg, 0))
  video = np.random.default_rng(0).integers(0, 255, (frames, size, size, 3), np.uint8)
  seconds = {}
  for name, shape in (('one', (1, 1)), ('all', (-1, 1))):
    sample = cfg.sample.copy_and_resolve_references()
    sample.update(mesh_shape=shape, base_num_steps=base_num_steps or sample.base_num_steps,
                  refiner_num_steps=refiner_num_steps or sample.refiner_num_steps)
    sampler = stereo_sampler.StereoSampler(stage, stage, sample)
    sampler.convert(video)  # compiles
    start = time.perf_counter()
    sampler.convert(video)
    seconds[name] = time.perf_counter() - start
  return {'devices': jax.local_device_count(), 'seconds_one_device': seconds['one'],
          'seconds_all_devices': seconds['all']}


def measure(config: str = 'configs/demo.py', devices: int = 8, frames: int = 32,
            size: int = 64, base_num_steps: int = 0, refiner_num_steps: int = 0) -> dict:
  """The throughput ratio, measured in a subprocess with ``devices`` devices (simulated on a
  CPU)."""
  env = dict(os.environ, PYTHONPATH=str(REPO))
  env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') +
                      f' --xla_force_host_platform_device_count={devices}').strip()
  arguments = json.dumps([config, frames, size, base_num_steps, refiner_num_steps])
  result = subprocess.run([sys.executable, __file__, '--worker', arguments],
                          capture_output=True, text=True, env=env, timeout=1800)
  if result.returncode != 0:
    raise RuntimeError(f'the {devices}-device worker failed: {result.stderr[-2000:]}')
  details = json.loads(result.stdout.strip().splitlines()[-1])
  return {'figures': {'multi_device_sampling_speedup':
                      details['seconds_one_device'] / details['seconds_all_devices']},
          'details': details | {'config': config, 'video_shape': [frames, size, size],
                                'base_num_steps': base_num_steps,
                                'refiner_num_steps': refiner_num_steps}}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='configs/demo.py')
  parser.add_argument('--devices', type=int, default=8)
  parser.add_argument('--frames', type=int, default=32)
  parser.add_argument('--size', type=int, default=64)
  parser.add_argument('--worker', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    print(json.dumps(_time_conversions(*json.loads(args.worker))))
    return
  result = measure(args.config, args.devices, args.frames, args.size)
  d = result['details']
  print(f"video {tuple(d['video_shape'])}: {d['seconds_one_device']:.2f} s on one device, "
        f"{d['seconds_all_devices']:.2f} s on {d['devices']}; throughput ratio "
        f"{result['figures']['multi_device_sampling_speedup']:.2f}")


if __name__ == '__main__':
  main()
