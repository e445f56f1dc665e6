"""Ahead-of-time compiles for a real TPU topology, on any machine, by the TPU compiler itself.

libtpu (``pip install -e '.[tpu]'``) gives abstract TPU devices of a named topology
(``jax.experimental.topologies.get_topology_desc``): no chip is opened, but
``jax.jit(...).lower(...).compile()`` runs the real TPU compiler and reports its memory and
cost analyses. Compiled here: the train step exactly as the trainer builds it (state and batch
laid out by ``config.mesh`` and its rules over the topology's devices, state donated) and the
config's sampling stage (the whole jitted DDIM loop of ``stereo_sampler``, every window of a
video) on one chip. The figures are per device: arguments, outputs, temporaries, the bytes
outputs alias from donated arguments, and FLOPs.
"""

from __future__ import annotations

import math
import os
import re
import time

import jax
import jax.numpy as jnp
import ml_collections

from eye2eye_jax import diffusion
from eye2eye_jax.common import sharding
from eye2eye_jax.data import input_pipeline
from eye2eye_jax.planning import accelerators, compiled_programs, sampling_estimate
from eye2eye_jax.sampling import stereo_sampler, window_blending
from eye2eye_jax.training import train_state

# How the TPU compiler refuses a program too large for the chip, e.g. "the total memory
# required for HLO temporaries (141.48G) exceeds available HBM (95.74G)".
_TOO_BIG = re.compile(r'required for HLO temporaries \(([\d.]+)([KMGT])\) exceeds')
_UNITS = {'K': 2**10, 'M': 2**20, 'G': 2**30, 'T': 2**40}
LIBTPU_HINT = "pip install -e '.[tpu]' (libtpu, pinned to the version this jax pins)"
_TPU_CHIPS = {'TPU v4': 'v4', 'TPU v5p': 'v5p', 'TPU v5e': 'v5e'}


def topology_name(topology: accelerators.Topology) -> str:
  """libtpu's name of a planner topology: its chips as the most cube-like power-of-two grid
  (v4/v5p: three axes, v5e: two), e.g. v5p-64 (32 chips) -> ``v5p:4x4x2``."""
  generation = _TPU_CHIPS.get(topology.chip.name)
  if generation is None:
    raise ValueError(f'topology {topology.name}: the TPU compiler compiles for TPU slices '
                     '(v4-N, v5p-N, v5e-N); GPU figures need the GPU itself')
  chips = topology.num_devices
  if chips & (chips - 1):
    raise ValueError(f'topology {topology.name}: {chips} chips is not a power of two, which '
                     'TPU slices are')
  axes = [1] * (2 if generation == 'v5e' else 3)
  for _ in range(chips.bit_length() - 1):  # double the smallest axis, first one first
    axes[axes.index(min(axes))] *= 2
  return f'{generation}:' + 'x'.join(map(str, axes))


def abstract_tpu_devices(topology: accelerators.Topology) -> list:
  """The topology's devices (one per chip, megacore on v4 and v5p), compile-only.

  Raises ValueError when libtpu is missing or cannot make the topology.
  """
  name = topology_name(topology)
  try:
    import libtpu  # noqa: F401  (the TPU compiler; only its presence is checked here)
  except ImportError:
    raise ValueError(f'compiling for {topology.name} needs libtpu: {LIBTPU_HINT}') from None
  # libtpu looks for a TPU host at start-up; these say there is none to find. No chip is
  # opened, so several compiling processes may hold libtpu at once (its lockfile guards chips).
  os.environ.setdefault('TPU_ACCELERATOR_TYPE', f'{name.split(":")[0]}-8')
  os.environ.setdefault('TPU_WORKER_HOSTNAMES', 'localhost')
  os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')
  from jax.experimental import topologies
  options = {'chip_config_name': 'megacore'} if topology.chip.cores_per_device == 2 else {}
  grid = tuple(int(n) for n in name.split(':')[1].split('x'))
  if math.prod(grid) < 4:  # below libtpu's default host of 2x2 chips, the slice is the host
    options['chips_per_host_bounds'] = grid + (1,) * (3 - len(grid))
  try:
    description = topologies.get_topology_desc(topology_name=name, platform='tpu', **options)
  except Exception as error:  # libtpu raises JaxRuntimeError for shapes it does not know
    raise ValueError(f'topology {topology.name} ({name}): libtpu cannot make it '
                     f'({str(error).splitlines()[0]})') from error
  devices = list(description.devices)
  if len(devices) != topology.num_devices:
    raise ValueError(f'topology {topology.name}: libtpu made {len(devices)} devices of {name}, '
                     f'expected {topology.num_devices}')
  return devices


