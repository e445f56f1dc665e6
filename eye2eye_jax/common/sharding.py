"""Device meshes, and how parameters, optimizer state and batches are laid out on them.

The mesh comes from ``config.mesh``: named axes (``data``, ``fsdp``, ``tensor``), their
sizes within a slice (``shape``; one -1 takes the remaining devices) and across slices
(``dcn_shape``, for multi-slice pods: slices talk over the data-centre network, so put the
data axis there). Every parameter gets logical axis names from its role (a convolution's
output channels are ``conv_out``, attention heads are ``heads``, ...) and
``config.mesh.rules`` maps logical names to mesh axes: the first rule for a dimension whose
mesh axes are still free in that array and divide its size wins; otherwise the dimension
is replicated. Optimizer moments and EMA weights are laid out like their parameters, the
batch dimension of the data by the ``batch`` rule.

The rules work on any mesh with named axis sizes: a real ``Mesh`` of devices, or an
``AbstractMesh`` (``abstract_mesh``) to plan a run on more devices than this machine has.
"""

from __future__ import annotations

import math

import jax
import ml_collections
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import AbstractMesh, Mesh, NamedSharding, PartitionSpec


def mesh_shape(config: ml_collections.ConfigDict, num_devices: int) -> tuple[int, ...]:
  """The per-slice mesh shape with any -1 filled in; raises if it cannot fit the devices."""
  m = config.mesh
  shape, dcn = list(m.shape), list(m.dcn_shape)
  if not len(shape) == len(dcn) == len(m.axes):
    raise ValueError(f'mesh.axes {tuple(m.axes)}, mesh.shape {tuple(shape)} and '
                     f'mesh.dcn_shape {tuple(dcn)} need one entry each')
  slices = math.prod(dcn)
  if slices < 1 or num_devices % slices:
    raise ValueError(f'mesh.dcn_shape {tuple(dcn)} ({slices} slices) does not divide '
                     f'{num_devices} devices')
  per_slice = num_devices // slices
  if shape.count(-1) > 1:
    raise ValueError(f'mesh.shape {tuple(shape)}: at most one -1')
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape:
    if known < 1 or per_slice % known:
      raise ValueError(f'mesh.shape {tuple(m.shape)} cannot fill {per_slice} devices per '
                       'slice')
    shape[shape.index(-1)] = per_slice // known
  if math.prod(shape) != per_slice:
    raise ValueError(f'mesh.shape {tuple(m.shape)} holds {math.prod(shape)} devices, but '
                     f'there are {per_slice} per slice ({num_devices} devices, {slices} '
                     'slices)')
  return tuple(shape)


def create_mesh(config: ml_collections.ConfigDict, devices=None) -> Mesh:
  """The device mesh of ``config.mesh`` over ``devices`` (default: all of them)."""
  devices = list(jax.devices() if devices is None else devices)
  shape = mesh_shape(config, len(devices))
  dcn = tuple(config.mesh.dcn_shape)
  if math.prod(dcn) > 1:
    # TPU slices know their slice; elsewhere (GPU nodes) each process is one "slice".
    grid = mesh_utils.create_hybrid_device_mesh(
        shape, dcn, devices, process_is_granule=not hasattr(devices[0], 'slice_index'))
  else:
    try:
      grid = mesh_utils.create_device_mesh(shape, devices)
    except NotImplementedError:  # e.g. an axis of 2 on a 4x4x4 torus: split a physical axis
      grid = mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)
  return Mesh(grid, tuple(config.mesh.axes))


def abstract_mesh(config: ml_collections.ConfigDict, num_devices: int) -> AbstractMesh:
  """The mesh ``create_mesh`` would make over ``num_devices`` devices, without the devices:
  each axis spans its per-slice size times its number of slices."""
  sizes = [s * d for s, d in zip(mesh_shape(config, num_devices), config.mesh.dcn_shape)]
  return AbstractMesh(tuple(sizes), tuple(config.mesh.axes))


