"""The base-stage sampler: right-eye video in, left-eye video out.

A video of any length and frame size is resized to the model's square resolution, cut into
clips of the model's length (the last one padded by repeating its final frame, then trimmed),
sampled in batches with one jitted DDIM program, and resized back to the input's size.

Frame-size policy (base stage): frames are resized, not cropped, to the model's square
resolution, so every pixel is converted; a non-square input is squeezed horizontally inside
the model and restored afterwards, which scales the generated disparity with the frame
width, as a resize of a real stereo pair would.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from eye2eye_jax import diffusion, input_pipeline, model as model_lib, training


class BaseSampler:
  """Samples left views with a trained UNet; one compiled program per batch shape."""

  def __init__(self, model_config: ml_collections.ConfigDict, params,
               sample_config: ml_collections.ConfigDict):
    """``model_config`` is the config that trained ``params`` (its model, data, diffusion)."""
    self.config = model_config
    self.params = params
    self.sample_config = sample_config
    self.resolution = int(model_config.data.resolution)
    self.num_frames = int(model_config.data.num_frames)
    model_lib.check_video_shape(model_config.model, self.num_frames, self.resolution,
                                self.resolution)
    graphdef = training.model_graphdef(model_config)
    num_steps = int(sample_config.num_steps)
    eta = float(sample_config.eta)
    if num_steps < 1:
      raise ValueError(f'sample.num_steps must be >= 1, got {num_steps}')

    def sample_clips(params, right, rng):
      denoiser = training.make_denoiser(graphdef, params, right)
      noise = jax.random.normal(rng, right.shape, right.dtype)
      return diffusion.ddim_sample(model_config, denoiser, noise, rng, num_steps, eta=eta)

    self._sample_clips = jax.jit(sample_clips)

  def sample_model_clips(self, right: np.ndarray, seed: int) -> np.ndarray:
    """(B, T, R, R, 3) right clips in [-1, 1] at the model's size -> left clips in [-1, 1]."""
    rng = jax.random.PRNGKey(seed)
    return np.asarray(self._sample_clips(self.params, jnp.asarray(right, jnp.float32), rng))

  def convert(self, right_video: np.ndarray, seed: int | None = None,
              progress=None) -> np.ndarray:
    """Generates the left view of a (N, H, W, 3) uint8 right-eye video, same shape."""
    if right_video.ndim != 4 or right_video.shape[-1] != 3 or right_video.shape[0] == 0:
      raise ValueError(f'expected a (frames, height, width, 3) video with >= 1 frame, got '
                       f'{right_video.shape}')
    seed = self.sample_config.seed if seed is None else seed
    n, height, width, _ = right_video.shape
    t, r = self.num_frames, self.resolution
    small = input_pipeline.resize_clip(right_video, r, r)
    num_clips = -(-n // t)
    padded = np.concatenate([small, np.repeat(small[-1:], num_clips * t - n, axis=0)])
    clips = input_pipeline.to_model_range(padded.reshape(num_clips, t, r, r, 3))
    batch = int(self.sample_config.batch_size)
    outputs = []
    for start in range(0, num_clips, batch):
      chunk = clips[start:start + batch]
      real = chunk.shape[0]
      if real < batch:  # keep one compiled shape: pad the last batch
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - real, axis=0)])
      outputs.append(self.sample_model_clips(chunk, seed + start)[:real])
      if progress is not None:
        progress(min(start + batch, num_clips), num_clips)
    left_small = input_pipeline.from_model_range(np.concatenate(outputs).reshape(-1, r, r, 3))
    return input_pipeline.resize_clip(left_small[:n], height, width)
