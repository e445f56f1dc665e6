"""Procedural stereo video clips built from real photographs, with per-layer ground truth.

Each clip is a stack of textured layers seen by a camera that pans horizontally. A layer
at disparity ``d`` (pixels) appears in the LEFT view ``d`` pixels to the right of where it
is in the RIGHT view (``u_left = u_right + d``), and moves across the frame by
``camera_speed * d`` pixels per frame, so depth can be read from the right view alone
(motion parallax). Nearer layers also sit lower in the frame, are larger and occlude
farther ones.

Layer kinds (``LayerKind``):
  * BACKGROUND: a photograph filling the frame, at a small disparity.
  * OPAQUE: textured shapes at larger disparities (and the frame of a mirror).
  * TRANSPARENT: a semi-transparent pane; it and what is behind it shift by different
    amounts in the same pixels.
  * REFLECTION: the content seen in a mirror; it shifts by the disparity of the reflected
    object's virtual depth (farther than the mirror), not by the mirror's own disparity.

Everything is deterministic from ``(params, seed)``.
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np
from scipy import ndimage

from eye2eye_jax.data import scene_textures

MAX_LAYERS = 8


class LayerKind(enum.IntEnum):
  PADDING = -1
  BACKGROUND = 0
  OPAQUE = 1
  TRANSPARENT = 2
  REFLECTION = 3


@dataclasses.dataclass(frozen=True)
class SceneParams:
  """What a generated clip looks like. Disparities are in pixels at this resolution."""
  num_frames: int = 8
  height: int = 64
  width: int = 64
  max_disparity: float = 8.0
  # |camera translation| per frame, in baselines; the sign is random per clip.
  camera_speed_range: tuple[float, float] = (0.3, 0.4)
  max_opaque_objects: int = 2
  transparent_probability: float = 0.5  # for each of max_panes panes
  mirror_probability: float = 0.5  # for each of max_mirrors mirrors
  max_panes: int = 1
  max_mirrors: int = 1
  # The disparity of what a mirror shows over the mirror's own: below 1 it lies behind the
  # mirror (a plane mirror's image), above 1 in front of it (drawn for breadth).
  mirror_virtual_range: tuple[float, float] = (0.0, 0.4)
  # Clips with a still camera, where only occlusion and object motion carry depth.
  static_camera_probability: float = 0.0
  # Each object's own horizontal speed is drawn from +-this (pixels per frame; 0: objects
  # move only with the camera).
  object_speed_max: float = 0.0
  # This clip's largest disparity, as a fraction of max_disparity.
  disparity_range: tuple[float, float] = (1.0, 1.0)
  # Named choices of scene_textures.TEXTURES and scene_textures.SHAPES, drawn per surface.
  texture_families: tuple[str, ...] = ('photo',)
  shapes: tuple[str, ...] = ('ellipse', 'box')

  def validate(self) -> None:
    if self.num_frames < 1 or self.height < 8 or self.width < 8:
      raise ValueError(f'SceneParams: clips need >= 1 frame and >= 8x8 pixels, got {self}')
    if not 0 < self.max_disparity < self.width / 2:
      raise ValueError(f'SceneParams: max_disparity must be in (0, width/2), got {self.max_disparity}')
    lo, hi = self.camera_speed_range
    if not 0 <= lo <= hi:
      raise ValueError(f'SceneParams: bad camera_speed_range {self.camera_speed_range}')
    layers = 1 + self.max_opaque_objects + self.max_panes + 2 * self.max_mirrors
    if layers > MAX_LAYERS or min(self.max_opaque_objects, self.max_panes,
                                  self.max_mirrors) < 0:
      raise ValueError(f'SceneParams: 1 background + {self.max_opaque_objects} objects + '
                       f'{self.max_panes} panes + 2 x {self.max_mirrors} mirrors (frame and '
                       f'content) is {layers} layers; at most {MAX_LAYERS}')
    lo, hi = self.disparity_range
    if not 0 < lo <= hi <= 1:
      raise ValueError(f'SceneParams: disparity_range must be within (0, 1], got '
                       f'{self.disparity_range}')
    scene_textures.check_names(self.texture_families, self.shapes, 'SceneParams')


@dataclasses.dataclass
class StereoClip:
  """One generated clip. Views are uint8 (T, H, W, 3); masks are bool (L, T, H, W).

  ``layer_masks[i]`` marks, in right-view pixels, where layer ``i`` is what both eyes see:
  its visibility weight (after nearer layers) is high in the right view and at the matching
  pixel of the left view; for panes and mirror content, where they cover the pixel and are
  not hidden. Unused layer slots have kind PADDING and empty masks.
  """
  right: np.ndarray
  left: np.ndarray
  layer_masks: np.ndarray
  layer_disparity: np.ndarray
  layer_kind: np.ndarray
  camera_speed: float
  # (T, H, W) disparity of the nearest surface at each right-view pixel (a pane's own,
  # a mirror's own): the single depth an ideal monocular depth estimator would give.
  surface_disparity: np.ndarray | None = None
  # The texture family of each surface drawn, in drawing order.
  texture_families: tuple[str, ...] = ()


@dataclasses.dataclass
class _Layer:
  """A texture and its alpha, each placed on the canvas and moving with a disparity.

  For most layers both move together. Mirror content differs: its alpha is the mirror's
  window (moving with the mirror's disparity) while its texture moves with the virtual
  depth of what is reflected (``disparity``).
  """
  texture: np.ndarray  # (h, w, 3) float in [0, 1]
  texture_left: float  # canvas column of texture column 0 for the right eye, camera at 0
  alpha: np.ndarray  # (ha, wa) float in [0, 1]
  alpha_left: float
  top: int  # canvas row of texture and alpha row 0
  disparity: float
  alpha_disparity: float
  kind: LayerKind
  velocity: float = 0.0  # its own horizontal motion, pixels per frame, in both eyes


def _plain_layer(texture, alpha, top, left, disparity, kind) -> _Layer:
  return _Layer(texture, left, alpha, left, top, disparity, disparity, kind)


# Visibility weight above which a layer counts as what a pixel shows. A pane's alpha is at
# most 0.55, so what is behind a pane (weight <= 0.65) does not count there.
_VISIBLE = 0.7

def _place_shifted(texture: np.ndarray, top: int, left: float, height: int,
                   width: int) -> np.ndarray:
  """Places ``texture`` (h, w, C) on an (height, width) canvas, zero outside.

  Row ``top`` is an integer; column ``left`` may be fractional, in which case the texture is
  linearly interpolated along x (layers only ever move horizontally).
  """
  h, w, channels = texture.shape
  canvas = np.zeros((height, width, channels), np.float32)
  rows = slice(max(top, 0), min(top + h, height))
  if rows.start >= rows.stop:
    return canvas
  source = texture[rows.start - top:rows.stop - top]
  # Pad with a zero column on each side so interpolation fades to zero at the edges.
  source = np.pad(source, ((0, 0), (1, 1), (0, 0)))
  x = np.arange(width, dtype=np.float64) - left + 1  # column in the padded texture
  x0 = np.floor(x).astype(np.int64)
  frac = (x - x0).astype(np.float32)[None, :, None]
  valid = (x0 >= 0) & (x0 + 1 <= w + 1)
  x0 = np.clip(x0, 0, w + 1)
  x1 = np.clip(x0 + 1, 0, w + 1)
  values = source[:, x0] * (1 - frac) + source[:, x1] * frac
  canvas[rows] = np.where(valid[None, :, None], values, 0.0)
  return canvas


class SceneGenerator:
  """Makes ``StereoClip``s; ``generate(seed)`` is deterministic."""

  def __init__(self, params: SceneParams = SceneParams()):
    params.validate()
    self.params = params

  def generate(self, seed: int, baseline: float = 1.0) -> StereoClip:
    """The clip of ``seed``. ``baseline`` scales the distance between the eyes (and so
    every disparity) while the scene and the camera's path stay the same."""
    p = self.params
    rng = np.random.default_rng(seed)
    speed = rng.uniform(*p.camera_speed_range) * rng.choice([-1.0, 1.0])
    if p.static_camera_probability > 0 and rng.random() < p.static_camera_probability:
      speed = 0.0
    # Camera position (in baselines) at each frame, centred on the clip's middle.
    camera = speed * (np.arange(p.num_frames, dtype=np.float32) - (p.num_frames - 1) / 2)
    drawn = []
    layers = self._make_layers(rng, camera, drawn)
    right = np.empty((p.num_frames, p.height, p.width, 3), np.float32)
    left = np.empty_like(right)
    masks = np.zeros((MAX_LAYERS, p.num_frames, p.height, p.width), bool)
    surface = np.zeros((p.num_frames, p.height, p.width), np.float32)
    for t, cam in enumerate(camera):
      time = t - (p.num_frames - 1) / 2  # objects are where they were placed mid-clip
      right[t], right_visibility, right_alpha = self._render(layers, 0.0, cam, time)
      left[t], left_visibility, _ = self._render(layers, baseline, cam, time)
      for layer, alpha in zip(layers, right_alpha):  # back to front: nearer surfaces win
        surface[t][alpha > 0.3] = baseline * layer.alpha_disparity
      for i, layer in enumerate(layers):
        # Seen by both eyes: visible here in the right view and d pixels to the right in
        # the left view (not occluded there, e.g. by a nearer layer's shifted edge).
        in_left = _place_shifted(left_visibility[i][..., None], 0,
                                 -baseline * layer.disparity, p.height, p.width)[..., 0]
        both = (right_visibility[i] > _VISIBLE) & (in_left > _VISIBLE)
        # Drop a pixel at each horizontal edge, where interpolation mixes layers.
        masks[i, t] = ndimage.binary_erosion(both, structure=np.ones((1, 3), bool))
    disparity = np.zeros(MAX_LAYERS, np.float32)
    kind = np.full(MAX_LAYERS, int(LayerKind.PADDING), np.int32)
    for i, layer in enumerate(layers):
      disparity[i] = baseline * layer.disparity
      kind[i] = int(layer.kind)
    to_uint8 = lambda x: np.clip(np.round(x * 255), 0, 255).astype(np.uint8)
    return StereoClip(right=to_uint8(right), left=to_uint8(left), layer_masks=masks,
                      layer_disparity=disparity, layer_kind=kind, camera_speed=float(speed),
                      surface_disparity=surface, texture_families=tuple(drawn))

  def _make_layers(self, rng: np.random.Generator, camera: np.ndarray,
                   drawn: list[str]) -> list[_Layer]:
    """Layers ordered back to front, placed so they are in view in the middle frame; the
    texture family of each surface is appended to ``drawn``."""
    p = self.params
    h, w, dmax = p.height, p.width, p.max_disparity
    if p.disparity_range != (1.0, 1.0):
      dmax *= rng.uniform(*p.disparity_range)
    travel = float(np.abs(camera).max())

    def centred_left(width_px: float) -> float:
      # Horizontal placement: anywhere the layer's centre is in frame at mid-clip.
      return rng.uniform(0.15 * w, 0.85 * w) - width_px / 2

    def size_and_top(depth01: float, scale: float) -> tuple[int, int, int]:
      # Nearer (depth01 -> 1) is larger and lower in the frame.
      size = scale * (0.3 + 0.3 * depth01) * min(h, w) * rng.uniform(0.85, 1.15)
      oh = max(int(size * rng.uniform(0.8, 1.2)), 4)
      ow = max(int(size * rng.uniform(0.8, 1.2)), 4)
      centre_row = h * (0.3 + 0.45 * depth01) + rng.uniform(-0.05, 0.05) * h
      return oh, ow, int(round(centre_row - oh / 2))

    layers = []
    # Background: covers the frame for every camera position and both eyes.
    d_bg = rng.uniform(0.0, 0.15) * dmax
    margin = int(np.ceil(travel * d_bg + d_bg)) + 2
    bg_w = w + 2 * margin
    layers.append(_plain_layer(self._texture(rng, 'background', h, bg_w, drawn),
                               np.ones((h, bg_w), np.float32), 0, -margin, d_bg,
                               LayerKind.BACKGROUND))

    # Foreground objects, a pane and a mirror, each at its own disparity, sorted far to near.
    items = []
    for _ in range(rng.integers(1, p.max_opaque_objects + 1)):
      items.append(('opaque', rng.uniform(0.35, 1.0)))
    for _ in range(p.max_panes):
      if rng.random() < p.transparent_probability:
        items.append(('pane', rng.uniform(0.5, 1.0)))
    for _ in range(p.max_mirrors):
      if rng.random() < p.mirror_probability:
        items.append(('mirror', rng.uniform(0.45, 0.9)))
    items.sort(key=lambda item: item[1])

    for what, depth01 in items:
      d = depth01 * dmax
      first = len(layers)
      if what == 'opaque':
        oh, ow, top = size_and_top(depth01, 1.0)
        texture = self._texture(rng, 'object', oh, ow, drawn)
        layers.append(_plain_layer(texture, self._shape(rng, oh, ow), top, centred_left(ow),
                                   d, LayerKind.OPAQUE))
      elif what == 'pane':
        oh, ow, top = size_and_top(depth01, 1.1)
        alpha = np.full((oh, ow), rng.uniform(0.35, 0.55), np.float32)
        layers.append(_plain_layer(self._texture(rng, 'pane', oh, ow, drawn), alpha, top,
                                   centred_left(ow), d,
                                   LayerKind.TRANSPARENT))
      else:
        oh, ow, top = size_and_top(depth01, 1.1)
        x = centred_left(ow)
        border = max(2, min(oh, ow) // 8)
        # What the mirror shows: by default farther than the mirror (smaller disparity).
        d_virtual = min(d * rng.uniform(*p.mirror_virtual_range), p.max_disparity)
        inner_h, inner_w = oh - 2 * border, ow - 2 * border
        # The content is wider than the window so it fills it as it slides behind.
        slack = int(np.ceil(travel * abs(d - d_virtual) + d)) + 2
        slack += int(np.ceil((travel + 1) * max(d_virtual - d, 0.0)))
        content = self._texture(rng, 'reflection', inner_h, inner_w + 2 * slack, drawn)
        layers.append(_Layer(content, x + border - slack, np.ones((inner_h, inner_w), np.float32),
                             x + border, top + border, d_virtual, d, LayerKind.REFLECTION))
        frame_alpha = np.ones((oh, ow), np.float32)
        frame_alpha[border:-border, border:-border] = 0.0
        frame_texture = self._texture(rng, 'pane', oh, ow, drawn)
        layers.append(_plain_layer(frame_texture, frame_alpha, top, x, d, LayerKind.OPAQUE))
      if p.object_speed_max > 0:  # the item moves as a whole (a mirror with its content)
        velocity = rng.uniform(-p.object_speed_max, p.object_speed_max)
        for layer in layers[first:]:
          layer.velocity = velocity
    if len(layers) > MAX_LAYERS:
      raise AssertionError(f'{len(layers)} layers exceed MAX_LAYERS={MAX_LAYERS}')
    return layers

  def _pick(self, rng: np.random.Generator, names: tuple[str, ...]) -> str:
    # One uniform draw (none for a single name), so two shapes draw as they always have.
    return names[0] if len(names) == 1 else names[int(rng.random() * len(names))]

  def _texture(self, rng: np.random.Generator, role: str, height: int, width: int,
               drawn: list[str]) -> np.ndarray:
    """A surface's texture from one of the params' families. The photo family draws by
    role as the scenes always have: a colour photograph for the background and mirror
    content, a tinted grey one for panes and frames, either for objects."""
    family = self._pick(rng, self.params.texture_families)
    drawn.append(family)
    if family != 'photo':
      return scene_textures.TEXTURES[family](rng, height, width)
    if role in ('background', 'reflection'):
      return scene_textures.photo_crop(rng, scene_textures.COLOR_PHOTOS, height, width)
    if role == 'pane':
      return scene_textures.tinted_gray(rng, height, width)
    return scene_textures.photo(rng, height, width)

  def _shape(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return scene_textures.SHAPES[self._pick(rng, self.params.shapes)](rng, height, width)

  def _render(self, layers: list[_Layer], eye: float, camera: float, time: float):
    """Composites layers back to front for one eye (0 right, 1 left), camera position and
    time (frames from mid-clip).

    Returns the image (H, W, 3), each layer's visibility weight (L, H, W) and its alpha.
    """
    p = self.params
    image = np.zeros((p.height, p.width, 3), np.float32)
    alphas = []
    for layer in layers:
      shift = eye - camera
      moved = layer.velocity * time
      texture = _place_shifted(layer.texture, layer.top,
                               layer.texture_left + layer.disparity * shift + moved, p.height,
                               p.width)
      alpha = _place_shifted(layer.alpha[..., None], layer.top,
                             layer.alpha_left + layer.alpha_disparity * shift + moved,
                             p.height, p.width)[..., 0]
      alpha = np.clip(alpha, 0.0, 1.0)
      image = image * (1 - alpha[..., None]) + texture * alpha[..., None]
      alphas.append(alpha)
    visibility = []
    for i, alpha in enumerate(alphas):
      weight = alpha.copy()
      for nearer in alphas[i + 1:]:
        weight *= 1 - nearer
      if layers[i].kind in (LayerKind.TRANSPARENT, LayerKind.REFLECTION):
        # Panes and mirror content count where they cover the pixel and nothing opaque
        # hides them, even though they let some of what is behind show through.
        weight = np.where(alpha > 0.3, weight / np.maximum(alpha, 1e-6), 0.0)
      visibility.append(weight)
    return np.clip(image, 0, 1), np.stack(visibility), alphas



def describe(clip: StereoClip) -> str:
  """A caption of the clip's content and camera motion, e.g. 'a photograph behind two
  objects, a glass pane and a mirror; the camera moves left'."""
  kinds = [LayerKind(k) for k in clip.layer_kind if k != LayerKind.PADDING]
  mirrors, panes = kinds.count(LayerKind.REFLECTION), kinds.count(LayerKind.TRANSPARENT)
  objects = kinds.count(LayerKind.OPAQUE) - mirrors  # a mirror's frame is opaque too
  count = lambda n, one, many: one if n == 1 else f'{_NUMBERS[n - 1]} {many}'
  parts = [count(objects, 'one object', 'objects')] if objects else []
  parts += [count(panes, 'a glass pane', 'glass panes')] if panes else []
  parts += [count(mirrors, 'a mirror', 'mirrors')] if mirrors else []
  background = clip.texture_families[0] if clip.texture_families else 'photo'
  scene = _BACKGROUND_WORDS[background]
  if parts:
    scene += ' behind ' + (', '.join(parts[:-1]) + ' and ' if len(parts) > 1 else '') + parts[-1]
  if clip.camera_speed == 0:
    return f'{scene}; the camera is still'
  # Content shifts by -camera * disparity: a camera moving right moves the scene left.
  return f'{scene}; the camera moves {"right" if clip.camera_speed > 0 else "left"}'


_NUMBERS = ('one', 'two', 'three', 'four', 'five', 'six', 'seven')
_BACKGROUND_WORDS = {'photo': 'a photograph', 'photo_jitter': 'a photograph',
                     'noise': 'a noise pattern', 'periodic': 'a regular pattern',
                     'gradient': 'a colour gradient', 'text': 'a page of text'}