def compiled_figures(lowered, hbm_bytes: float) -> dict:
  """Compiles ``lowered`` for the TPU: bytes per device and FLOPs; ``total_bytes`` is what
  must be resident at once (arguments + outputs + temporaries, less outputs written into
  donated inputs); ``constant_bytes`` those of the constants embedded in the program.

  The TPU compiler refuses a program whose temporaries exceed the chip's HBM; the figure it
  names then stands for the temporaries (the rest unknown) and ``fits`` is False.
  """
  start = time.time()
  try:
    compiled = lowered.compile()
  except jax.errors.JaxRuntimeError as error:
    needed = _TOO_BIG.search(str(error))
    if needed is None:
      raise
    temp = float(needed.group(1)) * _UNITS[needed.group(2)]
    return {'argument_bytes': None, 'output_bytes': None, 'temp_bytes': int(temp),
            'alias_bytes': None, 'code_bytes': None, 'constant_bytes': None,
            'total_bytes': int(temp),
            'hbm_bytes': hbm_bytes, 'fits': False, 'headroom_bytes': hbm_bytes - temp,
            'flops': None, 'compile_s': time.time() - start,
            'refused': str(error).splitlines()[0]}
  memory = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  figures = {'argument_bytes': int(memory.argument_size_in_bytes),
             'output_bytes': int(memory.output_size_in_bytes),
             'temp_bytes': int(memory.temp_size_in_bytes),
             'alias_bytes': int(memory.alias_size_in_bytes),
             'code_bytes': int(memory.generated_code_size_in_bytes),
             'constant_bytes': compiled_programs.constant_bytes(compiled)}
  total = (figures['argument_bytes'] + figures['output_bytes'] + figures['temp_bytes']
           - figures['alias_bytes'])
  return figures | {'total_bytes': total, 'hbm_bytes': hbm_bytes, 'fits': total <= hbm_bytes,
                    'headroom_bytes': hbm_bytes - total, 'flops': float(cost.get('flops', 0)),
                    'compile_s': time.time() - start, 'refused': None}


def placed(tree, shardings):
  """ShapeDtypeStructs of ``tree`` laid out by ``shardings`` (what a lowering takes)."""
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), tree,
                      shardings)


def compile_train_step(config: ml_collections.ConfigDict, topology: accelerators.Topology
                       ) -> dict:
  """The trainer's sharded train step compiled for ``topology``: figures per device."""
  devices = abstract_tpu_devices(topology)
  mesh = sharding.create_mesh(config, devices)
  per_device = sharding.per_device_batch(config, mesh)  # raises if the batch does not split
  rules = config.mesh.rules
  abstract = compiled_programs.abstract_train_state(config)
  state_shardings = sharding.state_shardings(abstract, mesh, rules)
  batch_shardings = sharding.batch_shardings(mesh, rules, input_pipeline.batch_ndims(config))
  batch = placed(compiled_programs.batch_struct(config, config.data.batch_size),
                  batch_shardings)
  step = train_state.make_train_step(config, state_shardings, batch_shardings)
  lowered = step.lower(placed(abstract, state_shardings), batch)
  figures = compiled_figures(lowered, topology.chip.hbm_bytes)
  k = config.train.grad_accum_steps
  if k > 1 and figures['flops']:  # XLA counted the micro-batch loop's body once
    figures['flops'] += (k - 1) * train_state.micro_batch_flops(
        config, abstract['params'], batch) / len(devices)
  return {'program': 'train_step', 'topology': topology_name(topology),
          'mesh': dict(mesh.shape), 'per_device_batch': per_device,
          'grad_accum_steps': k, **figures}


def compile_sampling_stage(config: ml_collections.ConfigDict, topology: accelerators.Topology,
                           video: tuple[int, int, int], mesh_shape=(1, 1)) -> dict:
  """The config's sampling stage (``sampling_estimate``'s grid, windows and steps) compiled
  for ``topology``: the DDIM loop over every window of ``video``, on one chip or on a
  sampling mesh (``sample.mesh_shape`` = ``mesh_shape``: windows, rows) of its chips."""
  devices = abstract_tpu_devices(topology)
  s = config.sample.copy_and_resolve_references()
  s.mesh_shape = tuple(mesh_shape)
  mesh = window_blending.sampling_mesh(s, devices)
  shape = sampling_estimate.stage_shape(config, video)
  refiner, grid, total, starts = (shape['refiner'], shape['grid'], shape['frames'],
                                  shape['starts'])
  layout = (jax.sharding.SingleDeviceSharding(devices[0]) if mesh is None
            else jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
  place = lambda shape, dtype=jnp.float32: jax.ShapeDtypeStruct(shape, dtype, sharding=layout)
  params = jax.tree.map(lambda a: place(a.shape, a.dtype),
                        compiled_programs.abstract_train_state(config)['params'])
  condition = place((total,) + grid + (config.model.condition_channels,))
  x_start = place((1, total) + grid + (config.model.video_channels,))
  rng = place((2,), jnp.uint32)
  text = text_mask = None
  if config.model.text_embed_dim:
    text = place((int(config.text.max_tokens), config.model.text_embed_dim))
    text_mask = place((int(config.text.max_tokens),), jnp.bool_)
  stage = stereo_sampler.Stage(config, params)
  # -1 (chosen on the device at sampling time) compiles whole frames here.
  tiles = (window_blending.refiner_tiles(grid[0], grid[1], max(0, int(s.refiner_tile)),
                                        s.refiner_tile_overlap, shape['factor'])
           if refiner else None)
  lowered = stereo_sampler.run_stage.lower(
      params, condition, x_start, rng, text, text_mask, config=stage.config, starts=starts,
      num_steps=int(shape['steps']), eta=float(s.eta),
      guidance_scale=float(s.guidance_scale), window_batch=int(s.window_batch),
      t_start=(diffusion.noise_level_time(config.diffusion.schedule, s.refiner_t_start)
               if refiner else 1.0),
      text_guidance_scale=float(s.text_guidance_scale), tiles=tiles, mesh=mesh,
      solver=s.solver)
  return {'program': 'refiner' if refiner else 'base', 'topology': topology_name(topology),
          'mesh': None if mesh is None else dict(mesh.shape),
          'video': list(video), 'grid': list(grid), 'windows': len(starts),
          'tiles': None if tiles is None else len(tiles[0]) * len(tiles[1]),
          'windows_per_call': window_blending.group_size(
              len(starts) * (1 if tiles is None else len(tiles[0]) * len(tiles[1])),
              int(s.window_batch), mesh),
          **compiled_figures(lowered, topology.chip.hbm_bytes)}
