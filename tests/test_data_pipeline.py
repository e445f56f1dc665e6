import dataclasses
import itertools

import grain
import numpy as np
import pytest

from data_builders.synthetic_stereo import Builder
from eye2eye_jax.data import datasets, frame_ops, input_pipeline, synthetic_scenes
from eye2eye_jax.evaluation import stereo_metrics


def _tiny_builder_config():
  return next(c for c in Builder.BUILDER_CONFIGS if c.name == 'tiny')


def test_dataset_round_trip_gives_the_generated_arrays(tiny_config, tiny_dataset):
  train = datasets.data_source(tiny_config, 'train', tiny_dataset)
  validation = datasets.data_source(tiny_config, 'validation', tiny_dataset)
  builder_config = _tiny_builder_config()
  assert len(train) == builder_config.num_train
  assert len(validation) == builder_config.num_validation
  generator = synthetic_scenes.SceneGenerator(builder_config.scene_params())
  for source in (train, validation):
    for index in (0, len(source) - 1):
      record = source[index]
      clip = generator.generate(int(record['seed']))
      np.testing.assert_array_equal(record['right'], clip.right)
      np.testing.assert_array_equal(record['left'], clip.left)
      np.testing.assert_array_equal(record['layer_masks'], clip.layer_masks)
      np.testing.assert_array_equal(record['layer_disparity'], clip.layer_disparity)
      np.testing.assert_array_equal(record['layer_kind'], clip.layer_kind)
  train_seeds = {int(train[i]['seed']) for i in range(len(train))}
  validation_seeds = {int(validation[i]['seed']) for i in range(len(validation))}
  assert not train_seeds & validation_seeds


def test_downsample_view_batches(tiny_config, tiny_dataset):
  loader = input_pipeline.create_train_loader(tiny_config, tiny_dataset)
  batches = list(itertools.islice(iter(loader), 3))
  r, t, b = tiny_config.data.resolution, tiny_config.data.num_frames, tiny_config.data.batch_size
  for batch in batches:
    assert batch['right'].shape == batch['left'].shape == (b, t, r, r, 3)
    assert batch['right'].dtype == np.float32
    assert -1.0 <= batch['right'].min() and batch['right'].max() <= 1.0
  assert not np.array_equal(batches[0]['right'], batches[1]['right'])


def test_crop_view_keeps_full_resolution_pixels(tiny_config, tiny_dataset):
  view = input_pipeline.TrainingView('crop', 8, 4, mirror_augment=False)
  record = datasets.data_source(tiny_config, 'train', tiny_dataset)[0]
  out = view.random_map(record, np.random.default_rng(0))
  assert out['right'].shape == (4, 8, 8, 3)
  full = frame_ops.to_model_range(record['right'])
  found = any(np.array_equal(out['right'], full[:, y:y + 8, x:x + 8])
              for y in range(9) for x in range(9))
  assert found


def test_mirror_augment_keeps_disparity_positive():
  params = synthetic_scenes.SceneParams(num_frames=2, height=32, width=32, max_disparity=4.0,
                                        transparent_probability=0, mirror_probability=0)
  clip = synthetic_scenes.SceneGenerator(params).generate(0)
  view = input_pipeline.TrainingView('downsample', 32, 2, mirror_augment=True)
  for seed in range(8):
    out = view.random_map({'right': clip.right, 'left': clip.left}, np.random.default_rng(seed))
    mirrored = not np.array_equal(out['right'], frame_ops.to_model_range(clip.right))
    if mirrored:
      # The background fills the frame: its shift is the background's disparity, still >= 0.
      mask = np.ones(out['right'].shape[:3], bool)
      shift = stereo_metrics.measure_layer_shift(out['left'], out['right'], mask, 6.0)
      assert shift > -0.3
      return
  pytest.fail('no seed mirrored the clip')


def test_loader_shards_without_overlap(tiny_config, tiny_dataset):
  source = datasets.data_source(tiny_config, 'train', tiny_dataset)
  seen = []
  for shard in range(2):
    options = grain.sharding.ShardOptions(shard_index=shard, shard_count=2, drop_remainder=True)
    sampler = grain.samplers.IndexSampler(len(source), options, shuffle=True, num_epochs=1,
                                          seed=0)
    seen.append({record.record_key for record in sampler})
  assert not seen[0] & seen[1]
  assert len(seen[0] | seen[1]) == len(source)


def test_missing_dataset_is_a_clear_error(tiny_config, tmp_path):
  with pytest.raises(FileNotFoundError, match='not found under'):
    datasets.data_source(tiny_config, 'train', str(tmp_path))


def test_held_out_texture_families_appear_only_in_validation_unseen(tiny_config, tmp_path):
  config = tiny_config.copy_and_resolve_references()
  config.data.builder_config = 'tiny_diverse'
  data_dir = str(tmp_path / 'tfds')
  datasets.ensure_dataset(config, data_dir)
  builder_config = next(c for c in Builder.BUILDER_CONFIGS if c.name == 'tiny_diverse')
  drawn = {}
  for split, count in builder_config.splits().items():
    source = datasets.data_source(config, split, data_dir)
    assert len(source) == count
    generator = synthetic_scenes.SceneGenerator(builder_config.scene_params(split))
    drawn[split] = set()
    for index in range(len(source)):
      record = source[index]
      families = record['texture_families']
      families = (families.decode() if isinstance(families, bytes) else families).split(',')
      drawn[split] |= set(families)
      clip = generator.generate(int(record['seed']))  # the split's own scenes
      np.testing.assert_array_equal(record['right'], clip.right)
      assert families == list(clip.texture_families)
  assert drawn['validation_unseen'] <= set(builder_config.unseen_texture_families)
  assert len(drawn['validation_unseen']) >= 2
  assert not drawn['validation_unseen'] & (drawn['train'] | drawn['validation'])
  assert len(drawn['train']) >= 3


def test_a_family_both_trained_on_and_held_out_is_refused():
  config = dataclasses.replace(
      next(c for c in Builder.BUILDER_CONFIGS if c.name == 'tiny_diverse'),
      unseen_texture_families=('periodic', 'noise'))
  with pytest.raises(ValueError, match=r"tiny_diverse: texture families \['noise'\]"):
    config.scene_params('validation_unseen')
