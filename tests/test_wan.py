"""Wan 2.1 in Flax against the reference: parity on a tiny release made and run by diffusers
and transformers (tests/fixtures/make_wan_fixtures.py), the import's checks, the command."""

import json
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from eye2eye_jax.models import (checkpoints, wan_import, wan_runner, wan_transformer, wan_vae,
                                wan_weights)

RELEASE = pathlib.Path(__file__).resolve().parent / 'fixtures' / 'wan_release'
REPO = RELEASE.parent.parent.parent


@pytest.fixture(scope='module')
def reference():
  return dict(np.load(RELEASE / 'reference_outputs.npz'))


@pytest.fixture(scope='module')
def imported(tmp_path_factory):
  """The tiny release imported once, as ``ckpt import`` imports it."""
  output = tmp_path_factory.mktemp('wan') / 'checkpoint'
  report = wan_import.import_release(str(RELEASE), str(output), progress=None,
                                     empty_caption=np.load(RELEASE / 'empty_caption.npy'))
  return output, report


@pytest.fixture(scope='module')
def wan(imported):
  return wan_runner.ImportedWan.load(str(imported[0]))


def _run_transformer(wan, reference, params=None):
  latents = reference['transformer_latents'].transpose(0, 2, 3, 4, 1)
  out = wan._forward(wan.params['transformer'] if params is None else params, latents,
                     reference['transformer_timesteps'].astype(np.float32),
                     reference['transformer_text'])
  return np.asarray(out).transpose(0, 4, 1, 2, 3)


def test_transformer_matches_diffusers(wan, reference):
  out = wan.transformer(reference['transformer_latents'], reference['transformer_timesteps'],
                        reference['transformer_text'])
  assert out.shape == reference['transformer_output'].shape
  np.testing.assert_allclose(out, reference['transformer_output'], atol=2e-5, rtol=0)


def test_transformer_in_bfloat16_stays_close(imported, reference):
  """bf16 compute (float32 norms, modulation and rotary tables, as the reference keeps them):
  within 5% of the output's scale."""
  half = wan_runner.ImportedWan.load(str(imported[0]), dtype='bfloat16')
  out = half.transformer(reference['transformer_latents'],
                         reference['transformer_timesteps'], reference['transformer_text'])
  expected = reference['transformer_output']
  assert np.abs(out - expected).max() < 0.05 * np.abs(expected).max()


def test_vae_matches_diffusers(wan, reference):
  mean, log_variance = wan.encode(reference['vae_video'])
  np.testing.assert_allclose(mean, reference['vae_mean'], atol=1e-4, rtol=0)
  np.testing.assert_allclose(log_variance, reference['vae_logvar'], atol=1e-4, rtol=0)
  video = wan.decode(reference['vae_mean'])
  assert video.shape == reference['vae_video'].shape
  np.testing.assert_allclose(video, reference['vae_decoded'], atol=1e-4, rtol=0)


def test_chunked_encode_and_decode_equal_whole_video(wan, reference):
  """Equal up to float rounding (XLA sums a convolution in another order per shape)."""
  whole_mean, _ = wan.encode(reference['vae_video'])
  chunked_mean, _ = wan.encode(reference['vae_video'], chunk_frames=4)  # frames 1+4, then 4
  np.testing.assert_allclose(chunked_mean, whole_mean, atol=5e-5, rtol=0)
  whole = wan.decode(whole_mean)
  chunked = wan.decode(whole_mean, chunk_frames=1)  # one latent frame at a time
  np.testing.assert_allclose(chunked, whole, atol=5e-5, rtol=0)


def test_vae_refuses_a_chunk_the_causal_stream_cannot_take(wan, reference):
  with pytest.raises(ValueError, match='1 \\+ 4k frames'):
    wan.encode(reference['vae_video'][:, :, :4])


