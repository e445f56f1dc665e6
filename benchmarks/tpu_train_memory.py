"""What a paper train step costs each chip of a pod slice, by the TPU compiler, per setting.

  python benchmarks/tpu_train_memory.py [--config=configs/base_paper.py] \
      [--topology=v5p-64] [--remat=none,dots] [--output=FILE.json]

Compiles the trainer's sharded train step (``planning/tpu_compile.compile_train_step``:
state and batch laid out by ``config.mesh`` over the slice's abstract devices, state
donated) with libtpu on this CPU, once per ``model.remat`` setting, and prints the
compiler's bytes per chip (arguments, temporaries, what must be resident at once) and FLOPs
per chip beside the planner's estimate of the same (``planning/training_estimate``), with
their ratio. A paper-scale train step takes tens of minutes to compile on 2 CPU cores; the
suite does not run this script. libtpu: ``pip install -e '.[tpu]'``, or, after ``make
test``, ``PYTHONPATH=.venv/libtpu``.
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
from eye2eye_jax.planning import accelerators, tpu_compile, training_estimate  # noqa: E402

GIB = 2**30


def measure(config: str, topology: str, remats: list[str]) -> dict:
  """Compiled and estimated bytes and FLOPs per chip of the train step, per remat policy."""
  base = common.load_config(config)
  target = accelerators.parse_topology(topology)
  rows = {}
  for remat in remats:
    variant = base.copy_and_resolve_references()
    variant.model.remat = remat
    compiled = tpu_compile.compile_train_step(variant, target)
    estimate = training_estimate.estimate_training(variant, target, mfu=0.4,
                                                   global_flops=False)
    memory, flops = estimate['memory'], estimate['flops']['train_step_per_device']
    rows[remat] = {'compiled': compiled, 'estimate': memory | {'flops_per_device': flops}}
    print(f'remat={remat:5s} compiled {compiled["total_bytes"] / GIB:7.2f} GiB per chip '
          f'({compiled["temp_bytes"] / GIB:.2f} GiB temporaries), '
          f'{(compiled["flops"] or 0) / 1e12:.1f} TFLOP; estimated '
          f'{memory["total"] / GIB:.2f} GiB, {flops / 1e12:.1f} TFLOP; compiled in '
          f'{compiled["compile_s"] / 60:.1f} min', flush=True)
  figures = {}
  for remat, row in rows.items():
    figures[f'remat={remat}: estimated over compiled bytes per chip'] = (
        row['estimate']['total'] / row['compiled']['total_bytes'])
    if row['compiled']['flops']:
      figures[f'remat={remat}: estimated over compiled FLOPs per chip'] = (
          row['estimate']['flops_per_device'] / row['compiled']['flops'])
  return {'figures': figures,
          'details': {'config': config, 'topology': topology, 'settings': rows}}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--config', default='configs/base_paper.py')
  parser.add_argument('--topology', default='v5p-64')
  parser.add_argument('--remat', default='none,dots', help='model.remat policies, comma-separated')
  parser.add_argument('--output', help='also write the figures here as JSON')
  args = parser.parse_args()
  try:
    result = measure(args.config, args.topology, args.remat.split(','))
  except ValueError as error:
    sys.exit(f'error: {error}')
  for name, ratio in result['figures'].items():
    print(f'{ratio:6.3f}  {name}')
  if args.output:
    atomic_files.write_text(args.output, json.dumps(result, indent=1, default=str) + '\n')


if __name__ == '__main__':
  main()
