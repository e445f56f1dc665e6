"""The stereo4d TFDS builder end to end on the project's VR180 sample, with bad inputs mixed in."""

import json
import pathlib
import shutil

import numpy as np
import pytest

from conftest import load_config
from data_builders.stereo4d import clips, rectification, vr180_sample
from eye2eye_jax.data import datasets, input_pipeline, video_io


@pytest.fixture(scope='module')
def built(tmp_path_factory):
  """A manual dir holding two good videos and one of each bad input; the built dataset."""
  manual = tmp_path_factory.mktemp('stereo4d_manual')
  (manual / 'npz').mkdir()
  videos = manual / 'videos'
  # 40 frames at 30 fps = 1.3 s -> 21 frames at 16 fps -> two clips of 8 each.
  for seed, video_id in enumerate(('sample_1', 'clip_one')):
    video, npz = vr180_sample.write_sample(videos, video_id, num_frames=40,
                                           eye_hw=(256, 256), seed=seed)
    shutil.move(npz, manual / 'npz' / npz.name)
  # Bad inputs: each must be skipped, named and counted, and the build must go on.
  good = dict(np.load(manual / 'npz' / 'sample_1_0.npz'))
  np.savez(manual / 'npz' / 'no_video_0.npz', **{**good, 'video_id': 'no_video',
                                                 'name': 'no_video_0'})
  np.savez(manual / 'npz' / 'fields_0.npz', **{k: v for k, v in good.items()
                                               if k != 'rectified2rig'})
  (videos / 'corrupt.mp4').write_bytes(b'\x00\x00\x00\x18ftypmp42' + b'garbage' * 100)
  np.savez(manual / 'npz' / 'corrupt_0.npz', **{**good, 'video_id': 'corrupt',
                                                'name': 'corrupt_0'})
  vr180_sample.write_sample(videos, 'too_small', num_frames=6, eye_hw=(64, 64))
  np.savez(manual / 'npz' / 'too_small_0.npz', **{**good, 'video_id': 'too_small',
                                                  'name': 'too_small_0'})
  # Timestamps running 3 s past the end of a 1.3 s video: 2 clips fit, 6 are dropped.
  # (sample_1 hashes to the validation split, clip_one to train.)
  long = np.round(np.arange(130) * 1e6 / 30).astype(np.int64)
  np.savez(manual / 'npz' / 'clip_one_long.npz', **{**dict(np.load(
      manual / 'npz' / 'clip_one_0.npz')), 'name': 'clip_one_long', 'timestamps': long})

  config = load_config('tiny')
  config.data.builder, config.data.builder_config = 'stereo4d', 'sample'
  config.data.data_dir = str(tmp_path_factory.mktemp('stereo4d_tfds'))
  config.data.manual_dir = str(manual)
  datasets.ensure_dataset(config, config.data.data_dir)
  return config, manual


def _report(config):
  reports = list(pathlib.Path(config.data.data_dir).rglob('build_report.json'))
  assert len(reports) == 1
  return json.loads(reports[0].read_text())


def test_bad_inputs_are_skipped_counted_and_named(built):
  config, _ = built
  report = _report(config)
  assert report['totals'] == {'clips_kept': 6, 'missing_video': 1, 'npz_missing_fields': 1,
                              'unreadable_video': 1, 'below_vr180_resolution': 1,
                              'past_video_end': 6}
  assert 'no_video.mp4 does not exist' in report['npz']['no_video_0.npz']['detail']
  assert 'rectified2rig' in report['npz']['fields_0.npz']['detail']
  assert 'too_small.mp4: 128x64' in report['npz']['too_small_0.npz']['detail']


def test_each_video_is_in_one_split_and_clips_read_back_identically(built):
  config, manual = built
  splits = {s: datasets.data_source(config, s, config.data.data_dir)
            for s in ('train', 'validation')}
  videos = {s: {r['video_id'] for r in source} for s, source in splits.items()}
  assert not videos['train'] & videos['validation']
  assert {v.decode() for v in videos['train'] | videos['validation']} == {'sample_1', 'clip_one'}
  records = [r for source in splits.values() for r in source]
  assert len(records) == 6
  record = next(r for r in records if r['name'] == b'sample_1_0_001')
  assert record['right'].shape == (8, 128, 128, 3) and record['caption'] == b''
  # The stored pixels are exactly what rectifying the video at those times gives.
  npz = np.load(manual / 'npz' / 'sample_1_0.npz')
  plan = clips.plan_clips('sample_1_0', npz['timestamps'], 16, 8)[1]
  np.testing.assert_array_equal(record['timestamps_us'], plan.times_us)
  frames = video_io.read_frames_at(manual / 'videos' / 'sample_1.mp4', plan.times_us / 1e6)
  left, right = rectification.Rectifier(rectification.FovBounds.from_array(npz['fov_bounds']),
                                        npz['rectified2rig'], 128)(frames)
  np.testing.assert_array_equal(record['left'], left)
  np.testing.assert_array_equal(record['right'], right)
  # Disparity statistics ride along: the sample's boards are 1.5-6 m away.
  assert 0 < record['disparity_median_px'] < record['disparity_high_px'] < 15


