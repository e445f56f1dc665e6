"""Stereo sampling: a base model fixes the disparity at low resolution, a refiner adds detail.

``StereoSampler.convert`` takes a right-eye video of any length and frame size and returns
the left-eye video of the same shape:

1. frames are resampled in time to the model's frame rate (``sample.model_fps``; 0 keeps
   the input's rate);
2. the right view is resized so its SHORT side is ``sample.base_resolution`` (0: the base
   model's training resolution), keeping the aspect ratio (the long side is rounded to the
   UNet's downsampling factor), and the base model samples the left view from noise;
3. with a refiner, the base output is bilinearly upsampled to the output size (rounded to
   the refiner's factor), noised to ``sample.refiner_t_start`` (a noise level given as the
   cosine schedule's time, so it means the same signal fraction whatever schedule the
   refiner was trained with: ``diffusion.noise_level_time``) and denoised by the refiner
   conditioned on the full-resolution right view (SDEdit);
4. the result is resized to the input's frame size and resampled back to its frame rate.

Frame-size policy: resizing with the aspect ratio kept means one pixel of disparity means
the same in x and y, so a 16:9 input gets the disparity scale the model learned on square
clips (squeezing it into a square would shrink the disparity by the aspect ratio).
Long videos: at every denoising step the model runs on overlapping windows of its clip
length and the predictions are blended per frame with tent weights (MultiDiffusion), so
there is no seam at window boundaries. Each stage is one jitted program per video shape.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from eye2eye_jax import diffusion
from eye2eye_jax.data import frame_ops, text_encoding
from eye2eye_jax.models import unet


@dataclasses.dataclass(eq=False)  # hashed by identity: a static argument of the jitted stage
class Stage:
  """A trained model: the config that trained it and its weights."""
  config: ml_collections.ConfigDict
  params: dict

  @property
  def num_frames(self) -> int:
    return int(self.config.data.num_frames)

  @property
  def resolution(self) -> int:
    return int(self.config.data.resolution)

  @property
  def spatial_factor(self) -> int:
    return 2**(len(self.config.model.channel_mult) - 1)


def window_starts(total: int, window: int, overlap: int) -> tuple[int, ...]:
  """Start frames of windows of ``window`` frames covering ``total`` (>= window) frames."""
  if total < window:
    raise ValueError(f'{total} frames are fewer than the window of {window}')
  stride = max(window - overlap, 1)
  starts = list(range(0, total - window + 1, stride))
  if starts[-1] != total - window:
    starts.append(total - window)
  return tuple(starts)


def stage_windows(total: int, window: int, window_overlap: int) -> tuple[int, ...]:
  """Window starts of a stage over ``total`` frames, ``window_overlap`` frames shared by
  consecutive windows (``sample.window_overlap``; -1: half a window)."""
  overlap = window_overlap if window_overlap >= 0 else window // 2
  return window_starts(total, window, min(overlap, window - 1))


def _tent_weights(window: int) -> np.ndarray:
  """Per-frame blending weights of a window: highest in the middle, > 0 at the ends."""
  position = np.arange(window, dtype=np.float32)
  return np.minimum(position + 1, window - position)


def windowed_denoiser(stage: Stage, graphdef, params, condition: jax.Array,
                      starts: tuple[int, ...], guidance_scale: float, window_batch: int,
                      text: jax.Array | None = None, text_mask: jax.Array | None = None,
                      text_guidance_scale: float = 0.0, tiles=None):
  """The UNet over overlapping temporal windows, predictions blended per frame.

  condition: (N, H, W, C); text (tokens, D) and text_mask (tokens,) for text models.
  Returns f(x (1, N, H, W, C), t (1,)) -> prediction like x. With guidance_scale w > 0 the
  prediction is cond + w * (cond - uncond), uncond being the model with an all-zero right
  view (meaningful for models trained with condition dropout); text_guidance_scale does the
  same with an empty caption (for models trained with caption dropout).

  ``tiles`` = (row starts, column starts, (tile height, tile width)) runs the UNet on every
  (window, tile) pair in turn instead, blended with tent weights in time and space, so one
  tile's activations are in memory at a time (``refiner_tiles``).
  """
  window = stage.num_frames
  index = jnp.asarray(np.array(starts)[:, None] + np.arange(window)[None])  # (W, T)
  weights = jnp.asarray(_tent_weights(window))[None, :, None, None, None]
  norm = jnp.zeros((condition.shape[0],)).at[index].add(weights[:, :, 0, 0, 0])
  model = unet.make_denoiser  # (graphdef, params, condition) -> (x, t) -> prediction
  cond_windows = condition[index]

  batch_text = None if text is None else text[None]
  batch_mask = None if text_mask is None else text_mask[None]

  def one_window(args):
    x, c, t = args
    predict = lambda c, mask: model(graphdef, params, c[None], batch_text, mask)(x[None], t)[0]
    prediction = predict(c, batch_mask)
    guided = prediction
    if guidance_scale:
      guided += guidance_scale * (prediction - predict(jnp.zeros_like(c), batch_mask))
    if text_guidance_scale and text is not None:
      guided += text_guidance_scale * (prediction - predict(c, jnp.zeros_like(batch_mask)))
    return guided

  if tiles is not None:
    return _tiled(one_window, condition, starts, window, tiles)

  def denoise(x: jax.Array, t: jax.Array) -> jax.Array:
    x_windows = x[0][index]
    ts = jnp.broadcast_to(t, (len(starts),) + t.shape)
    predictions = jax.lax.map(one_window, (x_windows, cond_windows, ts),
                              batch_size=min(window_batch, len(starts)))
    blended = jnp.zeros_like(x[0]).at[index].add(predictions * weights)
    return (blended / norm[:, None, None, None])[None]

  return denoise


@functools.partial(jax.jit, static_argnames=('stage', 'starts', 'num_steps', 'eta',
                                             'guidance_scale', 'window_batch', 't_start',
                                             'text_guidance_scale', 'tiles'))
def run_stage(params, condition, x_start, rng, text, text_mask, *, stage, starts, num_steps,
              eta, guidance_scale, window_batch, t_start, text_guidance_scale, tiles=None):
  """DDIM from ``x_start`` at ``t_start`` with one stage's windowed UNet; jitted per shape.
  ``tiles`` (``refiner_tiles``): run the UNet on overlapping spatial tiles of every window."""
  graphdef = unet.model_graphdef(stage.config)
  denoiser = windowed_denoiser(stage, graphdef, params, condition, starts, guidance_scale,
                               window_batch, text, text_mask, text_guidance_scale, tiles)
  return diffusion.ddim_sample(stage.config, denoiser, x_start, rng, num_steps, t_start=t_start,
                               eta=eta)


def refiner_tiles(height: int, width: int, tile: int, overlap: int, factor: int):
  """Spatial tiles for ``sample.refiner_tile`` px (0: none, or no smaller than the frame):
  (row starts, column starts, (tile height, tile width)), tiles rounded to the UNet's
  ``factor`` and overlapping by ``sample.refiner_tile_overlap`` px."""
  if tile < 0 or overlap < 0:
    raise ValueError('sample.refiner_tile and sample.refiner_tile_overlap must be >= 0')
  tile = _round_to(tile, factor) if tile else 0
  if not tile or (tile >= height and tile >= width):
    return None
  th, tw = min(tile, height), min(tile, width)
  rows = window_starts(height, th, min(overlap, th - 1)) if th < height else (0,)
  columns = window_starts(width, tw, min(overlap, tw - 1)) if tw < width else (0,)
  return rows, columns, (th, tw)


def _tiled(predict, condition: jax.Array, starts, window: int, tiles):
  """The denoiser over every (temporal window, spatial tile), one UNet call each, blended."""
  rows, columns, (th, tw) = tiles
  corners = np.array([(s, y, x) for s in starts for y in rows for x in columns], np.int32)
  weights = (_tent_weights(window)[:, None, None] * _tent_weights(th)[None, :, None]
             * _tent_weights(tw)[None, None, :])
  norm = np.zeros(condition.shape[:3], np.float32)
  for s, y, x in corners:
    norm[s:s + window, y:y + th, x:x + tw] += weights
  weights, corners = jnp.asarray(weights)[..., None], jnp.asarray(corners)

  def denoise(x: jax.Array, t: jax.Array) -> jax.Array:
    def add_tile(i, total):
      corner = (corners[i, 0], corners[i, 1], corners[i, 2], 0)
      x_tile = jax.lax.dynamic_slice(x[0], corner, (window, th, tw, x.shape[-1]))
      c_tile = jax.lax.dynamic_slice(condition, corner, (window, th, tw, condition.shape[-1]))
      blended = jax.lax.dynamic_slice(total, corner, x_tile.shape) + predict(
          (x_tile, c_tile, t)) * weights
      return jax.lax.dynamic_update_slice(total, blended, corner)

    total = jax.lax.fori_loop(0, len(corners), add_tile, jnp.zeros_like(x[0]))
    return (total / jnp.asarray(norm)[..., None])[None]

  return denoise


def _round_to(value: float, factor: int) -> int:
  return max(factor, int(round(value / factor)) * factor)


def base_grid(height: int, width: int, short_side: int, factor: int) -> tuple[int, int]:
  """(h, w) with the short side ``short_side`` and the aspect ratio kept, multiples of factor."""
  scale = short_side / min(height, width)
  return _round_to(height * scale, factor), _round_to(width * scale, factor)


class StereoSampler:
  """Generates the other eye's video with a base model and, optionally, a refiner."""

  def __init__(self, base: Stage, refiner: Stage | None,
               sample_config: ml_collections.ConfigDict):
    self.base, self.refiner, self.sample_config = base, refiner, sample_config
    s = sample_config
    for stage in (base, refiner):
      if stage is not None:
        unet.check_video_shape(stage.config.model, stage.num_frames, stage.resolution,
                               stage.resolution)
    if s.base_num_steps < 1 or (refiner is not None and s.refiner_num_steps < 1):
      raise ValueError('sample.base_num_steps and sample.refiner_num_steps must be >= 1')
    if not 0 < s.refiner_t_start <= 1:
      raise ValueError(f'sample.refiner_t_start must be in (0, 1], got {s.refiner_t_start}')
    if s.input_eye not in ('right', 'left'):
      raise ValueError(f"sample.input_eye must be 'right' or 'left', got {s.input_eye!r}")

  @property
  def base_short_side(self) -> int:
    return int(self.sample_config.base_resolution) or self.base.resolution

  def _stage(self, stage: Stage, condition: np.ndarray, x_start: jax.Array,
             rng: jax.Array, num_steps: int, t_start: float, caption: str) -> np.ndarray:
    s = self.sample_config
    starts = stage_windows(condition.shape[0], stage.num_frames, s.window_overlap)
    text = text_mask = None
    if text_encoding.uses_text(stage.config):
      encode = text_encoding.caption_encoder(stage.config)
      if encode is None:
        raise ValueError('this model reads precomputed text embeddings; sampling it needs '
                         'a text.encoder in its config')
      text, text_mask = (jnp.asarray(a) for a in encode(caption))
    tiles = None
    if stage is self.refiner:
      tiles = refiner_tiles(condition.shape[1], condition.shape[2], s.refiner_tile,
                            s.refiner_tile_overlap, stage.spatial_factor)
    out = run_stage(stage.params, jnp.asarray(condition), x_start, rng, text, text_mask,
                    stage=stage, starts=starts, num_steps=int(num_steps), eta=float(s.eta),
                    guidance_scale=float(s.guidance_scale), window_batch=int(s.window_batch),
                    t_start=float(t_start), text_guidance_scale=float(s.text_guidance_scale),
                    tiles=tiles)
    return np.asarray(out[0])

  def convert(self, video: np.ndarray, fps: float = 0.0, seed: int | None = None,
              return_base: bool = False, caption: str | None = None):
    """The other eye's view of a (N, H, W, 3) uint8 video; same shape.

    With ``return_base`` also returns the base stage's output upsampled to the same shape.
    ``caption`` (default ``sample.caption``) is read by models with text conditioning.
    """
    if video.ndim != 4 or video.shape[-1] != 3 or video.shape[0] == 0:
      raise ValueError(f'expected a (frames, height, width, 3) video with >= 1 frame, got '
                       f'{video.shape}')
    s = self.sample_config
    caption = s.caption if caption is None else caption
    mirror = s.input_eye == 'left'
    if mirror:  # the model makes left-from-right; a left input is mirrored into a "right" one
      video = video[:, :, ::-1]
    n, height, width, _ = video.shape
    indices = frame_ops.resample_frame_indices(n, fps, float(s.model_fps)) if fps else np.arange(n)
    frames = video[indices]
    # Short videos are padded to one window by repeating the last frame.
    window = max(self.base.num_frames, self.refiner.num_frames if self.refiner else 0)
    padded = np.concatenate([frames, np.repeat(frames[-1:], max(0, window - len(frames)), 0)])
    rng = jax.random.PRNGKey(s.seed if seed is None else seed)
    base_rng, refine_rng, noise_rng, base_noise_rng = jax.random.split(rng, 4)

    bh, bw = base_grid(height, width, self.base_short_side, self.base.spatial_factor)
    condition = frame_ops.to_model_range(frame_ops.resize_clip(padded, bh, bw))
    noise = jax.random.normal(base_noise_rng, (1,) + condition.shape)
    base_out = self._stage(self.base, condition, noise, base_rng,
                           s.base_num_steps, 1.0, caption)
    base_up = frame_ops.resize_clip(frame_ops.from_model_range(base_out), height, width)
    result = base_up
    if self.refiner is not None:
      factor = self.refiner.spatial_factor
      rh, rw = _round_to(height, factor), _round_to(width, factor)
      condition = frame_ops.to_model_range(frame_ops.resize_clip(padded, rh, rw))
      up = jnp.asarray(frame_ops.resize_clip(base_out, rh, rw))[None]
      # The start is a noise level quoted on the cosine schedule, met on the refiner's own.
      t0 = diffusion.noise_level_time(self.refiner.config.diffusion.schedule,
                                      float(s.refiner_t_start))
      eps = jax.random.normal(noise_rng, up.shape)
      x_start = diffusion.add_noise(self.refiner.config.diffusion.schedule, up, eps,
                                    jnp.full((1,), t0))
      refined = self._stage(self.refiner, condition, x_start, refine_rng,
                            s.refiner_num_steps, t0, caption)
      result = frame_ops.resize_clip(frame_ops.from_model_range(refined), height, width)

    def restore(x):
      x = x[:len(frames)]
      if fps and len(frames) != n:  # back to the input's frame rate
        x = x[np.clip(np.round(np.arange(n) * len(frames) / n).astype(int), 0, len(frames) - 1)]
      return x[:, :, ::-1] if mirror else x

    return (restore(result), restore(base_up)) if return_base else restore(result)
