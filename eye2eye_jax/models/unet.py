"""A space-time UNet (in the spirit of Lumiere's STUNet) for video diffusion, in Flax NNX.

The network denoises the left-eye video given the clean right-eye video: both are
concatenated along channels before the first convolution. It down- and up-samples in space
at every level and in time at the levels the config names; residual blocks are factorized
(a spatial 1x3x3 convolution, then a temporal 3x1x1 one whose branch starts at zero, so a
new temporal layer is the identity); attention over space and over time runs at the
coarsest level; an optional text embedding enters through cross-attention there; optional
row (epipolar) attention runs along the rows at the levels ``model.row_attention`` names.

The same class builds the backbones the stereo model starts from: with
``condition_channels=0`` a (text-to-)video model, and with ``spatial_only=True`` a
(text-to-)image UNet that has no temporal layers and treats every frame alone
(``eye2eye_jax/models/surgery.py`` turns either into a stereo model).

Its layers are in ``models/unet_layers.py``. Videos are laid out (batch, frames, height,
width, channels).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from eye2eye_jax.models import attention
from eye2eye_jax.models.embeddings import strength_embedding, timestep_embedding
from eye2eye_jax.models.unet_layers import (Downsample, FactorizedAttention,
                                            FactorizedResBlock, GroupNorm, RowAttention,
                                            SpatialConv, Upsample)

_zeros = nnx.initializers.zeros_init()


class SpaceTimeUNet(nnx.Module):
  """Predicts eps or v for the noisy left view, given the clean right view.

  Config fields (``config.model``): channels, channel_mult (one entry per level),
  temporal_downsample (one bool per level transition), num_res_blocks, num_heads,
  text_embed_dim (0: no text), video_channels, condition_channels (0: an unconditional
  video model, a backbone), spatial_only (no temporal layers: an image UNet applied per
  frame), norm_per_frame (group norms over each frame rather than the clip; what a model
  inflated from an image UNet needs to start with its outputs), dtype (of the computation;
  weights stay float32), remat (what the backward pass recomputes), attention_chunk (queries
  per block of the attention layers, 0: all at once; ``eye2eye_jax/models/attention.py``),
  strength_conditioning (the 3D strength, the disparity scale asked for, is embedded and
  added to the time embedding; its last layer starts at zero, so a model started from one
  without it begins with that model's outputs), row_attention (levels with a
  ``RowAttention`` after their residual blocks, down and up; row_attention_head_dim,
  row_attention_rope_base shape it; row_attention_frames_per_block bounds its memory).
  """

  def __init__(self, config: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    validate_model_config(config)
    ch = config.channels
    mults = tuple(config.channel_mult)
    embed_dim = 4 * ch
    self.embed_dim = embed_dim
    dtype = jnp.dtype(config.dtype)
    self.dtype = dtype
    self.remat = config.remat
    temporal = not config.spatial_only
    # An image model normalises each frame alone; a video model, by default, the whole clip.
    layer_options = dict(temporal=temporal, dtype=dtype,
                         norm_per_frame=not temporal or config.norm_per_frame)
    self.time_mlp1 = nnx.Linear(ch, embed_dim, dtype=dtype, rngs=rngs)
    self.time_mlp2 = nnx.Linear(embed_dim, embed_dim, dtype=dtype, rngs=rngs)
    if config.strength_conditioning:
      self.strength_mlp1 = nnx.Linear(ch, embed_dim, dtype=dtype, rngs=rngs)
      self.strength_mlp2 = nnx.Linear(embed_dim, embed_dim, kernel_init=_zeros, dtype=dtype,
                                      rngs=rngs)
    else:
      self.strength_mlp1 = self.strength_mlp2 = None
    in_channels = config.video_channels + config.condition_channels
    self.conv_in = SpatialConv(in_channels, ch, dtype=dtype, rngs=rngs)

    row_levels = set(config.row_attention)

    def row_attention(level: int, channels: int):
      if level not in row_levels:
        return None
      return RowAttention(channels, head_dim=config.row_attention_head_dim,
                          rope_base=config.row_attention_rope_base,
                          attention_kernel=config.attention_kernel,
                          attention_chunk=config.attention_chunk,
                          frames_per_block=config.row_attention_frames_per_block,
                          norm_per_frame=layer_options['norm_per_frame'], dtype=dtype,
                          rngs=rngs)

    down_blocks, downsamplers, skip_channels = [], [], [ch]
    row_down, row_up = [], [None] * len(mults)
    current = ch
    for level, mult in enumerate(mults):
      blocks = []
      for _ in range(config.num_res_blocks):
        blocks.append(FactorizedResBlock(current, ch * mult, embed_dim, **layer_options,
                                         rngs=rngs))
        current = ch * mult
        skip_channels.append(current)
      down_blocks.append(nnx.List(blocks))
      row_down.append(row_attention(level, current))
      if level < len(mults) - 1:
        downsamplers.append(Downsample(current, temporal and config.temporal_downsample[level],
                                       dtype=dtype, rngs=rngs))
        skip_channels.append(current)
    self.down_blocks = nnx.List(down_blocks)
    self.downsamplers = nnx.List(downsamplers)

    self.mid_block1 = FactorizedResBlock(current, current, embed_dim, **layer_options,
                                         rngs=rngs)
    self.mid_attention = FactorizedAttention(current, config.num_heads, config.text_embed_dim,
                                             **layer_options,
                                             attention_kernel=config.attention_kernel,
                                             attention_chunk=config.attention_chunk, rngs=rngs)
    self.mid_block2 = FactorizedResBlock(current, current, embed_dim, **layer_options,
                                         rngs=rngs)

    up_blocks, upsamplers = [], []
    for level, mult in reversed(list(enumerate(mults))):
      blocks = []
      for _ in range(config.num_res_blocks + 1):
        blocks.append(FactorizedResBlock(current + skip_channels.pop(), ch * mult, embed_dim,
                                         **layer_options, rngs=rngs))
        current = ch * mult
      up_blocks.append(nnx.List(blocks))
      row_up[level] = row_attention(level, current)
      if level > 0:
        upsamplers.append(Upsample(current, temporal and config.temporal_downsample[level - 1],
                                   dtype=dtype, rngs=rngs))
    self.up_blocks = nnx.List(up_blocks)
    self.upsamplers = nnx.List(upsamplers)
    # Per level (None where off): after the level's residual blocks, down and up.
    self.row_attention_down = nnx.List(row_down)
    self.row_attention_up = nnx.List(row_up)
    self.norm_out = GroupNorm(current, per_frame=layer_options['norm_per_frame'], dtype=dtype,
                              rngs=rngs)
    self.conv_out = SpatialConv(current, config.video_channels, kernel_init=_zeros,
                                dtype=dtype, rngs=rngs)

  def __call__(self, noisy: jax.Array, condition: jax.Array | None, t: jax.Array,
               text: jax.Array | None = None, text_mask: jax.Array | None = None,
               activation_sharding: jax.sharding.Sharding | None = None,
               strength: jax.Array | None = None) -> jax.Array:
    """noisy, condition: (B, T, H, W, C); t: (B,) in [0, 1]; text: (B, N, D) or None.

    ``condition`` is None for a model without condition channels (a backbone);
    ``text_mask`` (B, N) marks the valid text tokens; ``strength`` (B,) is the disparity
    scale asked for (read by models with strength conditioning; None means 1).

    ``activation_sharding`` (for (B, T, H, W, C) arrays) pins every level's activations to
    the batch layout, so the compiler does not split them along the weights' sharded
    channel dimensions instead.
    """
    run = _block_runner(self.remat)
    if activation_sharding is None:
      pin = lambda x: x
    else:
      pin = lambda x: jax.lax.with_sharding_constraint(x, activation_sharding)
    emb = timestep_embedding(t, self.time_mlp1.in_features).astype(self.dtype)
    emb = self.time_mlp2(nnx.silu(self.time_mlp1(emb)))
    if self.strength_mlp1 is not None:
      strength = jnp.ones(t.shape, jnp.float32) if strength is None else strength
      s = strength_embedding(strength, self.strength_mlp1.in_features).astype(self.dtype)
      emb = emb + self.strength_mlp2(nnx.silu(self.strength_mlp1(s)))
    inputs = noisy if condition is None else jnp.concatenate([noisy, condition], axis=-1)
    x = pin(self.conv_in(inputs.astype(self.dtype)))
    skips = [x]
    for level, blocks in enumerate(self.down_blocks):
      for block in blocks:
        x = pin(run(block, x, emb))
        skips.append(x)
      if self.row_attention_down[level] is not None:
        with attention.batch_layout(activation_sharding):
          x = pin(run(self.row_attention_down[level], x, emb))
        skips[-1] = x
      if level < len(self.downsamplers):
        x = pin(self.downsamplers[level](x))
        skips.append(x)
    x = pin(run(self.mid_block1, x, emb))
    with attention.batch_layout(activation_sharding):
      x = pin(self.mid_attention(x, text, text_mask))
    x = pin(run(self.mid_block2, x, emb))
    for i, blocks in enumerate(self.up_blocks):
      for block in blocks:
        x = pin(run(block, jnp.concatenate([x, skips.pop()], axis=-1), emb))
      level = len(self.up_blocks) - 1 - i
      if self.row_attention_up[level] is not None:
        with attention.batch_layout(activation_sharding):
          x = pin(run(self.row_attention_up[level], x, emb))
      if i < len(self.upsamplers):
        x = pin(self.upsamplers[i](x))
    return self.conv_out(nnx.silu(self.norm_out(x))).astype(jnp.float32)


REMAT_POLICIES = {
    'none': None,
    'full': jax.checkpoint_policies.nothing_saveable,
    'dots': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def _block_runner(remat: str):
  """Calls a residual block, rematerialised (recomputed in the backward pass) per policy."""
  if remat == 'none':
    return lambda block, x, emb: block(x, emb)
  return nnx.remat(lambda block, x, emb: block(x, emb), policy=REMAT_POLICIES[remat])


def validate_model_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the field when the model config cannot build a UNet."""
  if config.architecture != 'unet':
    raise ValueError(
        f'model.architecture={config.architecture!r}: this builds the space-time UNet; '
        'eye2eye_jax.models.networks builds every architecture')
  levels = len(config.channel_mult)
  if levels < 1:
    raise ValueError('model.channel_mult needs at least one level')
  if len(config.temporal_downsample) != levels - 1:
    raise ValueError(f'model.temporal_downsample needs {levels - 1} entries (one per level '
                     f'transition), got {len(config.temporal_downsample)}')
  if config.channels % 4:
    raise ValueError(f'model.channels must be a multiple of 4, got {config.channels}')
  coarsest = config.channels * config.channel_mult[-1]
  if coarsest % config.num_heads:
    raise ValueError(f'model.num_heads={config.num_heads} must divide the coarsest width '
                     f'{coarsest}')
  if config.dtype not in ('float32', 'bfloat16'):
    raise ValueError(f"model.dtype must be 'float32' or 'bfloat16', got {config.dtype!r}")
  if config.attention_chunk < 0:
    raise ValueError(f'model.attention_chunk must be >= 0, got {config.attention_chunk}')
  if config.attention_kernel not in attention.KERNELS:
    raise ValueError(f'model.attention_kernel must be one of {attention.KERNELS}, got '
                     f'{config.attention_kernel!r}')
  if config.attention_kernel != 'xla' and config.attention_chunk:
    raise ValueError(f"model.attention_chunk applies to the 'xla' kernel; "
                     f"'{config.attention_kernel}' never materialises the scores (set it to 0)")
  if config.attention_kernel == 'cudnn' and config.dtype != 'bfloat16':
    raise ValueError("model.attention_kernel='cudnn' needs model.dtype='bfloat16'")
  for level in config.row_attention:
    if not 0 <= level < levels:
      raise ValueError(f'model.row_attention: level {level} is not one of the UNet\'s '
                       f'{levels} levels (0 is full resolution)')
    width = config.channels * config.channel_mult[level]
    heads = max(1, width // config.row_attention_head_dim)
    if width % heads or (width // heads) % 2:
      raise ValueError(f'model.row_attention_head_dim={config.row_attention_head_dim} does '
                       f'not split level {level}\'s {width} channels into heads of an even '
                       'width (the rotary encoding turns pairs)')
  if config.row_attention_frames_per_block < 0:
    raise ValueError('model.row_attention_frames_per_block must be >= 0, got '
                     f'{config.row_attention_frames_per_block}')
  if config.row_attention and config.row_attention_rope_base <= 1:
    raise ValueError('model.row_attention_rope_base must be > 1, got '
                     f'{config.row_attention_rope_base}')
  if config.remat not in REMAT_POLICIES:
    raise ValueError(f'model.remat must be one of {sorted(REMAT_POLICIES)}, got '
                     f'{config.remat!r}')


def check_video_shape(config: ml_collections.ConfigDict, frames: int, height: int,
                      width: int) -> None:
  """Raises ValueError when a clip of this shape cannot pass through the UNet's levels."""
  levels = len(config.channel_mult)
  spatial = 2**(levels - 1)
  temporal = 1 if config.spatial_only else 2**sum(
      bool(x) for x in config.temporal_downsample)
  if height % spatial or width % spatial or frames % temporal:
    raise ValueError(f'clip of {frames}x{height}x{width} (frames x height x width) does not '
                     f'divide by the UNet\'s downsampling ({temporal} in time, {spatial} in '
                     'space)')


def create_model(config: ml_collections.ConfigDict, seed: int = 0) -> SpaceTimeUNet:
  return SpaceTimeUNet(config, rngs=nnx.Rngs(seed))


def count_params(params) -> int:
  return sum(x.size for x in jax.tree.leaves(params))


def model_graphdef(config: ml_collections.ConfigDict):
  """The UNet's structure, without allocating weights."""
  abstract = nnx.eval_shape(lambda: create_model(config.model))
  return nnx.split(abstract, nnx.Param)[0]


def init_params(config: ml_collections.ConfigDict, seed: int) -> dict:
  """Fresh UNet weights as a plain nested dict of arrays."""
  model = create_model(config.model, seed)
  return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def make_denoiser(graphdef, params, condition, text=None, text_mask=None,
                  activation_sharding=None, strength=None):
  """The UNet as a function (x_t, t) -> prediction, conditioned on the right view (None for
  a backbone), for text models on ``text`` (B, N, D) with ``text_mask`` (B, N), and for
  strength-conditioned models on ``strength`` (B,)."""
  model = nnx.merge(graphdef, params)
  return lambda x_t, t: model(x_t, condition, t, text, text_mask, activation_sharding,
                              strength)
