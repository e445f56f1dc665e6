"""The two private grain formats the pipeline relies on, kept here and nowhere else.

Written against grain 0.2.18 (``requirements.lock``); grain documents neither and has no
public API for them, so ``tests/test_pinned_internals.py`` checks both against the
installed grain and fails, naming that version, when either changes:

* The JSON of ``DataLoaderIterator.get_state()``: ``last_seen_indices`` (per worker, the
  sampler's global index of the last record it read) and ``last_worker_index``. Moving a
  fresh iterator to a step (``seek``) rewrites them; if they change, a resume on a different
  number of processes would restart or mis-place the data order.
* The files grain's orbax checkpoint handler writes, ``process_<index>-of-<count>.json``:
  ``written_process_count`` reads the count from them; if the naming changes, every resume
  re-derives the data position from the step instead of restoring it.
"""

from __future__ import annotations

import json

import grain
from etils import epath

WRITTEN_FOR = '0.2.18'  # the grain version these formats were read from
STATE_FILES = 'process_*-of-*.json'  # process_<index>-of-<count>.json, one per process


def seek(iterator: grain.DataLoaderIterator, batches: int, batch_size: int, workers: int,
         shard_index: int, shard_count: int) -> None:
  """Moves a fresh iterator to where it is after reading ``batches`` local batches of
  ``batch_size`` records: ``workers`` worker processes (at least 1) take batches in turn,
  and this shard reads every ``shard_count``-th record of the sampler's global order."""
  global_workers = workers * shard_count
  state = json.loads(iterator.get_state())
  state['last_seen_indices'] = {
      str(i): shard_index - global_workers + i * shard_count
              + (batches - i + workers - 1) // workers * batch_size * global_workers
      for i in range(workers)}
  state['last_worker_index'] = batches % workers - 1
  iterator.set_state(json.dumps(state).encode())


def written_process_count(directory: epath.Path) -> int | None:
  """How many processes wrote the iterator states of a checkpoint's grain item in
  ``directory`` (None: none, or files disagreeing on the count)."""
  names = [p.name for p in directory.glob(STATE_FILES)] if directory.exists() else []
  counts = {int(name.rsplit('-of-', 1)[1].removesuffix('.json')) for name in names}
  return counts.pop() if len(counts) == 1 else None