def test_the_trainers_pipeline_reads_the_dataset(built):
  config, _ = built
  config = config.copy_and_resolve_references()
  config.data.resolution, config.data.num_frames, config.data.batch_size = 64, 4, 2
  batch = next(iter(input_pipeline.create_train_loader(config, config.data.data_dir)))
  assert batch['right'].shape == (2, 4, 64, 64, 3)
  assert -1 <= batch['left'].min() < batch['left'].max() <= 1


def test_a_rebuild_reuses_finished_work(built, tmp_path):
  config, _ = built
  caches = sorted(p for p in pathlib.Path(config.data.data_dir).rglob(
      'stereo4d_work/sample/*.npz'))
  assert len(caches) == 7  # one per npz, good or bad
  before = {p: p.stat().st_mtime_ns for p in caches}
  from data_builders.stereo4d import Builder
  import tensorflow_datasets as tfds
  builder = Builder(config='sample', data_dir=str(tmp_path / 'again'),
                    file_format='array_record')
  download_dir = caches[0].parent.parent.parent
  builder.download_and_prepare(download_dir=str(download_dir),
                               download_config=tfds.download.DownloadConfig(
                                   manual_dir=config.data.manual_dir))
  assert {p: p.stat().st_mtime_ns for p in caches} == before  # nothing recomputed
  assert len(builder.as_data_source()['train']) + len(
      builder.as_data_source()['validation']) == 6


def test_processes_build_the_same_dataset(built, tmp_path):
  config, _ = built
  from data_builders.stereo4d import Builder, Stereo4DConfig
  import tensorflow_datasets as tfds
  parallel = Stereo4DConfig(name='sample_parallel', size=128, clip_frames=8, min_equirect_height=256,
                            validation_per_mille=500, num_workers=2)
  builder = Builder(config=parallel, data_dir=str(tmp_path / 'parallel'),
                    file_format='array_record')
  builder.download_and_prepare(download_dir=str(tmp_path / 'work'),
                               download_config=tfds.download.DownloadConfig(
                                   manual_dir=config.data.manual_dir))
  serial = datasets.data_source(config, 'train', config.data.data_dir)
  ours = {r['name']: r for r in builder.as_data_source()['train']}
  assert sorted(ours) == sorted(r['name'] for r in serial)
  for record in serial:
    np.testing.assert_array_equal(ours[record['name']]['left'], record['left'])


def caption_by_brightness(frame: np.ndarray) -> str:
  return 'a bright scene' if frame.mean() > 100 else 'a dark scene'


def embed_words(caption: str) -> np.ndarray:
  return np.full((len(caption.split()), 4), len(caption), np.float32)


def test_rectified_pairs_with_a_captioner_and_text_encoder(built, tmp_path):
  """The release tool's rectified mp4 pairs are read directly; captions and embeddings."""
  config, manual = built
  from data_builders.stereo4d import Builder, Stereo4DConfig
  import tensorflow_datasets as tfds
  pairs = tmp_path / 'manual'
  (pairs / 'npz').mkdir(parents=True)
  shutil.copy(manual / 'npz' / 'clip_one_0.npz', pairs / 'npz')
  source = video_io.read_video(manual / 'videos' / 'clip_one.mp4')
  npz = np.load(manual / 'npz' / 'clip_one_0.npz')
  left, right = rectification.Rectifier(rectification.FovBounds.from_array(npz['fov_bounds']),
                                        npz['rectified2rig'], 256)(source.frames)
  for eye, frames in (('left', left), ('right', right)):
    video_io.write_video(pairs / 'videos' / f'clip_one-{eye}_rectified.mp4', frames, source.fps)
  rectified = Stereo4DConfig(name='sample_rectified', source='rectified', size=128,
                             clip_frames=8, validation_per_mille=0,
                             captioner=f'{__name__}:caption_by_brightness',
                             text_encoder=f'{__name__}:embed_words', text_embed_dim=4)
  builder = Builder(config=rectified, data_dir=str(tmp_path / 'tfds'),
                    file_format='array_record')
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(pairs)))
  records = list(builder.as_data_source()['train'])
  assert len(records) == 2
  for record in records:
    assert record['right'].shape == (8, 128, 128, 3)  # 256 px pairs resized to the config's
    assert record['caption'] in (b'a bright scene', b'a dark scene')
    assert record['text_embedding'].shape == (3, 4)
    assert record['disparity_median_px'] > 0
