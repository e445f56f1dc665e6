"""Plans a training run on a pod slice or GPU cluster before reserving it.

  python -m eye2eye_jax.plan --config=configs/base_paper.py --topology=v5p-64 \
      [--mfu=0.4] [--output=plan.json] [--compile] [--config.model.remat=dots ...]

Without allocating the model (abstract shapes, programs compiled for this CPU; see
``eye2eye_jax/planning/``) prints: parameters per UNet module; bytes per device of
parameters, optimizer state, EMA, gradients and activations under ``config.mesh`` on the
topology's devices, and whether they fit its HBM (if not, the mesh and remat settings that
would, each estimated again); FLOPs per train step (whole topology and per device), time
per step and to ``train.num_steps``, chip-hours; this config's sampling stage on one device;
the dataset's size, input bandwidth per host and the Stereo4D build time. ``--compile``
(TPU topologies, with libtpu installed) also compiles the sharded train step and the sampling
stage with the TPU compiler itself and reports its bytes per device beside the estimate; the
verdict then follows the compiler. ``--output`` writes the same as JSON. Topologies:
``eye2eye_jax/planning/accelerators.py``. For a Wan 2.1 config (``model.architecture='wan'``,
e.g. configs/wan_t2v_14b.py) it plans the transformer's fine-tuning step on a ``--video``
clip and, with ``--compile``, also the VAE's decode of one chunk
(``eye2eye_jax/planning/wan_plan.py``).
"""

from __future__ import annotations

import os

# The planner compiles for this CPU and, with --compile, for abstract TPU devices: it never
# opens an accelerator. Where libtpu is installed, JAX would otherwise try to start a TPU
# (and libtpu to find its host) before any flag is read.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TPU_WORKER_HOSTNAMES', 'localhost')

import json  # noqa: E402
import time  # noqa: E402

from absl import flags  # noqa: E402

from eye2eye_jax.common import atomic_files, cli_flags, runtime  # noqa: E402
from eye2eye_jax.planning import (accelerators, data_estimate, planner, report,  # noqa: E402
                                  tpu_compile, wan_plan)

_CONFIG = cli_flags.define_config()
_TOPOLOGY = flags.DEFINE_string('topology', None,
                                f'Where it would run: {accelerators.KNOWN}.')
_MFU = flags.DEFINE_float('mfu', 0.4, 'Assumed utilisation of the peak FLOP/s.')
_OUTPUT = flags.DEFINE_string('output', None, 'Also write the plan here as JSON.')
_COMPILE = flags.DEFINE_bool('compile', False,
                             'Also compile the sharded train step and the sampling stage with '
                             'the TPU compiler for --topology (needs libtpu: '
                             f'{tpu_compile.LIBTPU_HINT}).')
_VIDEO = flags.DEFINE_string('video', None,
                             'Sampling estimate for a video WIDTHxHEIGHTxFRAMES (frames at '
                             'the model\'s frame rate; default 512x512x160); for a Wan '
                             'config, the clip its step is planned for (default 832x480x81).')
_NUM_CLIPS = flags.DEFINE_integer('num_clips', 100_000, 'Clips in the training set.')
_COMPRESSION = flags.DEFINE_float('compression_ratio', None,
                                  'Raw / stored bytes of the dataset\'s views; default: '
                                  'measured on a sample the project renders.')
_BUILDER_MS = flags.DEFINE_float(
    'builder_ms_per_frame', data_estimate.BUILDER_MS_PER_FRAME,
    'Stereo4D builder time per stored frame on 2 cores; default: the whole builder from '
    f'{data_estimate.BUILDER_MEASURED_SOURCE} sources, measured by '
    'benchmarks/rectification_throughput.py.')
_BUILDER_CORES = flags.DEFINE_integer('builder_cores', data_estimate.BUILDER_MEASURED_CORES,
                                      'CPU cores building the dataset (linear scaling).')


def _video(text: str) -> tuple[int, int, int]:
  try:
    width, height, frames = (int(x) for x in text.lower().split('x'))
  except ValueError:
    raise ValueError(f'--video must be WIDTHxHEIGHTxFRAMES, got {text!r}') from None
  return width, height, frames


def main(argv):
  cli_flags.require(argv, config=_CONFIG.value, topology=_TOPOLOGY.value)
  runtime.enable_compilation_cache()
  start = time.time()
  with cli_flags.exit_on_error():
    topology = accelerators.parse_topology(_TOPOLOGY.value)
    if _CONFIG.value.model.architecture == 'wan':
      video = _video(_VIDEO.value) if _VIDEO.value else wan_plan.DEFAULT_VIDEO
      result = wan_plan.plan(_CONFIG.value, topology, name=cli_flags.config_description(),
                             mfu=_MFU.value, video=video, compile_for_tpu=_COMPILE.value)
      formatter = wan_plan.format_plan
    else:
      result = planner.plan(_CONFIG.value, topology, name=cli_flags.config_description(),
                            mfu=_MFU.value, video=_video(_VIDEO.value or '512x512x160'),
                            num_clips=_NUM_CLIPS.value, compression_ratio=_COMPRESSION.value,
                            builder_ms_per_frame=_BUILDER_MS.value,
                            builder_cores=_BUILDER_CORES.value,
                            compile_for_tpu=_COMPILE.value)
      formatter = report.format_plan
  result['planning_s'] = time.time() - start
  print(formatter(result))
  print(f'\n(planned in {report.duration(result["planning_s"])})')
  if _OUTPUT.value:
    atomic_files.write_text(_OUTPUT.value, json.dumps(result, indent=2) + '\n')


if __name__ == '__main__':
  cli_flags.run(main)
