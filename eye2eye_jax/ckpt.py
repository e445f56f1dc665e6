"""Checkpoint tools: inspect a checkpoint, turn a training checkpoint into a lean one.

  python -m eye2eye_jax.ckpt info PATH [--tree]
  python -m eye2eye_jax.ckpt export PATH OUTPUT [--raw_params]

PATH is a training workdir (its newest step), a step directory, an inference checkpoint or
``bundled:NAME``. ``info`` prints the kind, step, the config that made it, parameters per
module and in all, bytes on disk and, with ``--tree``, every parameter's shape and dtype.
``export`` writes an inference checkpoint (the EMA weights, or the raw ones, and the
config): what the sampler and the notebook load, without the optimizer state. OUTPUT must be
new or an earlier export (replaced); anything else there is refused, untouched. The other
way, a lean checkpoint starts a training run with ``--config.train.init_checkpoint=PATH``
(fresh optimizer state; eye2eye_jax/models/surgery.py also adapts a backbone's weights).
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from eye2eye_jax.models import checkpoints, unet

_TREE = flags.DEFINE_bool('tree', False, 'info: print every parameter.')
_JSON = flags.DEFINE_bool('json', False, 'info: print JSON instead of text.')
_RAW = flags.DEFINE_bool('raw_params', False, 'export: the raw weights instead of the EMA.')


def _megabytes(count: int) -> str:
  return f'{count / 2**20:.2f} MiB'


def info_text(info: dict, tree: bool) -> str:
  """The human-readable summary ``info`` prints."""
  config = info['config']
  data, model = config['data'], config['model']
  lines = [
      f'{info["path"]}',
      f'  kind: {info["kind"]}' + (f', step {info["step"]}' if info['step'] is not None else '')
      + f'; holds {", ".join(info["items"])}',
      f'  config: {info["config_file"] or "(file not recorded)"}; data '
      f'{data["builder"]}/{data["builder_config"]} task {data["task"]} '
      f'{data["num_frames"]}x{data["resolution"]}px ({data["view"]}); model '
      f'channels {model["channels"]} x {model["channel_mult"]}, condition channels '
      f'{model["condition_channels"]}, text dim {model["text_embed_dim"]}'
      + (', spatial only' if model['spatial_only'] else ''),
      f'  parameters: {info["parameter_count"]:,}; on disk {_megabytes(info["bytes_on_disk"])}',
  ]
  for module, count in info['parameters_per_module'].items():
    lines.append(f'    {module:24s} {count:>12,}')
  if tree:
    for path, leaf in info['parameters'].items():
      lines.append(f'  {path:64s} {str(tuple(leaf["shape"])):>22s} {leaf["dtype"]}')
  return '\n'.join(lines)


def main(argv):
  if len(argv) < 3 or argv[1] not in ('info', 'export'):
    raise app.UsageError('usage: ckpt info PATH | ckpt export PATH OUTPUT')
  command, path = argv[1], argv[2]
  try:
    if command == 'info':
      if len(argv) != 3:
        raise app.UsageError('usage: ckpt info PATH')
      info = checkpoints.describe(path)
      print(json.dumps(info, indent=1) if _JSON.value else info_text(info, _TREE.value))
      return
    if len(argv) != 4:
      raise app.UsageError('usage: ckpt export PATH OUTPUT')
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
