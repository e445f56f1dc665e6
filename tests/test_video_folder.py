"""A directory of monocular videos becomes backbone training clips, bad files skipped."""

import json

import numpy as np
import pytest

from conftest import load_config
from data_builders.video_folder import video_folder_dataset_builder as video_folder
from eye2eye_jax.data import datasets, input_pipeline, video_io


def _moving_video(seed: int, frames: int, height: int, width: int) -> np.ndarray:
  """A texture sliding right by 1 px a frame."""
  texture = np.random.default_rng(seed).integers(0, 255, (height, width + frames, 3),
                                                 dtype=np.uint8)
  return np.stack([texture[:, frames - t:frames - t + width] for t in range(frames)])


def test_square_clips_resize_the_short_side_and_crop_the_centre():
  frames = np.zeros((9, 30, 60, 3), np.uint8)
  frames[:, :, 20:40] = 255  # a bright centre band, a third of the width
  clips = video_folder.square_clips(frames, 16, 4)
  assert len(clips) == 2 and clips[0].shape == (4, 16, 16, 3)  # 9 frames: the tail dropped
  # 60x30 -> 32x16, centre 16 columns: the band (columns 10.7-21.3 of 32) spans 5-11.
  assert clips[0][0, :, 8].min() == 255 and clips[0][0, :, 0].max() == 0


def test_a_folder_of_videos_builds_and_reads_through_the_grain_pipeline(tmp_path):
  manual = tmp_path / 'videos'
  (manual / 'sub').mkdir(parents=True)
  for i, (frames, h, w) in enumerate([(12, 24, 32), (8, 20, 20), (9, 32, 24)]):
    folder = manual / 'sub' if i == 2 else manual
    video_io.write_video(folder / f'clip{i}.mp4', _moving_video(i, frames, h, w), 8.0, crf=0)
  (manual / 'broken.mp4').write_bytes(b'not a video')
  (manual / 'captions.json').write_text(json.dumps({'clip0': 'a sliding texture'}))
  config = load_config('tiny')
  config.data.builder = 'video_folder'
  config.data.builder_config = 'tiny'
  config.data.manual_dir = str(manual)
  config.data.task = 'video'
  config.data.video_field = 'video'
  config.data.num_frames = 4
  config.data.resolution = 8
  data_dir = str(tmp_path / 'tfds')
  datasets.ensure_dataset(config, data_dir)
  train = datasets.data_source(config, 'train', data_dir)
  validation = datasets.data_source(config, 'validation', data_dir)
  # 12 + 8 + 9 frames in clips of 4: 3 + 2 + 2 clips, the broken file skipped.
  assert len(train) + len(validation) == 7 and len(validation) >= 1
  names = sorted(r['name'].decode() if isinstance(r['name'], bytes) else r['name']
                 for r in list(train) + list(validation))
  assert names[0] == 'clip0_000' and 'sub/clip2_001' in names
  by_name = {(r['name'].decode() if isinstance(r['name'], bytes) else r['name']): r
             for r in list(train) + list(validation)}
  caption = by_name['clip0_000']['caption']
  assert (caption.decode() if isinstance(caption, bytes) else caption) == 'a sliding texture'
  clip = by_name['clip1_000']['video']
  assert clip.shape == (4, 16, 16, 3)
  # The texture slides 1 px a frame at 20 px, so 0.8 px at 16 px: consecutive frames agree
  # after that shift far better than without it.
  shifted = np.abs(clip[1, :, 2:-2].astype(float) - np.roll(clip[0], 1, axis=1)[:, 2:-2]).mean()
  still = np.abs(clip[1, :, 2:-2].astype(float) - clip[0, :, 2:-2]).mean()
  assert shifted < 0.6 * still
  report = json.loads(next((tmp_path / 'tfds' / 'downloads').rglob('build_report.json'))
                      .read_text())
  assert report['skipped_counts'] == {'unreadable': 1} and 'broken.mp4' in str(report)
  batch = next(iter(input_pipeline.create_train_loader(config, data_dir)))
  assert set(batch) == {'video'} and batch['video'].shape == (2, 4, 8, 8, 3)


def test_an_empty_folder_is_named(tmp_path):
  config = load_config('tiny')
  config.data.builder = 'video_folder'
  config.data.builder_config = 'tiny'
  config.data.manual_dir = str(tmp_path)
  with pytest.raises(FileNotFoundError, match='no videos'):
    datasets.ensure_dataset(config, str(tmp_path / 'tfds'))


def test_a_video_too_large_to_decode_whole_is_refused_from_its_header(tmp_path, monkeypatch):
  path = tmp_path / 'big.mp4'
  video_io.write_video(path, _moving_video(0, 10, 48, 64), 10.0)  # 10 x 48 x 64 x 3 = 0.09 MiB
  monkeypatch.setattr(video_io.mediapy, 'read_video', lambda *a, **k: pytest.fail('decoded'))
  with pytest.raises(video_io.VideoError,
                     match=r'big.mp4: too large: 10 frames of 64x48 take 0 MiB decoded, over '
                           r'the limit of 0 MiB'):
    video_io.read_video(path, max_bytes=50_000)
