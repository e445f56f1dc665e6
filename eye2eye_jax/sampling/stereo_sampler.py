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
from jax.sharding import NamedSharding, PartitionSpec

from eye2eye_jax import diffusion
from eye2eye_jax.data import frame_ops, text_encoding
from eye2eye_jax.models import networks
from eye2eye_jax.sampling import convergence, latent_space, memory_fit, window_blending
from eye2eye_jax.stereo_analysis import comfort


@dataclasses.dataclass(frozen=True, eq=False)
class Stage:
  """A trained model: the config that trained it (kept as an immutable, hashable copy: it
  is what the jitted stage is compiled for) and its weights (an argument of that program,
  never part of its cache key)."""
  config: ml_collections.FrozenConfigDict
  params: dict

  def __post_init__(self):
    # From a plain copy: a FrozenConfigDict made from a ConfigDict (or from another
    # FrozenConfigDict) keeps references into the mutable original.
    object.__setattr__(self, 'config', ml_collections.FrozenConfigDict(self.config.to_dict()))

  @property
  def num_frames(self) -> int:
    return int(self.config.data.num_frames)

  @property
  def resolution(self) -> int:
    return int(self.config.data.resolution)

  @property
  def spatial_factor(self) -> int:
    return networks.spatial_factor(self.config.model)

  @property
  def window(self) -> int:
    """Frames of one window as the network sees them (a Wan model's latent frames)."""
    return networks.model_frames(self.config.model, self.num_frames)


def piece_predictor(config, params, guidance_scale: float, text: jax.Array | None = None,
                    text_mask: jax.Array | None = None, text_guidance_scale: float = 0.0,
                    activation_sharding=None, strength: jax.Array | None = None):
  """The network of ``config`` on a batch of pieces: f(x, c (B, T, H, W, C), t (B,)) ->
  prediction like x.

  text (tokens, D) and text_mask (tokens,) are shared by the batch. With guidance_scale
  w > 0 the prediction is cond + w * (cond - uncond), uncond being the model with an
  all-zero right view (meaningful for models trained with condition dropout);
  text_guidance_scale does the same with an empty caption (for models trained with caption
  dropout). ``activation_sharding`` pins the UNet's activations (``window_blending``);
  ``strength`` (a scalar) is the disparity scale asked of a strength-conditioned model.
  """
  graphdef = networks.graphdef(config)

  def predict(x, c, t):
    batch = lambda a: None if a is None else jnp.broadcast_to(a[None], (x.shape[0],) + a.shape)
    batch_text, batch_mask, batch_strength = batch(text), batch(text_mask), batch(strength)
    model = lambda c, mask: networks.make_denoiser(config, graphdef, params, c, batch_text,
                                                   mask, activation_sharding,
                                                   batch_strength)(x, t)
    prediction = model(c, batch_mask)
    guided = prediction
    if guidance_scale:
      guided += guidance_scale * (prediction - model(jnp.zeros_like(c), batch_mask))
    if text_guidance_scale and text is not None:
      guided += text_guidance_scale * (prediction - model(c, jnp.zeros_like(batch_mask)))
    return guided

  return predict


@functools.partial(jax.jit, static_argnames=('config', 'starts', 'num_steps', 'eta',
                                             'guidance_scale', 'window_batch', 't_start',
                                             'text_guidance_scale', 'tiles', 'mesh', 'solver'))
def run_stage(params, condition, x_start, rng, text, text_mask, *, config, starts, num_steps,
              eta, guidance_scale, window_batch, t_start, text_guidance_scale, tiles=None,
              mesh=None, strength=None, solver='ddim'):
  """``solver`` (``diffusion.SOLVERS``) from ``x_start`` at ``t_start`` in ``num_steps``
  evaluations of the UNet of ``config`` (a stage's ``FrozenConfigDict``: equal configs share
  a program) with weights ``params``, blended over windows ``starts`` (and ``tiles``,
  ``window_blending.refiner_tiles``), ``window_batch`` pieces per device per call, spread
  over ``mesh`` (``window_blending.sampling_mesh``); jitted per shape (``strength``, a
  traced scalar, does not recompile)."""
  predict = piece_predictor(config, params, guidance_scale, text,
                            text_mask, text_guidance_scale,
                            window_blending.activation_layout(mesh), strength)
  window = networks.model_frames(config.model, int(config.data.num_frames))
  denoiser = window_blending.blended_denoiser(predict, condition, starts, window, tiles,
                                              window_batch, mesh)
  return diffusion.sample(config, denoiser, x_start, rng, num_steps, t_start=t_start,
                          eta=eta, solver=solver)


