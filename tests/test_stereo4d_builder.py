"""The stereo4d TFDS builder end to end on the project's VR180 sample, with bad inputs mixed in."""

import json
import pathlib
import shutil

import numpy as np
import pytest

from conftest import load_config
from data_builders.stereo4d import clips, rectification, vr180_sample
from eye2eye_jax.data import datasets, frame_ops, input_pipeline, video_io


@pytest.fixture(scope='module')
def built(tmp_path_factory):
  """A manual dir holding two good videos and one of each bad input; the built dataset."""
  manual = tmp_path_factory.mktemp('stereo4d_manual')  # the release's tree
  (manual / 'npz').mkdir()
  videos = manual / 'raw'
  # Each npz starts 8 frames into its 40-frame video (30 fps): 32 frames = 1.03 s -> 17
  # frames at 16 fps -> two clips of 8 each.
  for seed, video_id in enumerate(('sample_1', 'clip_one')):
    video, npz = vr180_sample.write_sample(videos, video_id, num_frames=40,
                                           eye_hw=(256, 256), seed=seed, first_frame=8)
    shutil.move(npz, manual / 'npz' / npz.name)
  # Bad inputs: each must be skipped, named and counted, and the build must go on.
  good = dict(np.load(manual / 'npz' / 'sample_1_266667.npz'))
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
      manual / 'npz' / 'clip_one_266667.npz')), 'name': 'clip_one_long', 'timestamps': long})

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
  record = next(r for r in records if r['name'] == b'sample_1_266667_001')
  assert record['right'].shape == (8, 128, 128, 3) and record['caption'] == b''
  # The stored pixels are exactly what rectifying the video at those times gives.
  npz = np.load(manual / 'npz' / 'sample_1_266667.npz')
  plan = clips.plan_clips('sample_1_266667', npz['timestamps'], 16, 8)[1]
  np.testing.assert_array_equal(record['timestamps_us'], plan.times_us)
  frames = video_io.read_frames_at(manual / 'raw' / 'sample_1.mp4', plan.times_us / 1e6)
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


@pytest.fixture(scope='module')
def release_tree(built, tmp_path_factory):
  """A manual dir as the release's tools leave it for the rectified configs: npz/, raw/ and
  rectify.py's processed/<name>/ output (256 px pairs at 30 fps, one frame per timestamp).
  One npz's timestamps sit 41 s into its source, as real ones do; the pair does not care."""
  _, manual = built
  tree = tmp_path_factory.mktemp('stereo4d_release')
  (tree / 'npz').mkdir()
  shutil.copytree(manual / 'raw', tree / 'raw')
  for name in ('clip_one_266667', 'sample_1_266667'):
    npz = tree / 'npz' / f'{name}.npz'
    shutil.copy(manual / 'npz' / f'{name}.npz', npz)
    vr180_sample.write_release_output(tree / 'processed', npz,
                                      tree / 'raw' / f'{name.rsplit("_", 1)[0]}.mp4', size=256)
  later = dict(np.load(tree / 'npz' / 'sample_1_266667.npz'))
  later['timestamps'] = later['timestamps'] + 41_000_000
  np.savez(tree / 'npz' / 'sample_1_266667.npz', **later)
  return tree


def _rectified_builder(tree, data_dir, **overrides):
  from data_builders.stereo4d import Builder, Stereo4DConfig
  import tensorflow_datasets as tfds
  config = Stereo4DConfig(**{'name': 'sample_rectified', 'source': 'rectified', 'size': 128,
                             'clip_frames': 8, 'validation_per_mille': 0, **overrides})
  builder = Builder(config=config, data_dir=str(data_dir), file_format='array_record')
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(tree)))
  return builder


def test_the_release_tools_output_builds_every_clip_its_npz_describes(release_tree, tmp_path):
  records = {r['name'].decode(): r for r in _rectified_builder(
      release_tree, tmp_path / 'tfds').as_data_source()['train']}
  assert sorted(records) == ['clip_one_266667_000', 'clip_one_266667_001',
                             'sample_1_266667_000', 'sample_1_266667_001']
  for name, record in records.items():
    npz_name, clip = name.rsplit('_', 1)
    timestamps = np.load(release_tree / 'npz' / f'{npz_name}.npz')['timestamps']
    plan = clips.plan_clips(npz_name, timestamps, 16, 8)[int(clip)]
    np.testing.assert_array_equal(record['timestamps_us'], plan.times_us)
    # Frame k of the pair is the npz's k-th timestamp, whatever its time.
    indices = np.searchsorted(timestamps, plan.times_us)
    for eye in ('left', 'right'):
      pair = video_io.read_video(
          release_tree / 'processed' / npz_name / f'{npz_name}-{eye}_rectified.mp4').frames
      expected = frame_ops.resize_clip(pair[indices], 128, 128)
      np.testing.assert_array_equal(record[eye], expected)


def caption_by_brightness(frame: np.ndarray) -> str:
  return 'a bright scene' if frame.mean() > 100 else 'a dark scene'


def embed_words(caption: str) -> np.ndarray:
  return np.full((len(caption.split()), 4), len(caption), np.float32)


def test_rectified_pairs_with_a_captioner_and_text_encoder(release_tree, tmp_path):
  builder = _rectified_builder(release_tree, tmp_path / 'tfds', name='captioned',
                               captioner=f'{__name__}:caption_by_brightness',
                               text_encoder=f'{__name__}:embed_words', text_embed_dim=4)
  records = list(builder.as_data_source()['train'])
  assert len(records) == 4
  for record in records:
    assert record['right'].shape == (8, 128, 128, 3)  # 256 px pairs resized to the config's
    assert record['caption'] in (b'a bright scene', b'a dark scene')
    assert record['text_embedding'].shape == (3, 4)
    assert record['disparity_median_px'] > 0


