"""The one evaluation of a model on held-out clips, shared by training, ``evaluate`` and ``demo``.

An ``Evaluator`` holds a split's first clips (read once) and scores any sampler on them with
``run(sampler) -> metrics``, in the spirit of big_vision's evaluators: the synthetic
evaluation layer by layer (``synthetic_eval``) on the synthetic dataset, the real-pair
evaluation (``pair_eval``) on any dataset of rectified (left, right) clips. Training runs it
every ``train.sample_every`` steps on a sampler of its current weights, ``evaluate`` on the
checkpoints it loads, ``demo`` on the bundled models.
"""

from __future__ import annotations

from eye2eye_jax.data import datasets
from eye2eye_jax.evaluation import pair_eval, synthetic_eval


class Evaluator:
  """Scores samplers on the first ``num_clips`` clips of ``split`` of ``config``'s dataset
  (already built in ``data_dir``); ``baselines`` adds global shift and warp-and-inpaint."""

  def __init__(self, config, split: str, data_dir: str, num_clips: int,
               baselines: bool = True):
    if num_clips < 1:
      raise ValueError(f'the number of clips evaluated must be >= 1, got {num_clips}')
    self.split, self.baselines = split, baselines
    self.synthetic = config.data.builder == 'synthetic_stereo'
    self.scene_params = synthetic_eval.scene_params(config, split) if self.synthetic else None
    source = datasets.data_source(config, split, data_dir)
    self.records = [source[i] for i in range(min(num_clips, len(source)))]

  def run(self, sampler, progress=None, examples: list | None = None,
          converted: dict | None = None) -> dict:
    """The metrics of ``sampler`` (None: baselines only) on the clips. ``progress(done)``
    follows the clips, ``examples`` receives the report's pictures and ``converted`` (clip
    index -> views made elsewhere, e.g. by several processes) replaces sampling."""
    if self.synthetic:
      return synthetic_eval.evaluate(sampler, self.records, self.scene_params,
                                     baselines=self.baselines, progress=progress,
                                     examples=examples, converted=converted)
    return pair_eval.evaluate(sampler, self.records, pair_eval.search_range(self.records[0]),
                              baselines=self.baselines, progress=progress, examples=examples,
                              converted=converted)
