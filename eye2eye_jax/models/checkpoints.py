"""A trained model on disk: find a checkpoint, load its weights and config, write a lean one.

Reads both kinds of orbax checkpoint. A training checkpoint (``<workdir>/checkpoints/<step>/``,
written by ``eye2eye_jax.training.checkpoint_manager``) holds ``state`` (params, optimizer
state, EMA params, step), ``data`` and ``config``; an inference checkpoint is a directory with
``params`` (the EMA weights) and ``config`` only; ``eye2eye_jax/assets/demo_checkpoint`` is
one. A stored config is merged over ``config_base.base_config()`` as it is loaded, so every
field has a value even when the checkpoint predates it. Paths may be local or on a bucket
(``gs://...``): they are read through ``etils.epath`` and orbax.
"""

from __future__ import annotations

import functools
import os
import pathlib
import shutil
import tempfile

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from eye2eye_jax import config_base

_ASSETS = pathlib.Path(__file__).resolve().parent.parent / 'assets'
BUNDLED = {name: _ASSETS / f'{name}_checkpoint'
           for name in ('demo', 'demo_refiner', 'demo_student', 'demo_refiner_student',
                        'strength_demo', 'strength_refiner_demo')}


def absolute(directory: str) -> str:
  """Local paths made absolute; bucket URLs (gs://...) kept as they are."""
  return directory if '://' in directory else os.path.abspath(directory)


# What a lean checkpoint's directory holds, and nothing else: the only kind of folder that
# ``save_inference`` replaces.
_INFERENCE_ENTRIES = frozenset({'params', 'config', '_CHECKPOINT_METADATA',
                                'commit_success.txt', 'import_report.json'})


class ExportTargetRefused(ValueError):
  """An export would replace something that is not an earlier export."""


def check_export_target(directory: str, source: str | None = None) -> None:
  """Refuses (``ExportTargetRefused``) an output path that holds anything but an earlier
  lean checkpoint, or that is, holds or lies inside ``source``, the checkpoint exported."""
  target = epath.Path(absolute(directory))
  if source is not None and not source.startswith('bundled:'):
    given, resolved = epath.Path(absolute(source)), _resolve(source)[0]
    if (_inside(given, target) or _inside(resolved, target) or _inside(target, resolved)):
      raise ExportTargetRefused(
          f'{target} is, holds or lies inside the checkpoint being exported ({resolved}); '
          'export to a new path')
  if not target.exists():
    return
  if not target.is_dir():
    raise ExportTargetRefused(f'{target} exists and is a file, not an earlier export; choose a '
                              'new path or move it away')
  names = {p.name for p in target.iterdir()}
  if not names:
    return
  if not {'params', 'config'} <= names or not names <= _INFERENCE_ENTRIES:
    others = sorted(names - _INFERENCE_ENTRIES) or sorted({'params', 'config'} - names)
    raise ExportTargetRefused(
        f'{target} exists and is not an earlier export (it holds {", ".join(others[:5])}'
        f'{", ..." if len(others) > 5 else ""}); choose a new path or move it away')


def _inside(path: epath.Path, folder: epath.Path) -> bool:
  """Whether ``path`` is ``folder`` or lies under it (symbolic links followed)."""
  path_text, folder_text = (os.path.realpath(p) if '://' not in str(p) else str(p).rstrip('/')
                            for p in (path, folder))
  return path_text == folder_text or path_text.startswith(folder_text.rstrip('/') + '/')


def save_inference(directory: str, params, config: ml_collections.ConfigDict,
                   extra_files: dict[str, str] | None = None,
                   copy_host_arrays: bool = True) -> None:
  """Writes a lean checkpoint (weights + config, and ``extra_files``: name -> text, e.g. an
  import report) to ``directory``, which may hold an earlier one (replaced) and nothing
  else (``check_export_target``). A local one is written beside it first and swapped in
  when complete, so a failed write keeps what was there. ``copy_host_arrays=False`` writes
  NumPy arrays (e.g. memory-mapped ones) without orbax's copy of each: the caller leaves
  them unchanged until this returns."""
  check_export_target(directory)
  directory = absolute(directory)
  save = functools.partial(_save_inference_at, copy_host_arrays=copy_host_arrays)
  if '://' in directory:
    save(directory, params, config, extra_files)
    return
  target = pathlib.Path(directory)
  target.parent.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(prefix=f'.{target.name}.partial.', dir=target.parent))
  try:
    save(str(staging / 'new'), params, config, extra_files)
    if target.exists():
      os.rename(target, staging / 'previous')
    try:
      os.rename(staging / 'new', target)
    except OSError:
      if (staging / 'previous').exists():
        os.rename(staging / 'previous', target)
      raise
  finally:
    shutil.rmtree(staging, ignore_errors=True)


def _save_inference_at(directory: str, params, config: ml_collections.ConfigDict,
                       extra_files: dict[str, str] | None, copy_host_arrays: bool) -> None:
  handlers = {}
  if not copy_host_arrays:
    registry = ocp.type_handlers.create_type_handler_registry(
        (np.ndarray, ocp.type_handlers.NumpyHandler(deepcopy_host_arrays=False)))
    handlers = {'params': ocp.PyTreeCheckpointHandler(type_handler_registry=registry),
                'config': ocp.JsonCheckpointHandler()}
  weights = (ocp.args.StandardSave(params) if copy_host_arrays
             else ocp.args.PyTreeSave(params))
  with ocp.Checkpointer(ocp.CompositeCheckpointHandler(**handlers)) as checkpointer:
    checkpointer.save(directory, args=ocp.args.Composite(
        params=weights, config=ocp.args.JsonSave(config.to_dict())), force=True)
  for name, text in (extra_files or {}).items():
    if name not in _INFERENCE_ENTRIES:
      raise ValueError(f'{name}: not a file an inference checkpoint may hold')
    (epath.Path(directory) / name).write_text(text)