def test_latent_normalisation_uses_the_released_statistics(wan):
  vae = wan_runner._merged(lambda: wan_vae.create(wan.vae_shape), wan.params['vae'])
  config = json.loads((RELEASE / 'vae' / 'config.json').read_text())
  raw = np.array(config['latents_mean']) + 2 * np.array(config['latents_std'])
  np.testing.assert_allclose(vae.normalize(raw), 2.0, atol=1e-6)
  np.testing.assert_allclose(vae.denormalize(vae.normalize(raw)), raw, atol=1e-6)


def test_every_imported_tensor_moves_the_output_and_a_transposed_one_breaks_parity(
    wan, reference):
  """A tensor dropped, misnamed or transposed on import would change the output: each one
  perturbed moves it, and each square one transposed takes it out of parity."""
  params = jax.tree.map(np.asarray, wan.params['transformer'])
  baseline = _run_transformer(wan, reference, params)
  for mapping in wan_weights.transformer_plan(wan.shape):
    for change in ('perturb', 'transpose'):
      leaf = params
      for key in mapping.target[:-1]:
        leaf = leaf[key]
      original = leaf[mapping.target[-1]]
      value = original.copy()
      row = value if mapping.layer is None else value[mapping.layer]
      if change == 'perturb':
        row += 0.5 * np.random.default_rng(0).standard_normal(row.shape).astype(row.dtype)
      elif row.ndim == 2 and row.shape[0] == row.shape[1]:
        row[...] = row.T.copy()
      else:
        continue
      leaf[mapping.target[-1]] = value
      moved = np.abs(_run_transformer(wan, reference, params) - baseline).max()
      leaf[mapping.target[-1]] = original
      assert moved > 1e-3, f'{change} {mapping.source}: the output moved only {moved:.2e}'


def _copy_release(tmp_path) -> pathlib.Path:
  copy = tmp_path / 'release'
  shutil.copytree(RELEASE, copy)
  return copy


def _rewrite_shard(release: pathlib.Path, edit) -> None:
  """Loads the transformer's first shard, applies ``edit`` to its tensors, writes it back
  and updates the index to match."""
  folder = release / 'transformer'
  index_path = folder / 'diffusion_pytorch_model.safetensors.index.json'
  index = json.loads(index_path.read_text())
  shard = folder / 'diffusion_pytorch_model-00001-of-00003.safetensors'
  tensors = load_file(shard)
  edit(tensors)
  save_file(tensors, shard)
  index['weight_map'] = {k: v for k, v in index['weight_map'].items() if v != shard.name}
  index['weight_map'].update({k: shard.name for k in tensors})
  index_path.write_text(json.dumps(index))


def _first_tensor(release: pathlib.Path) -> str:
  shard = release / 'transformer' / 'diffusion_pytorch_model-00001-of-00003.safetensors'
  return sorted(load_file(shard))[0]


def _missing(release):
  name = _first_tensor(release)
  _rewrite_shard(release, lambda t: t.pop(name))
  return f'missing tensor {name}'


def _unexpected(release):
  _rewrite_shard(release, lambda t: t.update({'blocks.0.attn3.weight': np.zeros(3, np.float32)}))
  return 'unexpected tensor blocks.0.attn3.weight'


def _wrong_shape(release):
  name = _first_tensor(release)
  _rewrite_shard(release, lambda t: t.update({name: np.zeros((7,) + t[name].shape, np.float32)}))
  return f'tensor {name} has shape'


def _unknown_architecture(release):
  path = release / 'transformer' / 'config.json'
  config = json.loads(path.read_text())
  config['_class_name'] = 'HunyuanVideoTransformer3DModel'
  path.write_text(json.dumps(config))
  return "_class_name is 'HunyuanVideoTransformer3DModel'"


