"""TFDS builder for Stereo4D: the release's dataset tree -> ArrayRecord clips.

The manual directory (``--manual_dir`` / ``config.data.manual_dir``) is the release's tree
as its tools leave it (``data_builders/stereo4d/frame_sources.py`` gives every convention):
  npz/<name>.npz                                   the annotations, one per clip
  raw/<video_id>.mp4                               VR180 videos (configs ``vr180_*``)
  processed/<name>/<name>-{left,right}_rectified.mp4   rectify.py's output (``rectified_*``)
  captions.json                                    optional: {clip, npz name or video id: caption}
(the folder names are the builder config's ``npz_folder``, ``raw_folder`` and
``processed_folder``).

Per npz: frames are taken at its timestamps resampled to ``fps`` and cut into
``clip_frames``-frame clips (clips past the video's end are dropped), rectified to
``size`` x ``size`` pinhole pairs, measured for disparity (clips above the paper's 60 px at
512 are dropped), captioned from the middle frame, and written with their statistics. All
clips of an npz come from one decoding pass per video. Videos are split into train /
validation by a hash of the video id, so no video is in both. Each npz's result is cached
(atomically) in the download directory, so an interrupted build continues where it
stopped, and npz files are processed by ``num_workers`` processes. Bad inputs are skipped
with a logged reason and counted in ``build_report.json`` beside the cache; the build goes
on.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import multiprocessing
import pathlib
import zlib

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from data_builders.stereo4d import captions, clips, disparity_filter, frame_sources
from data_builders.stereo4d.frame_sources import Skip
from eye2eye_jax.common import atomic_files
from eye2eye_jax.data import text_encoding

REQUIRED_FIELDS = {'vr180': ('name', 'video_id', 'timestamps', 'rectified2rig', 'fov_bounds'),
                   'rectified': ('name', 'video_id', 'timestamps')}


@dataclasses.dataclass(kw_only=True)
class Stereo4DConfig(tfds.core.BuilderConfig):
  """How clips are made from the release."""
  source: str = 'vr180'  # 'vr180' or 'rectified'
  size: int = 512
  hfov_degrees: float = 60.0
  fps: float = 16.0
  clip_frames: int = 80
  min_equirect_height: int = 1920  # the release's tool refuses VR180 videos below this
  npz_folder: str = 'npz'  # the release tree's folders, under the manual directory
  raw_folder: str = 'raw'
  processed_folder: str = 'processed'
  max_disparity_at_512: float = 60.0
  disparity_percentile: float = 98.0
  validation_per_mille: int = 50  # share of videos in the validation split
  captioner: str = ''  # "package.module:function" (middle frame -> caption)
  text_encoder: str = ''  # "package.module:function" (caption -> (N, text_embed_dim))
  text_embed_dim: int = 0
  num_workers: int = 0  # processes working on npz files at once (0: this process)


def _split_of(video_id: str, per_mille: int) -> str:
  return 'validation' if zlib.crc32(video_id.encode()) % 1000 < per_mille else 'train'


def _load_npz(path: pathlib.Path, source: str) -> dict:
  try:
    with np.load(path, allow_pickle=False) as data:
      fields = {k: data[k] for k in data.files}
  except Exception as error:  # zip, pickle and value errors for a damaged file
    raise Skip('unreadable_npz', f'{path}: {error}') from error
  missing = [f for f in REQUIRED_FIELDS[source] if f not in fields]
  if missing:
    raise Skip('npz_missing_fields', f'{path}: no {", ".join(missing)}')
  return fields


def _frame_source(c: Stereo4DConfig, manual_dir: pathlib.Path, npz: dict,
                  path: pathlib.Path) -> frame_sources.RawVR180 | frame_sources.RectifiedPair:
  """Where one npz's frames come from, by ``c.source``."""
  name, video_id = str(npz['name']), str(npz['video_id'])
  if c.source == 'vr180':
    return frame_sources.RawVR180(manual_dir / c.raw_folder / f'{video_id}.mp4', npz, path,
                                  c.size, c.hfov_degrees, c.min_equirect_height)
  folder = manual_dir / c.processed_folder / name
  return frame_sources.RectifiedPair(folder / f'{name}-left_rectified.mp4',
                                     folder / f'{name}-right_rectified.mp4',
                                     np.asarray(npz['timestamps'], np.int64), path, c.size)


