"""Plans a training run before paying for it: memory, FLOPs and time of a config on a topology.

Nothing is allocated. The train state is ``jax.eval_shape``d; its per-device bytes come from
``eye2eye_jax.sharding``'s rules on an ``AbstractMesh`` of the topology's device count. The
real jitted programs (``training.make_train_step`` and the UNet forward of
``training.make_denoiser``) are compiled for this CPU from ShapeDtypeStructs, and XLA's cost
analysis gives their FLOPs (2 per multiply-add):

* *global*: the train step at the global batch, what the whole topology computes per step;
* *per device*: the same step at the per-device batch (global batch / the mesh's batch ways),
  the optimizer update counted in full (an upper bound where the state is sharded; it is
  well under 1% of the step). A mesh's tensor axis does not shrink it: activations follow the
  batch layout, so each tensor device computes its per-device batch.

Bytes per device: parameters, optimizer state and EMA are their shards' bytes; gradients are
counted like the parameter shards (they are reduced into that layout); weights gathered layer
by layer under FSDP are transient and not counted. Activations are an estimate, not this CPU's
memory analysis: this CPU compiler's buffer assignment does not show remat's savings (its temp bytes
stay the same with ``model.remat``: measured 1.02 GB with and without remat for the paper
model on 16x32x32 clips). Instead they are the residuals JAX's autodiff keeps between the
forward and the backward pass of the real loss at the per-device batch under the remat
policy, plus, with remat, those of the largest recomputed block (``activation_bytes``);
without remat this is 1.4x the CPU's temp bytes (XLA fuses elementwise chains), so it errs
high. The CPU's temp bytes are reported beside it.

Time per step = per-device FLOPs / (peak FLOP/s of ``model.dtype`` x ``mfu``), the FLOPs being
those the compiled step executes (rematerialised ones included). Collectives (ring
all-gather / reduce-scatter / all-reduce of float32 parameters and gradients at the
topology's slowest link) are estimated beside it and assumed to overlap the compute.
"""

from __future__ import annotations

import json
import math
import tempfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.extend import core as jex_core

from eye2eye_jax import accelerators, input_pipeline, model as model_lib, sampling, sharding
from eye2eye_jax import training

# The Stereo4D builder's measured cost (benchmarks/rectification_throughput.py, 2 CPU cores):
# 54 ms to decode and 2.7 ms to rectify one 2048x1024 VR180 frame.
BUILDER_MS_PER_FRAME = 54.0 + 2.7
BUILDER_MEASURED_CORES = 2
FSDP_SHAPE = (1, -1, 1)
_REMAT_ORDER = ('none', 'dots', 'full')  # less memory, more recomputation, left to right

_cache: dict = {}  # abstract states and compiled programs' figures, by what they depend on


def _program_key(config: ml_collections.ConfigDict) -> str:
  """What the state and the programs depend on (not the mesh: programs are per device)."""
  return json.dumps({k: config[k].to_dict() for k in ('model', 'diffusion', 'train')} |
                    {'seed': config.seed}, sort_keys=True, default=str)


def abstract_train_state(config: ml_collections.ConfigDict) -> dict:
  """The train state's ShapeDtypeStructs (nothing allocated)."""
  key = ('state', _program_key(config))
  if key not in _cache:
    _cache[key] = jax.eval_shape(lambda: training.init_train_state(config))
  return _cache[key]


def parameter_counts(params) -> dict[str, int]:
  """Parameters per top-level UNet submodule."""
  return {name: model_lib.count_params(tree) for name, tree in params.items()}


def _figures(kind: str, config: ml_collections.ConfigDict, shape: tuple, lower) -> dict:
  """FLOPs and memory of a compiled program, compiled once per kind, config and shape."""
  key = (kind, _program_key(config), shape)
  if key not in _cache:
    compiled = lower().compile()
    cost, memory = compiled.cost_analysis(), compiled.memory_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    _cache[key] = {'flops': float(cost['flops']),
                   'temp_bytes': int(memory.temp_size_in_bytes),
                   'argument_bytes': int(memory.argument_size_in_bytes)}
  return _cache[key]


