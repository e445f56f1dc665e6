"""Runs in a subprocess with 8 simulated CPU devices; prints one JSON line of results.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/sampling_mesh_worker.py

Converts one synthetic clip with the bundled demo models on one device and on sampling
meshes of the 8 devices (windows spread over devices, each window's rows split, tiles
spread), and the tiny Wan stereo model's latent-space sampling likewise; reports how far
each result is from the single-device one, and the refiner's
temporaries per device with a window's rows split over the 8 devices and on one.
"""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from eye2eye_jax import config_base  # noqa: E402
from eye2eye_jax.common import runtime  # noqa: E402
from eye2eye_jax.data import synthetic_scenes  # noqa: E402
from eye2eye_jax.sampling import stereo_sampler, video_conversion, window_blending  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
# name: (sample.mesh_shape, sample.refiner_tile); each is compared with (1, 1) and its tile
SETTINGS = {'windows over 8': ((-1, 1), 0), 'windows 2 x rows 4': ((2, 4), 0),
            'tiles over 8': ((8, 1), 32)}


def convert(video: np.ndarray, mesh_shape, tile: int) -> tuple[np.ndarray, dict | None]:
  config = config_base.load_config_file(REPO / 'configs' / 'demo.py')
  config.sample.update(mesh_shape=mesh_shape, base_num_steps=2, refiner_num_steps=1,
                       window_batch=1, refiner_tile=tile, refiner_tile_overlap=16)
  sampler = video_conversion.load_sampler(config)
  mesh = None if sampler.mesh is None else dict(sampler.mesh.shape)
  return sampler.convert(video, seed=0).astype(np.int16), mesh


def convert_with_wan(video: np.ndarray, mesh_shape) -> np.ndarray:
  """The tiny Wan stereo model (random weights) through the latent-space sampler."""
  from eye2eye_jax.models import networks
  config = config_base.load_config_file(REPO / 'configs' / 'wan_stereo_tiny.py')
  config.sample.update(mesh_shape=mesh_shape, window_batch=1, base_num_steps=2)
  stage = stereo_sampler.Stage(config, networks.init_params(config, 0))
  return stereo_sampler.StereoSampler(stage, None, config.sample).convert(
      video, seed=0).astype(np.int16)


def refiner_temp_bytes(mesh_shape) -> int:
  """Per-device temporaries of the demo refiner's stage on a 128x128, 8-frame video."""
  config = config_base.load_config_file(REPO / 'configs' / 'demo.py')
  config.sample.update(mesh_shape=mesh_shape, window_batch=1)
  sampler = video_conversion.load_sampler(config)
  stage = sampler.refiner
  condition = jnp.zeros((8, 128, 128, 3))
  params, condition, x, rng = sampler._on_mesh(
      (stage.params, condition, condition[None], jax.random.PRNGKey(0)))
  lowered = stereo_sampler.run_stage.lower(
      params, condition, x, rng, None, None, config=stage.config,
      starts=window_blending.stage_windows(8, stage.num_frames, -1), num_steps=2, eta=0.0,
      guidance_scale=0.0, window_batch=1, t_start=1.0, text_guidance_scale=0.0,
      mesh=sampler.mesh)
  return int(lowered.compile().memory_analysis().temp_size_in_bytes)


def main():
  runtime.enable_compilation_cache()
  clip = synthetic_scenes.SceneGenerator(synthetic_scenes.SceneParams(
      num_frames=12, height=64, width=64, max_disparity=8.0)).generate(7)
  video = np.asarray(clip.right)
  references = {tile: convert(video, (1, 1), tile)[0] for tile in {0, 32}}
  result = {'devices': jax.device_count(), 'meshes': {}, 'max_abs_diff': {},
            'mean_abs_diff': {}}
  for name, (shape, tile) in SETTINGS.items():
    output, result['meshes'][name] = convert(video, shape, tile)
    diff = np.abs(output - references[tile])
    result['max_abs_diff'][name] = int(diff.max())
    result['mean_abs_diff'][name] = float(diff.mean())
  wan_video = video[:9, :16, :32]
  wan_reference = convert_with_wan(wan_video, (1, 1))
  result['wan_max_abs_diff'] = {
      name: int(np.abs(convert_with_wan(wan_video, shape) - wan_reference).max())
      for name, shape in (('windows over 8', (-1, 1)), ('windows 4 x rows 2', (4, 2)))}
  result['temp_bytes_one_device'] = refiner_temp_bytes((1, 1))
  result['temp_bytes_rows_over_8'] = refiner_temp_bytes((1, 8))
  print('RESULT ' + json.dumps(result))


if __name__ == '__main__':
  main()
