"""What converting one 81-frame 832x480 clip with a Wan 2.1 stereo model costs one chip, by the
TPU compiler: one network evaluation over the clip's latents, one transformer block (the
compiler counts the scanned blocks once; their FLOPs are restored from it), and the VAE's
streamed encode and decode chunks, each compiled with libtpu on this CPU for one v5p chip.
From their FLOPs, the implied seconds per clip at 1, 2 and 4 evaluations on a v5p chip and
on an H100 at a stated share of each chip's published bf16 peak (the same FLOPs: XLA's
count of the program, which does not depend on the chip), beside the planner's FLOP
estimate. Nothing here ran on a chip.

  python benchmarks/tpu_wan_conversion.py [--utilisation=0.4] [--output=FILE.json]

The suite does not run this script. libtpu: ``pip install -e '.[tpu]'``, or, after
``make test``, ``PYTHONPATH=.venv/libtpu``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TPU_WORKER_HOSTNAMES', 'localhost')
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from benchmarks import common  # noqa: E402
from eye2eye_jax.common import atomic_files  # noqa: E402
from eye2eye_jax.planning import accelerators, wan_plan  # noqa: E402

VIDEO = (832, 480, 81)
CONFIGS = {'1.3B': 'configs/wan_stereo_1_3b.py', '14B': 'configs/wan_stereo_14b.py'}
EVALUATIONS = (1, 2, 4)
CHIPS = ('v5p', 'H100')
# Published figures of other converters, for the table's last rows.
OTHERS = {'StereoPilot (reported, per 81-frame clip)': 11.0,
          'DreamStereo (reported 25 frames/s)': VIDEO[2] / 25.0}


def measure(name: str, utilisation: float) -> dict:
  config = common.load_config(CONFIGS[name])
  topology = accelerators.parse_topology('v5p-8')  # its first chip
  call = wan_plan.compile_denoiser_call(config, topology, VIDEO)
  block = wan_plan.compile_block_call(config, topology, VIDEO)
  encode = wan_plan.compile_vae_encode(config, topology, VIDEO)
  decode = wan_plan.compile_vae_decode(config, topology, VIDEO)
  flops = wan_plan.denoiser_flops(config, call, block)
  seconds = {chip: {n: wan_plan.conversion_seconds(config, accelerators.CHIPS[chip], VIDEO, n,
                                                   flops, encode, decode, utilisation)
                    for n in EVALUATIONS} for chip in CHIPS}
  row = {'config': CONFIGS[name], 'video': list(VIDEO), 'denoiser_call': call, 'block': block,
         'vae_encode_chunk': encode, 'vae_decode_chunk': decode, 'call_flops': flops,
         'call_flops_estimate': wan_plan.forward_flops(wan_plan.step_config(config, VIDEO),
                                                       VIDEO, 1),
         'latent_frames': wan_plan.latent_grid(config, VIDEO)[0], 'seconds': seconds}
  print(f'{name}: call {call["total_bytes"] / 2**30:.1f} GiB, {flops / 1e12:.1f} TFLOP '
        f'(estimate {row["call_flops_estimate"] / 1e12:.1f}); seconds per clip '
        + ', '.join(f'{chip} x{n}: {s:.2f}' for chip, by_n in seconds.items()
                    for n, s in by_n.items()), flush=True)
  return row


def table(result: dict) -> str:
  """A row per model: bytes and FLOPs of one evaluation (compiler and estimate), the VAE's
  per clip, and the seconds per clip at each count of evaluations on each chip."""
  util = result['utilisation']
  head = ['model', 'one evaluation: bytes', 'fits one chip', 'TFLOP (compiler)',
          'TFLOP (estimate)', 'VAE encode, TFLOP per clip', 'VAE decode, TFLOP per clip']
  head += [f'{chip}, {n} eval.' for chip in CHIPS for n in EVALUATIONS]
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for name, row in result['models'].items():
    encode, decode = (row['latent_frames'] * row[f'vae_{part}_chunk']['flops']
                      for part in ('encode', 'decode'))
    held = row['denoiser_call']['total_bytes']
    fits = [chip for chip in CHIPS if held <= accelerators.CHIPS[chip].hbm_bytes]
    cells = [name, f'{held / 2**30:.1f} GiB', ', '.join(fits) or 'neither',
             f'{row["call_flops"] / 1e12:.1f}', f'{row["call_flops_estimate"] / 1e12:.1f}',
             f'{encode / 1e12:.1f}', f'{decode / 1e12:.1f}']
    cells += [f'{row["seconds"][chip][str(n)]:.2f} s' for chip in CHIPS for n in EVALUATIONS]
    lines.append('| ' + ' | '.join(cells) + ' |')
  lines.append('')
  lines.append(f'Seconds per 81-frame clip at {util:.0%} of each chip\'s bf16 peak (FLOPs '
               'only: a chip the evaluation does not fit needs its weights sharded over '
               'several); for comparison, ' + '; '.join(f'{k}: {v:.1f} s' for k, v in OTHERS.items()) + '.')
  return '\n'.join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--utilisation', type=float, default=0.4,
                      help='share of the chips\' peak FLOP/s assumed')
  parser.add_argument('--output', help='write the figures here as JSON')
  args = parser.parse_args()
  result = {'utilisation': args.utilisation, 'models': {}}
  for name in CONFIGS:
    result['models'][name] = measure(name, args.utilisation)
    if args.output:
      atomic_files.write_text(args.output, json.dumps(result, indent=1) + '\n')
  print(table(json.loads(json.dumps(result))))


if __name__ == '__main__':
  main()
