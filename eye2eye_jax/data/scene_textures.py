"""Texture and shape families for the synthetic scenes, each a named option.

A texture family draws a surface's look: ``TEXTURES[name](rng, height, width)`` is float32
(height, width, 3) in [0, 1]. A shape draws an object's outline: ``SHAPES[name](rng,
height, width)`` is a float32 alpha (height, width) in [0, 1], anti-aliased. Both are
deterministic from ``rng``. Because every family is named, a dataset split can hold some
out (the synthetic builder's ``validation_unseen``), so a report shows whether a model has
learned stereo or the look of its training textures.

Texture families:

  * ``photo``: scikit-image's photographs as the scenes have always drawn them (a crop of
    a colour photograph, or of a grey one tinted).
  * ``photo_jitter``: the same photographs rotated, rescaled, mirrored and colour-jittered
    (per-channel gain, gamma, channel mixing).
  * ``noise``: fractal value noise (octaves of smoothly interpolated random grids) in two
    random colours.
  * ``periodic``: checkers, stripes or dots at a random period and orientation: the hard
    case for stereo, where many shifts match.
  * ``gradient``: a linear ramp between two colours, or one flat colour: little texture,
    so disparity must come from edges.
  * ``text``: random words in random colours on a plain ground.

Shapes: ``ellipse``, ``box`` (the scenes' original two), ``polygon`` (a random convex or
star polygon) and ``soft`` (a blurred blob with a soft edge).
"""

from __future__ import annotations

import functools
import string

import numpy as np
from scipy import ndimage

COLOR_PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket', 'immunohistochemistry',
                'hubble_deep_field', 'retina')
GRAY_PHOTOS = ('brick', 'grass', 'gravel', 'camera', 'coins', 'moon', 'page', 'text', 'clock')


@functools.lru_cache(maxsize=None)
def _photo(name: str, max_side: int = 256) -> np.ndarray:
  """A scikit-image sample photograph as float RGB in [0, 1], longest side <= max_side."""
  import skimage.data
  import skimage.transform
  image = getattr(skimage.data, name)()
  if image.ndim == 2:
    image = np.stack([image] * 3, axis=-1)
  image = image[..., :3].astype(np.float32) / 255.0
  scale = max_side / max(image.shape[:2])
  if scale < 1:
    image = skimage.transform.rescale(image, scale, channel_axis=-1, anti_aliasing=True)
  return image.astype(np.float32)


def photo_crop(rng: np.random.Generator, names, height: int, width: int,
               side_range: tuple[float, float] = (0.3, 0.9), photo=None) -> np.ndarray:
  """A crop of a random photograph (of ``names``, or ``photo`` itself), resized to
  (height, width, 3); the crop covers ``side_range`` of the photo's short side."""
  import skimage.transform
  photo = _photo(str(rng.choice(names))) if photo is None else photo
  ph, pw = photo.shape[:2]
  aspect = width / height
  side = rng.uniform(*side_range) * min(ph, pw / aspect)
  ch, cw = max(int(side), 4), max(int(side * aspect), 4)
  ch, cw = min(ch, ph), min(cw, pw)
  y = rng.integers(0, ph - ch + 1)
  x = rng.integers(0, pw - cw + 1)
  crop = photo[y:y + ch, x:x + cw]
  return skimage.transform.resize(crop, (height, width), anti_aliasing=True).astype(np.float32)


