"""Automatic convergence (``sample.convergence='auto'``): the screen plane set per scene from
the generated disparity, so the nearest content stays within the in-front limit and the
farthest within the behind limit (``comfort.in_front``, ``comfort.behind``).

Per frame, the disparity of the generated pair is measured as the conversion makes it
(``stereo_analysis.comfort``: its nearest and farthest content, fractions of the width),
before it is written: the refined frames, not the base stage's upsampled ones, whose
blur gives the matcher far content the refined pair and the truth do not have (measured
on the demo clips; ``docs/strength.md``). The measurements are turned into the convergences
that keep both within ``AIM`` of their limits (``bounds``; convergence moves a disparity f
to (f - c) / (1 - abs(c)), ``sampling.convergence``). Within a scene the bounds are widened to
their tightest over ``radius`` frames either side, each frame takes the convergence nearest
0 that meets them (``choose``), and these are averaged over the same window: the screen
plane ramps instead of jumping, and every frame still meets its own bounds (every value
averaged meets them). A scene cut starts afresh. When a frame's depth range is wider than
the two limits together, the farthest content is kept within the behind limit and the
excess stays in front of the screen (``choose``).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Iterator

import numpy as np

from eye2eye_jax.sampling import convergence
from eye2eye_jax.stereo_analysis import comfort

AIM = 0.9  # the share of each limit aimed at: room for what the refiner and resizing change


def bounds(nearest: float, farthest: float, limits: comfort.Limits) -> tuple[float, float]:
  """(lowest, highest) convergence keeping ``nearest`` in front within ``AIM`` of the
  in-front limit and ``farthest`` behind within ``AIM`` of the behind limit (fractions of
  the width; NaN: no constraint)."""
  front, back = AIM * limits.in_front, AIM * limits.behind
  low = -math.inf if not np.isfinite(nearest) else (
      (nearest - front) / (1 - front) if nearest > front else (nearest - front) / (1 + front))
  high = math.inf if not np.isfinite(farthest) else (
      (farthest + back) / (1 + back) if farthest + back >= 0 else (farthest + back) / (1 - back))
  return low, high


def choose(low: float, high: float) -> float:
  """The convergence nearest 0 within [low, high]; when the range is empty (a depth range
  deeper than both limits), ``high``: the farthest content stays within the behind limit
  (beyond it the eyes would have to diverge) and the excess stays in front of the screen,
  where viewers tolerate more (BSkyB's guidelines allow brief excursions to 2.5%)."""
  chosen = min(max(0.0, low), high)
  return float(np.clip(chosen, -convergence.LIMIT, convergence.LIMIT))


class SceneSmoother:
  """Fed each frame's (item, nearest, farthest, scene) in order, returns (item, convergence)
  for the frames whose convergence is settled: ``2 * radius`` frames later, or at the
  scene's end. Holds at most ``2 * radius + 1`` items."""

  def __init__(self, limits: comfort.Limits, radius: int):
    if radius < 0:
      raise ValueError(f'the convergence smoothing radius must be >= 0 frames, got {radius}')
    self.limits, self.radius = limits, int(radius)
    self._scene = None
    self._items: collections.deque = collections.deque()
    self._low: list[float] = []  # per frame of the scene
    self._high: list[float] = []
    self._chosen: list[float] = []
    self._emitted = 0  # frames of the scene returned

  def push(self, item, nearest: float, farthest: float, scene: int) -> list[tuple]:
    done = self.finish() if scene != self._scene and self._items else []
    if scene != self._scene:
      self._scene = scene
      self._low, self._high, self._chosen, self._emitted = [], [], [], 0
    low, high = bounds(nearest, farthest, self.limits)
    self._low.append(low)
    self._high.append(high)
    self._items.append(item)
    return done + self._settle(ended=False)

  def finish(self) -> list[tuple]:
    """The scene's remaining frames (call at the end of the video)."""
    done = self._settle(ended=True)
    self._items.clear()
    return done

  def _settle(self, ended: bool) -> list[tuple]:
    r, count = self.radius, len(self._low)
    while len(self._chosen) < count and (ended or len(self._chosen) + r < count):
      k = len(self._chosen)
      window = slice(max(0, k - r), k + r + 1)
      self._chosen.append(choose(max(self._low[window]), min(self._high[window])))
    done = []
    while self._items and (ended or self._emitted + r < len(self._chosen)):
      t = self._emitted
      applied = float(np.mean(self._chosen[max(0, t - r):t + r + 1]))
      done.append((self._items.popleft(), applied))
      self._emitted += 1
    return done


def converge_stream(frames: Iterable[tuple], limits: comfort.Limits, radius: int,
                    analyzer: comfort.PairAnalyzer, input_eye: str = 'right'
                    ) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
  """(left (1, H, W, 3), right, convergence) for each (input frame, generated frame, scene)
  of ``chunked_conversion.convert_stream(..., with_scenes=True)``: the convergence chosen
  from the pairs' disparity, ``radius`` frames either side, applied to them."""
  smoother = SceneSmoother(limits, radius)

  def converged(settled):
    for (left, right), applied in settled:
      yield (*convergence.converge(left[None], right[None], applied), applied)

  for source, generated, scene in frames:
    pair = (source, generated) if input_eye == 'left' else (generated, source)
    analyzer.reset()  # each frame on its own: no flicker is needed here
    figures = analyzer(*pair)
    yield from converged(smoother.push(pair, figures.nearest, figures.farthest, scene))
  yield from converged(smoother.finish())
