"""The private formats of pinned libraries the code relies on, checked against the installed ones.

Each is used in one place (``eye2eye_jax/data/grain_state.py`` for grain,
``eye2eye_jax/planning/compiled_programs.py`` for jax and flax); a version bump that changes
one fails here, naming the version the code was written for, instead of silently
mis-placing the data order or mis-counting activation memory.
"""

import importlib.metadata
import json

import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from absl import flags
from etils import epath
from flax import nnx

from eye2eye_jax.data import grain_state
from eye2eye_jax.planning import compiled_programs


def _changed(package: str, written_for: str, module: str, what: str) -> str:
  return (f'{package} {importlib.metadata.version(package)} no longer has the private format '
          f'{module} relies on (written for {package} {written_for}, the version in '
          f'requirements.lock): {what}')


def _grain(what: str) -> str:
  return _changed('grain', grain_state.WRITTEN_FOR, 'eye2eye_jax/data/grain_state.py', what)


def _loader(worker_count=0, shard_index=0, shard_count=1) -> grain.DataLoader:
  """Batches of 2 of 40 records, shuffled endlessly, this shard's share."""
  shard = grain.sharding.ShardOptions(shard_index, shard_count, drop_remainder=True)
  sampler = grain.samplers.IndexSampler(num_records=40, shard_options=shard, shuffle=True,
                                        num_epochs=None, seed=0)
  return grain.DataLoader(data_source=grain.sources.RangeDataSource(0, 40, 1), sampler=sampler,
                          operations=[grain.transforms.Batch(2, drop_remainder=True)],
                          worker_count=worker_count)


def test_grain_iterator_state_has_the_fields_seek_rewrites():
  iterator = iter(_loader())
  next(iterator)
  state = json.loads(iterator.get_state())
  assert isinstance(state.get('last_seen_indices'), dict), _grain(
      f'the iterator state has no last_seen_indices dict: {state}')
  assert all(isinstance(k, str) and isinstance(v, int)
             for k, v in state['last_seen_indices'].items()), _grain(
      f'last_seen_indices is no longer worker -> record index: {state}')
  assert isinstance(state.get('last_worker_index'), int), _grain(
      f'the iterator state has no last_worker_index: {state}')


@pytest.mark.parametrize('workers,shard_index,shard_count', [(0, 0, 1), (0, 1, 2), (2, 1, 2)])
def test_grain_seek_puts_the_iterator_where_reading_does(workers, shard_index, shard_count):
  if not flags.FLAGS.is_parsed():  # grain's worker processes read its flags (at defaults)
    flags.FLAGS.mark_as_parsed()
  for batches in (0, 1, 5, 13):  # 13 batches: past the end of an epoch
    read = iter(_loader(workers, shard_index, shard_count))
    for _ in range(batches):
      next(read)
    sought = iter(_loader(workers, shard_index, shard_count))
    grain_state.seek(sought, batches, 2, max(workers, 1), shard_index, shard_count)
    where = f'{workers} workers, shard {shard_index} of {shard_count}, {batches} batches'
    assert json.loads(sought.get_state()) == json.loads(read.get_state()), _grain(
        f'seeking no longer reproduces the iterator state ({where})')
    assert np.array_equal(next(sought), next(read)), _grain(
        f'a sought iterator reads other records ({where})')


def test_grain_checkpoints_name_their_files_by_process(tmp_path):
  iterator = iter(_loader())
  next(iterator)
  manager = ocp.CheckpointManager(tmp_path, item_names=('data',))
  try:
    manager.save(1, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(iterator)))
    manager.wait_until_finished()
  finally:
    manager.close()
  directory = epath.Path(tmp_path) / '1' / 'data'
  names = sorted(p.name for p in directory.glob('*.json'))
  expected = f'process_{jax.process_index()}-of-{jax.process_count()}.json'
  assert names == [expected], _grain(
      f'its checkpoint handler wrote {names}, not {expected} ({grain_state.STATE_FILES})')
  assert grain_state.written_process_count(directory) == jax.process_count(), _grain(
      f'the process count cannot be read from {names}')
  assert json.loads((directory / expected).read_text()) == json.loads(iterator.get_state()), \
      _grain(f'{expected} no longer holds the iterator state')


def _jax(what: str) -> str:
  versions = compiled_programs.WRITTEN_FOR
  return (_changed('jax', versions['jax'], 'eye2eye_jax/planning/compiled_programs.py', what)
          + f' (or flax {importlib.metadata.version("flax")}, written for flax {versions["flax"]})')


class _Block(nnx.Module):
  """A conv between the two normalisations the model uses, each followed by silu."""

  def __init__(self, rngs: nnx.Rngs):
    self.group_norm = nnx.GroupNorm(8, num_groups=4, rngs=rngs)
    self.conv = nnx.Conv(8, 8, (3, 3), rngs=rngs)
    self.layer_norm = nnx.LayerNorm(8, rngs=rngs)

  def __call__(self, x):
    return self.layer_norm(nnx.silu(self.conv(nnx.silu(self.group_norm(x)))))


def test_jax_residual_descriptions_name_what_the_planner_leaves_out():
  graphdef, params = nnx.split(_Block(nnx.Rngs(0)))
  loss = lambda params, x: jnp.sum(nnx.merge(graphdef, params)(x) ** 2)
  x = jax.ShapeDtypeStruct((2, 6, 6, 8), jnp.float32)
  residuals = compiled_programs.saved_residuals(loss, params, x)
  assert residuals and all(hasattr(r, 'shape') and hasattr(r, 'dtype') and isinstance(why, str)
                           for r, why in residuals), _jax(
      f'saved_residuals no longer returns (aval, description) pairs: {residuals}')
  descriptions = [why for _, why in residuals]
  for marker in compiled_programs._FUSED_INTERMEDIATES:
    assert any(marker in why for why in descriptions), _jax(
        f'no residual description contains {marker!r}, so the planner would count the '
        f'intermediates it stands for; the descriptions: {descriptions}')
  assert any(why.startswith('from the argument') for why in descriptions), _jax(
      f"no residual of the arguments reads 'from the argument ...': {descriptions}")
  kept = [why for why in descriptions if not why.startswith('from the argument')
          and not any(marker in why for marker in compiled_programs._FUSED_INTERMEDIATES)]
  assert kept, _jax(f'every residual is matched as fused or an argument: {descriptions}')
  total = sum(int(np.prod(r.shape)) * np.dtype(r.dtype).itemsize for r, why in residuals
              if not why.startswith('from the argument'))
  assert 0 < compiled_programs._residual_bytes(loss, params, x) < total