def tinted_gray(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """A crop of a grey photograph, tinted."""
  texture = photo_crop(rng, GRAY_PHOTOS, height, width)
  tint = rng.uniform(0.4, 1.0, size=3).astype(np.float32)
  return texture * tint


def photo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  if rng.random() < 0.5:
    return photo_crop(rng, COLOR_PHOTOS, height, width)
  return tinted_gray(rng, height, width)


def photo_jitter(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  import skimage.transform
  source = _photo(str(rng.choice(COLOR_PHOTOS + GRAY_PHOTOS)))
  source = skimage.transform.rotate(source, rng.uniform(-180, 180), resize=False,
                                    mode='reflect').astype(np.float32)
  if rng.random() < 0.5:
    source = source[:, ::-1]
  texture = photo_crop(rng, (), height, width, side_range=(0.15, 0.7), photo=source)
  mix = np.eye(3, dtype=np.float32) + rng.uniform(-0.4, 0.4, (3, 3)).astype(np.float32)
  texture = np.clip(texture @ (mix / mix.sum(axis=1, keepdims=True)).T, 0, 1)
  gain = rng.uniform(0.6, 1.2, 3).astype(np.float32)
  return np.clip(texture ** rng.uniform(0.6, 1.6) * gain, 0, 1).astype(np.float32)


def _two_colors(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  first = rng.uniform(0, 1, 3).astype(np.float32)
  second = rng.uniform(0, 1, 3).astype(np.float32)
  if np.abs(first - second).max() < 0.3:  # keep the two apart so the pattern shows
    second = (1 - first).astype(np.float32)
  return first, second


def _colorize(value: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  first, second = _two_colors(rng)
  return (first + (second - first) * value[..., None]).astype(np.float32)


def noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  import skimage.transform
  finest = rng.uniform(3, 8)  # pixels between the finest octave's random values
  value, total = np.zeros((height, width), np.float32), 0.0
  for octave in range(int(rng.integers(2, 5))):
    cell = finest * 2.0 ** octave
    grid = rng.random((int(np.ceil(height / cell)) + 2, int(np.ceil(width / cell)) + 2))
    layer = skimage.transform.resize(
        grid, (round(grid.shape[0] * cell), round(grid.shape[1] * cell)), order=3)
    weight = 2.0 ** octave  # coarser octaves weigh more, as in 1/f noise
    value += weight * layer[:height, :width].astype(np.float32)
    total += weight
  value = value / total
  value = (value - value.min()) / max(float(value.max() - value.min()), 1e-6)
  return _colorize(value, rng)


def periodic(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  period = rng.uniform(3, 12)
  angle = rng.uniform(0, np.pi)
  yy, xx = np.mgrid[0:height * 4, 0:width * 4].astype(np.float32) / 4  # 4x supersampled
  u = (xx * np.cos(angle) + yy * np.sin(angle)) / period
  v = (-xx * np.sin(angle) + yy * np.cos(angle)) / period
  pattern = str(rng.choice(['checkers', 'stripes', 'dots']))
  if pattern == 'checkers':
    value = (np.floor(u) + np.floor(v)) % 2
  elif pattern == 'stripes':
    value = (u % 1.0 < rng.uniform(0.3, 0.7)).astype(np.float32)
  else:
    radius = rng.uniform(0.2, 0.4)
    value = ((u % 1.0 - 0.5) ** 2 + (v % 1.0 - 0.5) ** 2 < radius ** 2).astype(np.float32)
  value = value.reshape(height, 4, width, 4).mean(axis=(1, 3))
  return _colorize(value.astype(np.float32), rng)


def gradient(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  if rng.random() < 0.3:  # flat colour
    return np.broadcast_to(rng.uniform(0, 1, 3).astype(np.float32),
                           (height, width, 3)).copy()
  angle = rng.uniform(0, 2 * np.pi)
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
  ramp = xx * np.cos(angle) + yy * np.sin(angle)
  ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
  return _colorize(ramp, rng)


def text(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  from PIL import Image, ImageDraw, ImageFont
  ground, ink = _two_colors(rng)
  image = Image.new('RGB', (width, height), tuple(int(c * 255) for c in ground))
  draw = ImageDraw.Draw(image)
  size = int(rng.integers(7, max(8, min(height, 24))))
  font = ImageFont.load_default(size=size)
  letters = list(string.ascii_letters + string.digits)
  y = -int(rng.integers(0, size))
  while y < height:
    words = [''.join(rng.choice(letters, int(rng.integers(2, 8)))) for _ in range(8)]
    draw.text((-int(rng.integers(0, size * 2)), y), ' '.join(words),
              fill=tuple(int(c * 255) for c in ink), font=font)
    y += int(size * rng.uniform(1.0, 1.4))
  return np.asarray(image, np.float32) / 255.0


TEXTURES = {'photo': photo, 'photo_jitter': photo_jitter, 'noise': noise,
            'periodic': periodic, 'gradient': gradient, 'text': text}


def _supersampled(inside, height: int, width: int) -> np.ndarray:
  """The coverage of ``inside(yy, xx)`` (coordinates in [-1, 1]) per pixel, 4x4 samples."""
  yy, xx = np.meshgrid(np.linspace(-1, 1, height * 4), np.linspace(-1, 1, width * 4),
                       indexing='ij')
  return inside(yy, xx).reshape(height, 4, width, 4).mean(axis=(1, 3)).astype(np.float32)


def ellipse(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  del rng
  return _supersampled(lambda yy, xx: xx**2 + yy**2 <= 1.0, height, width)


def box(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  del rng
  return _supersampled(lambda yy, xx: np.maximum(np.abs(xx), np.abs(yy)) <= 0.95, height,
                       width)


def polygon(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  corners = int(rng.integers(3, 9))
  angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
  star = rng.random() < 0.3
  radii = np.where(np.arange(corners) % 2, rng.uniform(0.4, 0.6), 1.0) if star else (
      rng.uniform(0.7, 1.0, corners))

  def inside(yy, xx):
    theta = np.arctan2(yy, xx) % (2 * np.pi)
    radius = np.hypot(xx, yy)
    # The boundary's radius at each angle: linear between neighbouring corners.
    a = np.concatenate([angles, angles[:1] + 2 * np.pi])
    r = np.concatenate([radii, radii[:1]])
    theta = np.where(theta < a[0], theta + 2 * np.pi, theta)
    return radius <= np.interp(theta, a, r)

  return _supersampled(inside, height, width)


def soft(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  blob = _supersampled(lambda yy, xx: xx**2 + yy**2 <= 0.8, height, width)
  sigma = rng.uniform(0.03, 0.12) * min(height, width)
  return np.clip(ndimage.gaussian_filter(blob, sigma) * 1.3, 0, 1).astype(np.float32)


SHAPES = {'ellipse': ellipse, 'box': box, 'polygon': polygon, 'soft': soft}


def check_names(textures, shapes, where: str) -> None:
  """Raises ValueError naming ``where`` for an unknown or empty family or shape list."""
  for names, known, what in ((textures, TEXTURES, 'texture families'),
                             (shapes, SHAPES, 'shapes')):
    unknown = sorted(set(names) - set(known))
    if not names or unknown:
      raise ValueError(f'{where}: {what} must be a non-empty choice of {sorted(known)}, '
                       f'got {list(names)}')
