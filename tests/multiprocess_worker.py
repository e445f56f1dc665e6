"""One of several training processes on localhost; prints one JSON line of results.

  JAX_COORDINATOR_ADDRESS=localhost:PORT JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=I \
      python tests/multiprocess_worker.py DATA_DIR WORKDIR

Joins the run as the launch scripts make a process do, lists the training records this
process reads in one epoch, then trains the tiny config for a few steps with the others.
"""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import grain  # noqa: E402
import jax  # noqa: E402

from eye2eye_jax import config_base  # noqa: E402
from eye2eye_jax.common import runtime  # noqa: E402
from eye2eye_jax.data import datasets, input_pipeline  # noqa: E402
from eye2eye_jax.training import loop  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent


def main():
  data_dir, workdir = sys.argv[1], sys.argv[2]
  runtime.enable_compilation_cache()
  runtime.initialize_distributed()
  config = config_base.load_config_file(REPO / 'configs' / 'tiny.py')
  config.data.data_dir = data_dir
  config.data.batch_size = 4
  config.train.sample_every = 0
  config.train.num_steps = 4
  config.train.log_every = 1
  config.train.checkpoint_every = 2
  source = datasets.data_source(config, 'train', data_dir)
  sampler = input_pipeline.train_sampler(config, len(source), num_epochs=1)
  # The training set's seeds are the record indices: read one epoch as the loader does.
  read = [int(record['seed']) for record in grain.DataLoader(data_source=source,
                                                             sampler=sampler)]
  losses = []
  loop.train_and_evaluate(config, workdir,
                          on_metrics=lambda step, m: losses.append((step, m['loss'])))
  print('RESULT ' + json.dumps({'process': jax.process_index(), 'count': jax.process_count(),
                                'devices': jax.device_count(), 'read': read,
                                'losses': losses}), flush=True)
  jax.distributed.shutdown()


if __name__ == '__main__':
  main()
