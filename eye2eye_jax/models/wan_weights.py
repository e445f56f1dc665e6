"""Which released Wan 2.1 tensor becomes which parameter here, and how it is laid out.

The release's tensors are PyTorch's: a Linear weight is (out, in) and becomes a (in, out)
kernel; a Conv3d weight (out, in, t, h, w) becomes (t, h, w, in, out), a Conv2d weight
(out, in, h, w) becomes (h, w, in, out); the VAE's norm scales (C, 1, 1[, 1]) lose their
unit axes; the blocks' tensors are stacked on a leading layer axis (``blocks.{i}.X`` fills
row i of one parameter). ``transformer_plan`` and ``vae_plan`` list every mapping, so an
import can check names and shapes of every tensor before it reads one.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from eye2eye_jax.models import wan_transformer, wan_vae


@dataclasses.dataclass(frozen=True)
class Mapping:
  """Released tensor ``source`` (of ``source_shape``) -> ``target`` (a path of the params
  tree), row ``layer`` of it when the target stacks layers, through ``layout``."""
  source: str
  source_shape: tuple[int, ...]
  target: tuple[str, ...]
  layout: str  # 'linear', 'conv3d', 'conv2d', 'pointwise', 'squeeze' or 'same'
  layer: int | None = None

  def convert(self, tensor: np.ndarray) -> np.ndarray:
    """The released tensor in this project's layout."""
    if self.layout == 'linear':
      return tensor.T
    if self.layout == 'conv3d':
      return tensor.transpose(2, 3, 4, 1, 0)
    if self.layout == 'conv2d':
      return tensor.transpose(2, 3, 1, 0)
    if self.layout == 'pointwise':  # a 1x1 Conv2d used as a dense layer
      return tensor.reshape(tensor.shape[:2]).T
    if self.layout == 'squeeze':
      return tensor.reshape(tensor.shape[0])
    return tensor.reshape(tensor.shape[-2:]) if tensor.ndim == 3 else tensor

  @property
  def target_shape(self) -> tuple[int, ...]:
    return self.convert(np.empty(self.source_shape, np.int8)).shape


def _dense(source: str, target: tuple[str, ...], fan_in: int, fan_out: int,
           layer: int | None = None) -> list[Mapping]:
  return [Mapping(f'{source}.weight', (fan_out, fan_in), target + ('kernel',), 'linear', layer),
          Mapping(f'{source}.bias', (fan_out,), target + ('bias',), 'same', layer)]


def transformer_plan(shape: wan_transformer.WanShape) -> list[Mapping]:
  """Every tensor of a released ``WanTransformer3DModel`` of this shape, mapped."""
  dim, patch = shape.dim, tuple(shape.patch_size)
  plan = [
      Mapping('patch_embedding.weight', (dim, shape.in_channels) + patch,
              ('patch_embedding',), 'conv3d'),
      Mapping('patch_embedding.bias', (dim,), ('patch_bias',), 'same'),
      Mapping('scale_shift_table', (1, 2, dim), ('scale_shift_table',), 'same'),
      *_dense('condition_embedder.time_embedder.linear_1', ('time_linear_1',),
              shape.freq_dim, dim),
      *_dense('condition_embedder.time_embedder.linear_2', ('time_linear_2',), dim, dim),
      *_dense('condition_embedder.time_proj', ('time_proj',), dim, 6 * dim),
      *_dense('condition_embedder.text_embedder.linear_1', ('text_linear_1',),
              shape.text_dim, dim),
      *_dense('condition_embedder.text_embedder.linear_2', ('text_linear_2',), dim, dim),
      *_dense('proj_out', ('proj_out',), dim, shape.out_channels * int(np.prod(patch))),
  ]
  stack = ('stacked_blocks',)
  for i in range(shape.num_layers):
    block = f'blocks.{i}'
    for attn in ('attn1', 'attn2'):
      for projection, name in (('to_q', 'to_q'), ('to_k', 'to_k'), ('to_v', 'to_v'),
                               ('to_out.0', 'to_out')):
        plan += _dense(f'{block}.{attn}.{projection}', stack + (attn, name), dim, dim, i)
      for norm in ('norm_q', 'norm_k'):
        plan.append(Mapping(f'{block}.{attn}.{norm}.weight', (dim,),
                            stack + (attn, norm, 'scale'), 'same', i))
    if shape.cross_attn_norm:
      plan += [Mapping(f'{block}.norm2.weight', (dim,), stack + ('norm2', 'scale'), 'same', i),
               Mapping(f'{block}.norm2.bias', (dim,), stack + ('norm2', 'bias'), 'same', i)]
    plan += _dense(f'{block}.ffn.net.0.proj', stack + ('ffn_in',), dim, shape.ffn_dim, i)
    plan += _dense(f'{block}.ffn.net.2', stack + ('ffn_out',), shape.ffn_dim, dim, i)
    plan.append(Mapping(f'{block}.scale_shift_table', (1, 6, dim),
                        stack + ('scale_shift_table',), 'same', i))
  return plan


def _conv3d(source: str, target: tuple[str, ...], dim_in: int, dim_out: int,
            window=(3, 3, 3)) -> list[Mapping]:
  return [Mapping(f'{source}.weight', (dim_out, dim_in) + tuple(window), target + ('kernel',),
                  'conv3d'),
          Mapping(f'{source}.bias', (dim_out,), target + ('bias',), 'same')]


