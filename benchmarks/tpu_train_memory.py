"""What a paper train step costs each chip of a pod slice, by the TPU compiler, per setting.

  python benchmarks/tpu_train_memory.py [--config=configs/base_paper.py] \
      [--topology=v5p-64] [--remat=none,dots] [--grad_accum=1] \
      [--set=data.batch_size=16,...] [--output=FILE.json]

Compiles the trainer's sharded train step (``planning/tpu_compile.compile_train_step``:
state and batch laid out by ``config.mesh`` over the slice's abstract devices, state
donated) with libtpu on this CPU, once per ``model.remat`` setting, and prints the
compiler's bytes per chip (arguments, temporaries, what must be resident at once) and FLOPs
per chip beside the planner's estimate of the same (``planning/training_estimate``), with
their ratio. With several ``--grad_accum`` settings (``train.grad_accum_steps``) it also
prints each one's temporaries over those of the first: accumulating over k micro-batches
should hold fewer activations for the same FLOPs (e.g. ``--config=configs/tiny.py
--topology=v5p-8 --grad_accum=1,4 --set=data.batch_size=16,data.resolution=32``).
A paper-scale train step takes tens of minutes to compile on 2 CPU cores; the suite does
not run this script. libtpu: ``pip install -e '.[tpu]'``, or, after ``make
test``, ``PYTHONPATH=.venv/libtpu``.
"""

from __future__ import annotations

import argparse
import itertools
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


def measure(config: str, topology: str, remats: list[str], accums: list[int] = (1,),
            overrides: dict | None = None) -> dict:
  """Compiled and estimated bytes and FLOPs per chip of the train step, per remat policy
  and gradient-accumulation setting; ``overrides`` ({'data.batch_size': 16}) change the
  config first."""
  base = common.load_config(config)
  for key, value in (overrides or {}).items():
    base.update_from_flattened_dict({key: value})
  target = accelerators.parse_topology(topology)
  rows = {}
  for remat, accum in itertools.product(remats, accums):
    variant = base.copy_and_resolve_references()
    variant.model.remat = remat
    variant.train.grad_accum_steps = accum
    setting = f'remat={remat} grad_accum={accum}' if len(accums) > 1 else f'remat={remat}'
    compiled = tpu_compile.compile_train_step(variant, target)
    estimate = training_estimate.estimate_training(variant, target, mfu=0.4)
    memory, flops = estimate['memory'], estimate['flops']['train_step_per_device']
    rows[setting] = {'compiled': compiled, 'estimate': memory | {'flops_per_device': flops}}
    print(f'{setting} compiled {compiled["total_bytes"] / GIB:7.2f} GiB per chip '
          f'({compiled["temp_bytes"] / GIB:.2f} GiB temporaries), '
          f'{(compiled["flops"] or 0) / 1e12:.1f} TFLOP; estimated '
          f'{memory["total"] / GIB:.2f} GiB, {flops / 1e12:.1f} TFLOP; compiled in '
          f'{compiled["compile_s"] / 60:.1f} min', flush=True)
  figures = {}
  for setting, row in rows.items():
    figures[f'{setting}: estimated over compiled bytes per chip'] = (
        row['estimate']['total'] / row['compiled']['total_bytes'])
    if row['compiled']['flops']:
      figures[f'{setting}: estimated over compiled FLOPs per chip'] = (
          row['estimate']['flops_per_device'] / row['compiled']['flops'])
  for remat, accum in itertools.product(remats, accums[1:]):
    first = rows[f'remat={remat} grad_accum={accums[0]}']['compiled']
    other = rows[f'remat={remat} grad_accum={accum}']['compiled']
    figures[f'remat={remat}: grad_accum={accum} over {accums[0]} temporaries per chip'] = (
        other['temp_bytes'] / first['temp_bytes'])
  return {'figures': figures,
          'details': {'config': config, 'topology': topology, 'settings': rows}}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--config', default='configs/base_paper.py')
  parser.add_argument('--topology', default='v5p-64')
  parser.add_argument('--remat', default='none,dots', help='model.remat policies, comma-separated')
  parser.add_argument('--grad_accum', default='1',
                      help='train.grad_accum_steps settings, comma-separated')
  parser.add_argument('--set', default='',
                      help='config overrides, comma-separated KEY=VALUE (Python literals)')
  parser.add_argument('--output', help='also write the figures here as JSON')
  args = parser.parse_args()
  try:
    result = measure(args.config, args.topology, args.remat.split(','),
                     [int(k) for k in args.grad_accum.split(',')],
                     common.parse_overrides(args.set))
  except ValueError as error:
    sys.exit(f'error: {error}')
  for name, ratio in result['figures'].items():
    print(f'{ratio:6.3f}  {name}')
  if args.output:
    atomic_files.write_text(args.output, json.dumps(result, indent=1, default=str) + '\n')


if __name__ == '__main__':
  main()
