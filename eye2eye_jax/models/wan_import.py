"""Imports a released Wan 2.1 (diffusers layout) into this project's inference checkpoint.

A release folder holds ``transformer/`` and ``vae/``, each a ``config.json`` and its
``*.safetensors`` (one file, or shards listed by ``*.safetensors.index.json``). Everything
is checked before anything is written: the architecture in each ``config.json``, every
tensor's name and shape against the plan of ``models/wan_weights.py`` (missing, unexpected,
wrongly shaped), and every shard's readability (a truncated file is caught). Tensors are
then read one at a time into memory-mapped arrays on disk, so host memory is bounded by the
largest tensor, not the model, and written as an orbax checkpoint with its config and an
``import_report.json`` listing every tensor mapped.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import tempfile
import time

import ml_collections
import numpy as np

from eye2eye_jax import config_base
from eye2eye_jax.models import checkpoints, wan_transformer, wan_vae, wan_weights

# Tensors a release may hold that no Wan 2.1 text-to-video model uses (diffusers ignores them).
IGNORED = ('norm_added_q',)
DTYPES = ('float32', 'bfloat16')


def read_json(path: pathlib.Path) -> dict:
  """A JSON file, or one ValueError naming it."""
  try:
    return json.loads(path.read_text())
  except FileNotFoundError:
    raise ValueError(f'{path}: not found') from None
  except (OSError, json.JSONDecodeError) as error:
    raise ValueError(f'{path}: not readable JSON ({error})') from None


def _open(path: pathlib.Path):
  from safetensors import safe_open
  try:
    return safe_open(str(path), framework='flax')
  except Exception as error:  # safetensors raises its own error types for damaged files
    raise ValueError(f'{path}: not a readable safetensors file ({error})') from None


def tensor_files(folder: pathlib.Path) -> dict[str, pathlib.Path]:
  """Tensor name -> the file holding it, from the shard index or the single file."""
  indexes = sorted(folder.glob('*.safetensors.index.json'))
  if len(indexes) > 1:
    raise ValueError(f'{folder}: more than one shard index ({", ".join(p.name for p in indexes)})')
  if indexes:
    weight_map = read_json(indexes[0]).get('weight_map')
    if not isinstance(weight_map, dict):
      raise ValueError(f'{indexes[0]}: no weight_map')
    files = {name: folder / file for name, file in weight_map.items()}
    for path in sorted(set(files.values())):
      if not path.is_file():
        raise ValueError(f'{path}: listed by {indexes[0].name} but missing')
    return files
  singles = sorted(folder.glob('*.safetensors'))
  if len(singles) != 1:
    raise ValueError(f'{folder}: expected one *.safetensors file or a shard index, found '
                     f'{len(singles)} files')
  with _open(singles[0]) as handle:
    return {name: singles[0] for name in handle.keys()}


def check_tensors(folder: pathlib.Path, plan: list[wan_weights.Mapping]) -> dict:
  """Checks every tensor of ``folder`` against ``plan`` (names, shapes, readable shards);
  returns name -> file. Raises ValueError naming the file and the tensor."""
  files = tensor_files(folder)
  shapes = {}
  for path in sorted(set(files.values())):
    with _open(path) as handle:
      held = set(handle.keys())
      for name in held:
        shapes[name] = (tuple(handle.get_slice(name).get_shape()), path)
    listed = {n for n, p in files.items() if p == path}
    if listed - held:
      raise ValueError(f'{path}: lacks tensor {sorted(listed - held)[0]} that the index lists')
  expected = {m.source: m for m in plan}
  for name in sorted(shapes):
    if name not in expected and not any(part in name for part in IGNORED):
      raise ValueError(f'{shapes[name][1]}: unexpected tensor {name}')
  for name, mapping in expected.items():
    if name not in shapes:
      raise ValueError(f'{folder}: missing tensor {name}')
    shape, path = shapes[name]
    if shape != mapping.source_shape:
      raise ValueError(f'{path}: tensor {name} has shape {list(shape)}, expected '
                       f'{list(mapping.source_shape)} for the config.json beside it')
  return {name: shapes[name][1] for name in expected}


def _fill(plan, files, scratch: pathlib.Path, dtype, progress) -> tuple[dict, list[dict]]:
  """Reads every planned tensor into memory-mapped parameters; returns (tree, report rows)."""
  targets: dict[tuple[str, ...], tuple[tuple[int, ...], int | None]] = {}
  for m in plan:  # a stacked target has as many rows as its highest layer + 1
    rows = targets.get(m.target, ((), 0))[1] or 0
    targets[m.target] = (m.target_shape, None if m.layer is None else max(rows, m.layer + 1))
  arrays = {}
  for i, (target, (shape, rows)) in enumerate(sorted(targets.items())):
    full = shape if rows is None else (rows,) + shape
    arrays[target] = np.lib.format.open_memmap(scratch / f'{i}.npy', mode='w+', dtype=dtype,
                                               shape=full)
  report, handles = [], {}
  with contextlib.ExitStack() as stack:  # each shard opened once, all closed at the end
    for count, m in enumerate(plan, 1):
      path = files[m.source]
      if path not in handles:
        handles[path] = stack.enter_context(_open(path))
      try:
        tensor = np.asarray(handles[path].get_tensor(m.source), np.float32)
      except Exception as error:
        raise ValueError(f'{path}: cannot read tensor {m.source} ({error})') from None
      value = m.convert(tensor).astype(dtype)
      if m.layer is None:
        arrays[m.target][...] = value
      else:
        arrays[m.target][m.layer] = value
      report.append({'tensor': m.source, 'file': path.name, 'shape': list(m.source_shape),
                     'to': '/'.join(m.target) + ('' if m.layer is None else f'[{m.layer}]'),
                     'layout': m.layout})
      if progress and (count % 200 == 0 or count == len(plan)):
        progress(f'  {count}/{len(plan)} tensors from {path.parent.name}/')
  tree: dict = {}
  for target, array in arrays.items():
    node = tree
    for key in target[:-1]:
      node = node.setdefault(key, {})
    node[target[-1]] = array
  return tree, report


def wan_config(shape: wan_transformer.WanShape, vae: wan_vae.VaeShape, caption_tokens: int,
               source: str) -> ml_collections.ConfigDict:
  """The project config of an imported model: the base config with the release's shapes."""
  config = config_base.base_config()
  config.config_file = f'imported from {source}'
  config.model.architecture = 'wan'
  for field in config.model.wan:
    config.model.wan[field] = getattr(shape, field)
  for field in config.model.wan_vae:
    config.model.wan_vae[field] = getattr(vae, field)
  config.model.text_embed_dim = shape.text_dim
  config.model.condition_channels = 0  # the released backbone: no stereo condition yet
  # Wan 2.1 is a flow-matching model; its pipelines sample 480p with the timestep shift 3.
  config.diffusion.schedule, config.diffusion.prediction = 'flow:3', 'flow'
  config.diffusion.clip_x0 = False
  config.text.max_tokens = caption_tokens
  return config


