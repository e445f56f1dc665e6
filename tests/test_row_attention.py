"""Row (epipolar) attention: it can move any texture along the rows by hand-set weights, a
model given it starts as the model without it, and it runs under remat, bf16 and the
Pallas kernel."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from eye2eye_jax.models import surgery, unet, unet_layers
from eye2eye_jax.models.embeddings import rotary_frequencies

_CHANNELS, _HALF = 16, 8  # one head of 16: texture in channels 0-7, written to 8-15


def _shifting_layer(shift: int, rope_base: float = 1000.0) -> unet_layers.RowAttention:
  """A row attention whose weights move channels 0-7 by ``shift`` columns into 8-15: the
  query of every position is the same vector turned by -shift columns' angles, the key a
  constant, so the scores peak at the key ``shift`` columns away whatever the content;
  the values carry channels 0-7 and the output projection writes them to 8-15."""
  layer = unet_layers.RowAttention(_CHANNELS, head_dim=_CHANNELS, rope_base=rope_base,
                            rngs=nnx.Rngs(0))
  frequencies = rotary_frequencies(_CHANNELS, rope_base)
  magnitude = 30.0  # sharpness: the next best column scores >= 30^2/4 x 0.5 lower
  query = np.concatenate([np.cos(shift * frequencies), np.sin(shift * frequencies)])
  key = np.concatenate([np.ones(_HALF), np.zeros(_HALF)])
  value = np.zeros((_CHANNELS, 1, _CHANNELS), np.float32)
  out = np.zeros((1, _CHANNELS, _CHANNELS), np.float32)
  for i in range(_HALF):
    value[i, 0, i] = 1.0
    out[0, i, _HALF + i] = 1.0
  attention = layer.attention
  attention.query.kernel[...] = jnp.zeros_like(attention.query.kernel[...])
  attention.query.bias[...] = jnp.asarray(magnitude * query[None], jnp.float32)
  attention.key.kernel[...] = jnp.zeros_like(attention.key.kernel[...])
  attention.key.bias[...] = jnp.asarray(magnitude * key[None], jnp.float32)
  attention.value.kernel[...] = jnp.asarray(value)
  attention.value.bias[...] = jnp.zeros_like(attention.value.bias[...])
  attention.out.kernel[...] = jnp.asarray(out)
  return layer


def _texture(seed: int, shape=(2, 3, 5, 48)) -> np.ndarray:
  """Random texture in channels 0-7 (zero mean and unit variance per norm group of 4
  channels, so the layer's group norm leaves it as it is), zeros in 8-15."""
  rng = np.random.default_rng(seed)
  texture = rng.standard_normal(shape + (_HALF,)).astype(np.float32)
  groups = texture.reshape(shape[0], -1, 2, 4)
  groups = (groups - groups.mean((1, 3), keepdims=True)) / groups.std((1, 3), keepdims=True)
  texture = groups.reshape(texture.shape)
  return np.concatenate([texture, np.zeros_like(texture)], axis=-1)


@pytest.mark.parametrize('shift', [3, -5, 17])
def test_hand_set_row_attention_moves_any_texture_along_the_rows_exactly(shift):
  layer = _shifting_layer(shift)
  for seed in (0, 1):  # two textures the weights were not made for
    x = _texture(seed)
    y = np.asarray(jax.jit(lambda v: layer(v))(jnp.asarray(x)))
    width = x.shape[3]
    columns = np.arange(max(0, -shift), min(width, width - shift))  # the source exists
    np.testing.assert_allclose(y[..., columns, _HALF:], x[..., columns + shift, :_HALF],
                               atol=2e-5)
    np.testing.assert_array_equal(y[..., :_HALF], x[..., :_HALF])  # the residual path
    # Not a copy: the texture at the same column is unrelated to the moved one.
    assert np.abs(y[..., columns, _HALF:] - x[..., columns, :_HALF]).mean() > 0.5


def test_a_model_given_row_attention_starts_with_its_sources_output(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.model.row_attention = (0, 1)
  source = jax.tree.map(lambda p: p + 0.05 * jnp.cos(jnp.arange(p.size).reshape(p.shape)),
                        unet.init_params(tiny_config, 1))
  params, report = surgery.transplant(unet.init_params(config, 2), source)
  assert not report['new_random'] and not report['unused']
  assert report['new_identity'] and all(
      p.startswith(('row_attention_down/', 'row_attention_up/')) for p in report['new_identity'])
  assert len([p for p in report['new_identity'] if p.endswith('out/kernel')]) == 4
  rng = np.random.default_rng(0)
  noisy, right = (jnp.asarray(rng.standard_normal((2, 4, 8, 8, 3)), jnp.float32)
                  for _ in range(2))
  t = jnp.array([0.3, 0.8])
  forward = lambda c, p: unet.make_denoiser(unet.model_graphdef(c), p, right)(noisy, t)
  expected = forward(tiny_config, source)
  np.testing.assert_allclose(forward(config, params), expected, rtol=0, atol=1e-6)
  # Not a tautology: once the new layers' outputs are not zero, the output moves.
  params = surgery.unflatten_like(params, {
      k: (v + 0.05 if k.endswith('out/kernel') and k.startswith('row_') else v)
      for k, v in surgery.flatten(params).items()})
  assert float(jnp.abs(forward(config, params) - expected).max()) > 1e-3


def test_row_attention_under_remat_and_bf16_matches_the_plain_model(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.model.row_attention = (0,)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 8, 8, 3))
  leaves, tree = jax.tree.flatten(unet.init_params(config, 0))
  keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
  params = jax.tree.unflatten(tree, [p + 0.05 * jax.random.normal(k, p.shape)
                                     for p, k in zip(leaves, keys)])

  def loss_and_grads(c):
    graphdef = unet.model_graphdef(c)
    loss = lambda p: jnp.mean(unet.make_denoiser(graphdef, p, x)(x, jnp.array([0.3, .7]))**2)
    return jax.jit(jax.value_and_grad(loss))(params)

  loss, grads = loss_and_grads(config)
  assert float(jnp.abs(grads['row_attention_down'][0]['attention']['query']['kernel']).max()) > 0
  remat = config.copy_and_resolve_references()
  remat.model.remat = 'full'
  remat_loss, remat_grads = loss_and_grads(remat)
  assert float(remat_loss) == pytest.approx(float(loss), rel=1e-6)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(remat_grads)):
    assert jnp.allclose(a, b, rtol=1e-4, atol=1e-6)
  half = config.copy_and_resolve_references()
  half.model.dtype = 'bfloat16'
  loss16, _ = loss_and_grads(half)
  assert float(loss16) == pytest.approx(float(loss), rel=0.03)


