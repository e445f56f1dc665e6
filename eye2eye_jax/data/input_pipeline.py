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

Models with strength conditioning also get ``strength`` (B,): the example's disparity scale,
its record's ``baseline`` (1 where the records have none, as real stereo) times the zoom of
``data.zoom_range``. The zoom resamples a smaller square than the view's usual one (a whole
frame, or a ``resolution`` crop) to the same size, multiplying every disparity by z; it
only ever down-samples, so the model cannot read the zoom from up-sampling blur, and real
clips, whose baseline is fixed, still teach every scale.

For a backbone (``data.task='video'``) the batch is ``video`` alone: the dataset's
``data.video_field`` (the right views of a stereo dataset, or ``video`` of the
``video_folder`` builder's clips of any directory of videos). Models that read text also
get ``text`` (tokens, D) and ``text_mask`` (tokens,) from each clip's caption
(``eye2eye_jax/data/text_encoding.py``).
"""

from __future__ import annotations

import dataclasses

import grain
import ml_collections
import numpy as np

from eye2eye_jax.data import datasets, frame_ops, grain_state, latent_dataset, text_encoding


def check_records_fit(config: ml_collections.ConfigDict, source) -> None:
  """Raises ValueError, naming the dataset, when its records cannot give the configured
  training view (an unknown view, fewer frames than data.num_frames, a crop larger than
  the clips); checked on the first record, before training starts."""
  d = config.data
  name = f'dataset {d.builder}/{d.builder_config}'
  if d.latents:
    if tuple(d.zoom_range) != (1.0, 1.0):
      raise ValueError('data.latents: latent records are cut when they are written; '
                       'data.zoom_range must be (1, 1) (strength comes from their baselines)')
    if not len(source):
      raise ValueError(f'latent records of {name}: the split has no records')
    return
  if d.view not in ('downsample', 'crop'):
    raise ValueError(f"data.view must be 'downsample' or 'crop', got {d.view!r}")
  if not len(source):
    raise ValueError(f'{name}: the split has no records')
  field = d.video_field if d.task == 'video' else 'right'
  if field not in source[0]:
    raise ValueError(f'data.video_field={field!r}: the records of {name} have no such field '
                     f'(they have {sorted(source[0])})')
  frames, height, width = source[0][field].shape[:3]
  if d.num_frames > frames:
    raise ValueError(f'data.num_frames={d.num_frames} is more than the {frames} frames of '
                     f'the clips of {name}')
  clip_width = d.width or d.resolution
  if d.view == 'crop' and (d.resolution > height or clip_width > width):
    size = f'data.resolution={d.resolution}' + (f', data.width={d.width}' if d.width else '')
    raise ValueError(f'{size}: a crop of that size does not fit the {height}x{width} clips of '
                     f'{name}')
  low, high = d.zoom_range
  largest = min(height / d.resolution, width / clip_width)
  accepted = (1.0, largest) if d.view == 'downsample' else (1 / largest, 1.0)
  if not accepted[0] <= low <= high <= accepted[1]:
    raise ValueError(f'data.zoom_range={tuple(d.zoom_range)}: the {d.view!r} view of the '
                     f'{height}x{width} clips of {name} at data.resolution={d.resolution} '
                     f'accepts zooms in [{accepted[0]:.3g}, {accepted[1]:.3g}] (it only '
                     'down-samples)')


def batch_ndims(config: ml_collections.ConfigDict) -> dict[str, int]:
  """The keys of a training batch and their ranks (batch dimension included)."""
  keys = {'video': 5} if config.data.task == 'video' else {'right': 5,
                                                                             'left': 5}
  if text_encoding.uses_text(config):
    keys.update(text=3, text_mask=2)
  if config.model.strength_conditioning:
    keys['strength'] = 1
  return keys


@dataclasses.dataclass
class TrainingView(grain.transforms.RandomMap):
  """Makes one training example (the configured view) from a stored clip.

  ``task='stereo'``: ``right`` and ``left`` from the record's two views; ``task='video'``:
  ``video`` from the record's ``video_field`` (mirroring then just flips it). With
  ``with_strength``, also the example's ``strength`` (baseline x zoom).
  """
  view: str
  resolution: int
  num_frames: int
  mirror_augment: bool
  task: str = 'stereo'
  video_field: str = 'right'
  zoom_range: tuple[float, float] = (1.0, 1.0)
  with_strength: bool = False
  width: int = 0  # 0: square clips of ``resolution``
  latents: bool = False  # the records hold a VAE's latents already cut to the clip

  def _latent_example(self, element) -> dict:
    """A latent record as it is: cut, mirrored and encoded when it was written
    (``latent_records``)."""
    example = {name: np.asarray(element[name], np.float32) for name in ('right', 'left')}
    if self.with_strength:
      example['strength'] = np.float32(element.get('baseline', 1.0))
    for key in ('text', 'text_mask'):
      if key in element:
        example[key] = element[key]
    return example

  def _zoomed_view(self, views, rng: np.random.Generator):
    """A random region of the usual size / z, resized to ``resolution`` x ``width``; and
    the zoom made (the ratio of widths after rounding to whole pixels)."""
    h, w = views[0].shape[1:3]
    size = (self.resolution, self.width or self.resolution)
    if self.view == 'downsample':  # the whole frame (with data.width: its largest part of
      usual = (h, w)  # the clip's shape, so a pixel of disparity stays one in x and y)
      if self.width:
        scale = min(h / size[0], w / size[1])
        usual = (min(h, int(round(size[0] * scale))), min(w, int(round(size[1] * scale))))
    elif self.view == 'crop':
      if h < size[0] or w < size[1]:
        raise ValueError(f'crop of {size[0]}x{size[1]} px does not fit clips of {h}x{w}')
      usual = size
    else:
      raise ValueError(f"data.view must be 'downsample' or 'crop', got {self.view!r}")
    low, high = self.zoom_range
    zoom = float(np.exp(rng.uniform(np.log(low), np.log(high)))) if low != high else low
    ch, cw = (min(max(int(round(side / zoom)), goal), limit)
              for side, goal, limit in zip(usual, size, (h, w)))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    views = [v[:, y:y + ch, x:x + cw] for v in views]
    if (ch, cw) != size:
      views = [frame_ops.resize_clip(v, *size) for v in views]
    return views, usual[1] / cw

  def random_map(self, element, rng: np.random.Generator):
    if self.latents:
      return self._latent_example(element)
    if self.task == 'video':
      views = [element[self.video_field]]
    elif self.task == 'stereo':
      views = [element['right'], element['left']]
    else:
      raise ValueError(f"data.task must be 'stereo' or 'video', got {self.task!r}")
    total = views[0].shape[0]
    if total < self.num_frames:
      raise ValueError(f'records hold {total} frames, fewer than data.num_frames='
                       f'{self.num_frames}')
    start = rng.integers(0, total - self.num_frames + 1)
    views = [v[start:start + self.num_frames] for v in views]
    if self.mirror_augment and rng.random() < 0.5:
      views = [v[:, :, ::-1] for v in reversed(views)]  # mirrored, eyes swapped
    views, zoom = self._zoomed_view(views, rng)
    names = ['video'] if self.task == 'video' else ['right', 'left']
    example = {name: frame_ops.to_model_range(v) for name, v in zip(names, views)}
    if self.with_strength:
      example['strength'] = np.float32(float(element.get('baseline', 1.0)) * zoom)
    for key in ('text', 'text_mask'):
      if key in element:
        example[key] = element[key]
    return example


@dataclasses.dataclass
class TextFeatures(grain.transforms.Map):
  """Adds ``text`` and ``text_mask`` from the record's caption (or its precomputed
  ``text_embedding`` when no encoder is given)."""
  encode: object  # caption -> (text, mask), or None for precomputed embeddings
  max_tokens: int

  def map(self, element):
    if self.encode is not None:
      caption = element.get('caption', b'')
      caption = caption.decode() if isinstance(caption, bytes) else str(caption)
      text, mask = self.encode(caption)
    elif 'text_embedding' in element:
      text, mask = text_encoding.pad_tokens(element['text_embedding'], self.max_tokens)
    else:
      raise ValueError("text.encoder='precomputed' but the records have no text_embedding")
    return {**element, 'text': text, 'text_mask': mask}


def clip_operations(config: ml_collections.ConfigDict, batch_size: int) -> list:
  """The per-record transforms and batching of the training pipeline."""
  d = config.data
  operations = []
  if text_encoding.uses_text(config):  # latent records hold their captions' embeddings
    operations.append(TextFeatures(None if d.latents else text_encoding.caption_encoder(config),
                                   int(config.text.max_tokens)))
  operations += [
      TrainingView(d.view, d.resolution, d.num_frames, d.mirror_augment,
                   d.task, d.video_field, tuple(d.zoom_range),
                   bool(config.model.strength_conditioning), int(d.width), bool(d.latents)),
      grain.transforms.Batch(batch_size, drop_remainder=True),
  ]
  return operations


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
                        shard_options: grain.sharding.ShardOptions | None = None,
                        split: str = 'train') -> grain.DataLoader:
  """An endless, shuffled, per-process-sharded loader of per-process training batches
  (of ``split``: the trainer's held-out loss reads the validation split the same way)."""
  import jax
  d = config.data
  if d.batch_size % jax.process_count():
    raise ValueError(f'data.batch_size={d.batch_size} does not divide over '
                     f'{jax.process_count()} processes')
  source = (latent_dataset.data_source(config, split, data_dir) if d.latents
            else datasets.data_source(config, split, data_dir))
  check_records_fit(config, source)
  sampler = train_sampler(config, len(source), shard_options=shard_options)
  operations = clip_operations(config, d.batch_size // jax.process_count())
  return grain.DataLoader(data_source=source, sampler=sampler, operations=operations,
                          worker_count=d.num_workers)


def seek_to_step(iterator: grain.DataLoaderIterator, config: ml_collections.ConfigDict,
                 step: int) -> None:
  """Moves a fresh training iterator to where it would be after ``step`` batches.

  Used when a checkpoint's data position was written by a different number of processes:
  the sampler's order is global and each process reads every ``process_count``-th record
  of it, so after ``step`` steps this process has read ``step`` of its local batches
  (``data.num_workers`` worker processes take them in turn). grain has no public way to
  seek: ``grain_state.seek`` rewrites its iterator state.
  """
  import jax
  shard_index, shard_count = jax.process_index(), jax.process_count()
  grain_state.seek(iterator, step, config.data.batch_size // shard_count,
                   max(config.data.num_workers, 1), shard_index, shard_count)