def import_release(release: str, output: str, *, empty_caption: np.ndarray,
                   dtype: str = 'float32', progress=print) -> dict:
  """Checks ``release`` whole, then writes the inference checkpoint ``output``; returns
  the import report. ``empty_caption`` (tokens, text_dim) is the empty caption's text
  embedding, stored so caption-free conversion needs no text encoder."""
  if dtype not in DTYPES:
    raise ValueError(f'--dtype={dtype}: choose one of {DTYPES}')
  root = pathlib.Path(release)
  if not root.is_dir():
    raise ValueError(f'{root}: not a folder (expected a release with transformer/ and vae/)')
  shape = wan_transformer.WanShape.from_diffusers(
      read_json(root / 'transformer' / 'config.json'), str(root / 'transformer/config.json'))
  vae = wan_vae.VaeShape.from_diffusers(read_json(root / 'vae' / 'config.json'),
                                        str(root / 'vae/config.json'))
  plans = {'transformer': wan_weights.transformer_plan(shape), 'vae': wan_weights.vae_plan(vae)}
  files = {part: check_tensors(root / part, plan) for part, plan in plans.items()}
  empty_caption = np.asarray(empty_caption, np.float32)
  if empty_caption.ndim != 2 or empty_caption.shape[1] != shape.text_dim:
    raise ValueError(f'the empty caption embedding has shape {list(empty_caption.shape)}; '
                     f'expected (tokens, {shape.text_dim})')
  checkpoints.check_export_target(output)
  started = time.time()
  local = '://' not in output
  scratch_parent = pathlib.Path(checkpoints.absolute(output)).parent if local else None
  if scratch_parent is not None:
    scratch_parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(prefix='.wan_import.', dir=scratch_parent) as scratch:
    params, rows = {}, []
    for part, plan in plans.items():
      part_dtype = np.dtype(_numpy_dtype(dtype if part == 'transformer' else 'float32'))
      folder = pathlib.Path(scratch) / part
      folder.mkdir()
      params[part], part_rows = _fill(plan, files[part], folder, part_dtype, progress)
      rows += [dict(row, part=part) for row in part_rows]
    params['empty_caption'] = {'embedding': empty_caption}
    config = wan_config(shape, vae, empty_caption.shape[0], str(root))
    report = {'release': str(root.resolve()), 'output': checkpoints.absolute(output),
              'dtype': {'transformer': dtype, 'vae': 'float32'},
              'parameters': {part: int(sum(np.prod(r['shape']) for r in rows
                                           if r['part'] == part)) for part in plans},
              'tensors': rows}
    checkpoints.save_inference(output, params, config, copy_host_arrays=False,
                               extra_files={'import_report.json': json.dumps(report, indent=1)})
  report['seconds'] = round(time.time() - started, 1)
  return report


def _numpy_dtype(name: str):
  if name == 'bfloat16':
    import ml_dtypes
    return ml_dtypes.bfloat16
  return np.float32
