"""Samples a few validation clips during training and writes them to TensorBoard.

Every ``train.sample_every`` steps the model being trained (its EMA weights when
``sample.use_ema``) converts ``train.sample_clips`` held-out clips with the base sampler at
its training resolution. Their middle frames go to TensorBoard as anaglyphs (generated and
true, side by side), with PSNR, SSIM, stereo-IoU, the fitted disparity scale, depth-order
accuracy and the estimated disparity's median and frame-to-frame change: a run that loses
its 3D effect shows as a falling scale and a flat anaglyph. On real stereo pairs (no true
depth) the scale and its error are those of the agreement with the true pair's disparity
(``evaluation/pair_eval.py``) and there is no depth order. The evaluation is the one
``evaluate`` and ``demo`` run (``evaluation/evaluator.py``), without the baselines.
"""

from __future__ import annotations

import numpy as np

from eye2eye_jax.evaluation import evaluator
from eye2eye_jax.sampling import stereo_formats, stereo_sampler


class TrainingSampler:
  """Holds the validation clips and one sampling stage, so sampling compiles once a run."""

  def __init__(self, config, data_dir: str):
    t = config.train
    if t.sample_clips < 1:
      raise ValueError(f'train.sample_clips must be >= 1 when train.sample_every > 0, got '
                       f'{t.sample_clips}')
    self.held_out = evaluator.Evaluator(config, 'validation', data_dir, t.sample_clips,
                                        baselines=False)
    self.use_ema = bool(config.sample.use_ema)
    self.sample_config = config.sample.copy_and_resolve_references()
    self.sample_config.base_resolution = 0  # the training resolution
    self.config = config

  def __call__(self, step: int, state: dict, writer) -> dict:
    """Samples the clips with ``state``'s weights; writes and returns the scalars. The
    jitted sampler is keyed on the (unchanging) config and takes the weights as an
    argument, so new weights do not recompile it."""
    stage = stereo_sampler.Stage(self.config,
                                 state['ema_params'] if self.use_ema else state['params'])
    sampler = stereo_sampler.StereoSampler(stage, None, self.sample_config)
    examples = []
    metrics = self.held_out.run(sampler, examples=examples)
    if self.held_out.synthetic:
      geometry = metrics['geometry']['generated']['all']
      scalars = {'samples/disparity_scale': geometry.get('scale', 0.0),
                 'samples/depth_order_accuracy': geometry.get('depth_order_accuracy') or 0.0}
    else:
      agreement = metrics['agreement']['generated']
      scalars = {'samples/disparity_scale': agreement['scale'] or 0.0,
                 'samples/disparity_error_after_scale_px': agreement['error_px'] or 0.0}
    image = metrics['image']['generated']
    statistics = metrics['disparity_statistics']['generated']
    scalars.update({
        'samples/psnr': image['psnr'],
        'samples/ssim': image['ssim'],
        'samples/stereo_iou': image['stereo_iou'],
        'samples/median_disparity_px': statistics.get('median_px') or 0.0,
        'samples/frame_median_change_px': statistics.get('frame_median_change_px') or 0.0,
        'samples/flicker_px': statistics.get('flicker_px') or 0.0,
    })
    writer.write_scalars(step, scalars)
    writer.write_images(step, {'samples/anaglyph_generated_vs_true': np.stack(
        [self._side_by_side(example) for example in examples])})
    return scalars

  @staticmethod
  def _side_by_side(example: dict) -> np.ndarray:
    """Middle frame: generated | true, each as a red-cyan anaglyph with the right view."""
    middle = len(example['right']) // 2
    frame = lambda view: stereo_formats.anaglyph(view[middle:middle + 1],
                                                 example['right'][middle:middle + 1])[0]
    return np.concatenate([frame(example['generated']), frame(example['true_left'])], axis=1)