def _counting_decoded_frames(monkeypatch) -> list:
  """Counts the frames ffmpeg decodes and hands over, for every video read."""
  import imageio_ffmpeg
  counts, read_frames = [], imageio_ffmpeg.read_frames

  def counting(*args, **kwargs):
    reader = read_frames(*args, **kwargs)
    yield next(reader)  # the metadata
    slot = len(counts)
    counts.append(0)
    for frame in reader:
      counts[slot] += 1
      yield frame
  monkeypatch.setattr(imageio_ffmpeg, 'read_frames', counting)
  return counts


@pytest.mark.parametrize('source', ['rectified', 'vr180'])
def test_each_video_is_decoded_once_from_the_first_frame_an_npz_uses(release_tree, source,
                                                                    monkeypatch):
  from data_builders.stereo4d import Stereo4DConfig
  from data_builders.stereo4d.stereo4d_dataset_builder import process_npz
  config = Stereo4DConfig(name='count', source=source, size=64, clip_frames=4,
                          min_equirect_height=256)
  npz = release_tree / 'npz' / 'clip_one_266667.npz'
  counts = _counting_decoded_frames(monkeypatch)
  result = process_npz(config, release_tree, npz)
  timestamps = np.load(npz)['timestamps']
  plans = clips.plan_clips('clip_one_266667', timestamps, 16, 4)
  assert len(result['clips']) == len(plans) == 4
  # One pass per video over exactly the span of frames the clips use: from a seek to the
  # first (the npz starts 8 frames into the raw video) to the last.
  first, last = ((np.searchsorted(timestamps, plans[0].times_us[0]),
                  np.searchsorted(timestamps, plans[-1].times_us[-1])) if source == 'rectified'
                 else (round(plans[0].times_us[0] * 30e-6), round(plans[-1].times_us[-1] * 30e-6)))
  per_video = last - first + 1
  assert counts == [per_video] * (2 if source == 'rectified' else 1), counts


def test_evaluate_scores_a_checkpoint_on_real_stereo_pairs(built, tiny_checkpoint, tmp_path):
  from eye2eye_jax.evaluation import checkpoint_report
  config, _ = built
  metrics = checkpoint_report.evaluate_checkpoint(config, tmp_path, checkpoint=str(
      tiny_checkpoint), refiner_checkpoint='', num_clips=2)
  assert metrics['kind'] == 'pairs' and metrics['num_clips'] == 2
  assert metrics['methods'] == ['generated', 'true_left', 'copy_right', 'global_shift',
                                'warp_stereo']
  for method in ('generated', 'copy_right', 'warp_stereo'):
    assert 0 < metrics['image'][method]['psnr'] < 60
  # The sample's boards sit 1.5-6 m away: the true pair has positive disparity, the copied
  # right view none (a disparity scale near 0).
  assert metrics['disparity_statistics']['true_left']['median_px'] > 0.5
  assert abs(metrics['disparity_statistics']['copy_right']['median_px']) < 0.5
  assert abs(metrics['agreement']['copy_right']['scale']) < 0.2
  # The oracle warp follows the true disparity far better than a flat copy.
  assert metrics['agreement']['warp_stereo']['error_px'] < metrics['agreement'][
      'copy_right']['error_px']
  report = (tmp_path / 'report.md').read_text()
  assert 'rectified pairs' in report and '| warp_stereo |' in report
  assert json.loads((tmp_path / 'metrics.json').read_text())['agreement']


def test_training_samples_real_pairs_into_tensorboard(built):
  from eye2eye_jax.training import train_state, validation_samples
  config, _ = built
  config = config.copy_and_resolve_references()
  config.train.sample_clips = 1

  class Writer:
    def __init__(self):
      self.scalars, self.images = {}, {}

    def write_scalars(self, step, scalars):
      self.scalars.update(scalars)

    def write_images(self, step, images):
      self.images.update(images)

  writer = Writer()
  sampler = validation_samples.TrainingSampler(config, config.data.data_dir)
  scalars = sampler(1, train_state.init_train_state(config), writer)
  assert set(scalars) == {'samples/psnr', 'samples/ssim', 'samples/stereo_iou',
                          'samples/disparity_scale', 'samples/disparity_error_after_scale_px',
                          'samples/median_disparity_px', 'samples/frame_median_change_px',
                          'samples/flicker_px'}
  assert writer.scalars == scalars and 0 < scalars['samples/psnr'] < 60
  [anaglyphs] = writer.images.values()
  assert anaglyphs.shape == (1, 128, 256, 3)  # middle frames: generated | true


def test_middleburys_real_pair_builds_and_its_disparity_is_measured_right(
    tiny_checkpoint, tmp_path):
  from data_builders.stereo4d import middlebury_clip
  from eye2eye_jax.evaluation import checkpoint_report
  true_median = middlebury_clip.write_clip(tmp_path / 'manual')
  config = load_config('tiny')
  config.data.builder, config.data.builder_config = 'stereo4d', 'middlebury'
  config.data.manual_dir = str(tmp_path / 'manual')
  config.data.data_dir = str(tmp_path / 'tfds')
  metrics = checkpoint_report.evaluate_checkpoint(
      config, tmp_path / 'eval', checkpoint=str(tiny_checkpoint), refiner_checkpoint='',
      num_clips=1)
  assert metrics['num_clips'] == 1  # 32 frames at 30 fps -> one 16-frame clip at 16 fps
  # The instrument on a real pair: the true pair's measured median disparity is
  # Middlebury's ground truth (scaled to 64 px), to within a pixel.
  measured = metrics['disparity_statistics']['true_left']['median_px']
  assert true_median > 2 and abs(measured - true_median / 2) < 1.0, (measured, true_median)
