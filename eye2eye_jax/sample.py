"""Converts right-eye videos to stereo with a trained model.

  python -m eye2eye_jax.sample --config=configs/demo.py --input=RIGHT.mp4 --output_dir=DIR
  python -m eye2eye_jax.sample --config=configs/demo.py --input=VIDEOS/ --output_dir=DIR \
      [--checkpoint=WORKDIR_OR_CHECKPOINT] [--config.sample.num_steps=50]

For each input ``<stem>.<ext>`` it writes, with the input's frame count, size and rate:
  DIR/<stem>_left.mp4            the generated left-eye video
  DIR/<stem>_LRF_Full_SBS.mp4    full side-by-side, left | right (VR players detect the suffix)
  DIR/<stem>_anaglyph.mp4        red-cyan (Dubois) anaglyph
The checkpoint is ``--checkpoint`` if given, else ``config.sample.checkpoint`` (the demo
config names the bundled demo checkpoint). The checkpoint's own config defines the model.
"""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

from eye2eye_jax import runtime, video_conversion, video_io

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.',
                                          lock_config=True)
_INPUT = flags.DEFINE_string('input', None, 'A right-eye video, or a directory of videos.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where the stereo videos go.')
_CHECKPOINT = flags.DEFINE_string('checkpoint', None,
                                  'Training workdir, checkpoint directory or bundled:NAME; '
                                  'overrides config.sample.checkpoint.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if _CONFIG.value is None or not _INPUT.value or not _OUTPUT_DIR.value:
    raise app.UsageError('--config, --input and --output_dir are required')
  runtime.enable_compilation_cache()
  try:
    inputs = video_conversion.list_inputs(_INPUT.value)
    sampler = video_conversion.load_sampler(_CONFIG.value, _CHECKPOINT.value)
  except (FileNotFoundError, ValueError) as error:
    sys.exit(f'error: {error}')
  failures = 0
  for path in inputs:
    try:
      written = video_conversion.convert_file(sampler, path, _OUTPUT_DIR.value)
      print(f'{path} -> ' + ', '.join(str(p) for p in written.values()))
    except (video_io.VideoError, ValueError) as error:
      failures += 1
      print(f'error: {error}', file=sys.stderr)
  if failures:
    sys.exit(f'error: {failures} of {len(inputs)} videos could not be converted')


if __name__ == '__main__':
  app.run(main)
