"""Runs in a subprocess with 8 simulated CPU devices; prints one JSON line of results.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 \
      python tests/scale_out_worker.py MODE DATA_DIR [WORKDIR]

meshes: a few train steps of the tiny config on 1 device and on data-parallel, FSDP and
  mixed meshes of 8, from the same batches: losses, bytes held and FLOPs per device.
grow: resumes WORKDIR (a run of the tiny config made on one device) for 4 more steps on an
  FSDP x tensor mesh of the 8 devices.
state_bytes: lays the tiny config's train state out on each mesh shape given as JSON
  (DATA_DIR unused) and reports the bytes per device of its parts.
warm_start: starts an FSDP state from the checkpoint in WORKDIR (train.init_checkpoint) and
  reports whether every array landed in the FSDP layout, its bytes per device and the
  largest difference from the checkpoint's weights.
"""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from eye2eye_jax import config_base  # noqa: E402
from eye2eye_jax.common import runtime, sharding  # noqa: E402
from eye2eye_jax.data import input_pipeline  # noqa: E402
from eye2eye_jax.training import loop, step_figures, train_state  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent


def tiny_config(data_dir: str, mesh_shape=(-1, 1, 1)):
  config = config_base.load_config_file(REPO / 'configs' / 'tiny.py')
  config.data.data_dir = data_dir
  config.data.batch_size = 8
  config.train.sample_every = 0
  config.mesh.shape = mesh_shape
  return config


def meshes(data_dir: str) -> dict:
  config = tiny_config(data_dir)
  loader = iter(input_pipeline.create_train_loader(config, data_dir))
  batches = [next(loader) for _ in range(3)]
  results = {}
  for name, shape, devices in (('single', (1, 1, 1), jax.devices()[:1]),
                               ('data', (8, 1, 1), None),
                               ('fsdp', (1, 8, 1), None),
                               ('mixed', (2, 2, 2), None)):
    config.mesh.shape = shape
    mesh = sharding.create_mesh(config, devices)
    rules = config.mesh.rules
    abstract = jax.eval_shape(lambda: train_state.init_train_state(config))
    shardings = sharding.state_shardings(abstract, mesh, rules)
    batch_sharding = sharding.batch_shardings(mesh, rules,
                                              input_pipeline.batch_ndims(config))
    state = train_state.init_sharded_train_state(config, shardings)
    step = train_state.make_train_step(config, shardings, batch_sharding)
    losses = []
    for batch in batches:
      batch = {k: jax.make_array_from_process_local_data(batch_sharding[k], v)
               for k, v in batch.items()}
      state, metrics = step(state, batch)
      losses.append(float(metrics['loss']))
    results[name] = {
        'losses': losses,
        'param_bytes_per_device': sharding.bytes_per_device(state['params']),
        'opt_bytes_per_device': sharding.bytes_per_device(state['opt_state']),
        'param_bytes': sum(x.nbytes for x in jax.tree.leaves(state['params'])),
        'opt_bytes': sum(x.nbytes for x in jax.tree.leaves(state['opt_state'])),
        'compilations': step._cache_size(),
        # What the trainer logs as the step's FLOPs per device (the loop's own call).
        'flops_per_device': step_figures.flops_per_device(config, state, batch,
                                                          mesh.devices.size),
    }
  return results


def grow(data_dir: str, workdir: str) -> list:
  config = config_base.load_config_file(REPO / 'configs' / 'tiny.py')
  config.data.data_dir = data_dir
  config.train.sample_every = 0
  config.train.num_steps += 4
  config.train.log_every = 1
  config.mesh.shape = (1, 2, 4)  # the tiny batch of 2 splits over fsdp; tensor takes 4
  losses = []
  loop.train_and_evaluate(config, workdir,
                          on_metrics=lambda step, m: losses.append((step, m['loss'])))
  return losses


def state_bytes(shapes: list) -> dict:
  results = {}
  for shape in shapes:
    config = tiny_config('', tuple(shape))
    mesh = sharding.create_mesh(config)
    abstract = jax.eval_shape(lambda: train_state.init_train_state(config))
    shardings = sharding.state_shardings(abstract, mesh, config.mesh.rules)
    state = jax.device_put(jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), abstract),
                           shardings)  # the layout is what counts, not the values
    results[str(tuple(shape))] = {key: sharding.bytes_per_device(state[key])
                                  for key in ('params', 'opt_state', 'ema_params')}
  return results


def warm_start(source: str) -> dict:
  from eye2eye_jax.models import checkpoints
  config = tiny_config('', (1, 8, 1))
  mesh = sharding.create_mesh(config)
  abstract = jax.eval_shape(lambda: train_state.init_train_state(config))
  shardings = sharding.state_shardings(abstract, mesh, config.mesh.rules)
  state, _ = train_state.init_from_checkpoint(config, source, shardings)
  laid_out = jax.tree.map(lambda a, s: a.sharding.is_equivalent_to(s, a.ndim), state, shardings)
  _, weights = checkpoints.load_weights_to_host(source)
  error = max(float(np.max(np.abs(np.asarray(a) - b))) for a, b in
              zip(jax.tree.leaves(state['params']), jax.tree.leaves(weights)))
  return {'laid_out': all(jax.tree.leaves(laid_out)), 'max_error': error,
          'params_bytes_per_device': sharding.bytes_per_device(state['params']),
          'params_bytes': sum(a.nbytes for a in jax.tree.leaves(state['params']))}


def main():
  mode, data_dir = sys.argv[1], sys.argv[2]
  runtime.enable_compilation_cache()
  assert jax.device_count() == 8, jax.devices()
  modes = {'meshes': lambda: meshes(data_dir),
           'grow': lambda: grow(data_dir, sys.argv[3]),
           'state_bytes': lambda: state_bytes(json.loads(sys.argv[3])),
           'warm_start': lambda: warm_start(sys.argv[3])}
  result = modes[mode]()
  print('RESULT ' + json.dumps(result))


if __name__ == '__main__':
  main()
