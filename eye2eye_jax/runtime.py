"""Process-wide JAX settings shared by the command-line tools."""

import os

import jax


def enable_compilation_cache(directory: str | None = None) -> None:
  """Persists compiled programs across runs ($JAX_COMPILATION_CACHE_DIR or ~/.cache)."""
  directory = directory or os.environ.get('JAX_COMPILATION_CACHE_DIR') or os.path.expanduser(
      '~/.cache/eye2eye_jax/jax_compilation_cache')
  jax.config.update('jax_compilation_cache_dir', directory)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', -1)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
