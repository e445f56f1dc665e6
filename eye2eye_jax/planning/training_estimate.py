"""Training on a topology: bytes per device, time per step and what would fit instead.

Parameters, optimizer state and EMA count their shards' bytes under ``config.mesh``'s rules on
an abstract mesh of the topology's device count; gradients count like the parameter shards;
activations come from ``compiled_programs.activation_bytes``. Time per step is the step's
FLOPs per device as the trainer counts them (``step_figures.flops_per_device``) at ``mfu`` of
the chip's peak; ring collectives are estimated beside it.
"""

from __future__ import annotations

import math

import ml_collections

from eye2eye_jax.common import sharding
from eye2eye_jax.models import unet
from eye2eye_jax.planning import accelerators, compiled_programs
from eye2eye_jax.training import step_figures


FSDP_SHAPE = (1, -1, 1)
_REMAT_ORDER = ('none', 'dots', 'full')  # less memory, more recomputation, left to right


def collective_bytes(param_bytes: float, param_bytes_per_device: float,
                     num_devices: int) -> float:
  """Bytes each device moves per step in ring collectives: the parameters it does not hold,
  gathered for the forward and the backward pass, their gradients reduce-scattered, and an
  all-reduce of its gradient shard over the devices replicating it."""
  missing = param_bytes - param_bytes_per_device
  replicas = max(1.0, num_devices * param_bytes_per_device / param_bytes)
  return 3 * missing + 2 * (replicas - 1) / replicas * param_bytes_per_device


def estimate_training(config: ml_collections.ConfigDict, topology: accelerators.Topology,
                      mfu: float) -> dict:
  """Memory per device, FLOPs and time of ``config``'s training on ``topology``.

  The FLOPs per device are the trainer's own figure (``step_figures.flops_per_device``).
  Raises ValueError naming the field when the mesh or the batch does not fit.
  """
  unet.validate_model_config(config.model)
  d = config.data
  unet.check_video_shape(config.model, d.num_frames, d.resolution, d.resolution)
  mesh = sharding.abstract_mesh(config, topology.num_devices)
  per_device = sharding.per_device_batch(config, mesh)
  state = compiled_programs.abstract_train_state(config)
  shardings = sharding.state_shardings(state, mesh, config.mesh.rules)
  held = {k: sharding.planned_bytes_per_device(state[k], shardings[k])
          for k in ('params', 'opt_state', 'ema_params')}
  micro_batch = per_device // config.train.grad_accum_steps  # activations held at once
  activations = compiled_programs.activation_bytes(config, micro_batch)
  memory = {'parameters': held['params'], 'optimizer': held['opt_state'],
            'ema': held['ema_params'], 'gradients': held['params'],
            'activations': activations['saved'],
            'recomputed_block': activations['recomputed_block'],
            'batch': compiled_programs.tree_bytes(
                compiled_programs.batch_struct(config, per_device))}
  total = sum(memory.values())
  hbm = topology.chip.hbm_bytes
  largest = max(memory, key=memory.get)
  step = compiled_programs.train_step_figures(config, per_device)
  memory.update(total=total, hbm=hbm, fits=total <= hbm,
                overflow=None if total <= hbm else largest,
                xla_cpu_temp=step['temp_bytes'])

  global_batch = compiled_programs.batch_struct(config, d.batch_size)
  flops = step_figures.flops_per_device(config, state, global_batch, topology.num_devices)
  whole = flops * topology.num_devices
  peak = topology.chip.peak_flops(config.model.dtype)
  compute_s = flops / (peak * mfu)
  param_bytes = compiled_programs.tree_bytes(state['params'])
  moved = collective_bytes(param_bytes, held['params'], topology.num_devices)
  collective_s = moved / topology.collective_bandwidth
  step_s = max(compute_s, collective_s)
  total_s = step_s * config.train.num_steps
  return {
      'mesh': dict(mesh.shape), 'mesh_shape': list(config.mesh.shape),
      'remat': config.model.remat, 'batch_size': d.batch_size,
      'per_device_batch': per_device, 'grad_accum_steps': config.train.grad_accum_steps,
      'memory': memory,
      'flops': {'train_step_global': whole, 'train_step_per_device': flops},
      'time': {'peak_flops': peak, 'mfu': mfu, 'compute_s': compute_s,
               'collective_bytes': moved, 'collective_s': collective_s, 'step_s': step_s,
               'num_steps': config.train.num_steps, 'total_s': total_s,
               'chip_hours': total_s * topology.num_devices / 3600},
  }


def _with(config: ml_collections.ConfigDict, mesh_shape, remat: str):
  candidate = ml_collections.ConfigDict(config.to_dict())
  candidate.mesh.shape = tuple(mesh_shape)
  candidate.model.remat = remat
  return candidate


def candidate_settings(config: ml_collections.ConfigDict) -> list[tuple[tuple, str]]:
  """(mesh shape, remat policy) pairs that hold less per device than the config's: FSDP
  over each slice's devices and the remat policies that keep less, alone and together."""
  shape, remat = tuple(config.mesh.shape), config.model.remat
  remats = _REMAT_ORDER[_REMAT_ORDER.index(remat):]
  shapes = [shape] + ([FSDP_SHAPE] if shape != FSDP_SHAPE else [])
  return [(s, r) for s in shapes for r in remats if (s, r) != (shape, remat)]


def suggest(config: ml_collections.ConfigDict, topology: accelerators.Topology,
            mfu: float) -> list[dict]:
  """The same estimate under each candidate setting; the fastest that fits is first."""
  results = []
  for shape, remat in candidate_settings(config):
    flags = f"--config.mesh.shape='{tuple(shape)}' --config.model.remat={remat}"
    try:
      estimate = estimate_training(_with(config, shape, remat), topology, mfu)
    except ValueError as error:
      results.append({'flags': flags, 'error': str(error), 'fits': False})
      continue
    memory = estimate['memory']
    activations = memory['activations'] + memory['recomputed_block']
    per_clip = activations / estimate['per_device_batch']  # activations grow with the batch
    results.append({'flags': flags, 'mesh_shape': list(shape), 'remat': remat,
                    'fits': memory['fits'], 'total_bytes': memory['total'],
                    'compiled_programs.activation_bytes': activations,
                    'max_per_device_batch': int((memory['hbm'] - memory['total'] + activations)
                                                // per_clip) if per_clip else None,
                    'step_s': estimate['time']['step_s'],
                    'total_s': estimate['time']['total_s']})
  # Fitting first, then faster; at equal speed, keeping the mesh, then holding less.
  return sorted(results, key=lambda r: (not r['fits'], r.get('step_s', math.inf),
                                        r.get('mesh_shape') != list(config.mesh.shape),
                                        r.get('total_bytes', math.inf)))
