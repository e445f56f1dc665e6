"""Checkpoint tools: inspect a checkpoint, turn a training checkpoint into a lean one.

  python -m eye2eye_jax.ckpt info PATH [--tree]
  python -m eye2eye_jax.ckpt export PATH OUTPUT [--raw_params]
  python -m eye2eye_jax.ckpt import RELEASE OUTPUT [--dtype=bfloat16] [--empty_caption=FILE]

PATH is a training workdir (its newest step), a step directory, an inference checkpoint or
``bundled:NAME``. ``info`` prints the kind, step, the config that made it, parameters per
module and in all, bytes on disk and, with ``--tree``, every parameter's shape and dtype.
``export`` writes an inference checkpoint (the EMA weights, or the raw ones, and the
config): what the sampler and the notebook load, without the optimizer state. OUTPUT must be
new or an earlier export (replaced); anything else there is refused, untouched. The other
way, a lean checkpoint starts a training run with ``--config.train.init_checkpoint=PATH``
(fresh optimizer state; eye2eye_jax/models/surgery.py also adapts a backbone's weights).

``import`` reads a local copy of a released Wan 2.1 model in the diffusers layout (RELEASE
holds ``transformer/`` and ``vae/``), checks every tensor and writes an inference
checkpoint with an ``import_report.json`` (eye2eye_jax/models/wan_import.py). The empty
caption's umT5 embedding is stored with it: computed from RELEASE's ``text_encoder/`` (the
``umt5`` extra), or read from ``--empty_caption`` (a .npy of (tokens, 4096)). A bad
release is one ``error:`` line naming the file and the tensor; nothing is written.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from absl import app, flags

from eye2eye_jax.models import checkpoints, unet

_TREE = flags.DEFINE_bool('tree', False, 'info: print every parameter.')
_JSON = flags.DEFINE_bool('json', False, 'info: print JSON instead of text.')
_RAW = flags.DEFINE_bool('raw_params', False, 'export: the raw weights instead of the EMA.')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'],
                           "import: the transformer's stored dtype (the VAE stays float32).")
_EMPTY_CAPTION = flags.DEFINE_string(
    'empty_caption', '', "import: a .npy of the empty caption's umT5 embedding (tokens, "
    "width); default: computed with RELEASE's text_encoder/ (the umt5 extra).")


def _megabytes(count: int) -> str:
  return f'{count / 2**20:.2f} MiB'


def _model_text(data: dict, model: dict) -> str:
  """What the stored config says of the data and the network."""
  if model['architecture'] == 'wan':
    wan, vae = model['wan'], model['wan_vae']
    return (f'Wan 2.1 transformer, {wan["num_layers"]} blocks of width '
            f'{wan["num_attention_heads"] * wan["attention_head_dim"]} '
            f'({wan["num_attention_heads"]} heads), feed-forward {wan["ffn_dim"]}, '
            f'{wan["in_channels"]} latent channels in, text dim {wan["text_dim"]}; video VAE '
            f'{vae["base_dim"]} x {tuple(vae["dim_mult"])}, {vae["z_dim"]} latent channels; '
            f'condition channels {model["condition_channels"]}')
  return (f'data {data["builder"]}/{data["builder_config"]} task {data["task"]} '
          f'{data["num_frames"]}x{data["resolution"]}px ({data["view"]}); model '
          f'channels {model["channels"]} x {model["channel_mult"]}, condition channels '
          f'{model["condition_channels"]}, text dim {model["text_embed_dim"]}'
          + (', spatial only' if model['spatial_only'] else ''))


def info_text(info: dict, tree: bool) -> str:
  """The human-readable summary ``info`` prints."""
  config = info['config']
  data, model = config['data'], config['model']
  lines = [
      f'{info["path"]}',
      f'  kind: {info["kind"]}' + (f', step {info["step"]}' if info['step'] is not None else '')
      + f'; holds {", ".join(info["items"])}',
      f'  config: {info["config_file"] or "(file not recorded)"}; ' + _model_text(data, model),
      f'  parameters: {info["parameter_count"]:,}; on disk {_megabytes(info["bytes_on_disk"])}',
  ]
  for module, count in info['parameters_per_module'].items():
    lines.append(f'    {module:24s} {count:>12,}')
  if tree:
    for path, leaf in info['parameters'].items():
      lines.append(f'  {path:64s} {str(tuple(leaf["shape"])):>22s} {leaf["dtype"]}')
  return '\n'.join(lines)


def _empty_caption(release: str) -> np.ndarray:
  """The empty caption's embedding: from --empty_caption, or umT5 of the release."""
  if not _EMPTY_CAPTION.value:
    from eye2eye_jax.data import umt5_text
    return umt5_text.empty_caption_embedding(release)
  path = _EMPTY_CAPTION.value
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError) as error:
    raise ValueError(f'{path}: not a readable .npy file ({error})') from None


def _import(release: str, output: str) -> None:
  from eye2eye_jax.models import wan_import
  report = wan_import.import_release(release, output, empty_caption=_empty_caption(release),
                                     dtype=_DTYPE.value)
  counts = ', '.join(f'{part} {n / 1e6:.2f}M' for part, n in report['parameters'].items())
  print(f'wrote {output}: {len(report["tensors"])} tensors mapped ({counts} parameters), '
        f'{_megabytes(checkpoints.directory_bytes(output))} in {report["seconds"]} s; '
        f'the report is {output}/import_report.json')


def main(argv):
  usage = 'usage: ckpt info PATH | ckpt export PATH OUTPUT | ckpt import RELEASE OUTPUT'
  if len(argv) < 3 or argv[1] not in ('info', 'export', 'import'):
    raise app.UsageError(usage)
  command, path = argv[1], argv[2]
  try:
    if command == 'info':
      if len(argv) != 3:
        raise app.UsageError('usage: ckpt info PATH')
      info = checkpoints.describe(path)
      print(json.dumps(info, indent=1) if _JSON.value else info_text(info, _TREE.value))
      return
    if len(argv) != 4:
      raise app.UsageError(usage)
    if command == 'import':
      _import(path, argv[3])
      return
    checkpoints.check_export_target(argv[3], source=path)
    config, params = checkpoints.load_for_inference(path, use_ema=not _RAW.value)
    checkpoints.save_inference(argv[3], params, config)
  except (FileNotFoundError, ValueError, OSError) as error:
    sys.exit(f'error: {error}')
  size = checkpoints.directory_bytes(argv[3])
  print(f'wrote {argv[3]}: {unet.count_params(params) / 1e6:.2f}M parameters, '
        f'{_megabytes(size)}')


if __name__ == '__main__':
  app.run(main)
