"""Sampling on one device: FLOPs, time and memory of a config's sampling stage for a video."""

from __future__ import annotations

import ml_collections

from eye2eye_jax.planning import accelerators, compiled_programs
from eye2eye_jax.sampling import stereo_sampler, window_blending


def stage_shape(config: ml_collections.ConfigDict, video: tuple[int, int, int]) -> dict:
  """How this config's sampling stage meets a video of ``video`` = (width, height, frames):
  a refiner (trained on crops) samples the whole frame, a base model at
  ``sample.base_resolution``; the grid, the frames and the window starts over them."""
  width, height, frames = video
  s, d = config.sample, config.data
  factor = 2**(len(config.model.channel_mult) - 1)
  refiner = d.view == 'crop'
  short_side = min(height, width) if refiner else (s.base_resolution or d.resolution)
  total = max(frames, d.num_frames)
  return {'refiner': refiner, 'factor': factor, 'frames': total,
          'grid': stereo_sampler.base_grid(height, width, short_side, factor),
          'starts': window_blending.stage_windows(total, d.num_frames, s.window_overlap),
          'steps': s.refiner_num_steps if refiner else s.base_num_steps}


def estimate_sampling(config: ml_collections.ConfigDict, topology: accelerators.Topology,
                      mfu: float, video: tuple[int, int, int]) -> dict:
  """FLOPs, time and memory of this config's sampling stage on one device, for a video of
  ``video`` = (width, height, frames at the model's frame rate).

  A config that trains on crops (``data.view='crop'``) is a refiner: it samples the whole
  frame (rounded to the UNet's factor) for ``sample.refiner_num_steps`` steps; otherwise it
  is a base model sampling at ``sample.base_resolution`` (short side) for
  ``sample.base_num_steps`` steps. Each step runs the UNet on every window (twice with
  guidance); the per-frame blending is not counted. Memory: XLA's memory analysis of the
  compiled forward (weights, inputs and temp bytes; no backward pass, so no remat question).
  """
  s, d = config.sample, config.data
  shape = stage_shape(config, video)
  refiner, grid, steps, windows = (shape['refiner'], shape['grid'], shape['steps'],
                                   shape['starts'])
  per_call = window_blending.group_size(len(windows), int(s.window_batch), None)
  forward = compiled_programs.forward_figures(config, (per_call, d.num_frames) + grid)
  passes = 2 if s.guidance_scale else 1
  window_flops = forward['flops'] / per_call
  step_flops = window_flops * len(windows) * passes
  peak = topology.chip.peak_flops(config.model.dtype)
  memory = forward['argument_bytes'] + forward['temp_bytes']  # weights, inputs, workspace
  return {
      'stage': 'refiner' if refiner else 'base', 'video': list(video), 'grid': list(grid),
      'window_frames': d.num_frames, 'windows': len(windows), 'windows_per_call': per_call,
      'guidance_passes': passes, 'steps': steps,
      'flops_per_window_forward': window_flops, 'flops_per_step': step_flops,
      'flops_per_video': step_flops * steps,
      'seconds_per_video': step_flops * steps / (peak * mfu),
      'memory_bytes': memory, 'fits': memory <= topology.chip.hbm_bytes,
  }
