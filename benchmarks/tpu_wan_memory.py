"""What fine-tuning a Wan 2.1 stereo model costs a TPU chip, by the TPU compiler, beside the
planner's estimate.

  python benchmarks/tpu_wan_memory.py [--only=NAME,...] [--output=FILE.json]

For each case (a config, a named TPU topology, a clip and the mesh and batch that fit it),
compiles with libtpu, on this CPU, the trainer's step on latent records (``planning/wan_plan``:
forward, backward and optimizer update, sharded by the config's mesh rules) and the VAE's
decode of one streamed chunk on one chip, and prints the compiler's bytes per chip beside
the planner's estimate. Each case takes minutes on 2 CPU cores; with ``--output``, finished
cases are kept in the file and a rerun compiles only the missing ones. The suite does not
run this script. libtpu: ``pip install -e '.[tpu]'``, or, after ``make test``,
``PYTHONPATH=.venv/libtpu``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

# Compiles for abstract TPU devices only: JAX stays on the CPU, libtpu looks for no TPU host.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TPU_WORKER_HOSTNAMES', 'localhost')
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from benchmarks import common  # noqa: E402
from eye2eye_jax.common import atomic_files  # noqa: E402
from eye2eye_jax.planning import accelerators, wan_plan  # noqa: E402

P480, P720 = (832, 480, 81), (1280, 720, 81)
# name -> (config, topology, clip (width, height, frames), config fields it sets)
CASES = {
    '1.3B 480p v5p-8': ('configs/wan_stereo_1_3b.py', 'v5p-8', P480, {}),
    # The same step encoding both views with the VAE in the step (no latent records).
    '1.3B 480p v5p-8, VAE in the step': ('configs/wan_stereo_1_3b.py', 'v5p-8', P480,
                                         {'data.latents': False}),
    '1.3B 480p v5e-8': ('configs/wan_stereo_1_3b.py', 'v5e-8', P480,
                        {'mesh.shape': (1, -1, 2), 'data.batch_size': 4}),
    '14B 480p v5p-64': ('configs/wan_stereo_14b.py', 'v5p-64', P480, {}),
    '14B 720p v5p-128': ('configs/wan_stereo_14b.py', 'v5p-128', P720,
                         {'mesh.shape': (1, -1, 4), 'data.batch_size': 16}),
    # Half the blocks of the row above: how the compiler's bytes grow with depth.
    '14B 720p v5p-128, 20 blocks': ('configs/wan_stereo_14b.py', 'v5p-128', P720,
                                    {'mesh.shape': (1, -1, 4), 'data.batch_size': 16,
                                     'model.wan.num_layers': 20}),
    '14B 480p v5e-256': ('configs/wan_stereo_14b.py', 'v5e-256', P480,
                         {'mesh.shape': (1, -1, 4), 'data.batch_size': 64}),
}


def _variant(path: str, fields: dict):
  config = common.load_config(path)
  for dotted, value in fields.items():
    *sections, name = dotted.split('.')
    node = config
    for section in sections:
      node = node[section]
    node[name] = value
  return config


def measure_case(name: str, vae_done: dict) -> dict:
  """The estimate and the compiler's figures of one case; the VAE chunk is compiled once per
  chip generation and clip (``vae_done`` keeps them)."""
  path, topology_name, video, fields = CASES[name]
  config = _variant(path, fields)
  topology = accelerators.parse_topology(topology_name)
  estimate = wan_plan.estimate(config, topology, video, mfu=0.4)
  step = wan_plan.compile_step(config, topology, video)
  key = f'{topology.chip.name} {video} {config.model.dtype}'
  if key not in vae_done:
    vae_done[key] = wan_plan.compile_vae_decode(config, topology, video)
  row = {'config': path, 'topology': topology_name, 'video': list(video), 'fields': fields,
         'vae_key': key,
         'batch': config.data.batch_size, 'estimate': estimate, 'train_step': step,
         'vae_decode': vae_done[key]}
  print(f'{name:20s} step: estimate {estimate["total_bytes"] / 2**30:6.2f} GiB, compiler '
        f'{step["total_bytes"] / 2**30:6.2f} GiB per chip ({"fits" if step["fits"] else "no"}'
        f', {step["compile_s"]:.0f} s); VAE chunk {vae_done[key]["total_bytes"] / 2**30:.2f} '
        'GiB', flush=True)
  return row


def table(result: dict) -> str:
  """A row per case: the planner's estimate and the compiler's bytes per chip for the step,
  their ratio, whether it fits, the compiler's bytes for one VAE decode chunk."""
  lines = ['| case | mesh | batch | tokens per chip | step, estimate | step, TPU compiler | '
           'compiler / estimate | fits the chip | VAE decode chunk |',
           '|---|---|---|---|---|---|---|---|---|']
  gib = lambda value: '–' if value is None else f'{value / 2**30:.1f} GiB'
  order = {name: i for i, name in enumerate(CASES)}
  for name, row in sorted(result['cases'].items(), key=lambda item: order.get(item[0], 99)):
    est, step = row['estimate'], row['train_step']
    mesh = ' x '.join(f'{k} {v}' for k, v in step['mesh'].items() if v > 1)
    ratio = ('–' if step['total_bytes'] is None
             else f'{step["total_bytes"] / est["total_bytes"]:.2f}')
    lines.append(f'| {name} | {mesh} | {row["batch"]} | {est["tokens_per_device"]:,} | '
                 f'{gib(est["total_bytes"])} | {gib(step["total_bytes"])} | {ratio} | '
                 f'{"yes" if step["fits"] else "no"} | {gib(row["vae_decode"]["total_bytes"])} |')
  return '\n'.join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--only', help=f'comma-separated case names, of: {", ".join(CASES)}')
  parser.add_argument('--output', help='write the figures here as JSON (and resume from it)')
  args = parser.parse_args()
  names = args.only.split(',') if args.only else list(CASES)
  unknown = [n for n in names if n not in CASES]
  if unknown:
    sys.exit(f'error: no case named {unknown[0]!r}; cases: {", ".join(CASES)}')
  result = {'cases': {}}
  if args.output and pathlib.Path(args.output).exists():
    result = json.loads(pathlib.Path(args.output).read_text())
  vae_done = {r['vae_key']: r['vae_decode'] for r in result['cases'].values()}
  for name in names:
    if name in result['cases']:
      print(f'{name:20s} kept from {args.output}')
      continue
    try:
      result['cases'][name] = measure_case(name, vae_done)
    except ValueError as error:
      sys.exit(f'error: {name}: {error}')
    if args.output:
      atomic_files.write_text(args.output, json.dumps(result, indent=1) + '\n')
  print(table(result))


if __name__ == '__main__':
  main()
