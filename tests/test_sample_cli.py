"""The sample command, run as a user runs it."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from eye2eye_jax.data import video_io


def _run_sample(*args):
  env = dict(os.environ, PYTHONPATH=str(REPO))
  return subprocess.run([sys.executable, '-m', 'eye2eye_jax.sample',
                         f'--config={REPO / "configs" / "tiny.py"}', *args],
                        capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope='module')
def input_dir(tmp_path_factory):
  folder = tmp_path_factory.mktemp('inputs')
  rng = np.random.default_rng(0)
  # 9 frames (not a multiple of the model's 4) of an odd, non-square size.
  video_io.write_video(folder / 'odd.mp4', rng.integers(0, 255, (9, 21, 34, 3), np.uint8), 12.0)
  video_io.write_video(folder / 'short.mp4', rng.integers(0, 255, (2, 16, 16, 3), np.uint8), 8.0)
  return folder


def test_converts_a_directory_of_videos(tiny_checkpoint, input_dir, tmp_path):
  result = _run_sample(f'--input={input_dir}', f'--output_dir={tmp_path}',
                       f'--checkpoint={tiny_checkpoint}')
  assert result.returncode == 0, result.stderr[-3000:]
  for stem, frames, height, width in (('odd', 9, 21, 34), ('short', 2, 16, 16)):
    left = video_io.read_video(tmp_path / f'{stem}_left.mp4')
    sbs = video_io.read_video(tmp_path / f'{stem}_LRF_Full_SBS.mp4')
    half = video_io.read_video(tmp_path / f'{stem}_LR_Half_SBS.mp4')
    tb = video_io.read_video(tmp_path / f'{stem}_TB.mp4')
    anaglyph = video_io.read_video(tmp_path / f'{stem}_anaglyph.mp4')
    assert left.frames.shape == (frames, height, width, 3)
    assert sbs.frames.shape == (frames, height, 2 * width, 3)
    assert half.frames.shape == (frames, height, width, 3)
    assert tb.frames.shape == (frames, 2 * height, width, 3)
    assert anaglyph.frames.shape == (frames, height, width, 3)
    assert left.fps == pytest.approx(12.0 if stem == 'odd' else 8.0)
  assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no temporary files
  assert '2 converted, 0 skipped' in result.stdout


@pytest.mark.parametrize('content,message', [
    (None, 'no such file'),
    (b'', 'empty'),
    (b'this is not a video' * 100, 'not a readable video'),
    ('audio_only', 'no video stream'),  # a container with zero video frames
])
def test_bad_inputs_are_clear_errors_and_write_nothing(tiny_checkpoint, tmp_path, content,
                                                       message):
  path = tmp_path / 'in' / 'bad.mp4'
  path.parent.mkdir()
  if content == 'audio_only':
    subprocess.run([video_io.ffmpeg_path(), '-loglevel', 'error', '-f', 'lavfi', '-i',
                    'anullsrc=r=8000:cl=mono', '-t', '0.2', '-c:a', 'aac', str(path)], check=True)
  elif content is not None:
    path.write_bytes(content)
  out = tmp_path / 'out'
  result = _run_sample(f'--input={path}', f'--output_dir={out}',
                       f'--checkpoint={tiny_checkpoint}')
  assert result.returncode != 0
  assert message in result.stderr and 'bad.mp4' in result.stderr
  assert not out.exists() or not list(out.iterdir())


def test_unknown_config_key_is_a_clear_error(tmp_path):
  result = _run_sample('--config.sample.no_such_key=3', f'--input={tmp_path}',
                       f'--output_dir={tmp_path}')
  assert result.returncode != 0
  assert 'no_such_key' in result.stderr


def test_a_corrupt_file_in_a_batch_is_reported_and_the_rest_finish(tiny_checkpoint, input_dir,
                                                                    tmp_path):
  batch = tmp_path / 'batch'
  batch.mkdir()
  (batch / 'a_corrupt.mp4').write_bytes(b'not a video' * 50)
  (batch / 'b_good.mp4').write_bytes((input_dir / 'short.mp4').read_bytes())
  out = tmp_path / 'out'
  args = (f'--input={batch}', f'--output_dir={out}', f'--checkpoint={tiny_checkpoint}',
          '--continue_on_error', '--config.sample.outputs=("left",)')
  result = _run_sample(*args)
  assert result.returncode == 1
  assert '1 converted, 0 skipped (already done), 1 failed' in result.stderr
  assert 'a_corrupt.mp4' in result.stderr
  assert (out / 'b_good_left.mp4').exists()
  # Re-running with --skip_existing resumes: the finished video is not redone.
  before = (out / 'b_good_left.mp4').stat().st_mtime_ns
  result = _run_sample(*args, '--skip_existing')
  assert '0 converted, 1 skipped' in result.stderr
  assert (out / 'b_good_left.mp4').stat().st_mtime_ns == before


def test_inputs_with_the_same_stem_are_refused_before_any_work(tiny_checkpoint, tmp_path):
  folder = tmp_path / 'in'
  folder.mkdir()
  frames = np.random.default_rng(1).integers(0, 255, (2, 16, 16, 3), np.uint8)
  video_io.write_video(folder / 'clip.mp4', frames, 8.0)
  (folder / 'clip.mov').write_bytes((folder / 'clip.mp4').read_bytes())
  result = _run_sample(f'--input={folder}', f'--output_dir={tmp_path / "out"}',
                       f'--checkpoint={tiny_checkpoint}')
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f'error: {folder / "clip.mov"} and {folder / "clip.mp4"} would write the same outputs '
      '(clip_*.mp4); rename one or convert them into separate output directories')
  assert not (tmp_path / 'out').exists()


def test_command_line_mistakes_are_one_line(tiny_checkpoint, input_dir, tmp_path):
  unknown = _run_sample(f'--input={input_dir}', f'--output_dir={tmp_path / "out"}',
                        '--config.sample.nonexistent=1')
  assert unknown.returncode == 1 and 'Traceback' not in unknown.stderr
  assert unknown.stderr.strip().splitlines()[-1].startswith(
      "error: --config.sample.nonexistent: sample has no field 'nonexistent' (it has: ")
  (tmp_path / 'a_file').write_text('x')
  a_file = _run_sample(f'--input={input_dir}', f'--output_dir={tmp_path / "a_file"}',
                       f'--checkpoint={tiny_checkpoint}')
  assert a_file.returncode == 1 and a_file.stderr.strip().splitlines()[-1] == (
      f'error: {tmp_path / "a_file"}: the output directory is a file')


def test_strengths_and_convergences_out_of_range_are_refused_before_any_work(
    tiny_strength_checkpoint, input_dir, tmp_path):
  for setting, message in (
      ('strength=-1', 'error: sample.strength=-1.0: this base model was trained for strengths '
                      'in [0.25, 2.5] (model.strength_range)'),
      ('convergence=0.5', "error: sample.convergence=0.5: accepted values are a fraction of "
                          "the frame width in [-0.25, 0.25], or 'auto' (chosen per scene)")):
    result = _run_sample(f'--input={input_dir}', f'--output_dir={tmp_path / "out"}',
                         f'--checkpoint={tiny_strength_checkpoint}',
                         f'--config.sample.{setting}')
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1] == message
    assert not (tmp_path / 'out').exists()


def test_a_batch_stopped_by_a_bad_file_prints_its_summary_and_a_hint(tiny_checkpoint, tmp_path):
  folder = tmp_path / 'in'
  folder.mkdir()
  frames = np.random.default_rng(2).integers(0, 255, (2, 16, 16, 3), np.uint8)
  video_io.write_video(folder / 'a_good.mp4', frames, 8.0)
  (folder / 'b_bad.mp4').write_bytes(b'not a video')
  result = _run_sample(f'--input={folder}', f'--output_dir={tmp_path / "out"}',
                       f'--checkpoint={tiny_checkpoint}')
  assert result.returncode == 1
  assert '1 converted, 0 skipped (already done), 1 failed' in result.stderr
  assert '--continue_on_error converts the other inputs' in result.stderr