def batch_struct(config: ml_collections.ConfigDict, batch_size: int) -> dict:
  """ShapeDtypeStructs of a training batch of ``batch_size`` clips, as the loader makes them."""
  d = config.data
  clip = jax.ShapeDtypeStruct((batch_size, d.num_frames, d.resolution, d.resolution,
                               config.model.video_channels), jnp.float32)
  tokens = (batch_size, int(config.text.max_tokens))
  shapes = {'text': jax.ShapeDtypeStruct(tokens + (config.model.text_embed_dim,), jnp.float32),
            'text_mask': jax.ShapeDtypeStruct(tokens, jnp.bool_)}
  return {key: shapes.get(key, clip) for key in input_pipeline.batch_ndims(config)}


def train_step_figures(config: ml_collections.ConfigDict, batch_size: int) -> dict:
  """The train step compiled for one device at ``batch_size``."""
  state = abstract_train_state(config)
  return _figures('train_step', config, (batch_size,), lambda: training.make_train_step(
      config).lower(state, batch_struct(config, batch_size)))


def _residual_bytes(fun, *args) -> int:
  """Bytes of the residuals ``fun``'s forward pass keeps for its backward pass, its own
  arguments left out (``jax.ad_checkpoint.print_saved_residuals``'s list)."""
  # saved_residuals is the list behind the public print_saved_residuals; jax is pinned.
  from jax._src.ad_checkpoint import saved_residuals
  return sum(math.prod(r.shape) * np.dtype(r.dtype).itemsize
             for r, why in saved_residuals(fun, *args) if not why.startswith('from the argument'))


def _remat_blocks(jaxpr):
  """The rematerialised calls (``jax.checkpoint``) in a jaxpr, nested ones included."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in ('checkpoint', 'remat2'):
      yield eqn
    for param in eqn.params.values():
      for sub in param if isinstance(param, (list, tuple)) else (param,):
        if isinstance(sub, jex_core.ClosedJaxpr):
          yield from _remat_blocks(sub.jaxpr)
        elif isinstance(sub, jex_core.Jaxpr):
          yield from _remat_blocks(sub)


def _block_residual_bytes(eqn) -> int:
  """Residual bytes of one rematerialised call's body, differentiated without remat."""
  body = jex_core.jaxpr_as_fun(jex_core.ClosedJaxpr(eqn.params['jaxpr'], ()))
  return _residual_bytes(body, *[jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype)
                                 for v in eqn.invars])


def activation_bytes(config: ml_collections.ConfigDict, batch_size: int) -> dict:
  """Activation memory of the train step's forward/backward pass at ``batch_size``.

  ``saved``: the residuals autodiff keeps from the forward pass for the backward pass, under
  ``model.remat``; ``recomputed_block``: with remat, the residuals of the largest
  rematerialised block, which exist again while that block's backward pass runs. Both are
  JAX's arrays before XLA fuses elementwise chains, so an upper bound of what a compiler
  keeps.
  """
  key = ('activations', _program_key(config), batch_size)
  if key not in _cache:
    loss = training.make_loss(config)
    args = (abstract_train_state(config)['params'], batch_struct(config, batch_size),
            jax.ShapeDtypeStruct((), jnp.int32))
    blocks = _remat_blocks(jax.make_jaxpr(loss)(*args).jaxpr)
    _cache[key] = {'saved': _residual_bytes(loss, *args),
                   'recomputed_block': max(map(_block_residual_bytes, blocks), default=0)}
  return _cache[key]


def forward_figures(config: ml_collections.ConfigDict, shape: tuple[int, ...]) -> dict:
  """One UNet forward on clips of ``shape`` (batch, frames, height, width), as sampling runs
  it (the denoiser of ``training.make_denoiser``)."""
  params = abstract_train_state(config)['params']
  graphdef = training.model_graphdef(config)
  video = jax.ShapeDtypeStruct(tuple(shape) + (config.model.video_channels,), jnp.float32)
  condition = None
  if config.model.condition_channels:
    condition = jax.ShapeDtypeStruct(tuple(shape) + (config.model.condition_channels,),
                                     jnp.float32)
  text = batch_struct(config, shape[0]).get('text')
  t = jax.ShapeDtypeStruct(shape[:1], jnp.float32)

  def forward(params, condition, text, x, t):
    return training.make_denoiser(graphdef, params, condition, text)(x, t)

  return _figures('forward', config, tuple(shape),
                  lambda: jax.jit(forward).lower(params, condition, text, video, t))


