"""The whole plan of a config on a topology: model, training, alternatives, sampling, data."""

from __future__ import annotations

import ml_collections

from eye2eye_jax.models import unet
from eye2eye_jax.planning import (accelerators, compiled_programs, data_estimate,
                                  sampling_estimate, tpu_compile, training_estimate)


def topology_summary(topology: accelerators.Topology) -> dict:
  """The topology's figures as the plan reports them (JSON-able)."""
  c = topology.chip
  return {'name': topology.name, 'chip': c.name, 'devices': topology.num_devices,
          'hosts': topology.num_hosts, 'peak_flops_bf16': c.peak_flops_bf16,
          'peak_flops_fp32': c.peak_flops_fp32, 'hbm_bytes': c.hbm_bytes,
          'hbm_bandwidth': c.hbm_bandwidth, 'collective_bandwidth':
          topology.collective_bandwidth, 'source': c.source, 'notes': c.notes}


def plan(config: ml_collections.ConfigDict, topology: accelerators.Topology, *,
         name: str = 'config', mfu: float = 0.4, video: tuple[int, int, int] = (512, 512, 160),
         num_clips: int = 100_000, compression_ratio: float | None = None,
         builder_ms_per_frame: float = data_estimate.BUILDER_MS_PER_FRAME,
         builder_cores: int = data_estimate.BUILDER_MEASURED_CORES,
         compile_for_tpu: bool = False) -> dict:
  """The whole plan (JSON-able): model, training, what would fit instead, sampling, data.

  ``compression_ratio`` None measures it (``data_estimate.measure_compression_ratio``).
  ``compile_for_tpu`` also compiles the train step and the sampling stage with the TPU
  compiler for ``topology`` (``tpu_compile``); its bytes then decide whether training fits.
  """
  if not 0 < mfu <= 1:
    raise ValueError(f'mfu must be in (0, 1], got {mfu}')
  if len(video) != 3 or min(video) < 1:
    raise ValueError(f'video must be (width, height, frames), all >= 1, got {video}')
  if num_clips < 1 or builder_cores < 1 or builder_ms_per_frame <= 0:
    raise ValueError('num_clips and builder_cores must be >= 1 and builder_ms_per_frame > 0')
  if compression_ratio is not None and compression_ratio <= 0:
    raise ValueError(f'compression_ratio must be > 0, got {compression_ratio}')
  compiled = {}
  if compile_for_tpu:  # first: a topology libtpu cannot make fails before the long estimate
    compiled = {'train_step': tpu_compile.compile_train_step(config, topology),
                'sampling': tpu_compile.compile_sampling_stage(config, topology, video)}
  train = training_estimate.estimate_training(config, topology, mfu)
  fits = compiled['train_step']['fits'] if compiled else train['memory']['fits']
  params = compiled_programs.abstract_train_state(config)['params']
  measured = compression_ratio is None
  ratio = data_estimate.measure_compression_ratio(config) if measured else compression_ratio
  data = data_estimate.estimate_data(config, topology, train['time']['step_s'], num_clips,
                                     ratio, builder_ms_per_frame, builder_cores)
  data['compression_ratio_source'] = ('measured on a sample of the dataset' if measured
                                      else 'given')
  return {
      'config': name, 'topology': topology_summary(topology),
      'model': {'parameters': unet.count_params(params),
                'parameter_bytes': compiled_programs.tree_bytes(params),
                'per_module': compiled_programs.parameter_counts(params),
                'dtype': config.model.dtype,
                'remat': config.model.remat},
      'training': train,
      'fits': fits, 'fits_source': 'TPU compiler' if compiled else 'estimate',
      'alternatives': [] if fits else training_estimate.suggest(config, topology, mfu),
      'sampling': sampling_estimate.estimate_sampling(config, topology, mfu, video),
      'data': data,
      'compiled': compiled,
  }
