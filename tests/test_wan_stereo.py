"""The Wan stereo model end to end at tiny scale (configs/wan_stereo_tiny.py): trained on the
synthetic stereo records in VAE latents with flow matching, resumed, and converting a
video through the streamed VAE."""

import jax
import numpy as np
import pytest

from conftest import load_config
from eye2eye_jax.data import input_pipeline, video_io
from eye2eye_jax.models import checkpoints, networks, surgery
from eye2eye_jax.sampling import latent_space, stereo_sampler, video_conversion
from eye2eye_jax.training import loop, train_state


@pytest.fixture(scope='module')
def wan_config(tiny_dataset):
  config = load_config('wan_stereo_tiny')
  config.data.data_dir = tiny_dataset
  return config


@pytest.fixture(scope='module')
def wan_run(wan_config, tmp_path_factory):
  """A workdir of the tiny Wan stereo model after 20 steps (checkpoints at 10 and 20)."""
  workdir = tmp_path_factory.mktemp('wan_stereo_run')
  loop.train_and_evaluate(wan_config, str(workdir))
  return workdir


def _weights(workdir) -> dict:
  return checkpoints.load_weights_to_host(str(workdir), use_ema=False)[1]


def _held_out_losses(config, workdir, num_batches: int = 2) -> tuple[float, float]:
  """The mean loss on validation batches (fixed noise) of the fresh weights and of the
  run in ``workdir``."""
  loader = input_pipeline.create_train_loader(config, config.data.data_dir, split='validation')
  batches = [batch for batch, _ in zip(iter(loader), range(num_batches))]
  eval_loss = train_state.make_eval_loss(config)
  mean_loss = lambda params: np.mean([float(eval_loss(params, b, i))
                                      for i, b in enumerate(batches)])
  return (mean_loss(networks.init_params(config, config.seed)),
          mean_loss(checkpoints.load_for_inference(str(workdir), use_ema=False)[1]))


def test_the_held_out_loss_drops_as_the_model_trains(wan_config, wan_run):
  before, after = _held_out_losses(wan_config, wan_run, num_batches=3)
  assert after < 0.85 * before, (before, after)


def test_the_vae_and_empty_caption_are_never_trained(wan_config, wan_run):
  trained = surgery.flatten(_weights(wan_run))
  fresh = surgery.flatten(networks.init_params(wan_config, wan_config.seed))
  assert trained.keys() == fresh.keys()
  for path in fresh:
    change = np.abs(np.asarray(trained[path]) - np.asarray(fresh[path])).max()
    if path.startswith(('vae/', 'empty_caption/')):
      assert change == 0, path
    else:  # every transformer tensor moves, the right view's channels included
      assert change > 0, path


def test_a_run_resumed_halfway_ends_with_the_same_weights(wan_config, wan_run, tmp_path):
  config = wan_config.copy_and_resolve_references()
  config.train.num_steps = 10
  loop.train_and_evaluate(config, str(tmp_path))
  config.train.num_steps = 20
  loop.train_and_evaluate(config, str(tmp_path))
  resumed, straight = surgery.flatten(_weights(tmp_path)), surgery.flatten(_weights(wan_run))
  assert resumed.keys() == straight.keys()
  for path in straight:
    np.testing.assert_allclose(resumed[path], straight[path], rtol=0, atol=1e-6, err_msg=path)


def test_the_streamed_vae_gives_the_latents_and_frames_of_one_pass(wan_config):
  params = jax.tree.map(np.asarray, networks.init_params(wan_config, 0))
  frames = np.random.default_rng(0).uniform(-1, 1, (13, 16, 24, 3)).astype(np.float32)
  spaces = [latent_space.codec(wan_config, params, _with_vae_chunks(wan_config, c))
            for c in (2, 12)]
  latents = [space.encode(frames) for space in spaces]
  assert latents[0].shape == (7, 4, 6, 4)
  np.testing.assert_allclose(latents[0], latents[1], atol=1e-5)
  decoded = [space.decode(latents[0]) for space in spaces]
  assert decoded[0].shape == frames.shape
  np.testing.assert_allclose(decoded[0], decoded[1], atol=1e-5)


def _with_vae_chunks(config, chunk_frames: int):
  s = config.sample.copy_and_resolve_references()
  s.vae_chunk_frames = chunk_frames
  return s


def test_sample_converts_a_video_in_chunks_and_writes_every_layout(wan_config, wan_run,
                                                                    tmp_path):
  inputs = tmp_path / 'inputs'
  inputs.mkdir()
  video = np.random.default_rng(1).integers(0, 255, (13, 21, 34, 3), np.uint8)
  video_io.write_video(inputs / 'odd.mp4', video, 12.0)
  config = wan_config.copy_and_resolve_references()
  config.sample.chunk_frames = 6  # three chunks, each through the VAE stream
  sampler = video_conversion.load_sampler(config, str(wan_run))
  assert isinstance(sampler._space(sampler.base), latent_space.WanLatents)
  result = video_conversion.convert_many(sampler, [inputs / 'odd.mp4'], tmp_path / 'out',
                                         show_progress=False)
  assert result.converted == [inputs / 'odd.mp4']
  shapes = {path.name: video_io.read_video(path).frames.shape
            for path in (tmp_path / 'out').glob('*.mp4')}
  assert shapes == {'odd_left.mp4': (13, 21, 34, 3), 'odd_LRF_Full_SBS.mp4': (13, 21, 68, 3),
                    'odd_LR_Half_SBS.mp4': (13, 21, 34, 3), 'odd_TB.mp4': (13, 42, 34, 3),
                    'odd_anaglyph.mp4': (13, 21, 34, 3)}
  assert result.verdicts[inputs / 'odd.mp4']  # and its comfort report
  assert (tmp_path / 'out' / 'odd_stereo.json').is_file()


