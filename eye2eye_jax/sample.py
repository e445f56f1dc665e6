"""Converts videos to stereo with a trained base model and, optionally, a refiner.

  python -m eye2eye_jax.sample --config=configs/demo.py --input=RIGHT.mp4 --output_dir=DIR
  python -m eye2eye_jax.sample --config=configs/demo.py --input=VIDEOS/ --output_dir=DIR \
      [--checkpoint=...] [--refiner_checkpoint=...] [--skip_existing] [--continue_on_error] \
      [--config.sample.base_resolution=24] [--config.sample.input_eye=left] ...

``--input`` is a video, a directory of videos or a .txt list of paths. For each input
``<stem>`` it writes, with the input's frame count, size, rate and audio, the layouts named
in ``config.sample.outputs``:
  DIR/<stem>_left.mp4          the generated eye (``_right.mp4`` when the input is the left eye)
  DIR/<stem>_LRF_Full_SBS.mp4  full side-by-side, left | right (VR players detect the suffix)
  DIR/<stem>_LR_Half_SBS.mp4   half side-by-side (3D TVs)
  DIR/<stem>_TB.mp4            full top-bottom, left on top
  DIR/<stem>_anaglyph.mp4      red-cyan anaglyph (config.sample.anaglyph: dubois, color, gray)
Controls (``--config.sample.<field>``): input_eye, base_resolution (the 3D strength: a
smaller base resolution gives a larger disparity), seed, base_num_steps, refiner_num_steps,
refiner_t_start, guidance_scale, solver, crf, window_overlap, chunk_frames, chunk_overlap,
scene_cut_threshold, scene_cuts. The checkpoints' own configs define the models. A video
streams through in chunks (decoded, converted and encoded as it goes), so a long one needs
no more memory than a short one. An input's outputs are written all or none; a failure or
Ctrl-C leaves no partial file and replaces no earlier output.

Every device of the process is used (``sample.mesh_shape``: windows and tiles spread over
them, optionally each window's rows). Several processes (the hosts of a pod slice with
$EYE2EYE_CLUSTER=auto, SLURM tasks, or $JAX_COORDINATOR_ADDRESS / $JAX_NUM_PROCESSES /
$JAX_PROCESS_ID) split the inputs
between them, so that each output is written by exactly one process.
"""

from __future__ import annotations

import sys

import jax
from absl import flags

from eye2eye_jax.common import cli_flags, runtime
from eye2eye_jax.sampling import video_conversion

_HOSTS_WAIT_S = 7 * 24 * 3600  # how long a process that is done waits for slower ones
_CONFIG = cli_flags.define_config()
_INPUT = flags.DEFINE_string('input', None, 'A video, a directory of videos or a .txt list.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where the stereo videos go.')
_CHECKPOINT, _REFINER = cli_flags.define_checkpoints()
_SKIP_EXISTING = flags.DEFINE_bool('skip_existing', False,
                                   'Skip inputs whose outputs all exist (resume a batch).')
_CONTINUE = flags.DEFINE_bool('continue_on_error', False,
                              'Report a failing input and go on with the others.')


def main(argv):
  cli_flags.require(argv, config=_CONFIG.value, input=_INPUT.value,
                    output_dir=_OUTPUT_DIR.value)
  runtime.enable_compilation_cache()
  # Hosts convert different videos and never wait for each other until the end.
  runtime.initialize_distributed(shutdown_timeout_s=_HOSTS_WAIT_S)
  with cli_flags.exit_on_error():
    inputs = video_conversion.list_inputs(_INPUT.value)
    sampler = video_conversion.load_sampler(_CONFIG.value, _CHECKPOINT.value, _REFINER.value)
    try:
      result = video_conversion.convert_many(sampler, inputs, _OUTPUT_DIR.value,
                                             skip_existing=_SKIP_EXISTING.value,
                                             continue_on_error=_CONTINUE.value,
                                             process_index=jax.process_index(),
                                             process_count=jax.process_count())
    except video_conversion.ConversionError as error:
      print(error.result.summary(), file=sys.stderr)
      sys.exit(f'error: {error}\nstopped at the first failure: --continue_on_error converts '
               'the other inputs and lists each failure; --skip_existing resumes the batch')
  summary = result.summary()
  if jax.process_count() > 1:
    summary = (f'process {jax.process_index()} of {jax.process_count()}: {summary}\n'
               + '\n'.join(f'  converted: {p}' for p in result.converted))
  print(summary, file=sys.stderr if result.failed else sys.stdout)
  if result.failed:
    sys.exit(1)


if __name__ == '__main__':
  cli_flags.run(main)
