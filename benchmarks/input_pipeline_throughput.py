"""Does the input pipeline keep up with the train step?

  python benchmarks/input_pipeline_throughput.py [--config=configs/demo.py] [--data_dir=DIR]

Builds the config's dataset if it is missing (``datasets.ensure_dataset``), reads
training batches through the grain loader the trainer uses and times them, times the
compiled train step on batches of the same shape, and prints loader clips/s over train
step clips/s: above 1 the pipeline is not the bottleneck.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from benchmarks import common, train_step_flops  # noqa: E402
from eye2eye_jax.common import runtime  # noqa: E402
from eye2eye_jax.data import datasets, input_pipeline  # noqa: E402

FIGURES = {
    'loader_over_train_step': 'grain loader clips/s over train step clips/s (above 1: the '
                              'input pipeline keeps up)',
}


def measure(config: str = 'configs/demo.py', data_dir: str = '', num_batches: int = 20,
            repeats: int = 5) -> dict:
  """Clips per second of the training loader and of the train step, and their ratio."""
  cfg = common.load_config(config)
  data_dir = data_dir or datasets.resolve_data_dir(cfg)
  datasets.ensure_dataset(cfg, data_dir)
  iterator = iter(input_pipeline.create_train_loader(cfg, data_dir))
  next(iterator)  # opens the files and starts the workers
  start = time.perf_counter()
  for _ in range(num_batches):
    next(iterator)
  loader_s = (time.perf_counter() - start) / num_batches
  step_s, _ = train_step_flops.time_train_step(cfg, repeats)
  clips = cfg.data.batch_size
  return {
      'figures': {'loader_over_train_step': (clips / loader_s) / (clips / step_s)},
      'details': {'config': config, 'data_dir': str(data_dir), 'batch_size': clips,
                  'loader_workers': cfg.data.num_workers, 'view': cfg.data.view,
                  'loader_clips_per_s': clips / loader_s,
                  'train_step_clips_per_s': clips / step_s},
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='configs/demo.py')
  parser.add_argument('--data_dir', default='', help='TFDS data dir (default: the config\'s)')
  parser.add_argument('--num_batches', type=int, default=20)
  args = parser.parse_args(argv)
  runtime.enable_compilation_cache()
  result = measure(args.config, args.data_dir, args.num_batches)
  d = result['details']
  print(f'loader {d["loader_clips_per_s"]:.1f} clips/s, train step '
        f'{d["train_step_clips_per_s"]:.1f} clips/s; loader / train step = '
        f'{result["figures"]["loader_over_train_step"]:.2f}')


if __name__ == '__main__':
  main()
