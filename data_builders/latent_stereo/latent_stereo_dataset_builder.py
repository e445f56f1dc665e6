"""TFDS builder for stereo clips as a latent model's VAE latents, written as ArrayRecord shards.

The latents are made by ``python -m eye2eye_jax.build_data --latents`` (``eye2eye_jax/data/
latent_records.py``), which reads another stereo dataset, encodes both views of every clip
with the model's VAE and its caption with the text encoder, and leaves one ``.npz`` per
clip in ``<manual_dir>/<split>/``; this builder packages them. It runs no model itself:
builders load neither JAX nor the network. A config is made per source dataset and clip
shape (``LatentStereoConfig``), its name saying both, e.g.
``stereo4d-rectified_512-77x480x832``.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import tensorflow_datasets as tfds


@dataclasses.dataclass(kw_only=True)
class LatentStereoConfig(tfds.core.BuilderConfig):
  """The shape of the stored latents and text embeddings, and what made them."""
  latent_shape: tuple[int, int, int, int] = (1, 1, 1, 1)  # frames, height, width, channels
  text_dim: int = 0  # width of the stored caption embeddings; 0: none
  splits: tuple[str, ...] = ('train', 'validation')


class Builder(tfds.core.GeneratorBasedBuilder):
  """Right and left views' latents, the caption, its embedding and the source record's
  baseline; a clip mirrored for augmentation is a record of its own."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = ('Written by `python -m eye2eye_jax.build_data --latents`: '
                                  'one .npz per clip in <manual_dir>/<split>/.')

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    tensor = lambda shape, dtype: tfds.features.Tensor(shape=shape, dtype=dtype,
                                                      encoding=tfds.features.Encoding.BYTES)
    features = {'right': tensor(tuple(c.latent_shape), np.float16),
                'left': tensor(tuple(c.latent_shape), np.float16),
                'baseline': tfds.features.Scalar(dtype=np.float32),
                'caption': tfds.features.Text()}
    if c.text_dim:
      features['text_embedding'] = tensor((None, c.text_dim), np.float16)
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict(features),
                                          description=__doc__)

  def _split_generators(self, dl_manager):
    root = pathlib.Path(dl_manager.manual_dir)
    return {split: self._generate_examples(root / split) for split in
            self.builder_config.splits}

  def _generate_examples(self, folder: pathlib.Path):
    files = sorted(p for p in folder.glob('*.npz') if not p.name.startswith('.'))
    if not files:
      raise FileNotFoundError(f'{folder}: no encoded clips (.npz); run build_data --latents')
    for path in files:
      with np.load(path, allow_pickle=False) as clip:
        record = {key: clip[key] for key in clip.files}
      record['caption'] = str(record['caption'])
      yield path.stem, record
