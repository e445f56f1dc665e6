"""Query-chunked attention computes what the materialised attention computes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import load_config
from eye2eye_jax.models import attention, unet


def _qkv(batch, queries, keys, heads=2, depth=8, seed=0):
  rng = np.random.default_rng(seed)
  shape = lambda n: (batch, n, heads, depth)
  return (jnp.asarray(rng.normal(size=shape(queries)), jnp.float32),
          jnp.asarray(rng.normal(size=shape(keys)), jnp.float32),
          jnp.asarray(rng.normal(size=shape(keys)), jnp.float32))


@pytest.mark.parametrize('length, chunk', [(37, 8), (37, 16), (64, 16), (37, 64), (1, 4)])
def test_self_attention_equals_the_materialised_one(length, chunk):
  q, k, v = _qkv(3, length, length)
  expected = nnx.dot_product_attention(q, k, v)
  got = attention.query_chunked_attention(q, k, v, chunk=chunk)
  assert got.shape == expected.shape
  np.testing.assert_allclose(got, expected, atol=2e-6, rtol=1e-5)


def test_cross_attention_with_a_text_mask_equals_the_materialised_one():
  q, k, v = _qkv(2, 50, 6)
  keep = jnp.array([[True, True, False, True, False, False],
                    [True, False, False, False, False, False]])
  mask = keep[:, None, None, :]  # as the UNet's text branch passes it
  expected = nnx.dot_product_attention(q, k, v, mask=mask)
  got = attention.query_chunked_attention(q, k, v, mask=mask, chunk=16)
  np.testing.assert_allclose(got, expected, atol=2e-6, rtol=1e-5)


def test_a_mask_that_varies_along_the_queries_is_cut_with_them():
  q, k, v = _qkv(2, 21, 21, seed=1)
  mask = jnp.tril(jnp.ones((21, 21), bool))[None, None]  # a different row per query
  expected = nnx.dot_product_attention(q, k, v, mask=mask)
  got = attention.query_chunked_attention(q, k, v, mask=mask, chunk=8)
  np.testing.assert_allclose(got, expected, atol=2e-6, rtol=1e-5)
  assert not np.allclose(got, nnx.dot_product_attention(q, k, v), atol=1e-3)  # it did mask


def test_a_chunked_unet_keeps_the_parameters_and_the_outputs():
  config = load_config('tiny')
  config.model.text_embed_dim = 8
  chunked = config.copy_and_resolve_references()
  chunked.model.attention_chunk = 3  # 16 queries per coarsest frame: 6 blocks, the last padded
  params = unet.init_params(config, 0)
  params = jax.tree.map(lambda p: p + 0.05 * jnp.sin(jnp.arange(p.size).reshape(p.shape)),
                        params)  # out kernels start at zero: make the attention matter
  assert (jax.tree.structure(unet.init_params(chunked, 0)) == jax.tree.structure(params))
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 8, 8, 3))
  text = jax.random.normal(jax.random.PRNGKey(2), (2, 5, 8))
  mask = jnp.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], bool)
  t = jnp.array([0.3, 0.8])
  outputs = [unet.make_denoiser(unet.model_graphdef(c), params, x, text, mask)(x, t)
             for c in (config, chunked)]
  np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-5, rtol=1e-5)


def test_a_negative_chunk_is_refused():
  config = load_config('tiny')
  config.model.attention_chunk = -1
  with pytest.raises(ValueError, match='model.attention_chunk must be >= 0'):
    unet.validate_model_config(config.model)


# 128 and 300 tokens run the kernel (300 padded to 384); 37 is below one block and runs XLA's.
@pytest.mark.parametrize('length, keys', [(128, 128), (300, 300), (37, 37)])
def test_the_pallas_flash_kernel_equals_the_materialised_one(length, keys):
  from jax.experimental.pallas import tpu as pltpu
  q, k, v = _qkv(3, length, keys, heads=2, depth=16)
  expected = nnx.dot_product_attention(q, k, v)
  with pltpu.force_tpu_interpret_mode():  # the TPU kernel, interpreted on this CPU
    got = attention.pallas_flash_attention(q, k, v)
  assert got.shape == expected.shape
  np.testing.assert_allclose(got, expected, atol=2e-5, rtol=1e-4)


def test_a_unet_on_the_pallas_flash_kernel_keeps_the_parameters_and_the_outputs(monkeypatch):
  from jax.experimental.pallas import tpu as pltpu
  from jax.experimental.pallas.ops.tpu import flash_attention as flash
  calls = []
  kernel = flash.flash_attention
  monkeypatch.setattr(flash, 'flash_attention', lambda *a, **k: calls.append(1) or kernel(*a, **k))
  config = load_config('tiny')
  config.model.text_embed_dim = 8  # the text branch stays on XLA's kernel, with its mask
  flash = config.copy_and_resolve_references()
  flash.model.attention_kernel = 'pallas_flash'
  params = unet.init_params(config, 0)
  params = jax.tree.map(lambda p: p + 0.05 * jnp.sin(jnp.arange(p.size).reshape(p.shape)),
                        params)
  assert jax.tree.structure(unet.init_params(flash, 0)) == jax.tree.structure(params)
  # 32x32 frames: 16x16 = 256 tokens per frame at the coarsest level, two kernel blocks
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 32, 32, 3))
  text = jax.random.normal(jax.random.PRNGKey(2), (2, 5, 8))
  mask = jnp.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], bool)
  t = jnp.array([0.3, 0.8])
  with pltpu.force_tpu_interpret_mode():
    outputs = [unet.make_denoiser(unet.model_graphdef(c), params, x, text, mask)(x, t)
               for c in (config, flash)]
  np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-5, rtol=1e-5)
  assert calls == [1]  # the spatial attention ran the kernel; the 2-frame temporal one, XLA's


@pytest.mark.parametrize('fields, message', [
    ({'attention_kernel': 'flash'}, 'model.attention_kernel must be one of'),
    ({'attention_kernel': 'pallas_flash', 'attention_chunk': 64}, 'applies to the'),
    ({'attention_kernel': 'cudnn'}, "needs model.dtype='bfloat16'")])
def test_impossible_attention_settings_are_refused(fields, message):
  config = load_config('tiny')
  config.model.update(fields)
  with pytest.raises(ValueError, match=message):
    unet.validate_model_config(config.model)