def process_npz(c: Stereo4DConfig, manual_dir: pathlib.Path, path: pathlib.Path) -> dict:
  """Every clip of one npz: {'clips': [record, ...], 'skipped': {reason: count}, ...}."""
  skipped = collections.Counter()
  try:
    npz = _load_npz(path, c.source)
    name, video_id = str(npz['name']), str(npz['video_id'])
    plans = clips.plan_clips(name, npz['timestamps'], c.fps, c.clip_frames)
    source = _frame_source(c, manual_dir, npz, path)
  except Skip as skip:
    logging.warning('Skipping %s', skip)
    return {'clips': [], 'skipped': {skip.reason: 1}, 'detail': str(skip)}
  except ValueError as error:  # bad timestamps and other malformed annotations
    logging.warning('Skipping %s: %s', path, error)
    return {'clips': [], 'skipped': {'bad_annotations': 1}, 'detail': f'{path}: {error}'}
  inside = [p for p in plans if source.indices(p).max() < source.num_frames]
  skipped['past_video_end'] += len(plans) - len(inside)
  captioner = captions.Captioner(c.captioner, manual_dir / 'captions.json'
                                 if (manual_dir / 'captions.json').is_file() else None)
  encoder = (text_encoding.TextEncoder.from_spec(c.text_encoder, c.text_embed_dim)
             if c.text_encoder else None)
  measure = disparity_filter.DisparityFilter(c.max_disparity_at_512, c.disparity_percentile)
  records, cut = [], 0
  try:
    for plan, left, right in frame_sources.cut_clips(source, inside):
      cut += 1
      record = _record(plan, left, right, measure, c, captioner, encoder, name, video_id)
      if isinstance(record, str):
        skipped[record] += 1
      else:
        records.append(record)
  except Skip as skip:  # the video failed part-way: the clips not cut yet are lost
    logging.warning('Skipping the last %d clips of %s: %s', len(inside) - cut, path, skip)
    skipped[skip.reason] += len(inside) - cut
  return {'clips': records, 'skipped': dict(skipped), 'video_id': video_id}


