"""Latent records: a stereo dataset's clips encoded once by a latent model's VAE.

  python -m eye2eye_jax.build_data --config=configs/wan_stereo_1_3b.py --latents

A config with ``data.latents`` trains on the ``latent_stereo`` dataset made from its source
dataset (``data.builder`` / ``data.builder_config``) at its clip size: each source clip is
cut to the training view (``input_pipeline.TrainingView``: ``data.num_frames`` frames of
``data.resolution`` x ``data.width``, the record's start and crop drawn from its index),
both views are encoded by the VAE of ``train.init_checkpoint`` (a fresh model's without
one) into normalised latent means, the caption by ``text.encoder``, and one ``.npz`` per
clip is written (atomically; an interrupted run resumes where it stopped), each process
taking every ``process_count``-th clip. With ``data.mirror_augment`` every training clip
is also stored mirrored with its eyes swapped, as a record of its own: a VAE does not
commute with mirroring, so the augmentation is made before encoding. The TFDS builder
(``data_builders/latent_stereo``) then packages them into ArrayRecord shards that grain
reads per host like any other dataset.

Why precomputed: encoding both views inside the train step needs nearly three times the
memory per chip and adds the VAE's FLOPs to every step of every epoch (``docs/wan.md``,
measured by the TPU compiler), and the latents (16 channels at 1/4 of the frames and 1/8
of the side) are far smaller than the clips' pixels.
"""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
import tqdm

from eye2eye_jax.common import atomic_files, runtime
from eye2eye_jax.data import datasets, input_pipeline, latent_dataset, text_encoding
from eye2eye_jax.models import checkpoints, networks



def _vae_params(config: ml_collections.ConfigDict):
  if config.train.init_checkpoint:
    return checkpoints.load_weights_to_host(config.train.init_checkpoint)[1]['vae']
  return networks.init_params(config, config.seed)['vae']


def encode_clips(config: ml_collections.ConfigDict, data_dir: str,
                 show_progress: bool = True) -> dict[str, int]:
  """Encodes this process's share of every split of the source dataset into ``clips_dir``
  (clips already there are kept); returns the clips written per split."""
  if config.model.architecture != 'wan':
    raise ValueError(f'data.latents: model.architecture={config.model.architecture!r} has no '
                     'VAE; latent records are for Wan models')
  source = latent_dataset.source_config(config)
  params = {'vae': jax.tree.map(np.asarray, _vae_params(config))}
  encode = jax.jit(lambda p, right, left: networks.encode_videos(source, p, right, left))
  caption_encoder = text_encoding.caption_encoder(source)
  d = config.data
  view = input_pipeline.TrainingView(d.view, d.resolution, d.num_frames, False,
                                     width=int(d.width))
  written = {}
  for split in latent_dataset.SPLITS:
    try:
      records = datasets.data_source(source, split, data_dir)
    except FileNotFoundError:
      continue  # e.g. no validation_unseen
    folder = latent_dataset.clips_dir(config, data_dir) / split
    folder.mkdir(parents=True, exist_ok=True)
    mine = range(jax.process_index(), len(records), jax.process_count())
    written[split] = 0
    for index in tqdm.tqdm(mine, desc=f'{split} clips', disable=not show_progress):
      names = [f'{index:08d}'] + ([f'{index:08d}m'] if d.mirror_augment and split == 'train'
                                  else [])
      if all((folder / f'{name}.npz').exists() for name in names):
        continue
      record = records[index]
      clip = view.random_map(record, np.random.default_rng([index, 11]))
      pairs = [(clip['right'], clip['left'])]
      if len(names) == 2:  # mirrored, eyes swapped: disparity stays >= 0
        pairs.append((clip['left'][:, :, ::-1], clip['right'][:, :, ::-1]))
      caption = record.get('caption', b'')
      caption = caption.decode() if isinstance(caption, bytes) else str(caption)
      extra = {'caption': np.str_(caption),
               'baseline': np.float32(record.get('baseline', 1.0))}
      if caption_encoder is not None:
        text, mask = caption_encoder(caption)
        extra['text_embedding'] = text[mask].astype(np.float16)
      for name, (right, left) in zip(names, pairs):
        latents = encode(params, right[None], left[None])
        with atomic_files.atomic_path(folder / f'{name}.npz') as temporary:
          np.savez(temporary, right=np.asarray(latents[0][0], np.float16),
                   left=np.asarray(latents[1][0], np.float16), **extra)
        written[split] += 1
  return written


def build(config: ml_collections.ConfigDict, data_dir: str, show_progress: bool = True) -> dict:
  """The whole job: the source dataset (built if missing), every process's clips encoded,
  then process 0 packages them into the ``latent_stereo`` dataset. Returns the clips this
  process wrote per split."""
  source = latent_dataset.source_config(config)
  if jax.process_index() == 0:
    datasets.ensure_dataset(source, data_dir)
  runtime.sync_processes('latent source ready')
  written = encode_clips(config, data_dir, show_progress)
  runtime.sync_processes('latent clips encoded')
  if jax.process_index() == 0:
    import tensorflow_datasets as tfds
    folder = latent_dataset.clips_dir(config, data_dir)
    splits = [s for s in latent_dataset.SPLITS if (folder / s).is_dir()]
    latent_dataset.builder(config, data_dir, splits).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(folder)))
  runtime.sync_processes('latent dataset ready')
  return written
