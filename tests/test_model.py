import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from conftest import load_config
from eye2eye_jax.models import unet


def test_tiny_model_output_shape_and_zero_init(tiny_config):
  model = unet.create_model(tiny_config.model)
  x = jnp.ones((2, 4, 8, 8, 3))
  out = model(x, x, jnp.array([0.5, 0.1]))
  assert out.shape == (2, 4, 8, 8, 3)
  # The output convolution starts at zero, so a fresh model predicts zeros.
  assert float(jnp.abs(out).max()) == 0.0


@pytest.mark.parametrize('name,frames,size,min_params', [
    ('base_paper', 80, 128, 50_000_000),
    ('backbone_paper', 80, 128, 50_000_000),
    ('demo', 4, 32, 100_000),
    ('backbone_demo', 4, 32, 100_000),
])
def test_configured_models_shape_check_without_allocating(name, frames, size, min_params):
  config = load_config(name)
  abstract = nnx.eval_shape(lambda: unet.create_model(config.model))
  params = nnx.state(abstract, nnx.Param)
  assert unet.count_params(params) > min_params
  graphdef = unet.model_graphdef(config)
  video = jax.ShapeDtypeStruct((1, frames, size, size, 3), jnp.float32)
  text = jnp.zeros((1, 4, config.model.text_embed_dim)) if config.model.text_embed_dim else None

  def forward(p, x):
    condition = x if config.model.condition_channels else None
    return nnx.merge(graphdef, p)(x, condition, jnp.zeros((1,)), text)

  out = jax.eval_shape(forward, nnx.to_pure_dict(params), video)
  assert out.shape == (1, frames, size, size, 3)


def test_text_conditioning_changes_the_output(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.model.text_embed_dim = 6
  model = unet.create_model(config.model)
  # Give the text branch's output projection non-zero weights so it has an effect.
  text = model.mid_attention.text
  text.out.kernel[...] = jnp.full_like(text.out.kernel[...], 0.1)
  model.conv_out.conv.kernel[...] = jnp.full_like(model.conv_out.conv.kernel[...], 0.1)
  x = jnp.ones((1, 4, 8, 8, 3)) * 0.3
  a = model(x, x, jnp.array([0.5]), jnp.zeros((1, 3, 6)))
  b = model(x, x, jnp.array([0.5]), jnp.ones((1, 3, 6)))
  assert float(jnp.abs(a - b).max()) > 1e-4


def test_bad_model_configs_are_clear_errors(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.model.temporal_downsample = (True, True)
  with pytest.raises(ValueError, match='temporal_downsample'):
    unet.create_model(config.model)
  with pytest.raises(ValueError, match='does not divide'):
    unet.check_video_shape(tiny_config.model, 3, 8, 8)


def _perturbed_params(config, seed=1):
  """Fresh weights with noise added everywhere (zero-initialised layers would hide errors)."""
  params = unet.init_params(config, 0)
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return jax.tree.unflatten(tree, [x + 0.05 * jax.random.normal(k, x.shape)
                                   for x, k in zip(leaves, keys)])


def _loss_and_grads(config, params, x):
  graphdef = unet.model_graphdef(config)
  def loss(p):
    return jnp.mean(unet.make_denoiser(graphdef, p, x)(x, jnp.array([0.3, 0.7]))**2)
  return jax.jit(jax.value_and_grad(loss))(params)


def test_remat_and_bf16_compute_match_the_plain_model(tiny_config):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 8, 8, 3))
  params = _perturbed_params(tiny_config)
  loss, grads = _loss_and_grads(tiny_config, params, x)
  for remat in ('full', 'dots'):
    config = tiny_config.copy_and_resolve_references()
    config.model.remat = remat
    remat_loss, remat_grads = _loss_and_grads(config, params, x)
    assert float(remat_loss) == pytest.approx(float(loss), rel=1e-6)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(remat_grads)):
      assert jnp.allclose(a, b, rtol=1e-4, atol=1e-6)
  config = tiny_config.copy_and_resolve_references()
  config.model.dtype = 'bfloat16'
  forward = lambda c: jax.jit(lambda p: unet.make_denoiser(unet.model_graphdef(c), p, x)(
      x, jnp.array([0.3, 0.7])))(params)
  out16, out32 = forward(config), forward(tiny_config)
  assert out16.dtype == jnp.float32  # outputs and weights stay float32
  assert jax.tree.leaves(params)[0].dtype == jnp.float32
  assert float(jnp.abs(out16 - out32).mean()) < 0.03 * float(jnp.abs(out32).mean())
  assert float(jnp.abs(out16 - out32).max()) > 0  # it did compute in bf16


def test_bad_dtype_and_remat_are_named(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.model.dtype = 'float16'
  with pytest.raises(ValueError, match='model.dtype'):
    unet.validate_model_config(config.model)
  config.model.dtype, config.model.remat = 'float32', 'sometimes'
  with pytest.raises(ValueError, match='model.remat'):
    unet.validate_model_config(config.model)