def _record(plan: clips.ClipPlan, left: np.ndarray, right: np.ndarray,
            measure: disparity_filter.DisparityFilter, c: Stereo4DConfig,
            captioner: captions.Captioner, encoder, name: str, video_id: str) -> dict | str:
  """One clip's record, or the reason it is dropped."""
  statistics = measure.measure(left, right)
  keep, reason = measure.keep(statistics, c.size)
  if not keep:
    return reason
  caption = captioner(plan.name, name, video_id, right[len(right) // 2])
  record = {'right': right, 'left': left, 'caption': caption, 'video_id': video_id,
            'name': plan.name, 'timestamps_us': plan.times_us.astype(np.int64),
            'disparity_median_px': np.float32(statistics['median_px']),
            'disparity_high_px': np.float32(statistics['high_percentile_px']),
            'disparity_valid_fraction': np.float32(statistics['valid_fraction'])}
  if encoder is not None:
    record['text_embedding'] = encoder(caption)
  return record


def _process_to_cache(c: Stereo4DConfig, manual_dir: str, npz_path: str, cache: str) -> str:
  """Processes one npz and stores its clips and report in ``cache`` (atomically)."""
  result = process_npz(c, pathlib.Path(manual_dir), pathlib.Path(npz_path))
  clips_out = result.pop('clips')
  arrays = {f'{i}/{k}': np.asarray(v) for i, record in enumerate(clips_out)
            for k, v in record.items()}
  # Stored uncompressed: video frames deflate by only ~1.5x, and the records are compressed
  # once, when the shards are written (compressing here too cost a fifth of the build).
  with atomic_files.atomic_path(cache) as temporary:
    np.savez(temporary, report=json.dumps({**result, 'num_clips': len(clips_out)}), **arrays)
  return cache


def _read_report(cache: pathlib.Path) -> dict:
  """The per-npz report of a cache, without reading its clips."""
  with np.load(cache, allow_pickle=False) as data:
    return json.loads(str(data['report']))


def _read_clips(cache: pathlib.Path) -> list[dict]:
  """The clip records a cache holds."""
  with np.load(cache, allow_pickle=False) as data:
    report = json.loads(str(data['report']))
    records = [{} for _ in range(report['num_clips'])]
    for key in data.files:
      if key != 'report':
        index, field = key.split('/', 1)
        value = data[key]
        records[int(index)][field] = value.item() if value.ndim == 0 and value.dtype.kind in (
            'U', 'S') else value
  return records


class Builder(tfds.core.GeneratorBasedBuilder):
  """Stereo4D clips as rectified (right, left) pairs with captions and disparity statistics."""

  VERSION = tfds.core.Version('1.2.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.',
                   '1.1.0': 'Reads the release\'s own tree (npz/, raw/, processed/<name>/); a '
                            'rectified pair\'s frames by timestamp index; one decoding pass '
                            'per video.',
                   '1.2.0': ('Views stored as raw bytes, compressed once by ArrayRecord\'s '
                             'zstd: smaller than zlib, in a third of the time.')}
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__
  BUILDER_CONFIGS = [
      Stereo4DConfig(name='vr180_512', description='The paper: VR180 videos, 512 px, 80 '
                     'frames at 16 fps.'),
      Stereo4DConfig(name='vr180_832', size=832, clip_frames=81,
                     description='For Wan models (configs/wan_stereo_*.py): VR180 videos, '
                     '832 px, 81 frames at 16 fps; trained on 832x480 crops.'),
      Stereo4DConfig(name='rectified_512', source='rectified',
                     description='Pairs already rectified by the release\'s tool.'),
      Stereo4DConfig(name='middlebury', source='rectified', size=64, clip_frames=16,
                     validation_per_mille=1000,
                     description='A pan across Middlebury\'s real motorcycle pair '
                                 '(middlebury_clip.py), at the demo model\'s size.'),
      Stereo4DConfig(name='sample', size=128, clip_frames=8, min_equirect_height=256,
                     validation_per_mille=500,
                     description='The project\'s synthetic VR180 sample, for tests.'),
  ]
  DEFAULT_CONFIG_NAME = 'vr180_512'

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    clip = (c.clip_frames, c.size, c.size, 3)
    tensor = lambda shape, dtype: tfds.features.Tensor(shape=shape, dtype=dtype,
                                                      encoding=tfds.features.Encoding.BYTES)
    features = {
        'right': tensor(clip, np.uint8),
        'left': tensor(clip, np.uint8),
        'caption': tfds.features.Text(),
        'video_id': tfds.features.Text(),
        'name': tfds.features.Text(),
        'timestamps_us': tfds.features.Tensor(shape=(c.clip_frames,), dtype=np.int64),
        'disparity_median_px': tfds.features.Scalar(dtype=np.float32),
        'disparity_high_px': tfds.features.Scalar(dtype=np.float32),
        'disparity_valid_fraction': tfds.features.Scalar(dtype=np.float32),
    }
    if c.text_encoder:
      features['text_embedding'] = tensor((None, c.text_embed_dim), np.float32)
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict(features))

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    c = self.builder_config
    if c.source not in REQUIRED_FIELDS:
      raise ValueError(f'stereo4d/{c.name}: source must be one of {sorted(REQUIRED_FIELDS)}')
    manual_dir = pathlib.Path(dl_manager.manual_dir)
    npz_files = sorted((manual_dir / c.npz_folder).glob('*.npz'))
    if not npz_files:
      raise FileNotFoundError(f'{manual_dir / c.npz_folder}: no npz files (see the builder\'s '
                              'manual download instructions)')
    work = pathlib.Path(dl_manager.download_dir) / 'stereo4d_work' / c.name
    work.mkdir(parents=True, exist_ok=True)
    caches = {p: work / f'{p.stem}.npz' for p in npz_files}
    todo = [p for p, cache in caches.items() if not cache.exists()]
    logging.info('stereo4d/%s: %d npz files, %d already processed', c.name, len(npz_files),
                 len(npz_files) - len(todo))
    if c.num_workers > 0 and len(todo) > 1:
      # Fresh interpreters (spawn): forking a process that runs TensorFlow's threads is unsafe.
      context = multiprocessing.get_context('spawn')
      with concurrent.futures.ProcessPoolExecutor(c.num_workers, mp_context=context) as pool:
        list(pool.map(_process_to_cache, [c] * len(todo), [str(manual_dir)] * len(todo),
                      map(str, todo), [str(caches[p]) for p in todo]))
    else:
      for path in todo:
        _process_to_cache(c, str(manual_dir), str(path), str(caches[path]))
    reports = self._write_report(work, caches)
    splits = {_split_of(r['video_id'], c.validation_per_mille)
              for r in reports if r['num_clips']}
    if not splits:
      raise ValueError(f'stereo4d/{c.name}: no clip survived; see {work / "build_report.json"}')
    return {split: self._generate_examples(list(caches.values()), split)
            for split in sorted(splits)}

  def _write_report(self, work: pathlib.Path, caches: dict) -> list[dict]:
    """Writes build_report.json (totals and per-npz reasons); returns the per-npz reports."""
    totals, per_npz = collections.Counter(), {}
    for path, cache in caches.items():
      report = _read_report(cache)
      totals.update(report['skipped'])
      totals['clips_kept'] += report['num_clips']
      per_npz[path.name] = report
    atomic_files.write_text(work / 'build_report.json',
                            json.dumps({'totals': dict(totals), 'npz': per_npz}, indent=2))
    logging.info('stereo4d build report: %s', dict(totals))
    return list(per_npz.values())

  def _generate_examples(self, caches: list[pathlib.Path], split: str):
    c = self.builder_config
    for cache in caches:
      records = _read_clips(cache)
      for record in records:
        if _split_of(str(record['video_id']), c.validation_per_mille) == split:
          yield str(record['name']), record