def _restore_as_numpy(path: epath.Path, subtree: str | None = None):
  """Restores a saved pytree (or only its top-level ``subtree``: nothing else is read) as
  host numpy arrays, whatever devices or mesh wrote it."""
  with ocp.PyTreeCheckpointer() as checkpointer:  # closed: no thread outlives the read
    metadata = checkpointer.metadata(path).item_metadata
    tree = metadata.tree if hasattr(metadata, 'tree') else metadata
    if not tree:  # orbax returns no tree for a missing or damaged _METADATA file
      raise ValueError(f'{path} lists no arrays')
    if subtree is not None:
      tree = {subtree: tree[subtree]}
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    restored = checkpointer.restore(path, args=ocp.args.PyTreeRestore(
        item=tree, restore_args=restore_args, partial_restore=subtree is not None))
  return restored if subtree is None else restored[subtree]


def _resolve(path: str) -> tuple[epath.Path, str]:
  """Finds the checkpoint behind ``path``; returns (directory, 'inference' | 'training')."""
  if path.startswith('bundled:'):
    name = path.split(':', 1)[1]
    if name not in BUNDLED:
      raise FileNotFoundError(f'no bundled checkpoint named {name!r}; have {sorted(BUNDLED)}')
    path = str(BUNDLED[name])
  p = epath.Path(absolute(path))
  try:
    exists = p.exists()
  except Exception as error:  # a bucket's client raises its own types (no bucket, no access)
    first_line = (str(error).strip().splitlines() or [repr(error)])[0]
    raise ValueError(f'checkpoint {p}: cannot be reached ({type(error).__name__}: '
                     f'{first_line})') from error
  if not exists:
    raise FileNotFoundError(f'checkpoint {p} does not exist')
  if (p / 'params').is_dir():
    return p, 'inference'
  if (p / 'state').is_dir():
    return p, 'training'
  for candidate in (p / 'checkpoints', p):
    if candidate.is_dir():
      steps = sorted((int(c.name) for c in candidate.iterdir() if c.name.isdigit()
                      and (c / 'state').is_dir()), reverse=True)
      if steps:
        return candidate / str(steps[0]), 'training'
  raise FileNotFoundError(f'{p} holds no checkpoint (expected params/ or state/ or numbered '
                          'step directories)')


def read_config(directory: epath.Path) -> ml_collections.ConfigDict:
  """The config stored in a checkpoint directory, merged over the base config."""
  try:
    with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as checkpointer:
      stored = checkpointer.restore(directory / 'config')
    return config_base.with_defaults(stored, f'checkpoint {directory}')
  except Exception as error:
    raise ValueError(f'checkpoint {directory}: unreadable config/ ({error})') from error


def load_for_inference(path: str, use_ema: bool = True):
  """Loads (config, params) from an inference checkpoint, a step dir or a training workdir."""
  config, weights = load_weights_to_host(path, use_ema)
  return config, jax.tree.map(jax.numpy.asarray, weights)


def load_weights_to_host(path: str, use_ema: bool = True):
  """Like ``load_for_inference``, the weights kept as host numpy arrays (for a caller that
  places them itself, e.g. shard by shard onto a mesh)."""
  directory, kind = _resolve(path)
  config = read_config(directory)
  item = 'params' if kind == 'inference' else 'state'
  # From a training state only the weights asked for are read: not the other copy, nor
  # the optimizer's moments (about three quarters of the bytes).
  subtree = None if kind == 'inference' else ('ema_params' if use_ema else 'params')
  try:
    tree = _restore_as_numpy(directory / item, subtree)
  except Exception as error:
    raise ValueError(f'checkpoint {directory}: cannot read {item}/ ({error})') from error
  return config, tree


def directory_bytes(directory: epath.Path) -> int:
  """Bytes of every file under ``directory`` (local or on a bucket)."""
  total = 0
  for path in epath.Path(directory).iterdir():  # epath does not glob ** on buckets
    total += directory_bytes(path) if path.is_dir() else path.stat().length
  return total


def describe(path: str) -> dict:
  """What a checkpoint holds: its kind, step, the config that made it, every stored tree's
  parameter shapes and dtypes, counts and bytes; nothing is loaded onto a device."""
  directory, kind = _resolve(path)
  config = read_config(directory).to_dict()
  item = 'params' if kind == 'inference' else 'state'
  metadata = ocp.PyTreeCheckpointer().metadata(directory / item).item_metadata
  tree = metadata.tree if hasattr(metadata, 'tree') else metadata
  leaves = {jax.tree_util.keystr(p, simple=True, separator='/'): leaf
            for p, leaf in jax.tree_util.tree_leaves_with_path(tree)}
  parameters = {p: {'shape': list(m.shape), 'dtype': str(m.dtype)} for p, m in leaves.items()
                if kind == 'inference' or p.startswith('params/')}
  by_module: dict[str, int] = {}
  for p, m in parameters.items():
    module = p.removeprefix('params/').split('/')[0]
    by_module[module] = by_module.get(module, 0) + int(np.prod(m['shape']))
  step = int(directory.name) if kind == 'training' and directory.name.isdigit() else None
  return {
      'path': str(directory),
      'kind': kind,
      'step': step,
      'config_file': config['config_file'],
      'config': config,
      'items': sorted({p.split('/')[0] for p in leaves}) if kind == 'training' else ['params'],
      'parameters': parameters,
      'parameters_per_module': by_module,
      'parameter_count': sum(by_module.values()),
      'bytes_on_disk': directory_bytes(directory),
  }