def _role_names(path: tuple[str, ...], ndim: int) -> tuple[str | None, ...]:
  """Logical axis names of one parameter (of the UNet or a Wan model), from its name and
  rank. Wan's blocks are stacked on a leading layer axis, which is never split."""
  if 'stacked_blocks' in path:
    return (None,) + _role_names(tuple(p for p in path if p != 'stacked_blocks'), ndim - 1)
  name, parent = path[-1], (path[-2] if len(path) > 1 else '')
  if name in ('scale_shift_table', 'embedding'):  # modulation tables, the stored caption
    return (None,) * ndim
  if name == 'patch_embedding':  # (t, h, w, in, out), a strided convolution's kernel
    return (None,) * (ndim - 2) + ('conv_in', 'conv_out')
  if name == 'patch_bias':
    return ('embed_out',)
  in_norm = any('norm' in part for part in path)
  if name == 'kernel':
    if ndim >= 4:  # convolution: (*window, in, out)
      return (None,) * (ndim - 2) + ('conv_in', 'conv_out')
    if ndim == 2:  # dense
      return ('embed_in', 'embed_out')
    if ndim == 3 and parent in ('query', 'key', 'value'):
      return ('embed_in', 'heads', 'head_dim')
    if ndim == 3 and parent == 'out':
      return ('heads', 'head_dim', 'embed_out')
  if name in ('scale', 'bias') and in_norm and ndim == 1:
    return ('norm',)
  if name == 'bias':
    if ndim == 1:
      return ('embed_out',)
    if ndim == 2 and parent in ('query', 'key', 'value'):
      return ('heads', 'head_dim')
  raise ValueError(f'no logical axis names for parameter {"/".join(path)} of rank {ndim}; '
                   'add its role to eye2eye_jax/common/sharding.py')


def _path_names(path) -> tuple[str, ...]:
  return tuple(str(getattr(k, 'key', getattr(k, 'idx', getattr(k, 'name', k)))) for k in path)


def logical_axes(params) -> dict:
  """A tree like ``params`` whose leaves are tuples of logical axis names."""
  return jax.tree_util.tree_map_with_path(
      lambda path, leaf: _role_names(_path_names(path), np.ndim(leaf)), params)


def spec_for(names: tuple, shape: tuple[int, ...], mesh: Mesh, rules) -> PartitionSpec:
  """The PartitionSpec of an array with logical axes ``names`` under ``rules``."""
  used, spec = set(), []
  for name, size in zip(names, shape):
    choice = None
    for logical, mesh_axes in rules:
      if logical != name:
        continue
      axes = (mesh_axes,) if isinstance(mesh_axes, str) else tuple(mesh_axes)
      if any(a not in mesh.shape for a in axes):
        raise ValueError(f'mesh.rules maps {logical!r} to {mesh_axes!r}, which is not a mesh '
                         f'axis of {tuple(mesh.axis_names)}')
      if used.isdisjoint(axes) and size % math.prod(mesh.shape[a] for a in axes) == 0:
        choice = axes
        break
    if choice is None:
      spec.append(None)
    else:
      used.update(choice)
      spec.append(choice[0] if len(choice) == 1 else choice)
  return PartitionSpec(*spec)


def param_shardings(params, mesh: Mesh, rules) -> dict:
  """NamedShardings for a parameter tree (arrays or ShapeDtypeStructs)."""
  names = logical_axes(params)
  return jax.tree.map(lambda n, p: NamedSharding(mesh, spec_for(n, np.shape(p), mesh, rules)),
                      names, params, is_leaf=lambda x: isinstance(x, tuple))


