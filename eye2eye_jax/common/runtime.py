"""Process-wide JAX settings shared by the command-line tools."""

import os

import jax
from absl import logging


def enable_compilation_cache(directory: str | None = None) -> None:
  """Persists compiled programs across runs: ``directory``, else $JAX_COMPILATION_CACHE_DIR,
  else ~/.cache/eye2eye_jax. A restarted or resumed run then skips recompiling.

  Every program is kept, however quick its compile: initialising a UNet's weights outside
  jit compiles one small program per operation and shape, each well under a second but
  about 20 s together on 2 CPU cores; from the cache a new process does it in under 2 s.
  """
  directory = directory or os.environ.get('JAX_COMPILATION_CACHE_DIR') or os.path.expanduser(
      '~/.cache/eye2eye_jax/jax_compilation_cache')
  jax.config.update('jax_compilation_cache_dir', directory)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', -1)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)


# Environment variables that say this process is one of several: explicit addresses (GPU
# hosts, localhost), or EYE2EYE_CLUSTER=auto to let JAX find its peers (TPU pod slices;
# launch/host_train.sh sets it there). Multi-task SLURM jobs are detected as well.
_COORDINATOR = 'JAX_COORDINATOR_ADDRESS'
_NUM_PROCESSES = 'JAX_NUM_PROCESSES'
_PROCESS_ID = 'JAX_PROCESS_ID'
_CLUSTER = 'EYE2EYE_CLUSTER'


def initialize_distributed(shutdown_timeout_s: int = 300) -> None:
  """Joins a multi-process run when there is one; a single process needs nothing.

  With $JAX_COORDINATOR_ADDRESS, $JAX_NUM_PROCESSES and $JAX_PROCESS_ID set, those are
  used (CPU processes then exchange data over gloo); with $EYE2EYE_CLUSTER=auto or inside a
  SLURM job of several tasks, JAX reads the cluster's own description. A process that ends
  first waits up to ``shutdown_timeout_s`` for the others before it exits.
  """
  if os.environ.get(_COORDINATOR):
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(coordinator_address=os.environ[_COORDINATOR],
                               num_processes=int(os.environ[_NUM_PROCESSES]),
                               process_id=int(os.environ[_PROCESS_ID]),
                               shutdown_timeout_seconds=shutdown_timeout_s)
  elif (os.environ.get(_CLUSTER) == 'auto'
        or int(os.environ.get('SLURM_NTASKS', '1')) > 1):
    jax.distributed.initialize(shutdown_timeout_seconds=shutdown_timeout_s)
  else:
    return
  logging.info('Process %d of %d, %d local / %d global devices', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def sync_processes(name: str) -> None:
  """Waits until every process of the run reaches the point called ``name`` (nothing to
  wait for in a single process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def check_shared_directory(directory: str, setting: str) -> None:
  """Raises ValueError on every process unless all processes see ``directory`` as one
  folder (a bucket or a network file system): process 0 writes a file with a fresh name
  there and each process looks for it. ``setting`` names the config field to fix."""
  if jax.process_count() == 1:
    return
  import numpy as np
  from etils import epath
  from jax.experimental import multihost_utils
  token = int(multihost_utils.broadcast_one_to_all(np.int64(np.random.SeedSequence().entropy
                                                            % 2**62)))
  marker = epath.Path(directory) / f'.shared_check_{token}'
  if jax.process_index() == 0:
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text('written by process 0')
  sync_processes(f'wrote {marker}')
  seen = multihost_utils.process_allgather(np.asarray(marker.exists()))
  sync_processes(f'looked for {marker}')
  if jax.process_index() == 0:
    marker.unlink()
  blind = np.flatnonzero(~np.asarray(seen)).tolist()
  if blind:
    raise ValueError(
        f'{setting}={directory} is not shared by the processes of this run: process(es) '
        f'{blind} cannot see what process 0 writes there. Set {setting} to a bucket '
        '(gs://...) or a network file system every host mounts')
