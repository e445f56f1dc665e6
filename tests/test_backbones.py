"""Backbone pretraining, text conditioning end to end, freezing and the held-out loss."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eye2eye_jax.data import datasets, input_pipeline, text_encoding
from eye2eye_jax.models import surgery, unet
from eye2eye_jax.sampling import stereo_sampler
from eye2eye_jax.training import loop, train_state


def _video_text_config(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.data.task = 'video'
  config.model.condition_channels = 0
  config.model.text_embed_dim = 6
  config.text.encoder = 'hashed_words'
  config.text.max_tokens = 8
  config.train.caption_dropout = 0.5
  config.train.num_steps = 10
  config.train.eval_every = 5
  config.train.eval_batches = 2
  config.train.sample_every = 0
  return config


@pytest.fixture(scope='module')
def backbone_run(tiny_config, tiny_dataset, tmp_path_factory):
  """A text-to-video backbone trained on the tiny set's right views; (config, workdir, logs)."""
  config = _video_text_config(tiny_config)
  workdir = tmp_path_factory.mktemp('backbone')
  logged = []
  loop.train_and_evaluate(config, str(workdir), on_metrics=lambda s, m: logged.append((s, m)))
  return config, workdir, logged


def test_video_batches_carry_the_right_view_and_its_caption(tiny_config, tiny_dataset):
  config = _video_text_config(tiny_config)
  batch = next(iter(input_pipeline.create_train_loader(config, tiny_dataset)))
  assert set(batch) == {'video', 'text', 'text_mask'}
  assert batch['video'].shape == (2, 4, 8, 8, 3)
  assert batch['text'].shape == (2, 8, 6) and batch['text_mask'].dtype == bool
  # 'a photograph behind ...; the camera moves left': more words than the 8 tokens kept.
  assert batch['text_mask'].all()
  record = datasets.data_source(config, 'train', tiny_dataset)[0]
  caption = record['caption'].decode() if isinstance(record['caption'], bytes) else record[
      'caption']
  assert caption.startswith('a photograph') and 'camera moves' in caption


def test_a_text_to_video_backbone_trains_with_a_held_out_loss(backbone_run):
  config, workdir, logged = backbone_run
  held_out = [(s, m['eval/loss']) for s, m in logged if 'eval/loss' in m]
  assert [s for s, _ in held_out] == [5, 10]
  assert all(np.isfinite(v) and v > 0 for _, v in held_out)
  assert any(np.isfinite(m.get('loss', np.nan)) for _, m in logged)


def test_a_stereo_run_starts_from_the_backbone_with_a_report(tiny_config, backbone_run,
                                                             tmp_path):
  config = tiny_config.copy_and_resolve_references()
  config.train.init_checkpoint = str(backbone_run[1])
  config.train.num_steps = 2
  config.train.sample_every = 0
  loop.train_and_evaluate(config, str(tmp_path))
  report = json.loads((tmp_path / 'init_report.json').read_text())
  assert report['extended'] == ['conv_in/conv/kernel']
  assert report['unused'] and all('text' in p for p in report['unused'])
  assert not report['new_random'] and len(report['copied']) > 50


