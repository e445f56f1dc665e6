"""One prepared check of a real accelerator: the paper train step and a paper sampling window.

  python benchmarks/accelerator_check.py train [--size=paper|tiny] [--steps=30] \
      [--per_device_batch=1] [--dtype=bfloat16] [--attention=xla|cudnn|pallas_flash] \
      [--output=FILE.json]
  python benchmarks/accelerator_check.py sample [--size=paper|tiny] [--steps=4] \
      [--dtype=bfloat16] [--tile=256] [--attention=...] [--output=FILE.json]

``train`` compiles the trainer's sharded train step of ``configs/base_paper.py`` (data
parallel over every local device, ``--per_device_batch`` clips each, in ``--dtype``) and runs
``--steps`` steps on random batches of the training shape (no dataset needed on a fresh
machine); it reports the median step time after two warm-up steps, the compiled step's
FLOPs per device, the MFU against the chip's peak (``planning/accelerators``), the peak
device memory, and the plan's estimate of the same for this many chips of this kind.
``sample`` runs ``configs/refiner_paper.py``'s sampling stage on one 512x512, 80-frame
window (random weights; ``--steps`` DDIM steps, ``--tile`` px tiles, 0: whole frames) and
reports the compile time, seconds per denoising step and the peak device memory.
``--size=tiny`` runs both on ``configs/tiny.py`` at toy shapes (the suite checks it on CPU).
``benchmarks/accelerator_check.sh`` runs both, each in its own process so that each peak
memory is its own.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from benchmarks import common, train_step_flops  # noqa: E402
from eye2eye_jax import diffusion  # noqa: E402
from eye2eye_jax.common import atomic_files, runtime, sharding  # noqa: E402
from eye2eye_jax.models import unet  # noqa: E402
from eye2eye_jax.planning import accelerators, training_estimate  # noqa: E402
from eye2eye_jax.sampling import stereo_sampler, window_blending  # noqa: E402
from eye2eye_jax.training import step_figures, train_state  # noqa: E402

SIZES = {  # size -> (train config, sampling config, sampled video (width, height, frames))
    'paper': ('configs/base_paper.py', 'configs/refiner_paper.py', (512, 512, 80)),
    'tiny': ('configs/tiny.py', 'configs/tiny.py', (32, 32, 8)),
}


def peak_device_bytes() -> int | None:
  """The largest peak of bytes in use over this process's devices (None where the runtime
  does not keep the figure, as on CPU)."""
  peaks = [(d.memory_stats() or {}).get('peak_bytes_in_use') for d in jax.local_devices()]
  peaks = [p for p in peaks if p is not None]
  return max(peaks) if peaks else None


def _chip():
  device = jax.local_devices()[0]
  return device.device_kind, accelerators.chip_of(device.device_kind)


def check_training(config_path: str, steps: int, per_device_batch: int, dtype: str,
                   attention_kernel: str = 'xla') -> dict:
  """The sharded train step on every local device: time, FLOPs, MFU, memory, and the plan."""
  config = common.load_config(config_path)
  devices = jax.local_devices()
  config.data.batch_size = per_device_batch * len(devices)
  config.model.update(dtype=dtype, attention_kernel=attention_kernel)
  mesh = sharding.create_mesh(config, devices)
  rules = config.mesh.rules
  abstract = jax.eval_shape(lambda: train_state.init_train_state(config))
  state_shardings = sharding.state_shardings(abstract, mesh, rules)
  batch_shardings = sharding.batch_shardings(mesh, rules, {'right': 5, 'left': 5})
  state = train_state.init_sharded_train_state(config, state_shardings)
  batch = jax.device_put(train_step_flops.random_batch(config), batch_shardings)
  step = train_state.make_train_step(config, state_shardings, batch_shardings)
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  flops = step_figures.flops_per_device(config, state, batch, len(devices))
  times, losses = [], []
  for _ in range(steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batch)
    losses.append(float(jax.device_get(metrics['loss'])))
    times.append(time.perf_counter() - start)
  step_s = statistics.median(times[2:] or times)
  kind, chip = _chip()
  result = {'config': config_path, 'device_kind': kind, 'devices': len(devices),
            'dtype': dtype, 'attention_kernel': attention_kernel, 'global_batch': config.data.batch_size, 'steps': steps,
            'compile_s': compile_s, 'step_s': step_s, 'flops_per_device': flops,
            'achieved_flops_per_device': flops / step_s, 'mfu': None,
            'peak_device_bytes': peak_device_bytes(), 'first_loss': losses[0],
            'last_loss': losses[-1], 'plan': None}
  if chip is not None:
    result['mfu'] = flops / step_s / chip.peak_flops(dtype)
    topology = accelerators.Topology(f'{len(devices)}x{kind}', chip, len(devices))
    plan = training_estimate.estimate_training(config, topology, mfu=result['mfu'])
    result['plan'] = {'memory_bytes': plan['memory']['total'],
                      'flops_per_device': plan['flops']['train_step_per_device'],
                      'step_s_at_measured_mfu': plan['time']['step_s']}
  return result


def check_sampling(config_path: str, video: tuple[int, int, int], steps: int, dtype: str,
                   tile: int, attention_kernel: str = 'xla') -> dict:
  """One sampling stage over ``video`` (its windows and, with ``tile``, tiles) on one device."""
  config = common.load_config(config_path)
  config.model.update(dtype=dtype, attention_kernel=attention_kernel)
  width, height, frames = video
  stage = stereo_sampler.Stage(config, unet.init_params(config, 0))
  starts = window_blending.stage_windows(frames, stage.num_frames, config.sample.window_overlap)
  tiles = window_blending.refiner_tiles(height, width, tile, config.sample.refiner_tile_overlap,
                                        stage.spatial_factor)
  condition = jnp.zeros((frames, height, width, config.model.condition_channels))
  x_start = jax.random.normal(jax.random.PRNGKey(0), (1, frames, height, width, 3))
  t_start = diffusion.noise_level_time(config.diffusion.schedule, config.sample.refiner_t_start)

  def run():
    return stereo_sampler.run_stage(
        stage.params, condition, x_start, jax.random.PRNGKey(1), None, None, config=stage.config,
        starts=starts, num_steps=steps, eta=0.0, guidance_scale=0.0,
        window_batch=int(config.sample.window_batch), t_start=t_start,
        text_guidance_scale=0.0, tiles=tiles)

  start = time.perf_counter()
  out = jax.block_until_ready(run())  # compiles, then runs
  first_s = time.perf_counter() - start
  seconds = common.median_seconds(run, repeats=2, warmup=0)
  kind, _ = _chip()
  return {'config': config_path, 'device_kind': kind, 'dtype': dtype,
          'attention_kernel': attention_kernel, 'video': list(video),
          'windows': len(starts), 'tiles': None if tiles is None else
          len(tiles[0]) * len(tiles[1]), 'steps': steps, 'first_call_s': first_s,
          'seconds': seconds, 'seconds_per_step': seconds / steps,
          'finite': bool(np.isfinite(np.asarray(out)).all()),
          'peak_device_bytes': peak_device_bytes()}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('check', choices=('train', 'sample'))
  parser.add_argument('--size', choices=sorted(SIZES), default='paper')
  parser.add_argument('--steps', type=int, default=None,
                      help='train steps (default 30) or denoising steps (default 4)')
  parser.add_argument('--per_device_batch', type=int, default=1)
  parser.add_argument('--dtype', choices=('bfloat16', 'float32'), default='bfloat16')
  parser.add_argument('--tile', type=int, default=256, help='sampling tile px; 0: none')
  parser.add_argument('--attention', choices=('xla', 'cudnn', 'pallas_flash'), default='xla',
                      help='model.attention_kernel')
  parser.add_argument('--output', help='also write the figures here as JSON')
  args = parser.parse_args(argv)
  runtime.enable_compilation_cache()
  train_config, sample_config, video = SIZES[args.size]
  if args.check == 'train':
    result = check_training(train_config, args.steps or 30, args.per_device_batch, args.dtype,
                            args.attention)
  else:
    result = check_sampling(sample_config, video, args.steps or 4, args.dtype, args.tile,
                            args.attention)
  print(json.dumps(result, indent=1))
  if args.output:
    atomic_files.write_text(args.output, json.dumps(result, indent=1) + '\n')


if __name__ == '__main__':
  main()