def test_a_wan_stage_refuses_settings_it_cannot_use(wan_config, wan_run):
  config, params = checkpoints.load_for_inference(str(wan_run))
  stage = stereo_sampler.Stage(config, params)
  for field, value, message in (('vae_chunk_frames', 3, 'multiple of'),
                                ('refiner_tile', 64, 'whole latent frames')):
    s = wan_config.sample.copy_and_resolve_references()
    s[field] = value
    with pytest.raises(ValueError, match=message):
      stereo_sampler.StereoSampler(stage, None, s)


@pytest.fixture(scope='module')
def latent_config(wan_config, tmp_path_factory):
  """The tiny Wan config on latent records of the tiny dataset (build_data --latents)."""
  from eye2eye_jax.data import latent_records
  config = wan_config.copy_and_resolve_references()
  config.data.latents = True
  config.data.data_dir = str(tmp_path_factory.mktemp('latent_tfds'))
  latent_records.build(config, config.data.data_dir, show_progress=False)
  return config


def test_latent_records_hold_the_vae_latents_of_the_clip_and_its_mirror(latent_config):
  from eye2eye_jax.data import datasets, latent_dataset
  records = latent_dataset.data_source(latent_config, 'train', latent_config.data.data_dir)
  source = datasets.data_source(latent_config, 'train', latent_config.data.data_dir)
  assert len(records) == 2 * len(source)  # each clip and its mirror
  folder = latent_dataset.clips_dir(latent_config, latent_config.data.data_dir) / 'train'
  params = {'vae': jax.tree.map(np.asarray, networks.init_params(latent_config, 0)['vae'])}
  view = input_pipeline.TrainingView('downsample', 16, 3, False)
  clip = view.random_map(source[5], np.random.default_rng([5, 11]))
  plain = networks.encode_videos(latent_dataset.source_config(latent_config), params,
                                 clip['right'][None], clip['left'][None])
  with np.load(folder / '00000005.npz') as stored, np.load(folder / '00000005m.npz') as mirror:
    np.testing.assert_allclose(stored['right'], plain[0][0], atol=2e-3)  # float16
    np.testing.assert_allclose(stored['left'], plain[1][0], atol=2e-3)
    assert stored['right'].shape == (2, 4, 4, 4)
    mirrored = networks.encode_videos(latent_dataset.source_config(latent_config), params,
                                      clip['left'][None, :, :, ::-1])[0][0]
    np.testing.assert_allclose(mirror['right'], mirrored, atol=2e-3)
    assert np.abs(mirror['right'] - stored['left'][:, :, ::-1]).max() > 1e-2  # not a flip
    assert str(stored['caption']) and stored['text_embedding'].shape[1] == 16


def test_encoding_resumes_where_it_stopped(latent_config):
  from eye2eye_jax.data import latent_dataset, latent_records
  folder = latent_dataset.clips_dir(latent_config, latent_config.data.data_dir) / 'validation'
  kept = folder / '00000000.npz'
  before = kept.read_bytes()
  (folder / '00000002.npz').unlink()
  written = latent_records.encode_clips(latent_config, latent_config.data.data_dir,
                                        show_progress=False)
  assert written == {'train': 0, 'validation': 1}
  assert kept.read_bytes() == before


def test_training_on_latent_records_lowers_the_held_out_loss(latent_config, tmp_path):
  loop.train_and_evaluate(latent_config, str(tmp_path))
  loader = input_pipeline.create_train_loader(latent_config, latent_config.data.data_dir)
  assert next(iter(loader))['right'].shape == (2, 2, 4, 4, 4)  # latents, not pixels
  before, after = _held_out_losses(latent_config, tmp_path)
  assert after < 0.85 * before, (before, after)


