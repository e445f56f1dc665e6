"""Bad input, failed writes, faults and determinism across the project's entry points.

Every refused input must give an error naming the input and the problem, write nothing
and replace nothing. A full disk is simulated by making the temporary file of an atomic
write a symbolic link to /dev/full: the real writer (ffmpeg, numpy, Python) then gets a
genuine ENOSPC from the kernel. The command-line tools run as subprocesses only where an
exit status or a signal needs a real process; their output goes to files.
"""

import errno
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO
from data_builders.stereo4d import stereo4d_dataset_builder as stereo4d
from eye2eye_jax.common import atomic_files
from eye2eye_jax.data import video_io
from eye2eye_jax.evaluation import checkpoint_report
from eye2eye_jax.models import checkpoints
from eye2eye_jax.sampling import stereo_formats, stereo_sampler, video_conversion
from eye2eye_jax.training import loop, train_state


def _noise(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 255, shape, np.uint8)


def _snapshot(folder: pathlib.Path) -> dict:
  """Every file under ``folder`` (temporary ones included) with its bytes."""
  return {p.relative_to(folder): p.read_bytes() for p in folder.rglob('*') if p.is_file()}


def _run_cli(module, args, log: pathlib.Path, **env):
  """Runs ``python -m module args`` to completion; stdout and stderr go to ``log``."""
  with open(log, 'w') as out:
    result = subprocess.run([sys.executable, '-m', module, *args], stdout=out,
                            stderr=subprocess.STDOUT, timeout=600,
                            env=dict(os.environ, PYTHONPATH=str(REPO), **env))
  return result.returncode, log.read_text()


@pytest.fixture(scope='module')
def sampler(tiny_config, tiny_checkpoint):
  return video_conversion.load_sampler(tiny_config, str(tiny_checkpoint), '')


@pytest.fixture
def disk_full(monkeypatch):
  """Returns a function that makes atomic writes into a folder hit a full disk."""
  real_mkstemp = tempfile.mkstemp
  full = set()

  def mkstemp(*args, dir=None, **kwargs):
    handle, path = real_mkstemp(*args, dir=dir, **kwargs)
    if dir is not None and pathlib.Path(dir).resolve() in full:
      os.close(handle)
      os.remove(path)
      os.symlink('/dev/full', path)
      handle = os.open(path, os.O_WRONLY)
    return handle, path

  monkeypatch.setattr(atomic_files.tempfile, 'mkstemp', mkstemp)
  return lambda folder: full.add(pathlib.Path(folder).resolve())


# --- bad videos ------------------------------------------------------------------------------

