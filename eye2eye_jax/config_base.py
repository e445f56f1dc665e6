"""Every field an experiment config has, with defaults; ``configs/*.py`` override them.

This is the one place defaults live: a config file starts from ``base_config()``, and a
config stored with a checkpoint is merged over it when it is loaded (``with_defaults``), so
no module needs a fallback for a field defined here.
"""

import importlib.util
import pathlib
import traceback

from absl import logging
import ml_collections


def load_config_file(path: str | pathlib.Path) -> ml_collections.ConfigDict:
  """``get_config()`` of a config file (configs build on one another this way)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f'config file {path} does not exist')
  spec = importlib.util.spec_from_file_location(f'config_{path.stem}', path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
    return module.get_config()
  except AttributeError as error:  # a locked ConfigDict refusing a key it does not have
    raise ValueError(f'config file {path}{_line_in(path, error)}: {_first_sentence(error)}'
                     ) from error


def _line_in(path: pathlib.Path, error: BaseException) -> str:
  """' line N' of the innermost frame of ``error`` that ran in ``path``, else ''."""
  frames = [f for f in traceback.extract_tb(error.__traceback__)
            if pathlib.Path(f.filename).resolve() == path.resolve()]
  return f' line {frames[-1].lineno}' if frames else ''


def _first_sentence(error: BaseException) -> str:
  """A locked ConfigDict's refusal, without the field list it appends."""
  text = str(error).strip('\'"')
  return text.split(' Other fields present')[0].split('\n')[0]


