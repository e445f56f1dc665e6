"""Runs every benchmark and writes their figures as JSON and a markdown table.

  python -m benchmarks.run_all --output_dir=outputs/benchmarks [--size=small|tiny|full]

Every figure is a ratio of two times (or rates, or byte counts) measured in the same run, so
it compares across machines; the raw measurements and the machine (CPU count, JAX version,
device kind and count) are recorded beside them. ``--size`` picks the workloads: ``small``
(default) takes a few minutes on 2 CPU cores, ``tiny`` is for the tests, ``full`` is for an
accelerator. Writes ``benchmarks.json`` and ``benchmarks.md`` (atomically) and prints the
table; a benchmark that fails is reported in both and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
import time
import traceback

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from benchmarks import (common, fsdp_memory, input_pipeline_throughput,  # noqa: E402
                        multi_device_sampling, rectification_throughput, sampler_overhead,
                        sampling_scaling, train_step_flops)
from eye2eye_jax.common import atomic_files, runtime  # noqa: E402

BENCHMARKS = {
    'train_step_flops': train_step_flops,
    'sampler_overhead': sampler_overhead,
    'input_pipeline': input_pipeline_throughput,
    'rectification': rectification_throughput,
    'fsdp_memory': fsdp_memory,
    'sampling_scaling': sampling_scaling,
    'multi_device_sampling': multi_device_sampling,
}

# Keyword arguments of each benchmark's measure() per size.
SIZES = {
    'tiny': {
        'train_step_flops': dict(config='configs/tiny.py', matmul_size=256, repeats=2),
        'sampler_overhead': dict(config='configs/tiny.py', frames=4, size=16, base_num_steps=2,
                                 refiner_num_steps=2),
        'input_pipeline': dict(config='configs/tiny.py', num_batches=4, repeats=2),
        'rectification': dict(eye_size=128, frames=48, out_size=64),
        'fsdp_memory': dict(config='configs/tiny.py'),
        'sampling_scaling': dict(config='configs/tiny.py', frames=4, size=16, base_num_steps=2,
                                 repeats=1, refiner=False),
        'multi_device_sampling': dict(config='configs/tiny.py', devices=4, frames=8, size=16,
                                      base_num_steps=2, refiner_num_steps=2),
    },
    'small': {
        'train_step_flops': dict(config='configs/demo.py', matmul_size=1024),
        'sampler_overhead': dict(config='configs/demo.py', frames=8, size=64, base_num_steps=5,
                                 refiner_num_steps=3),
        'input_pipeline': dict(config='configs/demo.py', num_batches=20),
        'rectification': dict(eye_size=1920, frames=78, out_size=512),
        'fsdp_memory': dict(config='configs/demo.py'),
        'sampling_scaling': dict(config='configs/demo.py', frames=4, size=32, base_num_steps=5,
                                 refiner_num_steps=3),
        'multi_device_sampling': dict(config='configs/demo.py', frames=32, size=64,
                                      base_num_steps=5, refiner_num_steps=3),
    },
    'full': {
        'train_step_flops': dict(config='configs/demo.py', batch_size=64, matmul_size=4096,
                                 repeats=10),
        'sampler_overhead': dict(config='configs/demo.py', frames=16, size=64),
        'input_pipeline': dict(config='configs/demo.py', num_batches=50),
        'rectification': dict(eye_size=1920, frames=126, out_size=512),
        'fsdp_memory': dict(config='configs/demo.py'),
        'sampling_scaling': dict(config='configs/demo.py', frames=8, size=64),
        'multi_device_sampling': dict(config='configs/demo.py', frames=64, size=64),
    },
}


def run(size: str = 'small', data_dir: str = '', only: list[str] | None = None,
        log=print) -> dict:
  """Runs the benchmarks (``only`` these names, if given) at ``size``; returns the report."""
  if size not in SIZES:
    raise ValueError(f'unknown size {size!r}; choose from {sorted(SIZES)}')
  names = list(only or BENCHMARKS)
  unknown = [name for name in names if name not in BENCHMARKS]
  if unknown:
    raise ValueError(f'unknown benchmarks {unknown}; have {list(BENCHMARKS)}')
  report = {'size': size, 'date': datetime.datetime.now(datetime.timezone.utc).isoformat(),
            'machine': common.machine_info(), 'benchmarks': {}}
  for name in names:
    kwargs = dict(SIZES[size][name])
    if name == 'input_pipeline' and data_dir:
      kwargs['data_dir'] = data_dir
    log(f'[{name}] {kwargs}')
    start = time.perf_counter()
    try:
      entry = BENCHMARKS[name].measure(**kwargs)
    except Exception as error:  # one broken benchmark does not hide the others' figures
      entry = {'error': f'{type(error).__name__}: {error}',
               'traceback': traceback.format_exc()}
      log(f'[{name}] failed: {entry["error"]}')
    entry['seconds'] = time.perf_counter() - start
    entry['descriptions'] = {k: BENCHMARKS[name].FIGURES[k] for k in entry.get('figures', {})}
    report['benchmarks'][name] = entry
  return report


def table(report: dict) -> str:
  """Every figure of the report, a row each, and a row per failed benchmark."""
  lines = ['| benchmark | figure | value | what it is |', '|---|---|---|---|']
  for name, entry in report['benchmarks'].items():
    for figure, value in entry.get('figures', {}).items():
      lines.append(f'| {name} | {figure} | {value:.3f} | {entry["descriptions"][figure]} |')
    if 'error' in entry:
      lines.append(f'| {name} | FAILED | - | {entry["error"].splitlines()[0][:200]} |')
  return '\n'.join(lines)


def markdown(report: dict) -> str:
  """The report as a markdown table of figures, with the machine and any failures."""
  m = report['machine']
  return '\n'.join([f'# Benchmarks ({report["size"]})', '',
                    f'{m["device_count"]} x {m["device_kind"]} ({m["backend"]}), '
                    f'{m["cpu_count"]} CPUs, JAX {m["jax"]}, Python {m["python"]}, '
                    f'{m["platform"]}; {report["date"]}', '', table(report)]) + '\n'


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--output_dir', default='outputs/benchmarks')
  parser.add_argument('--size', default='small', choices=sorted(SIZES))
  parser.add_argument('--data_dir', default='',
                      help='TFDS data dir of the input pipeline benchmark (default: the '
                           'config\'s, built there if missing)')
  parser.add_argument('--only', default='', help='Comma-separated benchmark names.')
  args = parser.parse_args(argv)
  runtime.enable_compilation_cache()
  report = run(args.size, args.data_dir, [n for n in args.only.split(',') if n] or None)
  output_dir = pathlib.Path(args.output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  table = markdown(report)
  atomic_files.write_text(output_dir / 'benchmarks.json', json.dumps(report, indent=2))
  atomic_files.write_text(output_dir / 'benchmarks.md', table)
  print(table)
  print(f'Wrote {output_dir / "benchmarks.json"} and {output_dir / "benchmarks.md"}')
  return 1 if any('error' in e for e in report['benchmarks'].values()) else 0


if __name__ == '__main__':
  sys.exit(main())
