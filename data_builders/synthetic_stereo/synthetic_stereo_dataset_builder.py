"""TFDS builder for procedural stereo clips, written as ArrayRecord shards.

Every example is one clip of ``eye2eye_jax.data.synthetic_scenes``; its seed is derived from the
split and the index, so train and validation clips never coincide and a rebuild gives the
same bytes. Arrays are stored as raw-byte tensors, compressed by ArrayRecord's zstd, so
that they decode without TensorFlow (``tfds.data_source`` + grain).

A config may hold texture families out (``unseen_texture_families``): ``train`` and
``validation`` never draw them, and a third split, ``validation_unseen``, draws only them,
so evaluating both validation splits shows whether a model learned stereo or the look of
the textures it was trained on. Each record names the families its surfaces were drawn from.

A config may also render its training clips at many baselines (``train_baseline_range``):
each clip's distance between the eyes, and so every disparity, is scaled by a factor drawn
log-uniformly from the range and stored as the record's ``baseline``; a model with strength
conditioning learns from them to make the disparity scale it is asked for. Validation
clips stay at baseline 1, the scale strength 1 means.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from eye2eye_jax.data import synthetic_scenes

_SPLIT_SEED_OFFSET = {'train': 0, 'validation': 1_000_000_000,
                      'validation_unseen': 2_000_000_000}


@dataclasses.dataclass(kw_only=True)
class SyntheticStereoConfig(tfds.core.BuilderConfig):
  """Clip geometry and split sizes of one variant of the dataset."""
  num_frames: int = 8
  height: int = 64
  width: int = 64
  max_disparity: float = 8.0
  num_train: int = 2000
  num_validation: int = 64
  # scene_textures' names: the families train and validation draw, the shapes every split
  # draws, and the families held out for validation_unseen (num_validation clips).
  texture_families: tuple[str, ...] = ('photo',)
  shapes: tuple[str, ...] = ('ellipse', 'box')
  unseen_texture_families: tuple[str, ...] = ()
  # Other SceneParams fields, as (name, value) pairs: motions, panes, mirrors, ranges.
  scene: tuple[tuple[str, object], ...] = ()
  # (low, high): each train clip's baseline, drawn log-uniformly; (1, 1): all at 1.
  train_baseline_range: tuple[float, float] = (1.0, 1.0)

  def splits(self) -> dict[str, int]:
    """Split name -> number of clips."""
    counts = {'train': self.num_train, 'validation': self.num_validation}
    if self.unseen_texture_families:
      counts['validation_unseen'] = self.num_validation
    return counts

  def scene_params(self, split: str = 'train') -> synthetic_scenes.SceneParams:
    """The scenes of ``split``: held-out families only in validation_unseen."""
    shared = set(self.texture_families) & set(self.unseen_texture_families)
    if shared:
      raise ValueError(f'synthetic_stereo/{self.name}: texture families {sorted(shared)} are '
                       'both drawn in train and held out')
    families = (self.unseen_texture_families if split == 'validation_unseen'
                else self.texture_families)
    params = synthetic_scenes.SceneParams(
        num_frames=self.num_frames, height=self.height, width=self.width,
        max_disparity=self.max_disparity, texture_families=tuple(families),
        shapes=tuple(self.shapes), **dict(self.scene))
    params.validate()
    return params

  def baseline(self, split: str, seed: int) -> float:
    """The baseline clip ``seed`` of ``split`` is rendered at (a function of the seed)."""
    low, high = self.train_baseline_range
    if not 0 < low <= high:
      raise ValueError(f'synthetic_stereo/{self.name}: train_baseline_range must be '
                       f'0 < low <= high, got {self.train_baseline_range}')
    if split != 'train':
      return 1.0
    draw = np.random.default_rng([seed, 7]).uniform(np.log(low), np.log(high))
    return float(np.exp(draw))


_DIVERSE_SCENES = (('camera_speed_range', (0.1, 0.6)), ('static_camera_probability', 0.2),
                   ('object_speed_max', 0.5), ('disparity_range', (0.4, 1.0)),
                   ('max_opaque_objects', 1), ('max_panes', 2), ('max_mirrors', 2),
                   ('mirror_virtual_range', (0.0, 1.5)))


class Builder(tfds.core.GeneratorBasedBuilder):
  """Procedural stereo clips: right view, left view, per-layer masks and disparities, and a
  caption (what is in the scene, which way the camera moves)."""

  VERSION = tfds.core.Version('1.3.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.', '1.1.0': 'A caption per clip.',
                   '1.2.0': ('Views stored as raw bytes, compressed once by ArrayRecord\'s '
                             'zstd: smaller than zlib, in a third of the time. Texture '
                             'families and shapes per config, a validation_unseen split of '
                             'held-out families, and the families of each clip.'),
                   '1.3.0': 'The baseline each clip is rendered at; configs of many baselines.'}
  BUILDER_CONFIGS = [
      SyntheticStereoConfig(name='demo', description='64x64, 8 frames, disparity 0-8 px.'),
      SyntheticStereoConfig(name='tiny', description='16x16, 4 frames; for tests.',
                            num_frames=4, height=16, width=16, max_disparity=3.0,
                            num_train=16, num_validation=4),
      SyntheticStereoConfig(name='diverse', description='64x64, 8 frames, disparity 0-8 px; '
                            'photographs, jittered photographs, noise and gradients in '
                            'train, periodic patterns and text held out; every shape; '
                            'still and moving cameras, moving objects, up to two panes and '
                            'two mirrors (reflections behind or in front), a largest '
                            'disparity of 3-8 px per clip.',
                            texture_families=('photo', 'photo_jitter', 'noise', 'gradient'),
                            shapes=('ellipse', 'box', 'polygon', 'soft'),
                            unseen_texture_families=('periodic', 'text'),
                            scene=_DIVERSE_SCENES),
      SyntheticStereoConfig(name='tiny_diverse', description='tiny, with held-out families; '
                            'for tests.', num_frames=4, height=16, width=16,
                            max_disparity=3.0, num_train=8, num_validation=4,
                            texture_families=('photo', 'noise', 'gradient'),
                            shapes=('ellipse', 'box', 'polygon', 'soft'),
                            unseen_texture_families=('periodic', 'text'),
                            scene=_DIVERSE_SCENES),
      SyntheticStereoConfig(name='diverse_strength', description='diverse, its train clips '
                            'rendered at baselines of 0.25-2.5 (disparities up to 20 px); '
                            'for models with strength conditioning.',
                            texture_families=('photo', 'photo_jitter', 'noise', 'gradient'),
                            shapes=('ellipse', 'box', 'polygon', 'soft'),
                            unseen_texture_families=('periodic', 'text'),
                            scene=_DIVERSE_SCENES, train_baseline_range=(0.25, 2.5)),
      SyntheticStereoConfig(name='tiny_strength', description='tiny, train clips at '
                            'baselines of 0.25-2.5; for tests.', num_frames=4, height=16,
                            width=16, max_disparity=3.0, num_train=16, num_validation=4,
                            train_baseline_range=(0.25, 2.5)),
  ]
  DEFAULT_CONFIG_NAME = 'demo'

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    view = (c.num_frames, c.height, c.width, 3)
    layers = synthetic_scenes.MAX_LAYERS
    tensor = lambda shape, dtype: tfds.features.Tensor(shape=shape, dtype=dtype,
                                                      encoding=tfds.features.Encoding.BYTES)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'right': tensor(view, np.uint8),
            'left': tensor(view, np.uint8),
            'layer_masks': tensor((layers, c.num_frames, c.height, c.width), np.bool_),
            'layer_disparity': tfds.features.Tensor(shape=(layers,), dtype=np.float32),
            'layer_kind': tfds.features.Tensor(shape=(layers,), dtype=np.int32),
            'camera_speed': tfds.features.Scalar(dtype=np.float32),
            'baseline': tfds.features.Scalar(dtype=np.float32),
            'seed': tfds.features.Scalar(dtype=np.int64),
            'caption': tfds.features.Text(),
            'texture_families': tfds.features.Text(),
        }),
        description=__doc__,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: clips are made from scikit-image's photographs.
    return {split: self._generate_examples(split, count)
            for split, count in self.builder_config.splits().items()}

  def _generate_examples(self, split: str, count: int):
    generator = synthetic_scenes.SceneGenerator(self.builder_config.scene_params(split))
    for index in range(count):
      seed = _SPLIT_SEED_OFFSET[split] + index
      baseline = self.builder_config.baseline(split, seed)
      clip = generator.generate(seed, baseline=baseline)
      yield index, {
          'right': clip.right,
          'left': clip.left,
          'layer_masks': clip.layer_masks,
          'layer_disparity': clip.layer_disparity,
          'layer_kind': clip.layer_kind,
          'camera_speed': np.float32(clip.camera_speed),
          'baseline': np.float32(baseline),
          'seed': np.int64(seed),
          'caption': synthetic_scenes.describe(clip),
          'texture_families': ','.join(clip.texture_families),
      }
