"""The command-line flags and conventions the entry points share.

``--config`` is an ml_collections config file whose fields can be overridden
(``--config.train.num_steps=10``; an unknown key is an error); ``--checkpoint`` and
``--refiner_checkpoint`` name the models the sampling commands load. A command's expected
failures (a missing file, a bad value, an unwritable path) end it with ``error: ...`` and exit
status 1 instead of a traceback.
"""

from __future__ import annotations

import contextlib
import sys

from absl import app, flags
from ml_collections import config_flags

EXPECTED_ERRORS = (FileNotFoundError, ValueError, OSError)


def define_config(default: str | None = None, lock: bool = True) -> flags.FlagHolder:
  """``--config``: the experiment config file (``--config.a.b=value`` overrides a field)."""
  return config_flags.DEFINE_config_file('config', default, 'Experiment config file.',
                                         lock_config=lock)


def define_checkpoints(default_help: str = 'overrides config.sample.checkpoint'
                       ) -> tuple[flags.FlagHolder, flags.FlagHolder]:
  """``--checkpoint`` (the base model) and ``--refiner_checkpoint`` (None: the config's)."""
  checkpoint = flags.DEFINE_string(
      'checkpoint', None,
      f'Base model: training workdir, checkpoint directory or bundled:NAME; {default_help}.')
  refiner_help = default_help.replace('checkpoint', 'refiner_checkpoint')
  refiner = flags.DEFINE_string('refiner_checkpoint', None,
                                f'Refiner, likewise; "" for none; {refiner_help}.')
  return checkpoint, refiner


def config_file() -> str:
  """The path ``--config`` was given."""
  return config_flags.get_config_filename(flags.FLAGS['config'])


def config_description() -> str:
  """``--config``'s path followed by its overrides, as typed (for reports)."""
  overrides = config_flags.get_override_values(flags.FLAGS['config'])
  return ' '.join([config_file()] + [f'--config.{k}={v}' for k, v in overrides.items()])


def require(argv: list[str], **values) -> None:
  """Raises app.UsageError for positional arguments or a required flag left unset."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  missing = [f'--{name}' for name, value in values.items() if value is None or value == '']
  if missing:
    raise app.UsageError(f'{" and ".join(missing)} {"is" if len(missing) == 1 else "are"} '
                         'required')


def run(main) -> None:
  """``app.run(main)``, a ``--config.a.b=value`` naming no field of the config, or a config
  file setting one, reported as one ``error: ...`` line (ml_collections raises a bare
  AttributeError while parsing)."""

  def parse(argv: list[str]) -> list[str]:
    try:
      return app.parse_flags_with_usage(argv)
    except (AttributeError, KeyError, ValueError) as error:
      try:
        problem = _unknown_override(argv)
      except (FileNotFoundError, ValueError) as file_error:  # the config file itself is bad
        problem = str(file_error)
      sys.exit(f'error: {problem or error}')

  app.run(main, flags_parser=parse)


def _unknown_override(argv: list[str]) -> str | None:
  """Which ``--config.a.b`` override names no field of the ``--config`` file, and what the
  section it points into holds."""
  from eye2eye_jax import config_base
  paths = [a.split('=', 1)[1] for a in argv if a.startswith('--config=')]
  if not paths:
    return None
  config = config_base.load_config_file(paths[-1])
  for argument in argv:
    if not argument.startswith('--config.'):
      continue
    keys = argument[len('--config.'):].split('=', 1)[0].split('.')
    section = config
    for depth, key in enumerate(keys):
      if not hasattr(section, 'keys') or key not in section:
        where = '.'.join(keys[:depth]) or 'the config'
        known = ', '.join(sorted(section.keys())) if hasattr(section, 'keys') else 'no fields'
        return (f'--config.{".".join(keys)}: {where} has no field {key!r} (it has: '
                f'{known})')
      section = section[key]
  return None


@contextlib.contextmanager
def exit_on_error(*more: type[BaseException]):
  """Turns the expected failures (and ``more``) into ``error: ...`` and exit status 1."""
  try:
    yield
  except EXPECTED_ERRORS + more as error:
    sys.exit(f'error: {error}')