def test_freezing_the_spatial_layers_trains_only_the_rest(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.train.freeze = ('spatial',)
  config.train.warmup_steps = 1
  # Trained-like weights: fresh ones have a zero output layer, which is spatial, so a
  # frozen-spatial model would get no gradient anywhere else.
  params = jax.tree.map(lambda p: p + 0.01, unet.init_params(config, 0))
  state = train_state.train_state_from_params(config, params)
  before = surgery.flatten(jax.tree.map(np.array, state["params"]))  # copies: the step donates
  frozen = surgery.flatten(train_state.frozen_mask(config, state['params']))
  rng = np.random.default_rng(0)
  batch = {k: jnp.asarray(rng.uniform(-1, 1, (2, 4, 8, 8, 3)), jnp.float32)
           for k in ('right', 'left')}
  step = train_state.make_train_step(config)
  for _ in range(2):
    state, _ = step(state, batch)
  after = surgery.flatten(state['params'])
  changed = {p for p in before if not np.array_equal(before[p], after[p])}
  assert frozen['down_blocks/0/0/conv1/conv/kernel'] and not frozen['conv_in/conv/kernel']
  assert not frozen['down_blocks/0/0/temporal_conv/kernel']
  assert changed and not changed & {p for p, f in frozen.items() if f}
  assert 'conv_in/conv/kernel' in changed and 'down_blocks/0/0/temporal_conv/kernel' in changed
  config.train.freeze = ('[unclosed',)
  with pytest.raises(ValueError, match='train.freeze'):
    train_state.frozen_mask(config, state['params'])


def test_caption_dropout_one_is_training_without_text(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.model.text_embed_dim = 6
  params = unet.init_params(config, 0)
  params = jax.tree.map(lambda p: p + 0.01, params)  # zero-initialised layers now matter
  graphdef = unet.model_graphdef(config)
  rng = np.random.default_rng(0)
  batch = {k: jnp.asarray(rng.uniform(-1, 1, (2, 4, 8, 8, 3)), jnp.float32)
           for k in ('right', 'left')}
  batch['text'] = jnp.asarray(rng.standard_normal((2, 3, 6)), jnp.float32)
  batch['text_mask'] = jnp.ones((2, 3), bool)
  key = jax.random.PRNGKey(0)
  loss = lambda b, dropout: float(train_state.batch_loss(config, graphdef, params, b, key,
                                                         caption_dropout=dropout))
  no_text = loss({**batch, 'text_mask': jnp.zeros((2, 3), bool)}, 0.0)
  assert loss(batch, 1.0) == no_text
  assert loss(batch, 0.0) != no_text


def test_the_sampler_reads_the_caption_and_guides_on_it(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.model.text_embed_dim = 6
  config.text.encoder = 'hashed_words'
  leaves, tree = jax.tree.flatten(unet.init_params(config, 0))
  keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
  params = jax.tree.unflatten(tree, [p + 0.05 * jax.random.normal(k, p.shape)
                                     for p, k in zip(leaves, keys)])
  video = np.random.default_rng(0).integers(0, 255, (4, 8, 8, 3), dtype=np.uint8)

  def convert(caption, text_guidance=0.0):
    sample_config = config.sample.copy_and_resolve_references()
    sample_config.text_guidance_scale = text_guidance
    sampler = stereo_sampler.StereoSampler(stereo_sampler.Stage(config, params), None,
                                           sample_config)
    return sampler.convert(video, seed=0, caption=caption).astype(int)

  mirror, pane = convert('a mirror'), convert('a glass pane')
  assert np.abs(mirror - pane).max() > 0
  np.testing.assert_array_equal(convert('a mirror'), mirror)  # deterministic
  assert np.abs(convert('a mirror', text_guidance=3.0) - mirror).max() > 0
  # With no caption, guidance has nothing to amplify.
  np.testing.assert_array_equal(convert('', text_guidance=3.0), convert(''))


def test_text_encoders_are_checked(tiny_config):
  encode = text_encoding.TextEncoder.from_spec('hashed_words', 4)
  first = encode('A mirror, a pane')
  assert first.shape == (4, 4)
  np.testing.assert_array_equal(first[1], encode('mirror')[0])  # words, not positions
  np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1, atol=1e-6)
  text, mask = text_encoding.pad_tokens(first, 6)
  assert text.shape == (6, 4) and mask.tolist() == [True] * 4 + [False] * 2
  config = tiny_config.copy_and_resolve_references()
  config.model.text_embed_dim = 4
  with pytest.raises(ValueError, match='needs text.encoder'):
    text_encoding.caption_encoder(config)
  with pytest.raises(ValueError, match='cannot load'):
    text_encoding.TextEncoder.from_spec('no_such_module:encode', 4)


def test_precomputed_embeddings_are_padded_to_the_token_count():
  features = input_pipeline.TextFeatures(None, 4)
  element = features.map({'text_embedding': np.ones((2, 3), np.float32), 'right': 0})
  assert element['text'].shape == (4, 3) and element['text_mask'].tolist() == [True, True,
                                                                                False, False]
  with pytest.raises(ValueError, match='no text_embedding'):
    features.map({'right': 0})
