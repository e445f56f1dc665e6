"""TFDS builder for Stereo4D: VR180 videos (or rectified pairs) + npz -> ArrayRecord clips.

Inputs, under the manual directory (``--manual_dir`` / ``config.data.manual_dir``):
  npz/*.npz                           the release's annotations, one per clip
  videos/<video_id>.mp4               VR180 side-by-side videos (configs ``vr180_*``), or
  videos/<video_id>-left_rectified.mp4 and -right_rectified.mp4 (configs ``rectified_*``)
  captions.json                       optional: {clip, npz name or video id: caption}

Per npz: frames are taken at its timestamps resampled to ``fps`` and cut into
``clip_frames``-frame clips (clips past the video's end are dropped), rectified to
``size`` x ``size`` pinhole pairs, measured for disparity (clips above the paper's 60 px at
512 are dropped), captioned from the middle frame, and written with their statistics.
Videos are split into train / validation by a hash of the video id, so no video is in
both. Each npz's result is cached (atomically) in the download directory, so an
interrupted build continues where it stopped, and npz files are processed by
``num_workers`` processes. Bad inputs are skipped with a logged reason and counted in
``build_report.json`` beside the cache; the build goes on.
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

from data_builders.stereo4d import captions, clips, disparity_filter, rectification
from eye2eye_jax.common import atomic_files
from eye2eye_jax.data import frame_ops, text_encoding, video_io

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
  min_equirect_height: int = 1440  # below this the annotations do not line up
  max_disparity_at_512: float = 60.0
  disparity_percentile: float = 98.0
  validation_per_mille: int = 50  # share of videos in the validation split
  captioner: str = ''  # "package.module:function" (middle frame -> caption)
  text_encoder: str = ''  # "package.module:function" (caption -> (N, text_embed_dim))
  text_embed_dim: int = 0
  num_workers: int = 0  # processes working on npz files at once (0: this process)


class Skip(Exception):
  """An input that cannot be used; the message is the reason's name and detail."""

  def __init__(self, reason: str, detail: str):
    super().__init__(f'{reason}: {detail}')
    self.reason = reason


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


def _clip_frames(c: Stereo4DConfig, manual_dir: pathlib.Path, npz: dict, path: pathlib.Path):
  """(video duration in s, function times_us -> (left, right)) for one npz's video."""
  video_id = str(npz['video_id'])
  videos = manual_dir / 'videos'
  if c.source == 'vr180':
    video = videos / f'{video_id}.mp4'
    if not video.is_file():
      raise Skip('missing_video', f'{path.name}: {video} does not exist')
    info = _info(video)
    if info.height < c.min_equirect_height:
      raise Skip('below_vr180_resolution', f'{video}: {info.width}x{info.height}, needs a '
                 f'height of at least {c.min_equirect_height}')
    rectifier = rectification.Rectifier(rectification.FovBounds.from_array(npz['fov_bounds']),
                                        npz['rectified2rig'], c.size, c.hfov_degrees)
    return info.duration_s, lambda times: rectifier(_frames(video, times))
  pair = [videos / f'{video_id}-{eye}_rectified.mp4' for eye in ('left', 'right')]
  for video in pair:
    if not video.is_file():
      raise Skip('missing_video', f'{path.name}: {video} does not exist')
  infos = [_info(v) for v in pair]
  describe = lambda i: f'{i.num_frames} frames at {i.fps:g} fps of {i.width}x{i.height}'
  if describe(infos[0]) != describe(infos[1]):
    raise Skip('mismatched_pair', f'{pair[0]} has {describe(infos[0])}, {pair[1]} has '
               f'{describe(infos[1])}')
  resize = lambda x: frame_ops.resize_clip(x, c.size, c.size)
  return (min(i.duration_s for i in infos),
          lambda times: tuple(resize(_frames(v, times)) for v in pair))


def _info(video: pathlib.Path) -> video_io.VideoInfo:
  try:
    return video_io.video_info(video)
  except video_io.VideoError as error:
    raise Skip('unreadable_video', str(error)) from error


def _frames(video: pathlib.Path, times_us: np.ndarray) -> np.ndarray:
  try:
    return video_io.read_frames_at(video, times_us / 1e6)
  except video_io.VideoError as error:
    raise Skip('unreadable_video', str(error)) from error