def _round_to(value: float, factor: int) -> int:
  return max(factor, int(round(value / factor)) * factor)


def base_grid(height: int, width: int, short_side: int, factor: int) -> tuple[int, int]:
  """(h, w) with the short side ``short_side`` and the aspect ratio kept, multiples of factor."""
  scale = short_side / min(height, width)
  return _round_to(height * scale, factor), _round_to(width * scale, factor)


def check_strength(strength: float, base_config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the accepted range when ``sample.strength`` cannot be made:
  outside the base model's ``model.strength_range``, or not 1 for a model without strength
  conditioning."""
  if not base_config.model.strength_conditioning:
    if strength != 1.0:
      raise ValueError(f'sample.strength={strength}: this base model has no strength '
                       'conditioning (model.strength_conditioning=False); it only makes '
                       'strength 1 (sample.base_resolution changes its disparity instead)')
    return
  low, high = base_config.model.strength_range
  if not low <= strength <= high:
    raise ValueError(f'sample.strength={strength}: this base model was trained for strengths '
                     f'in [{low}, {high}] (model.strength_range)')


def frame_noise(key: jax.Array, first_frame: int, shape: tuple[int, ...]) -> jax.Array:
  """Gaussian noise of ``shape`` (1, N, H, W, C) whose frame i is drawn from ``key`` folded
  with ``first_frame + i``: a frame gets the same noise in whichever chunk of a long video
  it is converted (``chunked_conversion``)."""
  draw = lambda i: jax.random.normal(jax.random.fold_in(key, i), shape[2:])
  return jax.vmap(draw)(jnp.arange(shape[1]) + first_frame)[None]


class StereoSampler:
  """Generates the other eye's video with a base model and, optionally, a refiner."""

  def __init__(self, base: Stage, refiner: Stage | None,
               sample_config: ml_collections.ConfigDict):
    self.base, self.refiner, self.sample_config = base, refiner, sample_config
    s = sample_config
    for stage in (base, refiner):
      if stage is not None:
        networks.check_video_shape(stage.config.model, stage.num_frames, stage.resolution,
                                   stage.resolution)
    if s.base_num_steps < 1 or (refiner is not None and s.refiner_num_steps < 1):
      raise ValueError('sample.base_num_steps and sample.refiner_num_steps must be >= 1')
    if not 0 < s.refiner_t_start <= 1:
      raise ValueError(f'sample.refiner_t_start must be in (0, 1], got {s.refiner_t_start}')
    if s.input_eye not in ('right', 'left'):
      raise ValueError(f"sample.input_eye must be 'right' or 'left', got {s.input_eye!r}")
    if s.window_batch < 1:
      raise ValueError(f'sample.window_batch must be >= 1, got {s.window_batch}')
    window = min(stage.window for stage in (base, refiner) if stage is not None)
    if not -1 <= s.window_overlap < window:
      raise ValueError(f'sample.window_overlap={s.window_overlap}: must be -1 (half a window) '
                       f'or in [0, {window - 1}] (frames shared by windows of {window})')
    if s.refiner_tile < -1:
      raise ValueError(f'sample.refiner_tile={s.refiner_tile}: -1 (chosen to fit the device), '
                       '0 (whole frames) or a tile side in px')
    if s.refiner_tile > 0 and any(stage is not None and stage.config.model.architecture != 'unet'
                                  for stage in (base, refiner)):
      raise ValueError(f'sample.refiner_tile={s.refiner_tile}: a Wan stage denoises whole '
                       'latent frames (sample.vae_tile bounds its VAE\'s memory); set it to 0')
    if s.model_fps < 0:
      raise ValueError(f'sample.model_fps={s.model_fps}: must be >= 0 (0: the input\'s rate)')
    for stage in (base, refiner):
      if stage is not None:
        diffusion.check_solver(s.solver, float(s.eta), stage.config.diffusion.schedule)
    check_strength(float(s.strength), base.config)
    convergence.check_convergence(s.convergence)
    # A bad comfort or report setting fails here, before any work.
    comfort.Limits.from_config(s.comfort)
    comfort.PairAnalyzer(s.comfort.analysis_width, s.comfort.search)
    if not s.convergence_smoothing_s >= 0:
      raise ValueError(f'sample.convergence_smoothing_s={s.convergence_smoothing_s}: must be '
                       '>= 0 (seconds either side)')
    self.mesh = window_blending.sampling_mesh(s)
    self._placed = {}  # stage -> its weights on every device of the mesh
    self._codecs = {}  # stage -> the space its network denoises in (latent_space)
    for stage in (base, refiner):  # a bad VAE streaming setting fails here, before work
      if stage is not None:
        self._space(stage)
    self._refiner_tiling = {}  # (height, width) of the input -> (refiner tile, window batch)

  def _on_mesh(self, tree):
    """``tree`` copied to every device of the sampling mesh (as it is on one device)."""
    if self.mesh is None:
      return tree
    return jax.device_put(tree, NamedSharding(self.mesh, PartitionSpec()))

  @property
  def base_short_side(self) -> int:
    return int(self.sample_config.base_resolution) or self.base.resolution

  def plan_memory(self, height: int, width: int) -> tuple[int, int]:
    """(refiner tile, refiner pieces per call) for (height, width) input frames, the tile
    chosen to fit the device when ``sample.refiner_tile`` is -1 (``memory_fit``); raises
    ValueError naming the setting when the base stage or no refiner tile fits. Cheap, so
    a file's conversion asks it before any work."""
    if (height, width) not in self._refiner_tiling:
      s = self.sample_config
      tiling = (int(s.refiner_tile), int(s.window_batch))
      if self.base.config.model.architecture != 'unet':  # memory_fit models the UNet only
        self._refiner_tiling[(height, width)] = (0, tiling[1])
        return self._refiner_tiling[(height, width)]
      budget = memory_fit.memory_budget()
      memory_fit.check_base_fits(self.base.config.model, self.base.num_frames,
                                 *base_grid(height, width, self.base_short_side,
                                            self.base.spatial_factor), budget)
      if self.refiner is not None and s.refiner_tile == -1:
        factor = self.refiner.spatial_factor
        tiling = memory_fit.choose_refiner_tiling(
            self.refiner.config.model, self.refiner.num_frames, _round_to(height, factor),
            _round_to(width, factor), int(s.window_batch), budget, self.refiner.resolution,
            int(s.refiner_tile_overlap))
      self._refiner_tiling[(height, width)] = tiling
    return self._refiner_tiling[(height, width)]

  def _space(self, stage: Stage) -> latent_space.Pixels | latent_space.WanLatents:
    """The space ``stage``'s network denoises in (its VAE's latents for a Wan model)."""
    if stage not in self._codecs:
      self._codecs[stage] = latent_space.codec(stage.config, stage.params, self.sample_config)
    return self._codecs[stage]

  def _stage(self, stage: Stage, condition: np.ndarray, x_start: jax.Array,
             rng: jax.Array, num_steps: int, t_start: float, caption: str,
             tiling: tuple[int, int]) -> np.ndarray:
    """One stage over ``condition``; ``tiling`` is ``plan_memory``'s (tile, pieces per call),
    used by the refiner (which may be the same model as the base)."""
    s = self.sample_config
    window_batch = int(s.window_batch)
    starts = window_blending.stage_windows(condition.shape[0], stage.window, s.window_overlap)
    text = text_mask = None
    # A Wan model holds its empty caption's embedding: no caption needs no text encoder.
    stored = not caption and stage.config.model.architecture == 'wan'
    if text_encoding.uses_text(stage.config) and not stored:
      encode = text_encoding.caption_encoder(stage.config)
      if encode is None:
        raise ValueError('this model reads precomputed text embeddings; sampling it needs '
                         'a text.encoder in its config')
      text, text_mask = (jnp.asarray(a) for a in encode(caption))
    tiles = None
    if stage is self.refiner:
      tile, window_batch = tiling
      tiles = window_blending.refiner_tiles(condition.shape[1], condition.shape[2], tile,
                                            s.refiner_tile_overlap, stage.spatial_factor)
    if stage not in self._placed:
      self._placed[stage] = self._on_mesh(stage.params)
    strength = (jnp.float32(s.strength) if stage.config.model.strength_conditioning
                else None)
    condition, x_start, rng, text, text_mask, strength = self._on_mesh(
        (jnp.asarray(condition), x_start, rng, text, text_mask, strength))
    out = run_stage(self._placed[stage], condition, x_start, rng, text, text_mask,
                    strength=strength,
                    config=stage.config, starts=starts, num_steps=int(num_steps),
                    eta=float(s.eta),
                    guidance_scale=float(s.guidance_scale), window_batch=window_batch,
                    t_start=float(t_start), text_guidance_scale=float(s.text_guidance_scale),
                    tiles=tiles, mesh=self.mesh, solver=s.solver)
    return np.asarray(out[0])

  def convert(self, video: np.ndarray, fps: float = 0.0, seed: int | None = None,
              return_base: bool = False, caption: str | None = None, first_frame: int = 0):
    """The other eye's view of a (N, H, W, 3) uint8 video; same shape.

    With ``return_base`` also returns the base stage's output upsampled to the same shape.
    ``caption`` (default ``sample.caption``) is read by models with text conditioning.
    ``first_frame``: where ``video`` starts in a longer video (its frames' noise is drawn
    by their place there, ``frame_noise``).
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
    tiling = self.plan_memory(height, width)
    indices = frame_ops.resample_frame_indices(n, fps, float(s.model_fps)) if fps else np.arange(n)
    frames = video[indices]
    # Short videos are padded to one window by repeating the last frame (and to a length
    # every stage's network takes: a Wan VAE's 1 + 4k frames).
    stages = [stage for stage in (self.base, self.refiner) if stage is not None]
    length = max([len(frames)] + [stage.num_frames for stage in stages])
    length = max(networks.valid_frames(stage.config.model, length) for stage in stages)
    padded = np.concatenate([frames, np.repeat(frames[-1:], length - len(frames), 0)])
    rng = jax.random.PRNGKey(s.seed if seed is None else seed)
    base_rng, refine_rng, noise_rng, base_noise_rng = jax.random.split(rng, 4)

    bh, bw = base_grid(height, width, self.base_short_side, self.base.spatial_factor)
    space = self._space(self.base)
    condition = space.encode(frame_ops.to_model_range(frame_ops.resize_clip(padded, bh, bw)))
    noise = frame_noise(base_noise_rng, space.model_frame(first_frame), (1,) + condition.shape)
    base_out = space.decode(self._stage(self.base, condition, noise, base_rng,
                                        s.base_num_steps, 1.0, caption, tiling))
    base_up = frame_ops.resize_clip(frame_ops.from_model_range(base_out), height, width)
    result = base_up
    if self.refiner is not None:
      factor = self.refiner.spatial_factor
      rh, rw = _round_to(height, factor), _round_to(width, factor)
      space = self._space(self.refiner)
      condition = space.encode(frame_ops.to_model_range(frame_ops.resize_clip(padded, rh, rw)))
      up = jnp.asarray(space.encode(frame_ops.resize_clip(base_out, rh, rw)))[None]
      # The start is a noise level quoted on the cosine schedule, met on the refiner's own.
      t0 = diffusion.noise_level_time(self.refiner.config.diffusion.schedule,
                                      float(s.refiner_t_start))
      eps = frame_noise(noise_rng, space.model_frame(first_frame), up.shape)
      x_start = diffusion.add_noise(self.refiner.config.diffusion.schedule, up, eps,
                                    jnp.full((1,), t0))
      refined = space.decode(self._stage(self.refiner, condition, x_start, refine_rng,
                                         s.refiner_num_steps, t0, caption, tiling))
      result = frame_ops.resize_clip(frame_ops.from_model_range(refined), height, width)

    def restore(x):
      x = x[:len(frames)]
      if fps and len(frames) != n:  # back to the input's frame rate
        x = x[np.clip(np.round(np.arange(n) * len(frames) / n).astype(int), 0, len(frames) - 1)]
      return x[:, :, ::-1] if mirror else x

    return (restore(result), restore(base_up)) if return_base else restore(result)
