"""The comfort report of a stereo video: its frames' figures summed up against the limits, a
one-line verdict, and the files ``<stem>_stereo.json`` and ``<stem>_stereo.png`` (the
disparity range over time with the limits drawn).

A ``ComfortReport`` takes frames as they come (``add``), so a film is reported in the memory
of one frame; ``to_json`` / ``from_json`` carry a report half done across a restart.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import pathlib

import numpy as np
from matplotlib import figure as matplotlib_figure

from eye2eye_jax.common import atomic_files
from eye2eye_jax.stereo_analysis import comfort

SERIES = ('frame', 'valid', 'p05', 'p50', 'p95', 'nearest', 'farthest', 'window_left',
          'window_right', 'vertical', 'flicker')
JSON_SUFFIX, PLOT_SUFFIX = '_stereo.json', '_stereo.png'


def report_paths(output_dir: str | pathlib.Path, stem: str) -> tuple[pathlib.Path, pathlib.Path]:
  """Where the report of video ``stem`` goes: (JSON, plot)."""
  out = pathlib.Path(output_dir)
  return out / f'{stem}{JSON_SUFFIX}', out / f'{stem}{PLOT_SUFFIX}'


def _finite(value) -> float | None:
  return float(value) if value is not None and np.isfinite(value) else None


def _spans(frames: np.ndarray, flags: np.ndarray, fps: float) -> list[list[float]]:
  """[start s, end s] of each run of flagged frames (consecutive in the analysed order)."""
  spans, start = [], None
  for i, flag in enumerate(list(flags) + [False]):
    if flag and start is None:
      start = i
    elif not flag and start is not None:
      spans.append([float(frames[start] / fps), float((frames[i - 1] + 1) / fps)])
      start = None
  return spans


class ComfortReport:
  """The report of one stereo video whose eyes are shown ``width`` x ``height`` px."""

  def __init__(self, limits: comfort.Limits, search: float, width: int, height: int,
               fps: float, source: dict | None = None, measured_width: int | None = None):
    self.limits, self.search = limits, float(search)
    self.width, self.height, self.fps = int(width), int(height), float(fps) or 1.0
    self.measured_width = int(measured_width or width)  # the width the frames were measured at
    self.source = dict(source or {})
    self.series: dict[str, list] = {name: [] for name in SERIES}
    self.histogram = np.zeros(comfort.HISTOGRAM_BINS, np.int64)

  def add(self, figures: comfort.FrameFigures, **extra: float) -> None:
    """Adds one analysed frame; ``extra`` are further per-frame series (e.g. convergence)."""
    for name in SERIES:
      self.series[name].append(getattr(figures, name))
    for name, value in extra.items():
      self.series.setdefault(name, []).append(float(value))
    if figures.histogram is not None:
      self.histogram += figures.histogram

  @property
  def frames_analysed(self) -> int:
    return len(self.series['frame'])

  def _array(self, name: str) -> np.ndarray:
    return np.asarray(self.series[name], np.float64)

  def _percentile(self, q: float) -> float:
    """The pooled ``q``-th percentile of every analysed pixel's disparity (of the width)."""
    total = self.histogram.sum()
    if not total:
      return math.nan
    edges = np.linspace(-self.search, self.search, comfort.HISTOGRAM_BINS + 1)
    cumulative = np.concatenate([[0], np.cumsum(self.histogram)]) / total
    return float(np.interp(q / 100, cumulative, edges))

  def summary(self) -> dict:
    """Every figure of the video, in fractions and in px (and degrees) at its eye size."""
    L = self.limits
    n = self.frames_analysed
    if not n:
      raise ValueError('a comfort report needs at least one analysed frame')
    frames = self._array('frame')
    nearest, farthest = self._array('nearest'), self._array('farthest')
    share = lambda flags: float(np.mean(flags))
    with np.errstate(invalid='ignore'):
      in_front_over = nearest > L.in_front
      behind_over = -farthest > L.behind
      extent = np.fmax(nearest, -farthest)
      angle_over = np.array([L.degrees(e) > L.max_angle_deg if np.isfinite(e) else False
                             for e in extent])
      vertical = self._array('vertical')
      vertical_over = np.abs(vertical) > self.vertical_limit()
    window = np.array(self.series['window_left'], bool) | np.array(self.series['window_right'],
                                                                    bool)
    flicker = self._array('flicker')
    flicker_mean = float(np.nanmean(flicker)) if np.isfinite(flicker).any() else math.nan
    near_at = int(np.nanargmax(nearest)) if np.isfinite(nearest).any() else None
    far_at = int(np.nanargmin(farthest)) if np.isfinite(farthest).any() else None
    vertical_median = float(np.nanmedian(vertical)) if np.isfinite(vertical).any() else math.nan
    px = lambda fraction: _finite(fraction * self.width)

    def extreme(values: np.ndarray, at: int | None, over: np.ndarray) -> dict:
      """The frame ``at`` (None: no frame had a value) of a series, and the share over."""
      value = values[at] if at is not None else math.nan
      return {'fraction': _finite(value), 'px': px(value), 'degrees': _finite(L.degrees(value)),
              'time_s': float(frames[at] / self.fps) if at is not None else None,
              'frames_over_limit': share(over)}

    percentiles = {f'p{q:02d}': self._percentile(q) for q in (5, 50, 95)}
    return {
        'frames_analysed': n,
        'valid_share': _finite(np.mean(self._array('valid'))),
        'disparity': {name: _finite(v) for name, v in percentiles.items()},
        'disparity_px': {name: px(v) for name, v in percentiles.items()},
        'nearest': extreme(nearest, near_at, in_front_over),
        'farthest': extreme(farthest, far_at, behind_over),
        'frames_over_angle': share(angle_over),
        'window_violations': {'frames': int(window.sum()), 'share': share(window),
                              'left': int(np.sum(self.series['window_left'])),
                              'right': int(np.sum(self.series['window_right'])),
                              'spans_s': _spans(frames, window, self.fps)},
        'vertical': {'fraction': _finite(vertical_median),
                     'px': _finite(vertical_median * self.height),
                     'max_abs_px': (_finite(np.nanmax(np.abs(vertical)) * self.height)
                                    if np.isfinite(vertical).any() else None),
                     'frames_over_limit': share(vertical_over),
                     'limit_fraction': self.vertical_limit()},
        'flicker': {'fraction': _finite(flicker_mean), 'px': px(flicker_mean),
                    'limit_fraction': self.flicker_limit()},
    }

  def flicker_limit(self) -> float:
    """The flicker limit (of the width): ``limits.flicker``, but never below the
    estimator's noise at the size the frames were measured at."""
    return max(self.limits.flicker, comfort.NOISE_PX / self.measured_width)

  def vertical_limit(self) -> float:
    """The vertical disparity limit (of the height), likewise."""
    measured_height = self.measured_width * self.height / self.width
    return max(self.limits.vertical, comfort.NOISE_PX / measured_height)

  def exceeded(self, summary: dict | None = None) -> dict[str, str]:
    """Each limit exceeded (in-front, behind, angle, window, vertical, flicker): by how much
    and how often, in words."""
    L, s = self.limits, summary or self.summary()
    problems = {}
    percent = lambda fraction: f'{100 * fraction:.2f}%'
    if s['nearest']['frames_over_limit'] > L.frames_over:
      problems['in-front'] = (f'in front of the screen up to {percent(s["nearest"]["fraction"])} '
                              f'of the width (limit {100 * L.in_front:g}%) in '
                              f'{s["nearest"]["frames_over_limit"]:.0%} of frames')
    if s['farthest']['frames_over_limit'] > L.frames_over:
      problems['behind'] = (f'behind the screen down to {percent(-s["farthest"]["fraction"])} '
                            f'of the width (limit {100 * L.behind:g}%) in '
                            f'{s["farthest"]["frames_over_limit"]:.0%} of frames')
    if s['frames_over_angle'] > L.frames_over:
      problems['angle'] = (f'beyond {L.max_angle_deg:g} degree of the screen plane in '
                           f'{s["frames_over_angle"]:.0%} of frames')
    if s['window_violations']['share'] > L.frames_over:
      problems['window'] = (f'window violations (near content cut by the frame edge) in '
                            f'{s["window_violations"]["share"]:.0%} of frames')
    if s['vertical']['frames_over_limit'] > L.frames_over:
      limit = self.vertical_limit()
      problems['vertical'] = (f'vertical disparity up to {s["vertical"]["max_abs_px"]:.1f} px '
                              f'(limit {percent(limit)} of the height, '
                              f'{limit * self.height:.1f} px) in '
                              f'{s["vertical"]["frames_over_limit"]:.0%} of frames')
    flicker, flicker_limit = s['flicker']['fraction'], self.flicker_limit()
    if flicker is not None and flicker > flicker_limit:
      problems['flicker'] = (f'disparity flicker {s["flicker"]["px"]:.2f} px per frame '
                             f'({percent(flicker)} of the width; limit '
                             f'{percent(flicker_limit)})')
    return problems

  def verdict(self, summary: dict | None = None) -> str:
    """'comfortable', or 'exceeds: ' and each limit exceeded, by how much and how often."""
    problems = self.exceeded(summary)
    return 'exceeds: ' + '; '.join(problems.values()) if problems else 'comfortable'

  def to_json(self) -> dict:
    """Everything: the source, the limits, the summary, the verdict and every series."""
    summary = self.summary()
    clean = lambda values: [_finite(v) if not isinstance(v, (bool, np.bool_)) else bool(v)
                            for v in values]
    series = {name: clean(values) for name, values in self.series.items()}
    series['frame'] = [int(f) for f in self.series['frame']]
    series['time_s'] = [f / self.fps for f in series['frame']]
    return {'source': self.source, 'width': self.width, 'height': self.height, 'fps': self.fps,
            'measured_width': self.measured_width,
            'limits': dataclasses.asdict(self.limits), 'search': self.search,
            'verdict': self.verdict(summary), 'exceeded': sorted(self.exceeded(summary)),
            'summary': summary, 'per_frame': series,
            'histogram': self.histogram.tolist()}

  @classmethod
  def from_json(cls, data: dict) -> 'ComfortReport':
    """The report ``to_json`` wrote, ready to take more frames."""
    report = cls(comfort.Limits(**data['limits']), data['search'], data['width'],
                 data['height'], data['fps'], data['source'], data['measured_width'])
    per_frame = dict(data['per_frame'])
    per_frame.pop('time_s', None)
    report.series = {name: [math.nan if v is None else v for v in values]
                     for name, values in per_frame.items()}
    report.histogram = np.asarray(data['histogram'], np.int64)
    return report

  def figure(self) -> matplotlib_figure.Figure:
    """The disparity range over time (% of the width, in front of the screen up), with the
    comfort limits and the window violations drawn. A bare Figure, independent of pyplot's
    backend: a notebook displays it, ``write`` saves it."""
    L = self.limits
    time = np.asarray(self.series['frame'], np.float64) / self.fps
    percent = lambda name: 100 * self._array(name)
    figure = matplotlib_figure.Figure(figsize=(7.0, 2.8))
    axis = figure.subplots()
    axis.fill_between(time, percent('p05'), percent('p95'), color='tab:blue', alpha=0.3,
                      label='5-95% of pixels', step='mid')
    axis.plot(time, percent('p50'), color='tab:blue', lw=1.2, label='median')
    axis.plot(time, percent('nearest'), color='tab:orange', lw=0.8, label='nearest')
    axis.plot(time, percent('farthest'), color='tab:green', lw=0.8, label='farthest')
    if 'convergence' in self.series:
      axis.plot(time, percent('convergence'), color='k', ls=':', lw=1.0,
                label='convergence applied')
    axis.axhline(0, color='grey', lw=0.6)
    axis.axhline(100 * L.in_front, color='tab:red', ls='--', lw=0.8,
                 label=f'limits (+{100 * L.in_front:g}% / -{100 * L.behind:g}%)')
    axis.axhline(-100 * L.behind, color='tab:red', ls='--', lw=0.8)
    window = (np.array(self.series['window_left'], bool)
              | np.array(self.series['window_right'], bool))
    if window.any():
      top = np.nanmax(np.concatenate([percent('nearest'), [100 * L.in_front]]))
      axis.plot(time[window], np.full(window.sum(), top * 1.1), '|', color='tab:red',
                label='window violation')
    axis.set_xlabel('time (s)')
    axis.set_ylabel('disparity (% of width)\nin front of screen > 0')
    verdict = self.verdict()
    axis.set_title(verdict if len(verdict) < 90 else verdict[:87] + '...', fontsize=8)
    axis.legend(fontsize=6, loc='upper left', bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    return figure

  def write(self, json_path: str | pathlib.Path, plot_path: str | pathlib.Path) -> dict:
    """Writes the JSON and the plot, each atomically; returns the JSON's content."""
    data = self.to_json()
    buffer = io.BytesIO()
    self.figure().savefig(buffer, format='png', dpi=100, bbox_inches='tight')
    atomic_files.write_text(json_path, json.dumps(data, indent=1))
    with atomic_files.atomic_path(plot_path) as temporary:
      pathlib.Path(temporary).write_bytes(buffer.getvalue())
    return data


class ComfortMeter:
  """Measures a stereo video's (left, right) frames into a ``ComfortReport``: the one path
  ``sample``, the notebook and the file report (``evaluate --stereo_report``) share.

  ``comfort_config``: a config's ``sample.comfort``; eyes are shown ``width`` x ``height``.
  Frames come in order; flicker is measured only between consecutive frame numbers.
  ``report``: a half-done report to go on with (``ComfortReport.from_json``).
  """

  def __init__(self, comfort_config, width: int, height: int, fps: float,
               source: dict | None = None, report: ComfortReport | None = None):
    self.analyzer = comfort.PairAnalyzer(comfort_config.analysis_width, comfort_config.search)
    self.report = report or ComfortReport(comfort.Limits.from_config(comfort_config),
                                          self.analyzer.search, width, height, fps, source,
                                          self.analyzer.measured_width(width, height))
    self._previous: int | None = None

  def add(self, left: np.ndarray, right: np.ndarray, frame: int, **extra: float) -> None:
    """Measures frame number ``frame`` ((H, W, 3) eyes); ``extra``: further series."""
    if self._previous is None or frame != self._previous + 1:
      self.analyzer.reset()
    self.report.add(self.analyzer(left, right, frame), **extra)
    self._previous = frame
