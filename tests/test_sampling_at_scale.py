"""Sampling on every device and on many hosts: the same videos, each output written once.

Meshes of 8 simulated CPU devices run in a subprocess (the device count is fixed when JAX
starts); two ``sample`` processes on localhost convert a folder together.
"""

import collections
import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, free_port, load_config, on_8_devices, subprocess_env
from eye2eye_jax.data import video_io
from eye2eye_jax.evaluation import view_metrics
from eye2eye_jax.models import checkpoints
from eye2eye_jax.sampling import stereo_sampler, video_conversion, window_blending


def test_meshes_of_8_devices_give_the_single_device_videos():
  result = on_8_devices(worker='sampling_mesh_worker.py')
  assert result['devices'] == 8
  assert result['meshes'] == {'windows over 8': {'windows': 8, 'rows': 1},
                              'windows 2 x rows 4': {'windows': 2, 'rows': 4},
                              'tiles over 8': {'windows': 8, 'rows': 1}}
  # Windows and tiles spread over devices: bit-identical frames (measured: 0 levels).
  assert result['max_abs_diff']['windows over 8'] == 0
  assert result['max_abs_diff']['tiles over 8'] == 0
  # Rows split over devices change float rounding (the compiler's halo exchange and the
  # norms' partial sums): at most 1 level of 255 on any pixel (measured: 0 at 2 + 1 steps, 1 on 0.001% at 6 + 4).
  assert result['max_abs_diff']['windows 2 x rows 4'] <= 1
  assert result['mean_abs_diff']['windows 2 x rows 4'] < 1e-3
  # A Wan model's latent windows spread over devices, and its tokens split by rows.
  assert result['wan_max_abs_diff'] == {'windows over 8': 0, 'windows 4 x rows 2': 0}
  # A window's rows over 8 devices: each holds a fraction of its activations.
  assert result['temp_bytes_rows_over_8'] < 0.3 * result['temp_bytes_one_device']


def test_each_input_goes_to_exactly_one_process_largest_first(tmp_path):
  sizes = [50, 10, 40, 30, 20, 5, 45]
  inputs = []
  for i, size in enumerate(sizes):
    inputs.append(tmp_path / f'v{i}.mp4')
    inputs[-1].write_bytes(b'x' * size)
  inputs.append(tmp_path / 'missing.mp4')  # still assigned: its owner reports the error
  for count in (1, 2, 3, 5):
    shares = [video_conversion.process_share(inputs, i, count) for i in range(count)]
    assert sorted(p for share in shares for p in share) == sorted(inputs)
    for share in shares:
      assert share == [p for p in inputs if p in share]  # each keeps the list's order
  halves = [video_conversion.process_share(inputs, i, 2) for i in range(2)]
  loads = [sum(p.stat().st_size for p in share if p.exists()) for share in halves]
  assert abs(loads[0] - loads[1]) <= 10, loads  # 100 vs 100 bytes
  with pytest.raises(ValueError, match='process 2 of 2'):
    video_conversion.process_share(inputs, 2, 2)


def _as_two_processes(command: list[str]) -> list[str]:
  """Runs ``command`` as processes 0 and 1 of one run on localhost; their outputs."""
  port = free_port()
  workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=subprocess_env(
                                  JAX_COORDINATOR_ADDRESS=f'localhost:{port}',
                                  JAX_NUM_PROCESSES='2', JAX_PROCESS_ID=str(i)))
             for i in range(2)]
  logs = [w.communicate(timeout=600)[0] for w in workers]
  assert all(w.returncode == 0 for w in workers), logs[0][-2000:] + logs[1][-2000:]
  return logs