def _make_bad_video(kind: str, path: pathlib.Path) -> None:
  ffmpeg = video_io.ffmpeg_path()
  good = path.with_name('good.mp4')
  video_io.write_video(good, _noise((20, 32, 48, 3)), 10.0)
  if kind == 'truncated':  # the index (moov) is at the end, and is cut off
    path.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
  elif kind == 'truncated_faststart':  # the index is first and lists frames that are gone
    subprocess.run([ffmpeg, '-y', '-loglevel', 'error', '-i', str(good), '-c', 'copy',
                    '-movflags', '+faststart', str(good.with_name('fs.mp4'))], check=True)
    data = good.with_name('fs.mp4').read_bytes()
    path.write_bytes(data[:len(data) // 2])
  elif kind == 'garbage':
    path.write_bytes(b'\x00\x00\x00\x18ftypmp42' + b'garbage' * 100)
  elif kind == 'empty':
    path.write_bytes(b'')
  elif kind == 'zero_frames':
    subprocess.run([ffmpeg, '-y', '-loglevel', 'error', '-f', 'lavfi', '-i',
                    'testsrc=size=32x24:rate=8', '-frames:v', '0', str(path)], check=True)
  elif kind == 'audio_only':
    subprocess.run([ffmpeg, '-y', '-loglevel', 'error', '-f', 'lavfi', '-i',
                    'anullsrc=r=8000:cl=mono', '-t', '0.2', '-c:a', 'aac', str(path)],
                   check=True)


@pytest.mark.parametrize('kind,message', [
    ('truncated', 'not a readable video'),
    ('truncated_faststart', 'truncated'),
    ('garbage', 'not a readable video'),
    ('empty', 'the file is empty'),
    ('zero_frames', 'no video stream'),
    ('audio_only', 'no video stream'),
])
def test_bad_videos_are_refused_by_name(tmp_path, kind, message):
  path = tmp_path / 'bad.mp4'
  _make_bad_video(kind, path)
  with pytest.raises(video_io.VideoError, match=message) as error:
    video_io.read_video(path)
  assert str(path) in str(error.value)


def test_a_bad_video_in_conversion_writes_and_replaces_nothing(sampler, tmp_path):
  source = tmp_path / 'in' / 'clip.mp4'
  source.parent.mkdir()
  _make_bad_video('truncated_faststart', source)
  out = tmp_path / 'out'
  out.mkdir()
  (out / 'clip_left.mp4').write_bytes(b'an earlier result')
  before, inputs = _snapshot(out), _snapshot(source.parent)
  with pytest.raises(video_conversion.ConversionError, match='clip.mp4: truncated'):
    video_conversion.convert_many(sampler, [source], out, show_progress=False)
  assert _snapshot(out) == before
  assert _snapshot(source.parent) == inputs


@pytest.mark.parametrize('name,frames', [
    ('one_frame', _noise((1, 16, 16, 3))),
    ('two_by_two', _noise((3, 2, 2, 3))),
    ('one_row', _noise((2, 1, 7, 3))),
    ('odd', _noise((5, 9, 13, 3))),
    ('gray', None),  # an H.264 file in the gray pixel format: read as RGB
])
def test_small_odd_and_gray_videos_convert(sampler, tmp_path, name, frames):
  path = tmp_path / f'{name}.mp4'
  if frames is None:
    subprocess.run([video_io.ffmpeg_path(), '-loglevel', 'error', '-f', 'lavfi', '-i',
                    'testsrc=size=20x12:rate=8', '-t', '0.5', '-pix_fmt', 'gray', '-c:v',
                    'libx264', str(path)], check=True)
    frames = video_io.read_video(path).frames
    assert frames.shape == (4, 12, 20, 3)
  else:
    video_io.write_video(path, frames, 8.0)
  written = video_conversion.convert_file(sampler, path, tmp_path / 'out')
  t, h, w, _ = frames.shape
  expected = {'left': (h, w), 'sbs': (h, 2 * w), 'half_sbs': (h, w), 'tb': (2 * h, w),
              'anaglyph': (h, w)}
  for layout, target in written.videos.items():
    assert video_io.read_video(target).frames.shape == (t, *expected[layout], 3), layout
  assert all(path.is_file() for path in written.report)
  assert not [p for p in (tmp_path / 'out').iterdir() if p.name.startswith('.')]


def test_a_frame_too_narrow_for_a_layout_is_refused_before_sampling(sampler, tmp_path,
                                                                      monkeypatch):
  path = tmp_path / 'narrow.mp4'
  video_io.write_video(path, _noise((3, 6, 1, 3)), 8.0)
  monkeypatch.setattr(sampler, 'convert', lambda *a, **k: pytest.fail('sampled'))
  with pytest.raises(video_conversion.ConversionError,
                     match=r'narrow.mp4: half side-by-side needs frames at least 2 px wide'):
    video_conversion.convert_many(sampler, [path], tmp_path / 'out', show_progress=False)
  assert not _snapshot(tmp_path / 'out')


def test_a_failed_input_leaves_no_empty_output_folder(sampler, tmp_path):
  path = tmp_path / 'empty.mp4'
  _make_bad_video('empty', path)
  with pytest.raises(video_conversion.ConversionError, match='empty.mp4: .*empty'):
    video_conversion.convert_many(sampler, [path], tmp_path / 'new' / 'out',
                                  show_progress=False)
  assert not (tmp_path / 'new' / 'out').exists()


@pytest.mark.parametrize('field,value,message', [
    ('window_overlap', -2, r'window_overlap=-2: must be -1 \(half a window\) or in \[0, 3\]'),
    ('window_overlap', 4, r'window_overlap=4: must be -1'),
    ('window_overlap', 100, r'window_overlap=100: must be -1'),
    ('model_fps', -5.0, r'model_fps=-5.0: must be >= 0'),
    ('crf', 100, r'crf=100: H.264 quality must be in \[0, 51\]'),
    ('anaglyph', 'purple', r"anaglyph='purple': choose from dubois, color, gray"),
])
def test_out_of_range_sample_settings_are_one_config_error(tiny_config, tiny_checkpoint,
                                                           tmp_path, field, value, message):
  source = tmp_path / 'clip.mp4'
  video_io.write_video(source, _noise((4, 8, 8, 3)), 8.0)
  config = tiny_config.copy_and_resolve_references()
  config.sample[field] = value
  with pytest.raises(ValueError, match=f'^sample.{message}') as error:
    sampler = video_conversion.load_sampler(config, str(tiny_checkpoint), '')
    video_conversion.convert_many(sampler, [source], tmp_path / 'out', show_progress=False)
  assert not isinstance(error.value, video_conversion.ConversionError)
  assert not (tmp_path / 'out').exists()


def test_outputs_that_would_overwrite_an_input_are_refused(sampler, tmp_path):
  for stem in ('a', 'a_left'):
    video_io.write_video(tmp_path / f'{stem}.mp4', _noise((2, 8, 8, 3)), 8.0)
  before = _snapshot(tmp_path)
  inputs = video_conversion.list_inputs(str(tmp_path))
  with pytest.raises(ValueError, match=r'a_left.mp4: the output of .*a.mp4 would overwrite'):
    video_conversion.convert_many(sampler, inputs, tmp_path, show_progress=False)
  assert _snapshot(tmp_path) == before


def test_views_of_different_shapes_are_refused():
  with pytest.raises(ValueError, match=r'differ in shape: \(2, 8, 8, 3\) and \(3, 8, 8, 3\)'):
    stereo_formats.render('sbs', _noise((2, 8, 8, 3)), _noise((3, 8, 8, 3)))


# --- Stereo4D inputs -------------------------------------------------------------------------

def _rectified_manual_dir(tmp_path, left=(8, 32, 32), right=(8, 32, 32)):
  """The release's tree for one npz of 8 timestamps (30 s into its source) and its rectified
  pair of (frames, height, width) per eye; the release writes one frame per timestamp."""
  manual = tmp_path / 'manual'
  (manual / 'npz').mkdir(parents=True)
  for eye, (count, height, width) in (('left', left), ('right', right)):
    video_io.write_video(manual / 'processed' / 'pair_0' / f'pair_0-{eye}_rectified.mp4',
                         _noise((count, height, width, 3)), 30.0)
  npz = manual / 'npz' / 'pair_0.npz'
  np.savez(npz, name='pair_0', video_id='pair',
           timestamps=30_000_000 + np.round(np.arange(8) * 1e6 / 16).astype(np.int64))
  return manual, npz


_RECTIFIED = stereo4d.Stereo4DConfig(name='test', source='rectified', size=16, clip_frames=4)


@pytest.mark.parametrize('left, right, reason, named', [
    ((8, 32, 32), (6, 32, 32), 'pair_shorter_than_timestamps',
     'pair_0-right_rectified.mp4 has 6 frames for the 8 timestamps of pair_0.npz'),
    ((9, 32, 32), (9, 32, 32), 'pair_longer_than_timestamps',
     'pair_0-left_rectified.mp4 has 9 frames for the 8 timestamps'),
    ((8, 32, 32), (8, 24, 32), 'mismatched_pair', 'pair_0-right_rectified.mp4 is 32x24'),
])
def test_a_rectified_pair_that_does_not_match_its_npz_or_itself_is_skipped_and_named(
    tmp_path, left, right, reason, named):
  manual, npz = _rectified_manual_dir(tmp_path, left, right)
  result = stereo4d.process_npz(_RECTIFIED, manual, npz)
  assert result['clips'] == [] and result['skipped'] == {reason: 1}
  assert named in result['detail']
  manual, npz = _rectified_manual_dir(tmp_path / 'good')
  assert len(stereo4d.process_npz(_RECTIFIED, manual, npz)['clips']) == 2


@pytest.mark.parametrize('source,damage,reason,named', [
    ('rectified', 'timestamps', 'npz_missing_fields', 'no timestamps'),
    ('vr180', 'video_id', 'npz_missing_fields', 'no video_id, rectified2rig, fov_bounds'),
    ('rectified', 'truncate', 'unreadable_npz', 'pair_0.npz'),
])
def test_npz_files_with_missing_or_damaged_fields_are_skipped_and_named(
    tmp_path, source, damage, reason, named):
  manual, npz = _rectified_manual_dir(tmp_path)
  if damage == 'truncate':
    npz.write_bytes(npz.read_bytes()[:60])
  else:
    fields = dict(np.load(npz))
    del fields[damage]
    np.savez(npz, **fields)
  config = stereo4d.Stereo4DConfig(name='test', source=source, size=16, clip_frames=4)
  result = stereo4d.process_npz(config, manual, npz)
  assert result['skipped'] == {reason: 1}
  assert str(npz) in result['detail'] and named in result['detail']


# --- contradictory and unknown config values ------------------------------------------------

@pytest.mark.parametrize('field,value,message', [
    ('num_frames', 8, r'data.num_frames=8 is more than the 4 frames of the clips of dataset '
                      r'synthetic_stereo/tiny'),
    ('resolution', 32, r'data.resolution=32: a crop of that size does not fit the 16x16 '
                       r'clips of dataset synthetic_stereo/tiny'),
    ('view', 'zoom', r"data.view must be 'downsample' or 'crop', got 'zoom'"),
])
def test_config_values_the_dataset_cannot_give_stop_before_training(tiny_config, tiny_dataset,
                                                                    tmp_path, field, value,
                                                                    message):
  config = tiny_config.copy_and_resolve_references()
  config.data.view = 'crop' if field == 'resolution' else config.data.view
  config.data[field] = value
  with pytest.raises(ValueError, match=message):
    loop.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not _snapshot(tmp_path)  # no checkpoint, no log


def test_a_batch_that_does_not_split_over_the_devices_is_refused(tiny_dataset, tmp_path):
  code, output = _run_cli('eye2eye_jax.train', [
      f'--config={REPO / "configs" / "tiny.py"}', f'--workdir={tmp_path / "run"}',
      '--config.data.batch_size=3', f'--config.data.data_dir={tiny_dataset}'],
      tmp_path / 'log.txt', XLA_FLAGS='--xla_force_host_platform_device_count=2')
  assert code == 1, output[-3000:]
  assert "error: data.batch_size=3 does not split over the 2 ways" in output
  assert 'Traceback' not in output and not (tmp_path / 'run').exists()


@pytest.mark.parametrize('module,args', [
    ('eye2eye_jax.train', ['--workdir=WORK']),
    ('eye2eye_jax.evaluate', ['--output_dir=WORK']),
    ('eye2eye_jax.build_data', []),
])
def test_unknown_config_keys_are_refused_by_every_command(tmp_path, module, args):
  args = [a.replace('WORK', str(tmp_path / 'work')) for a in args]
  code, output = _run_cli(module, [f'--config={REPO / "configs" / "tiny.py"}',
                                   '--config.data.no_such_key=3', *args], tmp_path / 'log.txt')
  assert code != 0 and 'no_such_key' in output, output[-3000:]
  assert not (tmp_path / 'work').exists()


# --- unwritable outputs and full disks -------------------------------------------------------

def test_unwritable_output_directories_are_clear_errors(sampler, tiny_config, tmp_path):
  blocker = tmp_path / 'a_file'
  blocker.write_text('not a directory')
  source = tmp_path / 'clip.mp4'
  video_io.write_video(source, _noise((2, 8, 8, 3)), 8.0)
  with pytest.raises(OSError, match='a_file/out'):  # before anything is converted
    video_conversion.convert_many(sampler, [source], blocker / 'out', show_progress=False)
  with pytest.raises(OSError):  # before any clip is evaluated
    checkpoint_report.evaluate_checkpoint(tiny_config, blocker / 'report')
  with pytest.raises(OSError):
    loop.train_and_evaluate(tiny_config, str(blocker / 'run'))
  assert blocker.read_text() == 'not a directory'
  assert sorted(p.name for p in tmp_path.iterdir()) == ['a_file', 'clip.mp4']
  # A directory that exists but takes no files (even for root): found before sampling.
  with pytest.raises(OSError, match='/proc/self: cannot write to the output directory'):
    video_conversion.convert_many(_RefusingSampler(sampler), [source], '/proc/self',
                                  show_progress=False)
  with pytest.raises(NotADirectoryError, match='a_file: the output directory is a file'):
    video_conversion.convert_many(_RefusingSampler(sampler), [source], blocker,
                                  show_progress=False)


class _RefusingSampler:
  """A sampler whose conversions fail the test: checks must come before any sampling."""

  def __init__(self, sampler):
    self.sample_config = sampler.sample_config
    self.base, self.refiner = sampler.base, sampler.refiner

  def convert(self, *args, **kwargs):
    raise AssertionError('sampled before the output directory was checked')


def _write_npz(path, values):
  with atomic_files.atomic_path(path) as temporary:
    np.savez_compressed(temporary, values=values)


@pytest.mark.parametrize('name,write', [
    ('video.mp4', lambda p: video_io.write_video(p, _noise((4, 16, 16, 3)), 8.0)),
    ('metrics.json', lambda p: atomic_files.write_text(p, '{"psnr": 30}' * 1000)),
    ('clips.npz', lambda p: _write_npz(p, np.arange(10000))),
])
def test_a_full_disk_keeps_the_previous_file_and_leaves_no_temporary(disk_full, tmp_path,
                                                                       name, write):
  target = tmp_path / name
  target.write_bytes(b'the previous version')
  disk_full(tmp_path)
  with pytest.raises((OSError, video_io.VideoError), match='No space left on device'):
    write(target)
  assert _snapshot(tmp_path) == {pathlib.Path(name): b'the previous version'}


def test_a_full_disk_during_conversion_replaces_none_of_the_outputs(sampler, disk_full,
                                                                    tmp_path):
  source = tmp_path / 'clip.mp4'
  video_io.write_video(source, _noise((3, 16, 16, 3)), 8.0)
  out = tmp_path / 'out'
  first = video_conversion.convert_file(sampler, source, out)
  before = _snapshot(out)
  assert len(before) == 7  # five layouts, the comfort report and its plot
  disk_full(out)
  with pytest.raises(video_conversion.ConversionError, match='No space left on device'):
    video_conversion.convert_many(sampler, [source], out, show_progress=False)
  assert _snapshot(out) == before
  assert set(first.videos.values()) | set(first.report) == {out / p for p in before}


def test_a_failed_export_keeps_the_previous_export(tiny_checkpoint, tmp_path, monkeypatch):
  config, params = checkpoints.load_for_inference(str(tiny_checkpoint))
  export = tmp_path / 'export'
  checkpoints.save_inference(str(export), params, config)
  before = _snapshot(export)
  real_save = checkpoints._save_inference_at

  def save_then_fail(directory, *args, **kwargs):
    real_save(directory, *args, **kwargs)
    raise OSError(errno.ENOSPC, 'No space left on device')

  monkeypatch.setattr(checkpoints, '_save_inference_at', save_then_fail)
  doubled = jax.tree.map(lambda p: p * 2, params)
  with pytest.raises(OSError, match='No space left'):
    checkpoints.save_inference(str(export), doubled, config)
  assert _snapshot(export) == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ['export']
  monkeypatch.undo()
  checkpoints.save_inference(str(export), doubled, config)  # a successful one replaces it
  _, reloaded = checkpoints.load_for_inference(str(export))
  for a, b in zip(jax.tree.leaves(reloaded), jax.tree.leaves(doubled)):
    np.testing.assert_array_equal(a, b)
  assert sorted(p.name for p in tmp_path.iterdir()) == ['export']


# --- faults during training -----------------------------------------------------------------

def _short_run(tiny_config, num_steps):
  config = tiny_config.copy_and_resolve_references()
  config.train.num_steps, config.train.sample_every = num_steps, 0
  config.train.checkpoint_every, config.train.log_every = 5, 5
  return config


def _steps(workdir: pathlib.Path) -> list[int]:
  return sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())


@pytest.mark.parametrize('bad', [np.nan, np.inf])
def test_a_nan_or_inf_loss_stops_training_and_keeps_the_last_good_checkpoint(
    tiny_config, tiny_dataset, tmp_path, monkeypatch, bad):
  real_make_train_step = train_state.make_train_step

  def make_poisoned_step(*args):  # from step 7 on, the weights and the loss go bad
    step_fn = real_make_train_step(*args)

    def step(state, batch):
      state, metrics = step_fn(state, batch)
      poison = jnp.where(state['step'] >= 7, bad, 1.0)
      state = {**state, 'params': jax.tree.map(lambda p: p * poison, state['params'])}
      return state, {**metrics, 'loss': metrics['loss'] * poison}
    return jax.jit(step, donate_argnums=0)

  monkeypatch.setattr(train_state, 'make_train_step', make_poisoned_step)
  with pytest.raises(FloatingPointError, match=rf'the loss is {bad} at step 7; stopped there, '
                                               r'and the last good checkpoint \(step 5\)'):
    loop.train_and_evaluate(_short_run(tiny_config, 20), str(tmp_path))
  assert _steps(tmp_path) == [5]
  _, params = checkpoints.load_for_inference(str(tmp_path), use_ema=False)
  assert all(np.isfinite(p).all() for p in jax.tree.leaves(params))


def test_a_checkpoint_directory_deleted_mid_run_is_recreated(tiny_config, tiny_dataset,
                                                             tmp_path, caplog):
  checkpoint_dir = tmp_path / 'checkpoints'

  def delete_at_step_10(step, scalars):
    if step == 10:  # once the step-5 save is complete (it is asynchronous)
      deadline = time.time() + 120
      while not (checkpoint_dir / '5' / 'state').is_dir() or [
          p for p in checkpoint_dir.iterdir() if 'tmp' in p.name]:
        assert time.time() < deadline
        time.sleep(0.05)
      shutil.rmtree(checkpoint_dir)

  state = loop.train_and_evaluate(_short_run(tiny_config, 15), str(tmp_path),
                                  on_metrics=delete_at_step_10)
  assert int(state['step']) == 15
  assert _steps(tmp_path) == [10, 15]
  assert 'checkpoint directory' in caplog.text and 'was deleted' in caplog.text
  config, params = checkpoints.load_for_inference(str(tmp_path), use_ema=False)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(state['params'])):
    np.testing.assert_array_equal(a, b)