def base_config() -> ml_collections.ConfigDict:
  """The full config tree, locked: experiments change values, and a key it does not have (a
  typo) is an error, not a new field."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # parameter initialisation and the training steps' randomness
  c.config_file = ''  # the file this config came from (the train command records it)
  c.compilation_cache_dir = ''  # '' -> $JAX_COMPILATION_CACHE_DIR, else .cache/jax

  # The device mesh (eye2eye_jax/common/sharding.py). Sizes per slice; one -1 takes the rest.
  c.mesh = ml_collections.ConfigDict()
  c.mesh.axes = ('data', 'fsdp', 'tensor')  # names of the mesh's axes, in order
  c.mesh.shape = (-1, 1, 1)  # e.g. (1, -1, 1): FSDP over every device of a slice
  c.mesh.dcn_shape = (1, 1, 1)  # slices along each axis (multi-slice: (slices, 1, 1))
  # Logical axis -> mesh axes; for each dimension the first rule that fits is used.
  c.mesh.rules = (
      ('batch', ('data', 'fsdp')),
      ('conv_out', ('fsdp', 'tensor')), ('conv_out', 'fsdp'), ('conv_out', 'tensor'),
      ('embed_out', ('fsdp', 'tensor')), ('embed_out', 'fsdp'), ('embed_out', 'tensor'),
      ('conv_in', 'fsdp'), ('embed_in', 'fsdp'),
      ('heads', 'tensor'),
  )

  c.data = ml_collections.ConfigDict()
  c.data.builder = 'synthetic_stereo'  # TFDS dataset name
  c.data.builder_config = 'demo'  # the builder's config (synthetic_stereo: demo, diverse, ...)
  c.data.data_dir = ''  # '' -> $TFDS_DATA_DIR, else outputs/tfds
  c.data.manual_dir = ''  # inputs of builders that need them (stereo4d: npz/ and videos/)
  c.data.task = 'stereo'  # 'stereo' (right -> left) or 'video' (a backbone: clips alone)
  c.data.video_field = 'right'  # the records' field a 'video' task trains on
  c.data.view = 'downsample'  # 'downsample' (base model) or 'crop' (refiner)
  c.data.resolution = 32  # height of the clip the model sees (its width too when square)
  c.data.width = 0  # width of the clip the model sees; 0: square, data.resolution
  # The records hold a latent model's VAE latents of both views (written by
  # `build_data --latents`), not pixels: the train step does not encode (models/networks.py).
  c.data.latents = False
  c.data.num_frames = 8  # frames per training clip (taken from the start of each record)
  c.data.batch_size = 8  # global batch
  c.data.shuffle_seed = 0  # order of the records in each epoch
  c.data.num_workers = 0  # grain worker processes (0: in the main process)
  c.data.mirror_augment = True  # mirror both views and swap eyes; keeps disparity >= 0
  # Zoom by resampling: a square of side (the view's usual side) / z, z drawn log-uniformly
  # from this range, resized to data.resolution multiplies every disparity by z; the
  # example's strength is z times its record's baseline. Only down-sampling is done (no
  # up-sampled blur to read the zoom from), so z <= 1 for 'crop' and z >= 1 for
  # 'downsample'. (1, 1): off.
  c.data.zoom_range = (1.0, 1.0)

  c.model = ml_collections.ConfigDict()
  c.model.channels = 32  # channels at the finest level
  c.model.channel_mult = (1, 2, 2)  # channels per level, as multiples of model.channels
  c.model.temporal_downsample = (False, True)  # per downsampling step: halve time too
  c.model.num_res_blocks = 1  # residual blocks per level
  c.model.num_heads = 4  # attention heads at the coarsest level
  c.model.text_embed_dim = 0  # 0: no text conditioning
  c.model.video_channels = 3  # channels of the generated video (RGB)
  c.model.condition_channels = 3  # the right view; 0: an unconditional video backbone
  # How a Wan model takes the right view's latents: 'channels' (concatenated at the patch
  # embedding, the paper's way) or 'frames' (embedded alike and appended along time, twice
  # the tokens; docs/wan.md compares them). The UNet always concatenates channels.
  c.model.condition_join = 'channels'
  c.model.spatial_only = False  # True: an image UNet (no temporal layers), a 2-D backbone
  c.model.norm_per_frame = False  # group norms per frame (as the image UNet a model inflates)
  c.model.dtype = 'float32'  # compute dtype: 'float32' or 'bfloat16' (weights stay float32)
  c.model.remat = 'none'  # 'none', 'full' (recompute each block) or 'dots' (keep matmuls)
  # Queries per block in the attention layers (0: all at once, the score matrix whole);
  # e.g. 512 bounds a 512 px refiner's spatial attention (eye2eye_jax/models/attention.py).
  c.model.attention_chunk = 0
  # Self-attention kernel: 'xla' (materialised, or chunked above), 'cudnn' (fused, NVIDIA
  # GPUs, bf16) or 'pallas_flash' (the Pallas flash kernel, TPUs); models/attention.py.
  c.model.attention_kernel = 'xla'
  # Row (epipolar) attention: at these levels (0: full resolution) each position attends to
  # its own row of its own frame, where a rectified pair's correspondences lie, with a
  # rotary encoding of the horizontal position (models/row_attention.py). () : none.
  c.model.row_attention = ()
  c.model.row_attention_head_dim = 16  # width of each row-attention head (heads = C / it)
  c.model.row_attention_rope_base = 1000.0  # rotary wavelengths reach 2 pi x this, in px
  # Frames whose rows are attended at once (0: the whole clip); e.g. 1 keeps a 512 px
  # refiner window's row queries, keys and values to one frame's worth at a time.
  c.model.row_attention_frames_per_block = 0
  # The 3D strength (the disparity scale asked for) as an input of the UNet, added to the
  # time embedding; trained on examples whose scale is known (data.zoom_range, records with
  # a baseline). False: the model makes its training data's own disparity scale.
  c.model.strength_conditioning = False
  # Strengths a strength-conditioned model was trained for; the sampler accepts these only.
  c.model.strength_range = (0.25, 2.5)
  # 'unet' (the space-time UNet above) or 'wan' (Wan 2.1's transformer and video VAE,
  # eye2eye_jax/models/wan_transformer.py and wan_vae.py, shaped by model.wan*).
  c.model.architecture = 'unet'
  # The Wan transformer's shape, named as in its released config.json (defaults: T2V-1.3B).
  c.model.wan = ml_collections.ConfigDict()
  c.model.wan.patch_size = (1, 2, 2)  # latent frames, rows, columns per token
  c.model.wan.num_attention_heads = 12  # heads (width = heads x head dim)
  c.model.wan.attention_head_dim = 128  # width of each head
  c.model.wan.in_channels = 16  # latent channels in
  c.model.wan.out_channels = 16  # latent channels predicted
  c.model.wan.text_dim = 4096  # width of the text embeddings (umT5-XXL)
  c.model.wan.freq_dim = 256  # width of the timestep sinusoid
  c.model.wan.ffn_dim = 8960  # hidden width of each feed-forward
  c.model.wan.num_layers = 30  # transformer blocks
  c.model.wan.cross_attn_norm = True  # a LayerNorm with scale and bias before cross-attention
  c.model.wan.eps = 1e-6  # epsilon of every norm
  c.model.wan.rope_max_seq_len = 1024  # most token positions per axis the rotary tables cover
  # The Wan video VAE's shape, named as in its released config.json.
  c.model.wan_vae = ml_collections.ConfigDict()
  c.model.wan_vae.base_dim = 96  # channels at full resolution
  c.model.wan_vae.z_dim = 16  # latent channels
  c.model.wan_vae.dim_mult = (1, 2, 4, 4)  # channels per level, as multiples of base_dim
  c.model.wan_vae.num_res_blocks = 2  # residual blocks per encoder level (one more decoding)
  c.model.wan_vae.temperal_downsample = (False, True, True)  # per level: halve time too
  # Per-channel statistics of the raw latents: the transformer sees (z - mean) / std
  # (an import copies the release's).
  c.model.wan_vae.latents_mean = (0.0,) * 16  # per-channel mean of the raw latents
  c.model.wan_vae.latents_std = (1.0,) * 16  # per-channel std of the raw latents

  # Captions -> embeddings for models with text (eye2eye_jax/data/text_encoding.py).
  c.text = ml_collections.ConfigDict()
  c.text.encoder = ''  # 'hashed_words', 'precomputed' or 'package.module:function'
  c.text.max_tokens = 16  # caption tokens kept (padded or cut to this many)

  c.diffusion = ml_collections.ConfigDict()
  # Noise schedule in continuous time: 'cosine', 'linear' or rectified flow, 'flow' or
  # 'flow:S' with Wan's timestep shift S (3 for 480p, 5 for 720p); eye2eye_jax/diffusion.py.
  c.diffusion.schedule = 'cosine'
  c.diffusion.prediction = 'v'  # what the model predicts: 'v', 'eps' or 'flow' (eps - x0)
  c.diffusion.clip_x0 = True  # clip the samplers' x0 estimates to [-1, 1] (False: latents)

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 1000  # optimizer steps of the run
  # Micro-batches per optimizer step: data.batch_size clips per update, taken k at a time
  # over the devices' share, so the activations of only batch_size / k are held at once.
  c.train.grad_accum_steps = 1
  c.train.learning_rate = 1e-3  # AdamW's rate after warmup (constant)
  c.train.warmup_steps = 100  # linear warmup from 0
  c.train.weight_decay = 0.0  # AdamW's decoupled weight decay
  c.train.grad_clip_norm = 1.0  # gradients are clipped to this global norm
  c.train.ema_decay = 0.999  # of the EMA weights that sampling and export use
  # Resume in a workdir whose checkpoints cannot be used (another model, unreadable) by
  # setting them aside (renamed, not deleted) and starting over; False: stop with an error.
  c.train.allow_fresh_start = False
  c.train.init_checkpoint = ''  # start a fresh run from these weights (e.g. 'bundled:demo')
  c.train.condition_dropout = 0.0  # chance of training without the right view (for guidance)
  c.train.caption_dropout = 0.0  # chance of training without the caption (text guidance)
  # Weights kept fixed: groups 'spatial', 'temporal', 'text' (UNet), 'self_attention',
  # 'cross_attention', 'feed_forward', 'modulation' (Wan), or regexes of parameter paths.
  c.train.freeze = ()
  c.train.eval_every = 0  # steps between held-out losses (eval/loss); 0: never
  c.train.eval_batches = 4  # validation batches in each held-out loss
  # Splits of the held-out loss: 'validation' is logged as eval/loss, any other as
  # eval/loss_<split> (e.g. 'validation_unseen', textures training never sees).
  c.train.eval_splits = ('validation',)
  c.train.log_every = 50  # steps between TensorBoard figures (loss, mfu, ...)
  # (first, last): trace these steps with jax.profiler into the workdir (TensorBoard's
  # Profile tab); () for none.
  c.train.profile_steps = ()
  c.train.checkpoint_every = 500  # steps between orbax checkpoints
  c.train.keep_checkpoints = 3  # newest checkpoints kept; older ones are deleted
  c.train.sample_every = 0  # steps between validation clips sampled to TensorBoard; 0: never
  c.train.sample_clips = 2  # validation clips sampled each time

  # Progressive distillation (training/distillation.py): with teacher_steps > 0 the run
  # distils train.init_checkpoint (the teacher, sampled in teacher_steps DDIM steps) into a
  # student that samples in student_steps, halving the steps every steps_per_round steps
  # (train.num_steps = rounds x steps_per_round). t_start: the sampling interval's start
  # as a cosine-schedule time (1 for a base model, sample.refiner_t_start for a refiner).
  c.distill = ml_collections.ConfigDict()
  c.distill.teacher_steps = 0  # the teacher's DDIM steps at the start; 0: no distillation
  c.distill.student_steps = 2  # the steps the last student samples in
  c.distill.steps_per_round = 500  # training steps before the steps halve
  c.distill.t_start = 1.0  # start of the sampling interval (cosine-schedule time)

  c.sample = ml_collections.ConfigDict()
  # Checkpoints: a training workdir, a checkpoint directory, or bundled:NAME.
  c.sample.checkpoint = ''  # the base model
  # distilled=True samples with the distilled students instead (training/distillation.py),
  # each in its own step count and interval, read from its config: DDIM, no guidance.
  c.sample.distilled = False
  c.sample.distilled_checkpoint = ''  # the base student
  c.sample.distilled_refiner_checkpoint = ''  # '' -> the base student alone
  c.sample.refiner_checkpoint = ''  # '' -> base model only (its output upsampled)
  c.sample.use_ema = True  # the EMA weights of a training checkpoint (False: raw weights)
  c.sample.base_resolution = 0  # short side the base samples at; 0: its training resolution
  c.sample.base_num_steps = 50  # solver steps of the base stage
  c.sample.refiner_num_steps = 48  # solver steps of the refiner from refiner_t_start
  # The base output is noised to this level, then refined: a time of the cosine schedule
  # (0.9: signal alpha 0.156), met on the refiner's own schedule (diffusion.noise_level_time).
  c.sample.refiner_t_start = 0.9
  # The 3D strength: the disparity scale asked of strength-conditioned models (1: their
  # training data's own scale), within their model.strength_range.
  c.sample.strength = 1.0
  # Where the screen plane sits: this disparity (a fraction of the frame width) is moved to
  # zero by shifting the two eyes apart, and the borders this uncovers are cropped and the
  # frames scaled back to their size. 0: as generated. 'auto': chosen per scene from the
  # generated disparity to keep the depth within sample.comfort's limits, ramped over
  # convergence_smoothing_s either side (eye2eye_jax/sampling/auto_convergence.py).
  c.sample.convergence = ml_collections.FieldReference(0.0, field_type=object)
  c.sample.convergence_smoothing_s = 0.5  # 'auto': seconds either side it ramps over
  # A comfort report per converted video, <stem>_stereo.json and <stem>_stereo.png: the
  # disparity written against the limits below, window violations, vertical disparity and
  # flicker, and a one-line verdict (eye2eye_jax/stereo_analysis/comfort.py).
  c.sample.report = True
  c.sample.comfort = ml_collections.ConfigDict()
  # Limits, fractions of the frame width: in front of the screen 1%, behind it 2% (BSkyB's
  # 3D technical guidelines), within max_angle_deg of the screen plane for a screen filling
  # screen_angle_deg of view (the 1-degree rule; 33: 16:9 seen from 3 picture heights).
  c.sample.comfort.in_front = 0.01
  c.sample.comfort.behind = 0.02  # the farthest content behind the screen
  c.sample.comfort.max_angle_deg = 1.0  # either, as a visual angle from the screen plane
  c.sample.comfort.screen_angle_deg = 33.0  # horizontal angle the screen fills for a viewer
  # This project's defect thresholds (no published figure): |vertical disparity| as a
  # fraction of the height, and mean disparity flicker per frame of still content.
  c.sample.comfort.vertical = 0.002
  c.sample.comfort.flicker = 0.001  # of the width (both never below 0.25 px measured)
  c.sample.comfort.frames_over = 0.01  # share of frames allowed over a limit
  c.sample.comfort.analysis_width = 480  # px: wider frames are measured shrunk to this
  c.sample.comfort.search = 0.08  # disparity searched either side of the screen plane
  # The refiner on overlapping spatial tiles of this many px (0: whole frames), blended;
  # bounds its memory on large frames (one tile's activations at a time). -1: whole frames
  # when they fit the device's memory, else the largest tile (and the most tiles per call,
  # up to window_batch) that does (eye2eye_jax/sampling/memory_fit.py).
  c.sample.refiner_tile = -1
  c.sample.refiner_tile_overlap = 32  # px shared by neighbouring tiles
  c.sample.guidance_scale = 0.0  # classifier-free guidance on the right view; 0 = off
  c.sample.caption = ''  # text for models with text conditioning ('' = none)
  c.sample.text_guidance_scale = 0.0  # classifier-free guidance on the caption; 0 = off
  # 'ddim' or 'dpmpp_2m' (DPM-Solver++(2M): second order, fewer steps for the same quality)
  c.sample.solver = 'ddim'
  c.sample.eta = 0.0  # 'ddim' only: 0 deterministic; 1 DDPM-like ancestral sampling
  c.sample.seed = 0  # the noise; each frame's is keyed by its place in the video
  # Latent models (Wan): their VAE encodes and decodes a video vae_chunk_frames frames at a
  # time (the first chunk one more), its causal caches carried between chunks, on tiles of
  # vae_tile px overlapping by vae_tile_overlap (0: whole frames); the same frames as one
  # pass, in memory that does not grow with the chunk's length (models/wan_streaming.py).
  c.sample.vae_chunk_frames = 16  # frames per VAE chunk (a multiple of 4)
  c.sample.vae_tile = 0  # px of the VAE's square tiles; 0: whole frames
  c.sample.vae_tile_overlap = 64  # px shared by neighbouring VAE tiles
  c.sample.window_overlap = -1  # frames shared by consecutive windows; -1: half a clip
  c.sample.window_batch = 4  # windows (or refiner tiles) per device per UNet call
  # The devices one process samples on: (windows, rows). Windows and tiles are spread over
  # the first axis; each one's rows over the second (context parallelism, for frames too
  # large for one device). One -1 takes the rest of this process's devices; (1, 1): one.
  c.sample.mesh_shape = (-1, 1)
  # Compute dtype of the stages at sampling time ('' keeps each model's model.dtype).
  c.sample.dtype = ''
  c.sample.model_fps = 0.0  # frame rate the model works at; 0: the input's
  c.sample.input_eye = 'right'  # 'left': the input is the left eye; the right is generated
  # Written files: any of left (the generated eye), sbs, half_sbs, tb, anaglyph.
  c.sample.outputs = ('left', 'sbs', 'half_sbs', 'tb', 'anaglyph')
  c.sample.anaglyph = 'dubois'  # 'dubois', 'color' or 'gray'
  c.sample.crf = 18  # H.264 quality (lower is better, 0 lossless)
  # Long videos stream through in chunks of this many frames at the model's frame rate
  # (0: 8 of the longest model window), so memory does not grow with the length;
  # consecutive chunks share chunk_overlap frames, cross-faded (-1: half a window).
  c.sample.chunk_frames = 0
  c.sample.chunk_overlap = -1  # frames shared by consecutive chunks
  # A frame whose 32x32 grey thumbnail differs from the previous one's by more than this
  # (mean absolute levels of 255), and by 3x the recent differences, starts a new scene:
  # fresh chunks, no blending across the cut (0: off). scene_cuts: input frames known to
  # start a new scene.
  c.sample.scene_cut_threshold = 20.0
  c.sample.scene_cuts = ()  # input frames that start a scene, besides those detected

  c.lock()
  return c


def _merge(defaults, stored, prefix: str, unknown: list[str], missing: list[str]):
  """``stored`` over ``defaults`` (plain dicts); lists become tuples where the default is one.
  Keys ``stored`` has and ``defaults`` lacks go to ``unknown``, the reverse to ``missing``."""
  if isinstance(defaults, dict):
    if not isinstance(stored, dict):
      raise ValueError(f'{prefix.rstrip(".") or "config"}: expected a section, got {stored!r}')
    merged = dict(defaults)
    for key, value in stored.items():
      if key in defaults:
        merged[key] = _merge(defaults[key], value, f'{prefix}{key}.', unknown, missing)
      else:
        unknown.append(prefix + key)
    missing.extend(prefix + key + ('' if isinstance(defaults[key], dict) else
                                   f'={defaults[key]!r}')
                   for key in defaults if key not in stored)
    return merged
  if isinstance(defaults, tuple) and isinstance(stored, list):
    return _as_tuples(stored)
  return stored


def _as_tuples(value):
  """JSON's lists back to the tuples the base config uses, at every depth."""
  return tuple(map(_as_tuples, value)) if isinstance(value, (list, tuple)) else value


def with_defaults(stored: dict, source: str = 'stored config') -> ml_collections.ConfigDict:
  """A config saved with a checkpoint (a dict), merged over ``base_config()``.

  Fields it lacks (it predates them) take today's defaults, and keys this version does not
  know are left out; both are named in one warning, with ``source`` (e.g. the checkpoint's
  path), since a default taken silently can change how an old model samples.
  """
  unknown: list[str] = []
  missing: list[str] = []
  merged = _merge(base_config().to_dict(), stored, '', unknown, missing)
  problems = ([f'config keys this version does not know, ignored: {", ".join(unknown)}']
              if unknown else [])
  if missing:
    problems.append(f'fields it predates, given today\'s defaults: {", ".join(missing)}')
  if problems:
    logging.warning('%s: %s', source, '; '.join(problems))
  return ml_collections.ConfigDict(merged)