def test_two_processes_convert_a_folder_together(tiny_checkpoint, tmp_path):
  videos = tmp_path / 'videos'
  videos.mkdir()
  rng = np.random.default_rng(0)
  for i, frames in enumerate((4, 6, 8, 5, 7)):
    video_io.write_video(videos / f'clip{i}.mp4',
                         rng.integers(0, 255, (frames, 16, 16, 3), np.uint8), 8.0)
  out = tmp_path / 'out'
  command = [sys.executable, '-m', 'eye2eye_jax.sample', f'--config={REPO}/configs/tiny.py',
             f'--checkpoint={tiny_checkpoint}', f'--input={videos}', f'--output_dir={out}',
             '--config.sample.outputs=("left","sbs")']
  logs = _as_two_processes(command)
  converted = [re.findall(r'converted: (\S+)', log) for log in logs]
  assert [f'process {i} of 2' in log for i, log in enumerate(logs)] == [True, True]
  assert all(converted), logs  # both processes took a share
  names = [pathlib.Path(p).name for share in converted for p in share]
  assert sorted(names) == [f'clip{i}.mp4' for i in range(5)]  # each by exactly one process
  written = collections.Counter(p.name for p in out.iterdir())
  assert written == {f'clip{i}_{suffix}': 1 for i in range(5)
                     for suffix in ('left.mp4', 'LRF_Full_SBS.mp4', 'stereo.json', 'stereo.png')}


def test_two_processes_evaluate_together_as_one_would(tiny_config, tiny_dataset,
                                                     tiny_checkpoint, tmp_path):
  """Each samples half of the clips; process 0 scores all of them, as one process does."""
  from eye2eye_jax.evaluation import checkpoint_report
  alone = checkpoint_report.evaluate_checkpoint(tiny_config, tmp_path / 'alone',
                                                checkpoint=str(tiny_checkpoint),
                                                refiner_checkpoint='', num_clips=3,
                                                baselines=False)
  command = [sys.executable, '-m', 'eye2eye_jax.evaluate', f'--config={REPO}/configs/tiny.py',
             f'--checkpoint={tiny_checkpoint}', '--refiner_checkpoint=', '--num_clips=3',
             '--nobaselines', f'--output_dir={tmp_path / "together"}',
             f'--config.data.data_dir={tiny_dataset}']
  logs = _as_two_processes(command)
  assert 'process 1: sampled its share' in logs[1] and 'Report:' in logs[0]
  together = json.loads((tmp_path / 'together' / 'metrics.json').read_text())
  assert together['num_clips'] == 3
  assert together['image'] == alone['image'] and together['geometry'] == alone['geometry']
  assert sorted(p.name for p in (tmp_path / 'together').iterdir()) == [
      'metrics.json', 'plots', 'report.md']  # the shared views are cleaned up


@pytest.fixture(scope='module')
def stage(tiny_checkpoint):
  return stereo_sampler.Stage(*checkpoints.load_for_inference(str(tiny_checkpoint)))


def test_bfloat16_sampling_is_a_switch_close_to_float32(tiny_checkpoint):
  config = load_config('tiny')
  video = np.random.default_rng(2).integers(0, 255, (6, 16, 16, 3), np.uint8)
  outputs = {}
  for dtype in ('', 'bfloat16'):
    config.sample.dtype = dtype
    sampler = video_conversion.load_sampler(config, str(tiny_checkpoint))
    assert sampler.base.config.model.dtype == (dtype or 'float32')
    outputs[dtype] = sampler.convert(video, seed=0)
  assert not np.array_equal(outputs[''], outputs['bfloat16'])
  assert view_metrics.psnr(outputs['bfloat16'], outputs['']) > 30
  config.sample.dtype = 'float16'
  with pytest.raises(ValueError, match='sample.dtype'):
    video_conversion.load_sampler(config, str(tiny_checkpoint))


@pytest.mark.parametrize('shape', [(3, 1), (-1, -1), (0, 1), (1,)])
def test_impossible_sampling_meshes_are_clear_errors(stage, shape):
  sample_config = load_config('tiny').sample
  sample_config.mesh_shape = shape
  with pytest.raises(ValueError, match=r'sample\.mesh_shape'):
    stereo_sampler.StereoSampler(stage, None, sample_config)


def test_one_device_is_no_mesh():
  sample_config = load_config('tiny').sample
  assert window_blending.sampling_mesh(sample_config) is None  # this process has 1 device
