"""The space a stage's network denoises in: pixels (the UNet) or a Wan VAE's latents.

``codec(config, params, sample_config)`` gives ``encode(frames)``: a clip (N, H, W, 3) in
[-1, 1] -> what the network denoises, ``decode`` back, and ``model_frame(i)``: where input
frame i lands. A Wan model's clip streams through its VAE ``sample.vae_chunk_frames``
frames at a time (the first chunk one more), the causal caches carried from chunk to
chunk, on tiles of ``sample.vae_tile`` px (``models/wan_streaming.py``): the same latents
and frames as one pass, in memory bounded by a chunk whatever the clip's length.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from eye2eye_jax.models import wan_runner, wan_streaming, wan_vae


class Pixels:
  """The UNet's space: the frames themselves."""

  def encode(self, frames: np.ndarray) -> np.ndarray:
    return frames

  def decode(self, values: np.ndarray) -> np.ndarray:
    return values

  def model_frame(self, frame: int) -> int:
    return frame


class WanLatents:
  """A Wan model's space: its VAE's normalised latent means, 1 + (N - 1) / 4 frames at
  1/8 of the frame's side."""

  def __init__(self, model_config: ml_collections.ConfigDict, vae_params,
               sample_config: ml_collections.ConfigDict):
    self.shape = wan_vae.VaeShape.from_config(model_config.wan_vae)
    s, ratio = sample_config, self.shape.temporal_ratio
    if s.vae_chunk_frames < ratio or s.vae_chunk_frames % ratio:
      raise ValueError(f'sample.vae_chunk_frames={s.vae_chunk_frames}: must be a multiple of '
                       f"the VAE's {ratio} frames per latent frame")
    self.chunk = int(s.vae_chunk_frames)
    self.stream = wan_streaming.VaeStream(vae_params, self.shape, model_config.dtype,
                                          int(s.vae_tile), int(s.vae_tile_overlap))
    self.mean = np.asarray(self.shape.latents_mean, np.float32)
    self.std = np.asarray(self.shape.latents_std, np.float32)

  def encode(self, frames: np.ndarray) -> np.ndarray:
    """(1 + 4k, H, W, 3) frames -> (1 + k, H / 8, W / 8, z) normalised latents."""
    encoder = self.stream.encoder()
    pieces = [encoder.push(np.asarray(frames[None, part], np.float32))[0]
              for part in wan_runner.frame_chunks(len(frames), self.chunk, first_extra=1)]
    return (np.concatenate(pieces) - self.mean) / self.std

  def decode(self, latents: np.ndarray) -> np.ndarray:
    """Normalised latents (1 + k, h, w, z) -> (1 + 4k, 8h, 8w, 3) frames in [-1, 1]."""
    raw = np.asarray(latents, np.float32) * self.std + self.mean
    decoder = self.stream.decoder()
    per_chunk = self.chunk // self.shape.temporal_ratio
    return np.concatenate([decoder.push(raw[None, part])[0] for part in
                           wan_runner.frame_chunks(len(raw), per_chunk, first_extra=0)])

  def model_frame(self, frame: int) -> int:
    return frame // self.shape.temporal_ratio


def codec(config: ml_collections.ConfigDict, params,
          sample_config: ml_collections.ConfigDict) -> Pixels | WanLatents:
  """The space of the network of ``config`` with weights ``params``."""
  if config.model.architecture == 'wan':
    return WanLatents(config.model, params['vae'], sample_config)
  return Pixels()