def _truncated(release):
  shard = release / 'transformer' / 'diffusion_pytorch_model-00002-of-00003.safetensors'
  data = shard.read_bytes()
  shard.write_bytes(data[:len(data) // 2])
  return 'not a readable safetensors file'


@pytest.mark.parametrize('damage', [_missing, _unexpected, _wrong_shape, _unknown_architecture,
                                    _truncated])
def test_a_bad_release_is_one_error_naming_the_file_and_nothing_is_written(tmp_path, damage):
  release = _copy_release(tmp_path)
  expected = damage(release)
  output = tmp_path / 'out'
  with pytest.raises(ValueError, match='transformer') as error:
    wan_import.import_release(str(release), str(output), progress=None,
                              empty_caption=np.load(RELEASE / 'empty_caption.npy'))
  assert expected in str(error.value)
  assert str(release) in str(error.value)
  assert sorted(p.name for p in tmp_path.iterdir()) == ['release']


def test_import_then_info_as_a_user_runs_them(tmp_path):
  output = tmp_path / 'wan'
  command = [sys.executable, '-m', 'eye2eye_jax.ckpt']
  done = subprocess.run(command + ['import', str(RELEASE), str(output),
                                   f'--empty_caption={RELEASE / "empty_caption.npy"}'],
                        capture_output=True, text=True, cwd=REPO, check=True)
  assert '263 tensors mapped' in done.stdout
  report = json.loads((output / 'import_report.json').read_text())
  assert {row['tensor'] for row in report['tensors']} >= {'blocks.1.ffn.net.2.weight',
                                                          'decoder.conv_out.weight'}
  info = subprocess.run(command + ['info', str(output)], capture_output=True, text=True,
                        cwd=REPO, check=True).stdout
  assert 'Wan 2.1 transformer, 2 blocks of width 24' in info
  assert f'{report["parameters"]["transformer"]:,}' in info

  again = subprocess.run(command + ['import', str(RELEASE / 'vae'), str(tmp_path / 'other'),
                                    f'--empty_caption={RELEASE / "empty_caption.npy"}'],
                         capture_output=True, text=True, cwd=REPO)
  assert again.returncode != 0
  errors = [line for line in again.stderr.splitlines() if line.startswith('error:')]
  assert errors == [f'error: {RELEASE / "vae" / "transformer" / "config.json"}: not found']
  assert not (tmp_path / 'other').exists()


def test_the_import_report_and_config_describe_the_release(imported):
  output, report = imported
  config = checkpoints.read_config(checkpoints.epath.Path(output))
  released = json.loads((RELEASE / 'transformer' / 'config.json').read_text())
  assert config.model.architecture == 'wan'
  assert wan_transformer.WanShape.from_config(config.model.wan) == \
      wan_transformer.WanShape.from_diffusers(released)
  assert len(report['tensors']) == len(
      {t for f in (RELEASE / 'transformer').glob('*.safetensors') for t in load_file(f)}) + len(
          load_file(RELEASE / 'vae' / 'diffusion_pytorch_model.safetensors'))


def test_umt5_hook_matches_the_released_pipeline(reference):
  pytest.importorskip('torch')
  pytest.importorskip('transformers')
  from eye2eye_jax.data import text_encoding, umt5_text
  encoder = umt5_text.Umt5Encoder(RELEASE, max_tokens=16)
  for caption, expected in zip(reference['captions'], reference['caption_embeddings']):
    padded, _ = text_encoding.pad_tokens(encoder(str(caption)), 16)
    np.testing.assert_allclose(padded, expected, atol=1e-5)


def test_the_vae_stream_equals_one_pass_and_keeps_only_fixed_caches(wan, reference):
  from eye2eye_jax.models import wan_streaming
  stream = wan_streaming.VaeStream(wan.params['vae'], wan.vae_shape)
  video = reference['vae_video'].transpose(0, 2, 3, 4, 1)
  encoder = stream.encoder()
  latents = [encoder.push(video[:, :5])]
  first_caches = jax.tree.map(np.shape, encoder.caches)
  latents.append(encoder.push(video[:, 5:]))
  assert jax.tree.map(np.shape, encoder.caches) == first_caches  # flat in the video's length
  latents = np.concatenate(latents, 1)
  np.testing.assert_allclose(latents, reference['vae_mean'].transpose(0, 2, 3, 4, 1),
                             atol=1e-4)
  decoder = stream.decoder()
  frames = np.concatenate([decoder.push(latents[:, i:i + 1]) for i in range(3)], 1)
  np.testing.assert_allclose(frames, reference['vae_decoded'].transpose(0, 2, 3, 4, 1),
                             atol=1e-4)


def test_tiles_cover_the_frame_and_blend_without_seams():
  """With a pointwise function in place of the VAE, tiled equals untiled: the tiles cover
  every pixel and the blend weights sum to one; each tile keeps caches of its own."""
  from eye2eye_jax.models import wan_streaming
  assert wan_streaming.tile_starts(100, 256, 64, 8) == [0]
  starts = wan_streaming.tile_starts(480, 256, 64, 8)
  assert starts[0] == 0 and starts[-1] == 480 - 256 and all(s % 8 == 0 for s in starts)
  assert all(b - a <= 256 - 64 for a, b in zip(starts, starts[1:]))
  seen = []

  def pointwise(params, x, caches):
    seen.append(caches)
    return np.asarray(x) * 2 + 1, 'cache'

  frames = np.random.default_rng(0).standard_normal((1, 2, 40, 56, 3)).astype(np.float32)
  tiled = wan_streaming._Pass(pointwise, None, tile=24, overlap=8, scale=1, align=8)
  np.testing.assert_allclose(tiled.push(frames), frames * 2 + 1, atol=1e-5)
  tiles = len(seen)
  assert tiles == 2 * 3 and seen == [None] * tiles
  tiled.push(frames)
  assert seen[tiles:] == ['cache'] * tiles


def test_a_unet_run_and_the_sampler_refuse_a_wan_backbone_with_a_reason(imported):
  from eye2eye_jax import config_base
  from eye2eye_jax.sampling import video_conversion
  from eye2eye_jax.training import train_state
  config = config_base.base_config()
  with pytest.raises(ValueError, match="holds a 'wan' model; this config builds a 'unet' one"):
    train_state.init_from_checkpoint(config, str(imported[0]))
  with pytest.raises(ValueError, match='a video backbone .* cannot convert; fine-tune'):
    video_conversion.load_sampler(config, str(imported[0]))


def test_the_import_holds_one_tensor_at_a_time_not_the_model(tmp_path):
  """A release of 8 blocks of width 256 (33 MB of float32 in 4 shards): the import's
  Python-side allocations peak near its largest tensor (1.5 MB), far below the model."""
  import tracemalloc
  release = tmp_path / 'release'
  shutil.copytree(RELEASE / 'vae', release / 'vae')
  config = json.loads((RELEASE / 'transformer' / 'config.json').read_text())
  config.update(num_attention_heads=2, attention_head_dim=128, ffn_dim=1024, num_layers=8,
                text_dim=256, freq_dim=256, in_channels=4, out_channels=4)
  (release / 'transformer').mkdir()
  (release / 'transformer' / 'config.json').write_text(json.dumps(config))
  plan = wan_weights.transformer_plan(wan_transformer.WanShape.from_diffusers(config))
  rng = np.random.default_rng(0)
  weight_map, total = {}, 0
  for shard in range(4):
    name = f'diffusion_pytorch_model-0000{shard + 1}-of-00004.safetensors'
    tensors = {m.source: rng.standard_normal(m.source_shape, np.float32)
               for m in plan[shard::4]}
    save_file(tensors, release / 'transformer' / name)
    weight_map.update({k: name for k in tensors})
    total += sum(t.nbytes for t in tensors.values())
    del tensors
  (release / 'transformer' / 'diffusion_pytorch_model.safetensors.index.json').write_text(
      json.dumps({'metadata': {'total_size': total}, 'weight_map': weight_map}))
  largest = max(4 * np.prod(m.source_shape) for m in plan)
  tracemalloc.start()
  wan_import.import_release(str(release), str(tmp_path / 'out'), progress=None,
                            empty_caption=np.zeros((4, 256), np.float32))
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  assert total > 30e6 and largest <= 2**21
  assert peak < 4 * largest, f'peak {peak / 1e6:.1f} MB for a {total / 1e6:.0f} MB model'


def test_a_stereo_model_started_from_the_import_predicts_what_the_backbone_does(
    imported, wan, reference):
  """The right view's latents join by channel concatenation at the patch embedding; started
  through ``train.init_checkpoint`` from the imported backbone, the new channels' weights
  are zero, so at step 0 the stereo model (``networks``: flow time t reaching the
  transformer as 1000 sigma(t)) predicts the backbone's output whatever the right view."""
  from eye2eye_jax import diffusion
  from eye2eye_jax.models import networks
  from eye2eye_jax.training import train_state
  config = checkpoints.read_config(checkpoints.epath.Path(imported[0]))
  config.model.condition_channels = wan.shape.in_channels
  state, report = train_state.init_from_checkpoint(config, str(imported[0]))
  assert report['extended'] == ['transformer/patch_embedding']
  assert not report['new_random'] and not report['unused']
  assert 'empty_caption/embedding' in report['copied']
  assert sum(p.startswith('vae/') for p in report['copied']) == len(
      jax.tree.leaves(wan.params['vae']))
  params = state['params']
  latents = reference['transformer_latents'].transpose(0, 2, 3, 4, 1)
  right = np.random.default_rng(0).standard_normal(latents.shape).astype(np.float32)
  schedule = config.diffusion.schedule
  t = np.array([diffusion.time_at_alpha(schedule, 1 - step / 1000)
                for step in reference['transformer_timesteps']], np.float32)
  denoiser = networks.make_denoiser(config, networks.graphdef(config), params, right,
                                    reference['transformer_text'])
  # (1e-4: the timestep comes back from t through the float32 schedule, within 1e-4 of 999)
  np.testing.assert_allclose(np.asarray(denoiser(latents, t)).transpose(0, 4, 1, 2, 3),
                             reference['transformer_output'], atol=1e-4)
  # Once training moves the new channels' weights, the right view changes the prediction.
  kernel = np.array(params['transformer']['patch_embedding'])
  kernel[..., wan.shape.in_channels:, :] = 0.1 * np.random.default_rng(1).standard_normal(
      kernel[..., wan.shape.in_channels:, :].shape)
  trained = {**params, 'transformer': {**params['transformer'], 'patch_embedding': kernel}}
  views = [networks.make_denoiser(config, networks.graphdef(config), trained, c,
                                  reference['transformer_text'])(latents, t)
           for c in (right, -right)]
  assert np.abs(np.asarray(views[0]) - np.asarray(views[1])).max() > 1e-2


def test_joining_the_right_view_along_time_is_the_backbone_on_both_views_in_a_row(
    imported, wan, reference):
  """With ``condition_join='frames'`` the right view's latents are embedded by the same
  patch embedding and follow the left view's frames: the stereo model's prediction is the
  backbone's on the two clips one after the other, cut to the left view's frames."""
  from eye2eye_jax.models import networks
  from eye2eye_jax.training import train_state
  config = checkpoints.read_config(checkpoints.epath.Path(imported[0]))
  config.model.condition_channels = wan.shape.in_channels
  config.model.condition_join = 'frames'
  state, report = train_state.init_from_checkpoint(config, str(imported[0]))
  assert not report['extended'] and not report['new_random'] and not report['unused']
  latents = reference['transformer_latents'].transpose(0, 2, 3, 4, 1)
  right = np.random.default_rng(0).standard_normal(latents.shape).astype(np.float32)
  t = np.array([0.9, 0.3], np.float32)
  out = networks.make_denoiser(config, networks.graphdef(config), state['params'], right,
                               reference['transformer_text'])(latents, t)
  backbone = checkpoints.read_config(checkpoints.epath.Path(imported[0]))
  both = networks.make_denoiser(backbone, networks.graphdef(backbone), wan.params, None,
                                reference['transformer_text'])(
                                    np.concatenate([latents, right], axis=1), t)
  np.testing.assert_allclose(np.asarray(out), np.asarray(both)[:, :latents.shape[1]],
                             atol=1e-5)
