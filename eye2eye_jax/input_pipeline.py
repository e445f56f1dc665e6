"""The grain input pipeline: TFDS ArrayRecord shards -> batches of (right, left) clips.

Records are read through ``tfds.data_source`` (no TensorFlow at read time), sharded per JAX
process, shuffled, and turned into one of the paper's two training views:

* ``downsample`` (base model): a window of ``num_frames`` frames, whole frames resized to
  ``resolution`` x ``resolution`` with area averaging; disparities shrink by the same factor.
* ``crop`` (refiner): a random ``resolution`` x ``resolution`` crop at full resolution, the
  same crop in both eyes so the disparity is unchanged.

With ``mirror_augment``, a clip is mirrored horizontally and its eyes swapped: the mirrored
left view becomes the right view and vice versa, which keeps every disparity >= 0.
Batches hold float32 arrays in [-1, 1]: ``right`` (the condition) and ``left`` (the target).
"""

from __future__ import annotations

import dataclasses
import os

import cv2
import grain
import ml_collections
import numpy as np


def resolve_data_dir(config: ml_collections.ConfigDict) -> str:
  """config.data.data_dir, else $TFDS_DATA_DIR, else ``outputs/tfds``."""
  return config.data.data_dir or os.environ.get('TFDS_DATA_DIR') or os.path.join(
      'outputs', 'tfds')


def create_builder(config: ml_collections.ConfigDict, data_dir: str):
  """The TFDS builder of ``config.data`` (nothing is read or written until it prepares)."""
  if config.data.builder == 'synthetic_stereo':
    from data_builders.synthetic_stereo import Builder
  elif config.data.builder == 'stereo4d':
    from data_builders.stereo4d import Builder
  else:
    raise ValueError(f'data.builder: unknown dataset {config.data.builder!r} (synthetic_stereo '
                     'or stereo4d)')
  return Builder(config=config.data.builder_config, data_dir=data_dir,
                 file_format='array_record')


def ensure_dataset(config: ml_collections.ConfigDict, data_dir: str) -> None:
  """Builds the configured TFDS dataset into ``data_dir`` unless it is already there.

  TFDS writes each split to temporary files and renames them when complete, so an
  interrupted build leaves nothing that a later call mistakes for a finished dataset.
  """
  import tensorflow_datasets as tfds
  builder = create_builder(config, data_dir)
  download_config = tfds.download.DownloadConfig(manual_dir=config.data.manual_dir or None)
  try:
    builder.download_and_prepare(download_config=download_config)
  except AssertionError as error:  # TFDS's way of saying the manual inputs are missing
    if 'Manual directory' not in str(error):
      raise
    raise FileNotFoundError(
        f'{config.data.builder}/{config.data.builder_config}: set data.manual_dir to the '
        f'folder holding its inputs (got {config.data.manual_dir or "nothing"}); '
        f'{str(error).splitlines()[0]}') from error


def data_source(config: ml_collections.ConfigDict, split: str, data_dir: str):
  """Random-access source of the split's records (dicts of numpy arrays)."""
  import tensorflow_datasets as tfds
  name = f'{config.data.builder}/{config.data.builder_config}'
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir)
  except Exception as error:  # TFDS raises several types for a missing dataset
    raise FileNotFoundError(
        f'dataset {name} (split {split!r}) not found under {data_dir!r}: build it with '
        f'python -m eye2eye_jax.build_data --config=... ({error})') from error


def resize_clip(clip: np.ndarray, height: int, width: int) -> np.ndarray:
  """Resizes every frame of a (T, H, W, C) clip with area averaging (bilinear to upsample)."""
  if clip.shape[1:3] == (height, width):
    return clip
  shrinking = height <= clip.shape[1] and width <= clip.shape[2]
  interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
  return np.stack([cv2.resize(frame, (width, height), interpolation=interpolation)
                   for frame in clip]).reshape((clip.shape[0], height, width, clip.shape[3]))


def to_model_range(x: np.ndarray) -> np.ndarray:
  return x.astype(np.float32) / 127.5 - 1.0


def from_model_range(x: np.ndarray) -> np.ndarray:
  return np.clip(np.round((np.asarray(x, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


@dataclasses.dataclass
class TrainingView(grain.transforms.RandomMap):
  """Makes one training example (the configured view) from a stored clip."""
  view: str
  resolution: int
  num_frames: int
  mirror_augment: bool

  def random_map(self, element, rng: np.random.Generator):
    right, left = element['right'], element['left']
    total = right.shape[0]
    if total < self.num_frames:
      raise ValueError(f'records hold {total} frames, fewer than data.num_frames='
                       f'{self.num_frames}')
    start = rng.integers(0, total - self.num_frames + 1)
    right = right[start:start + self.num_frames]
    left = left[start:start + self.num_frames]
    if self.mirror_augment and rng.random() < 0.5:
      right, left = left[:, :, ::-1], right[:, :, ::-1]
    if self.view == 'downsample':
      right = resize_clip(right, self.resolution, self.resolution)
      left = resize_clip(left, self.resolution, self.resolution)
    elif self.view == 'crop':
      h, w = right.shape[1:3]
      if h < self.resolution or w < self.resolution:
        raise ValueError(f'crop of {self.resolution} px does not fit clips of {h}x{w}')
      y = rng.integers(0, h - self.resolution + 1)
      x = rng.integers(0, w - self.resolution + 1)
      right = right[:, y:y + self.resolution, x:x + self.resolution]
      left = left[:, y:y + self.resolution, x:x + self.resolution]
    else:
      raise ValueError(f"data.view must be 'downsample' or 'crop', got {self.view!r}")
    return {'right': to_model_range(right), 'left': to_model_range(left)}


def train_sampler(config: ml_collections.ConfigDict, num_records: int,
                  num_epochs: int | None = None,
                  shard_options: grain.sharding.ShardOptions | None = None
                  ) -> grain.samplers.IndexSampler:
  """The order this process reads training records in: shuffled per epoch with
  ``data.shuffle_seed``, each process taking its own disjoint share (endless by default)."""
  shard_options = shard_options or grain.sharding.ShardByJaxProcess(drop_remainder=True)
  return grain.samplers.IndexSampler(num_records=num_records, shard_options=shard_options,
                                     shuffle=True, num_epochs=num_epochs,
                                     seed=config.data.shuffle_seed)


def create_train_loader(config: ml_collections.ConfigDict, data_dir: str,
                        shard_options: grain.sharding.ShardOptions | None = None
                        ) -> grain.DataLoader:
  """An endless, shuffled, per-process-sharded loader of per-process training batches."""
  import jax
  d = config.data
  if d.batch_size % jax.process_count():
    raise ValueError(f'data.batch_size={d.batch_size} does not divide over '
                     f'{jax.process_count()} processes')
  source = data_source(config, 'train', data_dir)
  sampler = train_sampler(config, len(source), shard_options=shard_options)
  operations = [
      TrainingView(d.view, d.resolution, d.num_frames, d.mirror_augment),
      grain.transforms.Batch(d.batch_size // jax.process_count(), drop_remainder=True),
  ]
  return grain.DataLoader(data_source=source, sampler=sampler, operations=operations,
                          worker_count=d.num_workers)