def test_strength_conditioning_starts_as_the_model_it_extends_and_learns_a_response(
    wan_config, wan_run, tiny_strength_config, tmp_path):
  config = wan_config.copy_and_resolve_references()
  config.model.strength_conditioning = True
  config.data.builder_config = 'tiny_strength'  # train clips at baselines of 0.25-2.5
  config.data.data_dir = tiny_strength_config.data.data_dir
  config.train.init_checkpoint, config.train.num_steps = str(wan_run), 10
  state, report = train_state.init_from_checkpoint(config, str(wan_run))
  assert sorted(p.rsplit('/', 1)[0] for p in report['new_identity']) == [
      'transformer/strength_linear_1', 'transformer/strength_linear_1',
      'transformer/strength_linear_2', 'transformer/strength_linear_2']
  x = np.random.default_rng(0).standard_normal((1, 2, 4, 4, 4)).astype(np.float32)
  t = np.full((1,), 0.7, np.float32)

  def outputs(params):
    graph = networks.graphdef(config)
    return [np.asarray(networks.make_denoiser(config, graph, params, x, strength=np.full(
        (1,), s, np.float32))(x, t)) for s in (0.5, 2.0)]

  low, high = outputs(state['params'])
  np.testing.assert_array_equal(low, high)  # the new layers add nothing yet
  loop.train_and_evaluate(config, str(tmp_path))
  low, high = outputs(checkpoints.load_for_inference(str(tmp_path), use_ema=False)[1])
  assert np.abs(low - high).max() > 1e-4
  sample = config.sample.copy_and_resolve_references()
  sample.strength = 2.0
  loaded, params = checkpoints.load_for_inference(str(tmp_path))
  sampler = stereo_sampler.StereoSampler(stereo_sampler.Stage(loaded, params), None, sample)
  video = np.random.default_rng(2).integers(0, 255, (5, 16, 16, 3), np.uint8)
  assert sampler.convert(video).shape == video.shape


def test_a_wan_model_distils_into_a_student_the_sampler_runs(wan_config, wan_run, tmp_path):
  config = wan_config.copy_and_resolve_references()
  config.train.init_checkpoint = str(wan_run)
  config.distill.teacher_steps, config.distill.student_steps = 4, 2
  config.distill.steps_per_round, config.train.num_steps = 4, 4
  config.train.caption_dropout = 0.0
  losses = []
  loop.train_and_evaluate(config, str(tmp_path),
                          on_metrics=lambda step, m: losses.append(m.get('loss')))
  assert losses and np.isfinite([l for l in losses if l is not None]).all()
  config.sample.distilled, config.sample.distilled_checkpoint = True, str(tmp_path)
  sampler = video_conversion.load_sampler(config)
  assert sampler.sample_config.base_num_steps == 2
  video = np.random.default_rng(3).integers(0, 255, (5, 16, 24, 3), np.uint8)
  assert sampler.convert(video).shape == video.shape


def test_the_two_stage_sampler_runs_wan_stages(wan_run, wan_config):
  config, params = checkpoints.load_for_inference(str(wan_run))
  stage = stereo_sampler.Stage(config, params)
  sample = wan_config.sample.copy_and_resolve_references()
  sample.refiner_tile, sample.base_resolution = 0, 8
  sampler = stereo_sampler.StereoSampler(stage, stage, sample)
  video = np.random.default_rng(4).integers(0, 255, (5, 16, 24, 3), np.uint8)
  left, base = sampler.convert(video, return_base=True)
  assert left.shape == base.shape == video.shape
  assert np.abs(left.astype(int) - base.astype(int)).mean() > 0  # the refiner changed it


def test_freeze_groups_keep_the_named_parts_of_a_transformer_fixed(wan_config):
  config = wan_config.copy_and_resolve_references()
  config.train.freeze = ('self_attention', 'modulation')
  state = train_state.init_train_state(config)
  before = surgery.flatten(jax.tree.map(np.asarray, state['params']))
  rng = np.random.default_rng(0)
  batch = {'right': rng.uniform(-1, 1, (2, 3, 16, 16, 3)).astype(np.float32),
           'left': rng.uniform(-1, 1, (2, 3, 16, 16, 3)).astype(np.float32),
           'text': rng.standard_normal((2, 8, 16)).astype(np.float32),
           'text_mask': np.ones((2, 8), bool)}
  step = train_state.make_train_step(config)
  for _ in range(3):
    state, _ = step(state, batch)
  after = surgery.flatten(state['params'])
  frozen = [p for p in before if np.array_equal(before[p], np.asarray(after[p]))]
  assert frozen and all(p.startswith(('transformer/stacked_blocks/attn1/', 'transformer/time_',
                                      'transformer/stacked_blocks/scale_shift_table',
                                      'transformer/scale_shift_table', 'vae/',
                                      'empty_caption/')) for p in frozen)
  assert 'transformer/stacked_blocks/attn1/to_q/kernel' in frozen
  assert 'transformer/stacked_blocks/ffn_in/kernel' not in frozen


def test_without_a_caption_a_wan_model_needs_no_text_encoder(wan_run, wan_config):
  config, params = checkpoints.load_for_inference(str(wan_run))
  config.text.encoder = 'no_such_package.module:encode'  # as umT5 is absent on a laptop
  sample = wan_config.sample.copy_and_resolve_references()
  sampler = stereo_sampler.StereoSampler(stereo_sampler.Stage(config, params), None, sample)
  video = np.random.default_rng(5).integers(0, 255, (3, 16, 16, 3), np.uint8)
  assert sampler.convert(video, caption='').shape == video.shape
  with pytest.raises((ImportError, ModuleNotFoundError, ValueError)):
    sampler.convert(video, caption='a red box')