def process_npz(c: Stereo4DConfig, manual_dir: pathlib.Path, path: pathlib.Path) -> dict:
  """Every clip of one npz: {'clips': [record, ...], 'skipped': {reason: count}, ...}."""
  skipped = collections.Counter()
  try:
    npz = _load_npz(path, c.source)
    name, video_id = str(npz['name']), str(npz['video_id'])
    plans = clips.plan_clips(name, npz['timestamps'], c.fps, c.clip_frames)
    duration, read_pair = _clip_frames(c, manual_dir, npz, path)
  except Skip as skip:
    logging.warning('Skipping %s', skip)
    return {'clips': [], 'skipped': {skip.reason: 1}, 'detail': str(skip)}
  except ValueError as error:  # bad timestamps and other malformed annotations
    logging.warning('Skipping %s: %s', path, error)
    return {'clips': [], 'skipped': {'bad_annotations': 1}, 'detail': f'{path}: {error}'}
  inside, past_end = clips.split_by_video_end(plans, duration)
  skipped['past_video_end'] += len(past_end)
  captioner = captions.Captioner(c.captioner, manual_dir / 'captions.json'
                                 if (manual_dir / 'captions.json').is_file() else None)
  encoder = (text_encoding.TextEncoder.from_spec(c.text_encoder, c.text_embed_dim)
             if c.text_encoder else None)
  measure = disparity_filter.DisparityFilter(c.max_disparity_at_512, c.disparity_percentile)
  records = []
  for plan in inside:
    try:
      left, right = read_pair(plan.times_us)
    except Skip as skip:
      logging.warning('Skipping clip %s: %s', plan.name, skip)
      skipped[skip.reason] += 1
      continue
    statistics = measure.measure(left, right)
    keep, reason = measure.keep(statistics, c.size)
    if not keep:
      skipped[reason] += 1
      continue
    caption = captioner(plan.name, name, video_id, right[len(right) // 2])
    record = {'right': right, 'left': left, 'caption': caption, 'video_id': video_id,
              'name': plan.name, 'timestamps_us': plan.times_us.astype(np.int64),
              'disparity_median_px': np.float32(statistics['median_px']),
              'disparity_high_px': np.float32(statistics['high_percentile_px']),
              'disparity_valid_fraction': np.float32(statistics['valid_fraction'])}
    if encoder is not None:
      record['text_embedding'] = encoder(caption)
    records.append(record)
  return {'clips': records, 'skipped': dict(skipped), 'video_id': video_id}


def _process_to_cache(c: Stereo4DConfig, manual_dir: str, npz_path: str, cache: str) -> str:
  """Processes one npz and stores its clips and report in ``cache`` (atomically)."""
  result = process_npz(c, pathlib.Path(manual_dir), pathlib.Path(npz_path))
  clips_out = result.pop('clips')
  arrays = {f'{i}/{k}': np.asarray(v) for i, record in enumerate(clips_out)
            for k, v in record.items()}
  with atomic_files.atomic_path(cache) as temporary:
    np.savez_compressed(temporary, report=json.dumps({**result, 'num_clips': len(clips_out)}),
                        **arrays)
  return cache


def _read_cache(cache: pathlib.Path) -> tuple[dict, list[dict]]:
  with np.load(cache, allow_pickle=False) as data:
    report = json.loads(str(data['report']))
    records = [{} for _ in range(report['num_clips'])]
    for key in data.files:
      if key != 'report':
        index, field = key.split('/', 1)
        value = data[key]
        records[int(index)][field] = value.item() if value.ndim == 0 and value.dtype.kind in (
            'U', 'S') else value
  return report, records


class Builder(tfds.core.GeneratorBasedBuilder):
  """Stereo4D clips as rectified (right, left) pairs with captions and disparity statistics."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__
  BUILDER_CONFIGS = [
      Stereo4DConfig(name='vr180_512', description='The paper: VR180 videos, 512 px, 80 '
                     'frames at 16 fps.'),
      Stereo4DConfig(name='rectified_512', source='rectified',
                     description='Pairs already rectified by the release\'s tool.'),
      Stereo4DConfig(name='sample', size=128, clip_frames=8, min_equirect_height=256,
                     validation_per_mille=500,
                     description='The project\'s synthetic VR180 sample, for tests.'),
  ]
  DEFAULT_CONFIG_NAME = 'vr180_512'

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    clip = (c.clip_frames, c.size, c.size, 3)
    tensor = lambda shape, dtype: tfds.features.Tensor(shape=shape, dtype=dtype,
                                                      encoding=tfds.features.Encoding.ZLIB)
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
    npz_files = sorted((manual_dir / 'npz').glob('*.npz'))
    if not npz_files:
      raise FileNotFoundError(f'{manual_dir / "npz"}: no npz files (see the builder\'s '
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
      report, _ = _read_cache(cache)
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
      _, records = _read_cache(cache)
      for record in records:
        if _split_of(str(record['video_id']), c.validation_per_mille) == split:
          yield str(record['name']), record