# --- interrupting the sample command ---------------------------------------------------------

@pytest.mark.parametrize('phase', ['sampling', 'writing'])
def test_sigint_during_sampling_leaves_no_partial_outputs(tiny_checkpoint, tmp_path, phase):
  source = tmp_path / 'in' / 'big.mp4'
  source.parent.mkdir()
  video_io.write_video(source, _noise((48, 144, 192, 3)), 12.0)
  out = tmp_path / 'out'
  out.mkdir()
  (out / 'big_left.mp4').write_bytes(b'an earlier result')
  log = tmp_path / 'log.txt'
  with open(log, 'w') as output:
    process = subprocess.Popen(
        [sys.executable, '-m', 'eye2eye_jax.sample', f'--config={REPO / "configs" / "tiny.py"}',
         f'--input={source}', f'--output_dir={out}', f'--checkpoint={tiny_checkpoint}'],
        stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        # A shell's background job inherits SIGINT ignored, and Python then never raises
        # KeyboardInterrupt; a terminal's Ctrl-C reaches a process whose SIGINT is default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  try:
    deadline = time.time() + 300
    started = lambda: ('  big.mp4' in log.read_text() if phase == 'sampling' else
                       any('.partial.' in p.name for p in out.iterdir()))
    while not started():
      assert process.poll() is None, f'finished before the {phase}: {log.read_text()[-2000:]}'
      assert time.time() < deadline
      time.sleep(0.01)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    code = process.wait(timeout=120)
  finally:
    if process.poll() is None:
      os.killpg(process.pid, signal.SIGKILL)
      process.wait()
  assert code != 0, log.read_text()[-2000:]
  assert _snapshot(out) == {pathlib.Path('big_left.mp4'): b'an earlier result'}


# --- determinism -----------------------------------------------------------------------------

def test_the_same_seed_gives_bit_identical_samples(tiny_config, tiny_checkpoint, tmp_path):
  video = _noise((6, 12, 20, 3))
  first = video_conversion.load_sampler(tiny_config, str(tiny_checkpoint), '')
  second = video_conversion.load_sampler(tiny_config, str(tiny_checkpoint), '')
  a, b = first.convert(video, fps=8.0, seed=3), second.convert(video, fps=8.0, seed=3)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, first.convert(video, fps=8.0, seed=4))
  source = tmp_path / 'clip.mp4'
  video_io.write_video(source, video, 8.0)
  written = [video_conversion.convert_file(sampler, source, tmp_path / name)
             for sampler, name in ((first, 'one'), (second, 'two'))]
  for layout in written[0].videos:
    assert (written[0].videos[layout].read_bytes()
            == written[1].videos[layout].read_bytes()), layout
  assert written[0].report[0].read_bytes() == written[1].report[0].read_bytes()


def test_the_same_seed_and_config_train_bit_identical_weights(tiny_config, tiny_dataset,
                                                             tmp_path):
  config = _short_run(tiny_config, 3)
  states = [jax.device_get(loop.train_and_evaluate(config, str(tmp_path / name)))
            for name in ('one', 'two')]
  leaves = [jax.tree.leaves(s['params']) + jax.tree.leaves(s['opt_state']) for s in states]
  for a, b in zip(*leaves):
    np.testing.assert_array_equal(a, b)
  initial = jax.tree.leaves(train_state.init_train_state(config)['params'])
  assert any(not np.array_equal(a, b) for a, b in zip(leaves[0], initial))  # it trained
