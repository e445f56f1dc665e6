"""Run an imported Wan 2.1 checkpoint on arrays in the reference's own layout.

  wan = ImportedWan.load('outputs/wan2.1-t2v-1.3b')
  prediction = wan.transformer(latents, timesteps, text)   # (B, 16, F, H, W), like diffusers
  mean, log_variance = wan.encode(video)                   # vae.encode(video).latent_dist
  video = wan.decode(mean)                                 # vae.decode(latents).sample

Inputs and outputs are channels-first NumPy arrays, integer timesteps in [0, 1000) and text
embeddings (B, tokens, 4096), exactly what ``WanTransformer3DModel`` and
``AutoencoderKLWan`` take and give, so parity with diffusers can be checked on any weights.
``encode`` and ``decode`` take the whole video at once (``chunk_frames`` streams it through
the causal caches instead: the same numbers, bounded memory).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from eye2eye_jax.models import checkpoints, wan_transformer, wan_vae


def _merged(module_fn, params):
  """The module of ``module_fn`` holding ``params``, matched by name (a list's entries are
  stored under '0', '1', ..., '10': by name, not by sorted order)."""
  graphdef, state = nnx.split(nnx.eval_shape(module_fn), nnx.Param)
  nnx.replace_by_pure_dict(state, params)
  return nnx.merge(graphdef, state)


def transformer_function(shape: wan_transformer.WanShape, model=None, jit: bool = True):
  """(params, latents (B, T, H, W, C), timesteps (B,), text, token_sharding=None,
  condition=None) -> prediction, jitted unless ``jit`` is False; the weights are arguments (not compiled in),
  so one compile serves any weights."""

  def apply(params, latents, timesteps, text, token_sharding=None, condition=None):
    model_ = _merged(lambda: wan_transformer.create(shape, model), params)
    return model_(latents, timesteps, text, token_sharding, condition)

  return jax.jit(apply, static_argnames=('token_sharding',)) if jit else apply


def vae_functions(shape: wan_vae.VaeShape, dtype: str = 'float32'):
  """Jitted (params, chunk, caches) -> encode / decode results (``WanVAE.encode/decode``)."""
  vae = lambda params: _merged(lambda: wan_vae.create(shape, dtype), params)
  encode = jax.jit(lambda params, video, caches: vae(params).encode(video, caches))
  decode = jax.jit(lambda params, latents, caches: vae(params).decode(latents, caches))
  return encode, decode


class ImportedWan:
  """The transformer and VAE of an imported checkpoint (``ckpt import``)."""

  def __init__(self, config, params, dtype: str | None = None):
    if config.model.architecture != 'wan':
      raise ValueError(f'model.architecture is {config.model.architecture!r}; this runs Wan '
                       'checkpoints made by `ckpt import`')
    self.config = config
    self.shape = wan_transformer.WanShape.from_config(config.model.wan)
    self.vae_shape = wan_vae.VaeShape.from_config(config.model.wan_vae)
    model = config.model.copy_and_resolve_references()
    if dtype:
      model.dtype = dtype
    self.params = params
    self._forward = transformer_function(self.shape, model)
    self._encode, self._decode = vae_functions(self.vae_shape, model.dtype)
    self.empty_caption = np.asarray(params['empty_caption']['embedding'])

  @classmethod
  def load(cls, path: str, dtype: str | None = None) -> 'ImportedWan':
    """From an imported checkpoint (local, ``gs://`` or a training run made from one)."""
    config, params = checkpoints.load_for_inference(path)
    return cls(config, params, dtype)

  def transformer(self, latents, timesteps, text) -> np.ndarray:
    """(B, C, F, H, W) latents, (B,) timesteps, (B, N, text_dim) text -> (B, C, F, H, W)."""
    latents = jnp.asarray(latents, jnp.float32).transpose(0, 2, 3, 4, 1)
    timesteps = jnp.broadcast_to(jnp.asarray(timesteps, jnp.float32), latents.shape[:1])
    out = self._forward(self.params['transformer'], latents, timesteps,
                        jnp.asarray(text, jnp.float32))
    return np.asarray(out).transpose(0, 4, 1, 2, 3)

  def encode(self, video, chunk_frames: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(B, 3, F, H, W) video in [-1, 1] -> (mean, log-variance), each (B, z, f, h, w)."""
    frames = np.asarray(video, np.float32).transpose(0, 2, 3, 4, 1)
    pieces, caches = [], None
    for chunk in frame_chunks(frames.shape[1], chunk_frames, first_extra=1):
      mean, log_variance, caches = self._encode(self.params['vae'],
                                                jnp.asarray(frames[:, chunk]), caches)
      pieces.append((np.asarray(mean), np.asarray(log_variance)))
    mean, log_variance = (np.concatenate(p, 1).transpose(0, 4, 1, 2, 3) for p in zip(*pieces))
    return mean, log_variance

  def decode(self, latents, chunk_frames: int = 0) -> np.ndarray:
    """(B, z, f, h, w) raw latents -> (B, 3, F, H, W) video in [-1, 1]."""
    latents = np.asarray(latents, np.float32).transpose(0, 2, 3, 4, 1)
    pieces, caches = [], None
    for chunk in frame_chunks(latents.shape[1], chunk_frames, first_extra=0):
      video, caches = self._decode(self.params['vae'], jnp.asarray(latents[:, chunk]), caches)
      pieces.append(np.asarray(video))
    return np.concatenate(pieces, 1).transpose(0, 4, 1, 2, 3)


def frame_chunks(total: int, size: int, first_extra: int) -> list[slice]:
  """Slices of ``size`` frames (the first ``first_extra`` more), or one slice when 0."""
  if size <= 0:
    return [slice(0, total)]
  cuts = list(range(size + first_extra, total, size))
  return [slice(a, b) for a, b in zip([0] + cuts, cuts + [total])]