def _norm(source: str, target: tuple[str, ...], dim: int, unit_axes: int = 3) -> Mapping:
  return Mapping(f'{source}.gamma', (dim,) + (1,) * unit_axes, target + ('scale',), 'squeeze')


def _residual(source: str, target: tuple[str, ...], dim_in: int, dim_out: int):
  plan = [_norm(f'{source}.norm1', target + ('norm1',), dim_in),
          *_conv3d(f'{source}.conv1', target + ('conv1',), dim_in, dim_out),
          _norm(f'{source}.norm2', target + ('norm2',), dim_out),
          *_conv3d(f'{source}.conv2', target + ('conv2',), dim_out, dim_out)]
  if dim_in != dim_out:
    plan += _conv3d(f'{source}.conv_shortcut', target + ('shortcut',), dim_in, dim_out,
                    (1, 1, 1))
  return plan


def _resample(source: str, target: tuple[str, ...], dim: int, mode: str):
  out = dim // 2 if mode.startswith('up') else dim
  plan = [Mapping(f'{source}.resample.1.weight', (out, dim, 3, 3), target + ('kernel',),
                  'conv2d'),
          Mapping(f'{source}.resample.1.bias', (out,), target + ('bias',), 'same')]
  if mode.endswith('3d'):
    plan += _conv3d(f'{source}.time_conv', target + ('time_conv',), dim,
                    2 * dim if mode == 'upsample3d' else dim, (3, 1, 1))
  return plan


def _mid(source: str, target: tuple[str, ...], dim: int):
  attention = f'{source}.attentions.0'
  return [*_residual(f'{source}.resnets.0', target + ('res_1',), dim, dim),
          _norm(f'{attention}.norm', target + ('attention', 'norm'), dim, unit_axes=2),
          Mapping(f'{attention}.to_qkv.weight', (3 * dim, dim, 1, 1),
                  target + ('attention', 'to_qkv', 'kernel'), 'pointwise'),
          Mapping(f'{attention}.to_qkv.bias', (3 * dim,), target + ('attention', 'to_qkv', 'bias'),
                  'same'),
          Mapping(f'{attention}.proj.weight', (dim, dim, 1, 1),
                  target + ('attention', 'proj', 'kernel'), 'pointwise'),
          Mapping(f'{attention}.proj.bias', (dim,), target + ('attention', 'proj', 'bias'),
                  'same'),
          *_residual(f'{source}.resnets.1', target + ('res_2',), dim, dim)]


def vae_plan(shape: wan_vae.VaeShape) -> list[Mapping]:
  """Every tensor of a released ``AutoencoderKLWan`` of this shape, mapped."""
  mult, z = tuple(shape.dim_mult), shape.z_dim
  dims = [shape.base_dim * m for m in (1,) + mult]
  enc, dec = ('encoder',), ('decoder',)
  plan = _conv3d('encoder.conv_in', enc + ('conv_in',), 3, dims[0])
  index = 0
  for level, (dim_in, dim_out) in enumerate(zip(dims[:-1], dims[1:])):
    for _ in range(shape.num_res_blocks):
      plan += _residual(f'encoder.down_blocks.{index}', enc + ('down', str(index)), dim_in,
                        dim_out)
      dim_in, index = dim_out, index + 1
    if level != len(mult) - 1:
      mode = 'downsample3d' if shape.temperal_downsample[level] else 'downsample2d'
      plan += _resample(f'encoder.down_blocks.{index}', enc + ('down', str(index)), dim_out, mode)
      index += 1
  plan += _mid('encoder.mid_block', enc + ('mid',), dims[-1])
  plan += [_norm('encoder.norm_out', enc + ('norm_out',), dims[-1]),
           *_conv3d('encoder.conv_out', enc + ('conv_out',), dims[-1], 2 * z),
           *_conv3d('quant_conv', enc + ('quant_conv',), 2 * z, 2 * z, (1, 1, 1)),
           *_conv3d('post_quant_conv', dec + ('post_quant_conv',), z, z, (1, 1, 1))]

  dims = [shape.base_dim * m for m in (mult[-1],) + mult[::-1]]
  upsample_time = tuple(shape.temperal_downsample)[::-1]
  plan += _conv3d('decoder.conv_in', dec + ('conv_in',), z, dims[0])
  plan += _mid('decoder.mid_block', dec + ('mid',), dims[0])
  index = 0
  for level, (dim_in, dim_out) in enumerate(zip(dims[:-1], dims[1:])):
    dim_in = dim_in // 2 if level > 0 else dim_in
    for j in range(shape.num_res_blocks + 1):
      plan += _residual(f'decoder.up_blocks.{level}.resnets.{j}', dec + ('up', str(index)),
                        dim_in, dim_out)
      dim_in, index = dim_out, index + 1
    if level != len(mult) - 1:
      mode = 'upsample3d' if upsample_time[level] else 'upsample2d'
      plan += _resample(f'decoder.up_blocks.{level}.upsamplers.0', dec + ('up', str(index)),
                        dim_out, mode)
      index += 1
  plan += [_norm('decoder.norm_out', dec + ('norm_out',), dims[-1]),
           *_conv3d('decoder.conv_out', dec + ('conv_out',), dims[-1], 3)]
  return plan