def _nbytes(tree) -> int:
  return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def collective_bytes(param_bytes: float, param_bytes_per_device: float,
                     num_devices: int) -> float:
  """Bytes each device moves per step in ring collectives: the parameters it does not hold,
  gathered for the forward and the backward pass, their gradients reduce-scattered, and an
  all-reduce of its gradient shard over the devices replicating it."""
  missing = param_bytes - param_bytes_per_device
  replicas = max(1.0, num_devices * param_bytes_per_device / param_bytes)
  return 3 * missing + 2 * (replicas - 1) / replicas * param_bytes_per_device


def estimate_training(config: ml_collections.ConfigDict, topology: accelerators.Topology,
                      mfu: float, global_flops: bool = True) -> dict:
  """Memory per device, FLOPs and time of ``config``'s training on ``topology``.

  ``global_flops`` False skips compiling the step at the global batch (its FLOPs are then
  None). Raises ValueError naming the field when the mesh or the batch does not fit.
  """
  model_lib.validate_model_config(config.model)
  d = config.data
  model_lib.check_video_shape(config.model, d.num_frames, d.resolution, d.resolution)
  mesh = sharding.abstract_mesh(config, topology.num_devices)
  per_device = sharding.per_device_batch(config, mesh)
  state = abstract_train_state(config)
  shardings = sharding.state_shardings(state, mesh, config.mesh.rules)
  held = {k: sharding.planned_bytes_per_device(state[k], shardings[k])
          for k in ('params', 'opt_state', 'ema_params')}
  activations = activation_bytes(config, per_device)
  memory = {'parameters': held['params'], 'optimizer': held['opt_state'],
            'ema': held['ema_params'], 'gradients': held['params'],
            'activations': activations['saved'],
            'recomputed_block': activations['recomputed_block'],
            'batch': _nbytes(batch_struct(config, per_device))}
  total = sum(memory.values())
  hbm = topology.chip.hbm_bytes
  largest = max(memory, key=memory.get)
  step = train_step_figures(config, per_device)
  memory.update(total=total, hbm=hbm, fits=total <= hbm,
                overflow=None if total <= hbm else largest,
                xla_cpu_temp=step['temp_bytes'])

  whole = step['flops'] if per_device == d.batch_size else (
      train_step_figures(config, d.batch_size)['flops'] if global_flops else None)
  peak = topology.chip.peak_flops(config.model.dtype)
  compute_s = step['flops'] / (peak * mfu)
  param_bytes = _nbytes(state['params'])
  moved = collective_bytes(param_bytes, held['params'], topology.num_devices)
  collective_s = moved / topology.collective_bandwidth
  step_s = max(compute_s, collective_s)
  total_s = step_s * config.train.num_steps
  return {
      'mesh': dict(mesh.shape), 'mesh_shape': list(config.mesh.shape),
      'remat': config.model.remat, 'batch_size': d.batch_size,
      'per_device_batch': per_device, 'memory': memory,
      'flops': {'train_step_global': whole, 'train_step_per_device': step['flops']},
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
      estimate = estimate_training(_with(config, shape, remat), topology, mfu,
                                   global_flops=False)
    except ValueError as error:
      results.append({'flags': flags, 'error': str(error), 'fits': False})
      continue
    memory = estimate['memory']
    activations = memory['activations'] + memory['recomputed_block']
    per_clip = activations / estimate['per_device_batch']  # activations grow with the batch
    results.append({'flags': flags, 'mesh_shape': list(shape), 'remat': remat,
                    'fits': memory['fits'], 'total_bytes': memory['total'],
                    'activation_bytes': activations,
                    'max_per_device_batch': int((memory['hbm'] - memory['total'] + activations)
                                                // per_clip) if per_clip else None,
                    'step_s': estimate['time']['step_s'],
                    'total_s': estimate['time']['total_s']})
  # Fitting first, then faster; at equal speed, keeping the mesh, then holding less.
  return sorted(results, key=lambda r: (not r['fits'], r.get('step_s', math.inf),
                                        r.get('mesh_shape') != list(config.mesh.shape),
                                        r.get('total_bytes', math.inf)))


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
  width, height, frames = video
  s, d = config.sample, config.data
  factor = 2**(len(config.model.channel_mult) - 1)
  refiner = d.view == 'crop'
  short_side = min(height, width) if refiner else (s.base_resolution or d.resolution)
  grid = sampling.base_grid(height, width, short_side, factor)
  steps = s.refiner_num_steps if refiner else s.base_num_steps
  windows = sampling.stage_windows(max(frames, d.num_frames), d.num_frames, s.window_overlap)
  per_call = min(s.window_batch, len(windows))
  forward = forward_figures(config, (per_call, d.num_frames) + grid)
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


def _views_sample(config: ml_collections.ConfigDict, builder_config,
                  shape: tuple[int, ...]) -> np.ndarray:
  """One eye's clip of ``shape`` as the dataset's builder stores it. Stereo4D: the project's
  VR180 sample (photographs at known depths, H.264-encoded as 2048x1024 side-by-side frames)
  decoded and rectified; two frames are rendered and repeated to the clip's length, which
  leaves zlib's ratio as it is (its 32 KiB window is shorter than a frame). synthetic_stereo:
  a generated clip."""
  if config.data.builder == 'stereo4d':
    from data_builders.stereo4d import rectification, vr180_sample
    from eye2eye_jax import video_io
    with tempfile.TemporaryDirectory() as directory:
      path, _ = vr180_sample.write_sample(directory, num_frames=2, eye_hw=(1024, 1024))
      frames = video_io.read_video(path).frames
    rectifier = rectification.Rectifier(vr180_sample.VR180_FOV, vr180_sample.rig_rotations(0),
                                        builder_config.size, builder_config.hfov_degrees)
    right = rectifier(frames)[1]
    return right[np.arange(shape[0]) % len(right)]
  from eye2eye_jax import synthetic_scenes
  generator = synthetic_scenes.SceneGenerator(builder_config.scene_params())
  return np.asarray(generator.generate(0).right)


def measure_compression_ratio(config: ml_collections.ConfigDict) -> float:
  """Raw / stored bytes of one eye's clip, encoded by the dataset builder's own feature
  (a zlib-compressed uint8 tensor)."""
  builder = input_pipeline.create_builder(config, input_pipeline.resolve_data_dir(config))
  feature = builder.info.features['right']
  views = np.ascontiguousarray(_views_sample(config, builder.builder_config, feature.shape))
  return views.nbytes / len(feature.encode_example(views))


def estimate_data(config: ml_collections.ConfigDict, topology: accelerators.Topology,
                  step_s: float, num_clips: int, compression_ratio: float,
                  builder_ms_per_frame: float, builder_cores: int) -> dict:
  """Dataset size, input bandwidth per host and the Stereo4D build time.

  A record holds both eyes at the builder's full size (the loader downsamples or crops after
  reading); captions and statistics are small and not counted. Each host reads its share of
  every batch. The build time scales the measured per-frame time (``builder_ms_per_frame``,
  measured on ``BUILDER_MEASURED_CORES`` cores) linearly to ``builder_cores``, one decoded
  VR180 frame per stored frame (a video above the clips' 16 fps decodes proportionally more).
  """
  builder = input_pipeline.create_builder(config, input_pipeline.resolve_data_dir(config))
  view = builder.info.features['right']
  raw_record = 2 * math.prod(view.shape) * np.dtype(view.np_dtype).itemsize
  record = raw_record / compression_ratio
  batch = config.data.batch_size
  per_host = batch / topology.num_hosts
  build = {}
  if config.data.builder == 'stereo4d':
    core_s = num_clips * view.shape[0] * builder_ms_per_frame / 1000 * BUILDER_MEASURED_CORES
    build = {'builder_ms_per_frame': builder_ms_per_frame, 'builder_cores': builder_cores,
             'build_s': core_s / builder_cores, 'build_core_hours': core_s / 3600}
  return build | {
      'stored_view_shape': list(view.shape), 'num_clips': num_clips,
      'raw_bytes_per_record': raw_record, 'compression_ratio': compression_ratio,
      'bytes_per_record': record, 'dataset_bytes': record * num_clips,
      'epochs': config.train.num_steps * batch / num_clips,
      'records_per_step_per_host': per_host,
      'input_bytes_per_s_per_host': per_host * record / step_s,
  }


def topology_summary(topology: accelerators.Topology) -> dict:
  c = topology.chip
  return {'name': topology.name, 'chip': c.name, 'devices': topology.num_devices,
          'hosts': topology.num_hosts, 'peak_flops_bf16': c.peak_flops_bf16,
          'peak_flops_fp32': c.peak_flops_fp32, 'hbm_bytes': c.hbm_bytes,
          'hbm_bandwidth': c.hbm_bandwidth, 'collective_bandwidth':
          topology.collective_bandwidth, 'source': c.source, 'notes': c.notes}


def plan(config: ml_collections.ConfigDict, topology: accelerators.Topology, *,
         name: str = 'config', mfu: float = 0.4, video: tuple[int, int, int] = (512, 512, 160),
         num_clips: int = 100_000, compression_ratio: float | None = None,
         builder_ms_per_frame: float = BUILDER_MS_PER_FRAME,
         builder_cores: int = BUILDER_MEASURED_CORES) -> dict:
  """The whole plan (JSON-able): model, training, what would fit instead, sampling, data.

  ``compression_ratio`` None measures it (``measure_compression_ratio``).
  """
  if not 0 < mfu <= 1:
    raise ValueError(f'mfu must be in (0, 1], got {mfu}')
  if len(video) != 3 or min(video) < 1:
    raise ValueError(f'video must be (width, height, frames), all >= 1, got {video}')
  if num_clips < 1 or builder_cores < 1 or builder_ms_per_frame <= 0:
    raise ValueError('num_clips and builder_cores must be >= 1 and builder_ms_per_frame > 0')
  if compression_ratio is not None and compression_ratio <= 0:
    raise ValueError(f'compression_ratio must be > 0, got {compression_ratio}')
  train = estimate_training(config, topology, mfu)
  params = abstract_train_state(config)['params']
  measured = compression_ratio is None
  ratio = measure_compression_ratio(config) if measured else compression_ratio
  data = estimate_data(config, topology, train['time']['step_s'], num_clips, ratio,
                       builder_ms_per_frame, builder_cores)
  data['compression_ratio_source'] = ('measured on a sample of the dataset' if measured
                                      else 'given')
  return {
      'config': name, 'topology': topology_summary(topology),
      'model': {'parameters': model_lib.count_params(params),
                'parameter_bytes': _nbytes(params),
                'per_module': parameter_counts(params), 'dtype': config.model.dtype,
                'remat': config.model.remat},
      'training': train,
      'alternatives': [] if train['memory']['fits'] else suggest(config, topology, mfu),
      'sampling': estimate_sampling(config, topology, mfu, video),
      'data': data,
  }


def _bytes(n: float) -> str:
  for unit, scale in (('GiB', 2**30), ('MiB', 2**20), ('KiB', 2**10)):
    if n >= scale:
      return f'{n / scale:,.2f} {unit}'
  return f'{n:,.0f} B'


def _flop(n: float) -> str:
  for unit, scale in (('EFLOP', 1e18), ('PFLOP', 1e15), ('TFLOP', 1e12), ('GFLOP', 1e9)):
    if n >= scale:
      return f'{n / scale:,.2f} {unit}'
  return f'{n:,.0f} FLOP'


def duration(seconds: float) -> str:
  """A readable duration: ms, s, min, h or days."""
  for unit, scale in (('days', 86400), ('h', 3600), ('min', 60), ('s', 1)):
    if seconds >= scale:
      return f'{seconds / scale:,.2f} {unit}'
  return f'{seconds * 1e3:,.1f} ms'


def format_plan(p: dict) -> str:
  """The plan as aligned text tables."""
  t, m, tr = p['topology'], p['model'], p['training']
  mem, time, s, d = tr['memory'], tr['time'], p['sampling'], p['data']
  rows: list = []

  def section(title):
    rows.append(('', None))
    rows.append((title, None))

  def row(label, value):
    rows.append(('  ' + label, value))

  rows.append((f"{p['config']} on {t['name']}: {t['devices']} x {t['chip']}, "
               f"{t['hosts']} host(s)", None))
  section(f"Parameters: {m['parameters'] / 1e6:,.2f}M ({_bytes(m['parameter_bytes'])} float32), "
          f"compute {m['dtype']}, remat {m['remat']}")
  for name, count in m['per_module'].items():
    row(name, f'{count / 1e6:,.3f}M')
  mesh = ' x '.join(f'{k} {v}' for k, v in tr['mesh'].items())
  section(f"Memory per device: mesh {mesh}, batch {tr['per_device_batch']} per device")
  labels = {'parameters': 'parameters', 'optimizer': 'optimizer state (AdamW)', 'ema': 'EMA',
            'gradients': 'gradients', 'activations': 'activations saved for backward',
            'recomputed_block': 'largest recomputed block (remat)', 'batch': 'input batch'}
  for key, label in labels.items():
    row(label, _bytes(mem[key]))
  verdict = 'fits' if mem['fits'] else f"DOES NOT FIT (largest term: {mem['overflow']})"
  row('total', f"{_bytes(mem['total'])} of {_bytes(mem['hbm'])} HBM: {verdict}")
  row('(XLA CPU temp of the step)', f"{_bytes(mem['xla_cpu_temp'])}: activations, gradients "
      'and workspace as this CPU schedules them (blind to remat)')
  section(f"Compute ({m['dtype']} peak {time['peak_flops'] / 1e12:,.1f} TFLOP/s per device, "
          f"mfu {time['mfu']})")
  row('train step, whole topology', _flop(tr['flops']['train_step_global']))
  row('train step, per device', _flop(tr['flops']['train_step_per_device']))
  row('compute per step', duration(time['compute_s']))
  row('collectives per step', f"{time['collective_bytes'] / 1e9:,.2f} GB per device, "
      f"{duration(time['collective_s'])} at {t['collective_bandwidth'] / 1e9:,.0f} GB/s")
  row('step time', duration(time['step_s']))
  row(f"{time['num_steps']:,} steps", f"{duration(time['total_s'])}, "
      f"{time['chip_hours']:,.0f} chip-hours")
  if p['alternatives']:
    section('Other settings (the same estimate re-run), fitting and fastest first')
    for alt in p['alternatives']:
      if 'error' in alt:
        row(alt['flags'], f"not possible: {alt['error']}")
      else:
        row(f"mesh {tuple(alt['mesh_shape'])}, remat {alt['remat']}",
            f"{_bytes(alt['total_bytes'])}: {'fits' if alt['fits'] else 'no'}, step "
            f"{duration(alt['step_s'])}, run {duration(alt['total_s'])}: {alt['flags']}")
    best = max((a for a in p['alternatives'] if a.get('max_per_device_batch') is not None),
               key=lambda a: a['max_per_device_batch'], default=None)
    if not any(a['fits'] for a in p['alternatives']) and best is not None:
      most = best['max_per_device_batch']
      need = ('no device holds one clip' if most < 1 else
              f"the global batch needs >= {math.ceil(tr['batch_size'] / most)} devices")
      row('none fits', f"{best['flags']} holds at most {most} clip(s) per device: {need} "
          '(activations scaled by the batch)')
  section(f"Sampling, {s['stage']} stage on one device: video {s['video'][0]}x{s['video'][1]}, "
          f"{s['video'][2]} frames")
  row('grid', f"{s['grid'][0]}x{s['grid'][1]}, {s['windows']} window(s) of "
      f"{s['window_frames']} frames, {s['steps']} steps, x{s['guidance_passes']} pass(es)")
  row('UNet forward per window', _flop(s['flops_per_window_forward']))
  row('per sampler step / per video', f"{_flop(s['flops_per_step'])} / "
      f"{_flop(s['flops_per_video'])}")
  row('time per video', duration(s['seconds_per_video']))
  row('memory', f"{_bytes(s['memory_bytes'])}: {'fits' if s['fits'] else 'DOES NOT FIT'}")
  section(f"Data: {d['num_clips']:,} clips of {'x'.join(map(str, d['stored_view_shape']))} "
          'per eye')
  row('record (2 eyes)', f"{_bytes(d['raw_bytes_per_record'])} raw, "
      f"{_bytes(d['bytes_per_record'])} stored (zlib ratio "
      f"{d['compression_ratio']:.2f}, {d['compression_ratio_source']})")
  row('dataset', f"{d['dataset_bytes'] / 1e12:,.3f} TB; {d['epochs']:,.1f} epochs")
  row('input per host', f"{d['records_per_step_per_host']:g} records per step, "
      f"{d['input_bytes_per_s_per_host'] / 1e6:,.1f} MB/s")
  if 'build_s' in d:
    row('Stereo4D build', f"{duration(d['build_s'])} on {d['builder_cores']} cores "
        f"({d['build_core_hours']:,.0f} core-hours at {d['builder_ms_per_frame']:g} ms per "
        f"frame on {BUILDER_MEASURED_CORES} cores)")
  width = max(len(label) for label, value in rows if value is not None)
  return '\n'.join(label if value is None else f'{label:<{width}}  {value}'
                   for label, value in rows)