def state_shardings(state, mesh: Mesh, rules) -> dict:
  """NamedShardings for a train state: params, EMA (and a distillation teacher) by their
  roles, optimizer moments like the parameter at the end of their path, scalars
  replicated."""
  params = param_shardings(state['params'], mesh, rules)
  by_path = {_path_names(p): s for p, s in jax.tree_util.tree_leaves_with_path(params)}
  replicated = NamedSharding(mesh, PartitionSpec())

  def optimizer_leaf(path, leaf):
    if np.ndim(leaf) == 0:
      return replicated
    names = _path_names(path)
    for start in range(len(names)):
      if names[start:] in by_path:
        return by_path[names[start:]]
    return replicated

  shardings = {
      'step': replicated,
      'params': params,
      'ema_params': param_shardings(state['ema_params'], mesh, rules),
      'opt_state': jax.tree_util.tree_map_with_path(optimizer_leaf, state['opt_state']),
  }
  if 'teacher_params' in state:
    shardings['teacher_params'] = param_shardings(state['teacher_params'], mesh, rules)
  return shardings


def batch_sharding(mesh: Mesh, rules, ndim: int = 5) -> NamedSharding:
  """Batches split along their first dimension by the ``batch`` rule."""
  for logical, mesh_axes in rules:
    if logical == 'batch':
      axes = (mesh_axes,) if isinstance(mesh_axes, str) else tuple(mesh_axes)
      return NamedSharding(mesh, PartitionSpec(axes, *([None] * (ndim - 1))))
  return NamedSharding(mesh, PartitionSpec())


def token_sharding(mesh: Mesh, rules) -> NamedSharding:
  """The layout of a transformer's (batch, tokens, width) activations: the batch over the
  ``batch`` rule's axes less those of the ``tokens`` rule, the tokens over the ``tokens``
  rule's (context parallelism; none without one)."""
  axes = {logical: (m,) if isinstance(m, str) else tuple(m) for logical, m in rules
          if logical in ('batch', 'tokens')}
  token_axes = axes.get('tokens', ())
  batch_axes = tuple(a for a in axes.get('batch', ()) if a not in token_axes)
  return NamedSharding(mesh, PartitionSpec(batch_axes or None, token_axes or None, None))


def batch_shardings(mesh: Mesh, rules, ndims: dict[str, int]) -> dict[str, NamedSharding]:
  """A batch sharding per batch key, for arrays of rank ``ndims[key]``."""
  return {key: batch_sharding(mesh, rules, ndim) for key, ndim in ndims.items()}


def batch_divisor(mesh: Mesh, rules) -> int:
  """How many ways the ``batch`` rule splits a batch."""
  spec = batch_sharding(mesh, rules).spec[0]
  axes = () if spec is None else ((spec,) if isinstance(spec, str) else spec)
  return math.prod(mesh.shape[a] for a in axes)


def per_device_batch(config: ml_collections.ConfigDict, mesh: Mesh) -> int:
  """Examples of ``data.batch_size`` each device gets; raises if the batch does not split
  over the devices, or that share into ``train.grad_accum_steps`` micro-batches."""
  ways = batch_divisor(mesh, config.mesh.rules)
  if config.data.batch_size % ways:
    raise ValueError(f'data.batch_size={config.data.batch_size} does not split over the '
                     f'{ways} ways of the mesh\'s batch axes ({dict(mesh.shape)})')
  per_device, k = config.data.batch_size // ways, config.train.grad_accum_steps
  if k < 1 or per_device % k:
    raise ValueError(f'train.grad_accum_steps={k} must be >= 1 and divide the {per_device} '
                     f'clips each device gets of data.batch_size={config.data.batch_size}')
  return per_device


def bytes_per_device(tree) -> int:
  """Bytes of ``tree``'s arrays held on one device (the largest share)."""
  per_device: dict = {}
  for leaf in jax.tree.leaves(tree):
    for shard in leaf.addressable_shards:
      per_device[shard.device] = per_device.get(shard.device, 0) + shard.data.nbytes
  return max(per_device.values()) if per_device else 0


def planned_bytes_per_device(tree, shardings) -> int:
  """Bytes one device would hold of ``tree`` (arrays or ShapeDtypeStructs) laid out by
  ``shardings`` (on any mesh, abstract too). The rules only split dimensions they divide,
  so every device holds the same share."""
  shares = jax.tree.map(lambda x, s: math.prod(s.shard_shape(np.shape(x))) *
                        np.dtype(x.dtype).itemsize, tree, shardings)
  return sum(jax.tree.leaves(shares))