def test_row_attention_on_the_pallas_flash_kernel_equals_xla():
  """Rows of 128 columns (a kernel block): the rotary encoding is applied before the kernel,
  so the Pallas kernel gives XLA's output."""
  from jax.experimental.pallas import tpu as pltpu
  x = jnp.asarray(np.random.default_rng(3).standard_normal((1, 1, 2, 128, 32)), jnp.float32)
  outputs = []
  for kernel in ('xla', 'pallas_flash'):
    layer = unet_layers.RowAttention(32, head_dim=16, rope_base=1000.0, attention_kernel=kernel,
                              rngs=nnx.Rngs(0))
    layer.attention.out.kernel[...] = 0.1 * jnp.ones_like(layer.attention.out.kernel[...])
    with pltpu.force_tpu_interpret_mode():
      outputs.append(np.asarray(layer(x)))
  np.testing.assert_allclose(outputs[1], outputs[0], atol=2e-5, rtol=1e-4)
  assert np.abs(outputs[0] - np.asarray(x)).mean() > 1e-2


@pytest.mark.parametrize('fields, message', [
    ({'row_attention': (2,)}, 'not one of the UNet'),
    ({'row_attention': (1,), 'row_attention_head_dim': 5}, 'even width'),
    ({'row_attention': (0,), 'row_attention_rope_base': 1.0}, 'rope_base')])
def test_impossible_row_attention_settings_are_refused(tiny_config, fields, message):
  config = tiny_config.copy_and_resolve_references()
  config.model.update(fields)
  with pytest.raises(ValueError, match=message):
    unet.validate_model_config(config.model)


@pytest.mark.parametrize('frames_per_block', [1, 3])
def test_row_attention_in_blocks_of_frames_is_the_same_layer(frames_per_block):
  """Rows are independent: attending the rows of n frames at a time (3 does not divide the
  5 frames: the last block is padded) gives the same output and gradients."""
  x = jnp.asarray(np.random.default_rng(4).standard_normal((2, 5, 3, 8, 16)), jnp.float32)
  layers = [unet_layers.RowAttention(16, head_dim=8, rope_base=100.0, frames_per_block=n,
                                     rngs=nnx.Rngs(0)) for n in (0, frames_per_block)]
  results = []
  for layer in layers:
    layer.attention.out.kernel[...] = 0.1 * jnp.ones_like(layer.attention.out.kernel[...])
    graphdef, params = nnx.split(layer, nnx.Param)
    loss = lambda p: jnp.sum(jnp.sin(nnx.merge(graphdef, p)(x)))
    results.append(jax.jit(jax.value_and_grad(loss))(params))
  np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(results[1][1]), jax.tree.leaves(results[0][1])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
