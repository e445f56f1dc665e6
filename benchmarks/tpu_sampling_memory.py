"""What one sampling window costs a TPU chip, by the TPU compiler, under each memory setting.

  python benchmarks/tpu_sampling_memory.py [--config=configs/refiner_paper.py] \
      [--topology=v5p-8] [--video=512x512x80] [--chunk=512] [--tile=256] \
      [--only="NAME;..."] [--resume=FILE.json] [--output=FILE.json]

Compiles the config's sampling stage (its whole jitted DDIM loop, ``planning/tpu_compile``)
with libtpu, on this CPU, once per setting: on one chip of ``--topology`` as configured
(float32, attention materialised), with query-chunked attention (``model.attention_chunk``)
and with the Pallas flash-attention kernel (``model.attention_kernel``),
in bfloat16 (``model.dtype``), on overlapping spatial tiles (``sample.refiner_tile``), in
bfloat16 on tiles; with the window's rows split over all the topology's chips
(``sample.mesh_shape=(1, chips)``), in float32 and bfloat16; and in bfloat16 on the flash
kernel without and with row attention (``model.row_attention`` at every level above the
coarsest, which has full spatial attention), the cost of the epipolar prior. Prints each setting's bytes per
chip (arguments, temporaries, what must be resident at once, the constants embedded in the
program) and its ratio to the first, so the effect of each measure is a measured figure.
Each compile of a paper-scale window takes minutes on 2 CPU cores; the suite does not run this script. libtpu: ``pip install -e
'.[tpu]'``, or, after ``make test``, ``PYTHONPATH=.venv/libtpu``.
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
from eye2eye_jax.planning import accelerators, tpu_compile  # noqa: E402


def settings(chunk: int, tile: int, chips: int, row_levels: tuple[int, ...]
             ) -> dict[str, dict]:
  """Setting name -> the config fields it changes ({'model': {...}, 'sample': {...}});
  ``mesh_shape`` (windows, rows) spreads the stage over the topology's chips;
  ``row_levels``: the levels given row attention in the settings that add it."""
  rows = {'sample': {'mesh_shape': (1, chips)}}
  flash16 = {'dtype': 'bfloat16', 'attention_kernel': 'pallas_flash'}
  return {
      'as configured': {},
      f'attention_chunk={chunk}': {'model': {'attention_chunk': chunk}},
      'pallas flash attention': {'model': {'attention_kernel': 'pallas_flash'}},
      'bfloat16': {'model': {'dtype': 'bfloat16'}},
      f'refiner_tile={tile}': {'sample': {'refiner_tile': tile}},
      f'bfloat16 + refiner_tile={tile}': {'model': {'dtype': 'bfloat16'},
                                          'sample': {'refiner_tile': tile}},
      f'rows over {chips} chips': rows,
      f'bfloat16 + rows over {chips} chips': {'model': {'dtype': 'bfloat16'}} | rows,
      'bfloat16 + pallas flash': {'model': flash16},
      'bfloat16 + pallas flash + row attention': {'model': flash16 | {
          'row_attention': row_levels}},
      'bfloat16 + pallas flash + row attention, 1 frame per block': {'model': flash16 | {
          'row_attention': row_levels, 'row_attention_frames_per_block': 1}},
  }


def measure(config: str, topology: str, video: tuple[int, int, int], chunk: int,
            tile: int, only: list[str] | None = None, earlier: dict | None = None) -> dict:
  """Compiled figures of one window per setting (``only``: these settings, by name), and
  each setting's ratio to the first. ``earlier``: a result of this function for the same
  config, topology and video, whose settings are kept instead of compiled again."""
  kept = {}
  if earlier is not None:
    details = earlier['details']
    if (details['config'], details['topology'], details['video']) != (config, topology,
                                                                        list(video)):
      raise ValueError(f'--resume: the file holds {details["config"]} on '
                       f'{details["topology"]} at {details["video"]}, not this run')
    kept = details['settings']
  base = common.load_config(config)
  target = accelerators.parse_topology(topology)
  rows = {}
  above_coarsest = tuple(range(len(base.model.channel_mult) - 1))
  for name, fields in settings(chunk, tile, target.num_devices, above_coarsest).items():
    if only and name != 'as configured' and name not in only:
      continue
    variant = base.copy_and_resolve_references()
    for section, values in fields.items():
      variant[section].update(values)
    mesh_shape = fields.get('sample', {}).get('mesh_shape', (1, 1))
    if name in kept:
      rows[name] = kept[name]
      continue
    rows[name] = tpu_compile.compile_sampling_stage(variant, target, video, mesh_shape)
    constants = rows[name]['constant_bytes']
    print(f'{name:36s} {rows[name]["total_bytes"] / 2**30:8.2f} GiB resident '
          f'({rows[name]["temp_bytes"] / 2**30:.2f} GiB temporaries'
          f'{", refused by the compiler" if rows[name]["refused"] else ""}; constants in the '
          f'program {"-" if constants is None else f"{constants / 2**20:.2f} MiB"}), compiled '
          f'in {rows[name]["compile_s"]:.0f} s', flush=True)
  first = rows['as configured']['total_bytes']
  return {'figures': {f'{name}: resident bytes over as configured': row['total_bytes'] / first
                      for name, row in rows.items()},
          'details': {'config': config, 'topology': topology, 'video': list(video),
                      'settings': rows}}


def table(result: dict) -> str:
  """A row per setting: bytes per chip that must be resident, temporaries, FLOPs per chip,
  whether it fits, and the ratio to the first setting."""
  lines = ['| setting | resident per chip | temporaries | TFLOP per chip | fits the chip | '
           'vs as configured |', '|---|---|---|---|---|---|']
  gib = lambda value: '–' if value is None else f'{value / 2**30:.1f} GiB'
  for name, row in result['details']['settings'].items():
    ratio = result['figures'][f'{name}: resident bytes over as configured']
    flops = '–' if row['flops'] is None else f'{row["flops"] / 1e12:.1f}'
    fits = 'yes' if row['fits'] else ('refused by the compiler' if row['refused'] else 'no')
    lines.append(f'| {name} | {gib(row["total_bytes"])} | {gib(row["temp_bytes"])} | '
                 f'{flops} | {fits} | {ratio:.2f} |')
  return '\n'.join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--config', default='configs/refiner_paper.py')
  parser.add_argument('--topology', default='v5p-8')
  parser.add_argument('--video', default='512x512x80', help='WIDTHxHEIGHTxFRAMES')
  parser.add_argument('--chunk', type=int, default=512, help='queries per attention block')
  parser.add_argument('--tile', type=int, default=256, help='refiner tile side in px')
  parser.add_argument('--only', help='setting names (as printed), separated by semicolons: '
                      'compile only these (and "as configured", the reference)')
  parser.add_argument('--output', help='also write the figures here as JSON')
  parser.add_argument('--resume', help='a JSON this script wrote for the same config, '
                      'topology and video: its settings are kept, not compiled again')
  args = parser.parse_args()
  width, height, frames = (int(x) for x in args.video.lower().split('x'))
  try:
    result = measure(args.config, args.topology, (width, height, frames), args.chunk,
                     args.tile, args.only.split(';') if args.only else None,
                     json.loads(pathlib.Path(args.resume).read_text()) if args.resume else None)
  except ValueError as error:
    sys.exit(f'error: {error}')
  for name, ratio in result['figures'].items():
    print(f'{ratio:6.3f}  {name}')
  if args.output:
    atomic_files.write_text(args.output, json.dumps(result, indent=1) + '\n')


if __name__ == '__main__':
  main()
