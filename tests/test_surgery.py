"""Conditioning surgery and 2-D -> 3-D inflation start exactly where the source model was."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eye2eye_jax.models import surgery, unet


def _forward(config, params, noisy, condition, t, text=None, text_mask=None):
  graphdef = unet.model_graphdef(config)
  return unet.make_denoiser(graphdef, params, condition, text, text_mask)(noisy, t)


def _trained_like(params, seed):
  """Every weight perturbed, so zero-initialised layers are not zero any more."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return jax.tree.unflatten(tree, [p + 0.05 * jax.random.normal(k, p.shape)
                                   for p, k in zip(leaves, keys)])


@pytest.fixture(scope='module')
def inputs():
  rng = np.random.default_rng(0)
  noisy = jnp.asarray(rng.standard_normal((2, 4, 8, 8, 3)), jnp.float32)
  right = jnp.asarray(rng.uniform(-1, 1, (2, 4, 8, 8, 3)), jnp.float32)
  return noisy, right, jnp.array([0.3, 0.8])


def test_a_stereo_model_from_a_video_backbone_starts_with_its_output(tiny_config, inputs):
  noisy, right, t = inputs
  backbone_config = tiny_config.copy_and_resolve_references()
  backbone_config.model.condition_channels = 0
  backbone = _trained_like(unet.init_params(backbone_config, 1), 1)
  stereo, report = surgery.transplant(unet.init_params(tiny_config, 2), backbone)
  assert report['extended'] == ['conv_in/conv/kernel']
  assert not report['new_identity'] and not report['new_random'] and not report['unused']
  kernel = stereo['conv_in']['conv']['kernel']
  np.testing.assert_array_equal(kernel[:, :, 3:], 0)
  np.testing.assert_array_equal(kernel[:, :, :3], backbone['conv_in']['conv']['kernel'])
  expected = _forward(backbone_config, backbone, noisy, None, t)
  got = _forward(tiny_config, stereo, noisy, right, t)
  # Zero weights add exact zeros; only the order of the first convolution's sums (54 terms
  # instead of 27) changes, so the outputs agree to float32 rounding.
  np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)
  assert float(jnp.abs(expected).mean()) > 0.01  # a real, non-zero prediction
  # Not a tautology: any weight on the right view's channels changes the output.
  kernel = np.array(kernel)
  kernel[:, :, 3:] = 0.01
  stereo['conv_in']['conv']['kernel'] = kernel
  assert float(jnp.abs(_forward(tiny_config, stereo, noisy, right, t) - expected).max()) > 1e-3


def test_text_backbone_weights_and_a_text_free_target(tiny_config, inputs):
  backbone_config = tiny_config.copy_and_resolve_references()
  backbone_config.model.condition_channels = 0
  backbone_config.model.text_embed_dim = 6
  backbone = unet.init_params(backbone_config, 1)
  _, report = surgery.transplant(unet.init_params(tiny_config, 2), backbone)
  assert report['unused'] and all('text' in p for p in report['unused'])
  # The other way round, cross-attention is new and adds nothing yet (zero output layer).
  text_config = tiny_config.copy_and_resolve_references()
  text_config.model.text_embed_dim = 6
  _, report = surgery.transplant(unet.init_params(text_config, 3),
                                 unet.init_params(tiny_config, 2))
  assert report['new_random'] and all('text' in p for p in report['new_random'])


@pytest.mark.parametrize('temporal_downsample', [(False,), (True,)])
def test_an_image_unet_inflates_to_its_per_frame_output(tiny_config, inputs,
                                                        temporal_downsample):
  noisy, right, t = inputs
  video_config = tiny_config.copy_and_resolve_references()
  video_config.model.temporal_downsample = temporal_downsample
  video_config.model.text_embed_dim = 6
  video_config.model.norm_per_frame = True  # its spatial layers see frames alone
  image_config = video_config.copy_and_resolve_references()
  image_config.model.spatial_only = True
  image = _trained_like(unet.init_params(image_config, 1), 1)
  video, report = surgery.transplant(unet.init_params(video_config, 2), image)
  assert report['new_identity'] and not report['new_random'] and not report['unused']
  assert all('temporal' in p for p in report['new_identity'])
  assert len(report['inflated']) == 2 * sum(temporal_downsample)
  text = jnp.asarray(np.random.default_rng(1).standard_normal((2, 3, 6)), jnp.float32)
  mask = jnp.array([[True, True, False], [True, False, False]])
  if any(temporal_downsample):
    # Merging two frames into one can only be the image model's output for a still clip.
    noisy = jnp.repeat(noisy[:, :1], 4, axis=1)
    right = jnp.repeat(right[:, :1], 4, axis=1)
  expected = _forward(image_config, image, noisy, right, t, text, mask)
  # The image model treats frames alone: frame 0 by itself gives the same output.
  alone = _forward(image_config, image, noisy[:, :1], right[:, :1], t, text, mask)
  np.testing.assert_allclose(alone[:, 0], expected[:, 0], atol=1e-5)
  got = _forward(video_config, video, noisy, right, t, text, mask)
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
  assert float(jnp.abs(expected).mean()) > 0.01


def test_wrong_widths_are_named(tiny_config):
  wider = tiny_config.copy_and_resolve_references()
  wider.model.channels = 12
  with pytest.raises(ValueError, match='conv_in/conv/bias.*different model width'):
    surgery.transplant(unet.init_params(tiny_config, 0), unet.init_params(wider, 0))


def test_an_empty_caption_is_no_text(tiny_config, inputs):
  noisy, right, t = inputs
  config = tiny_config.copy_and_resolve_references()
  config.model.text_embed_dim = 6
  params = _trained_like(unet.init_params(config, 0), 0)
  text = jnp.ones((2, 3, 6))
  without = _forward(config, params, noisy, right, t)
  empty = _forward(config, params, noisy, right, t, text, jnp.zeros((2, 3), bool))
  with_text = _forward(config, params, noisy, right, t, text, jnp.ones((2, 3), bool))
  np.testing.assert_array_equal(empty, without)
  assert float(jnp.abs(with_text - without).max()) > 1e-3
