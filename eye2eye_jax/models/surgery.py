"""Starts a model from another model's weights: conditioning surgery and 2-D -> 3-D inflation.

``transplant(target, source)`` fills the target UNet's parameters from a source checkpoint of
a different but related UNet, parameter by parameter (matched by path):

* **copied**: same path and shape;
* **extended**: the first convolution (or a Wan transformer's patch embedding) of a stereo
  model started from a backbone with fewer input channels (an unconditional video model,
  ``condition_channels=0``): the backbone's kernel is kept for its channels and the extra
  right-view channels get zero weights, so the stereo model's output at step 0 equals the
  backbone's;
* **inflated**: a space-time UNet started from an image UNet (``spatial_only=True``): its
  spatial layers are copied, and a temporal downsampler's 3x3x3 kernel is built from the
  image model's 3x3 one, split over the two frames it merges, so that downsampling a clip
  that is still in time is the image model's downsampling;
* **new, identity**: temporal layers the source lacks (temporal convolutions, temporal
  attention): their residual branch ends in a zero-initialised layer, so they start as the
  identity (as Lumiere inflates its text-to-image backbone) and the model's per-frame output
  equals the image model's; likewise the strength embedding of a model given strength
  conditioning (its last layer starts at zero, so it adds nothing yet), and the row
  attention of a model given ``model.row_attention`` (its output projection starts at zero);
* **new, random**: anything else the source lacks (e.g. text cross-attention added to an
  unconditional backbone: its output layer is zero-initialised too, so it adds nothing yet);
* **unused**: source parameters with no place in the target.

The result is a report (path lists per category) that the trainer logs and writes to
``<workdir>/init_report.json``.
"""

from __future__ import annotations

import re

import jax
import numpy as np

# Parameters inside residual branches whose last layer starts at zero (eye2eye_jax/models/unet.py).
_IDENTITY_AT_INIT = re.compile(
    r'(^|/)temporal(_norm|_conv)?/|(^|/)strength_(mlp|linear_)|(^|/)row_attention_(down|up)/')
# The first layers that take the model's input: the UNet's first convolution, the Wan
# transformer's patch embedding; kernels (*window, in, out).
_INPUT_KERNELS = ('conv_in/conv/kernel', 'transformer/patch_embedding')
_TEMPORAL_DOWNSAMPLE = re.compile(r'^downsamplers/(\d+)/conv/(kernel|bias)$')


def flatten(tree) -> dict[str, np.ndarray]:
  """{'a/b/c': leaf} of a nested dict of arrays (list indices become path components)."""
  return {jax.tree_util.keystr(path, simple=True, separator='/'): leaf
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def unflatten_like(tree, flat: dict[str, np.ndarray]):
  """The structure of ``tree`` with the leaves of ``flat`` (same paths)."""
  paths = list(flatten(tree))
  return jax.tree.unflatten(jax.tree.structure(tree), [flat[p] for p in paths])


def _inflated_downsample(kernel_2d: np.ndarray) -> np.ndarray:
  """A (3, 3, 3, C, C) stride-2 kernel whose output frame i is the 2-D kernel applied to the
  mean of frames 2i and 2i+1 (taps 0 and 1 under SAME padding with an even frame count)."""
  kernel = np.zeros((3,) + kernel_2d.shape, kernel_2d.dtype)
  kernel[0] = kernel[1] = kernel_2d / 2
  return kernel


def transplant(target_params, source_params) -> tuple[dict, dict[str, list[str]]]:
  """Fills ``target_params`` (fresh weights of the new UNet) from ``source_params``.

  Returns (params, report). Raises ValueError naming the parameter when a source weight
  has a shape the rules above cannot map (e.g. a different width).
  """
  target, source = flatten(target_params), flatten(source_params)
  out, used = {}, set()
  report = {k: [] for k in ('copied', 'extended', 'inflated', 'new_identity', 'new_random',
                            'unused')}
  for path, fresh in target.items():
    fresh = np.asarray(fresh)
    spatial_path = re.sub(r'^(downsamplers/\d+/conv)/', r'\1/conv/', path)
    if path in source and np.shape(source[path]) == fresh.shape:
      out[path] = np.asarray(source[path], fresh.dtype)
      used.add(path)
      report['copied'].append(path)
    elif path in _INPUT_KERNELS and path in source:
      kernel = np.asarray(source[path])
      if (kernel.ndim != fresh.ndim or kernel.shape[:-2] != fresh.shape[:-2]
          or kernel.shape[-1] != fresh.shape[-1] or kernel.shape[-2] > fresh.shape[-2]):
        raise ValueError(f'{path}: cannot extend a kernel of shape {kernel.shape} to '
                         f'{fresh.shape}')
      extended = np.zeros_like(fresh)
      extended[..., :kernel.shape[-2], :] = kernel  # the noisy view's channels come first
      out[path] = extended
      used.add(path)
      report['extended'].append(path)
    elif _TEMPORAL_DOWNSAMPLE.match(path) and spatial_path in source:
      weight = np.asarray(source[spatial_path])
      expected = fresh.shape[1:] if path.endswith('kernel') else fresh.shape
      if weight.shape != expected:
        raise ValueError(f'{spatial_path}: shape {weight.shape} cannot inflate to {path} '
                         f'{fresh.shape}')
      out[path] = _inflated_downsample(weight) if path.endswith('kernel') else weight
      used.add(spatial_path)
      report['inflated'].append(path)
    elif path in source:
      raise ValueError(f'{path}: the source has shape {np.shape(source[path])}, the model '
                       f'{fresh.shape} (a different model width or layout)')
    else:
      out[path] = fresh
      report['new_identity' if _IDENTITY_AT_INIT.search(path) else 'new_random'].append(path)
  report['unused'] = sorted(set(source) - used)
  return unflatten_like(target_params, out), report


def summary(report: dict[str, list[str]], params=None) -> str:
  """One line per category: how many tensors (and, given the params, how many weights)."""
  sizes = {p: int(np.size(v)) for p, v in flatten(params).items()} if params else {}
  lines = []
  for category, paths in report.items():
    count = sum(sizes.get(p, 0) for p in paths)
    weights = f', {count:,} weights' if sizes and category != 'unused' else ''
    example = f' (e.g. {paths[0]})' if paths else ''
    lines.append(f'{category}: {len(paths)} tensors{weights}{example}')
  return '\n'.join(lines)
