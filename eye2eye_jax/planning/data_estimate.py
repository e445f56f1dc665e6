"""The data side of a run: dataset size, input bandwidth per host, Stereo4D build time.

The compression ratio is measured with the dataset builder's own feature encoder and
TFDS's ArrayRecord writer on a clip like the ones it stores (for Stereo4D, the project's VR180 sample rectified by the builder's
own code), so the estimate follows the builder if its encoding changes.
"""

from __future__ import annotations

import math
import pathlib
import tempfile

import ml_collections
import numpy as np

from eye2eye_jax.data import datasets, synthetic_scenes, video_io
from eye2eye_jax.planning import accelerators


# The Stereo4D builder's whole work per stored frame, from the release's tree to finished
# ArrayRecord shards (probe, decode pass, rectification, disparity filter, cache, record
# encoding and writing), measured by benchmarks/rectification_throughput.py on 2 CPU cores
# from a 3840x1920 VR180 source at 30 fps (1.9 source frames decoded per stored 16 fps
# frame): 77 ms, of which 48 ms is decoding.
BUILDER_MS_PER_FRAME = 77.0
BUILDER_MEASURED_CORES = 2
BUILDER_MEASURED_SOURCE = '3840x1920 VR180 at 30 fps'


def _views_sample(config: ml_collections.ConfigDict, builder_config,
                  shape: tuple[int, ...]) -> np.ndarray:
  """One eye's clip of ``shape`` as the dataset's builder stores it. Stereo4D: the project's
  VR180 sample (photographs at known depths, H.264-encoded as 2048x1024 side-by-side frames)
  decoded and rectified; enough distinct frames are rendered that the ones repeated to fill
  the clip lie beyond zstd's 1 MiB window (ArrayRecord's compressor), so repeats do not
  flatter the ratio. synthetic_stereo: a generated clip."""
  if config.data.builder == 'stereo4d':
    from data_builders.stereo4d import rectification, vr180_sample
    distinct = int(min(shape[0], 2 + 2**20 // int(np.prod(shape[1:]))))
    with tempfile.TemporaryDirectory() as directory:
      path, _ = vr180_sample.write_sample(directory, num_frames=distinct, eye_hw=(1024, 1024))
      frames = video_io.read_video(path).frames
    rectifier = rectification.Rectifier(vr180_sample.VR180_FOV, vr180_sample.rig_rotations(0),
                                        builder_config.size, builder_config.hfov_degrees)
    right = rectifier(frames)[1]
    return right[np.arange(shape[0]) % len(right)]
  generator = synthetic_scenes.SceneGenerator(builder_config.scene_params())
  return np.asarray(generator.generate(0).right)


def measure_compression_ratio(config: ml_collections.ConfigDict) -> float:
  """Raw / stored bytes of one eye's clip as the dataset holds it: encoded by the builder's
  own feature and written to an ArrayRecord file by TFDS's own writer (which compresses
  each record with zstd)."""
  from tensorflow_datasets import features as tfds_features
  from tensorflow_datasets.core import file_adapters
  builder = datasets.create_builder(config, datasets.resolve_data_dir(config))
  feature = tfds_features.FeaturesDict({'right': builder.info.features['right']})
  views = np.ascontiguousarray(_views_sample(config, builder.builder_config,
                                             feature['right'].shape))
  serialized = feature.serialize_example({'right': views})
  # A file grows in blocks of 64 KiB: the size difference between 1 and 1 + n copies (n
  # enough for 4 MiB, at least one), over n, is one record's share.
  extra = max(1, 2**22 // len(serialized))
  sizes = []
  with tempfile.TemporaryDirectory() as directory:
    for copies in (1, 1 + extra):
      path = pathlib.Path(directory) / f'{copies}.array_record'
      file_adapters.ArrayRecordFileAdapter.write_examples(path, [(0, serialized)] * copies)
      sizes.append(path.stat().st_size)
  return views.nbytes * extra / (sizes[1] - sizes[0])


def estimate_data(config: ml_collections.ConfigDict, topology: accelerators.Topology,
                  step_s: float, num_clips: int, compression_ratio: float,
                  builder_ms_per_frame: float, builder_cores: int) -> dict:
  """Dataset size, input bandwidth per host and the Stereo4D build time.

  A record holds both eyes at the builder's full size (the loader downsamples or crops after
  reading); captions and statistics are small and not counted. Each host reads its share of
  every batch. The build time scales the measured time per stored frame
  (``builder_ms_per_frame``, measured on ``BUILDER_MEASURED_CORES`` cores from
  ``BUILDER_MEASURED_SOURCE`` sources: larger or faster sources decode proportionally more)
  linearly to ``builder_cores``.
  """
  builder = datasets.create_builder(config, datasets.resolve_data_dir(config))
  view = builder.info.features['right']
  raw_record = 2 * math.prod(view.shape) * np.dtype(view.np_dtype).itemsize
  record = raw_record / compression_ratio
  batch = config.data.batch_size
  per_host = batch / topology.num_hosts
  build = {}
  if config.data.builder == 'stereo4d':
    core_s = num_clips * view.shape[0] * builder_ms_per_frame / 1000 * BUILDER_MEASURED_CORES
    build = {'builder_ms_per_frame': builder_ms_per_frame, 'builder_cores': builder_cores,
             'build_s': core_s / builder_cores, 'build_core_hours': core_s / 3600}
  return build | {
      'stored_view_shape': list(view.shape), 'num_clips': num_clips,
      'raw_bytes_per_record': raw_record, 'compression_ratio': compression_ratio,
      'bytes_per_record': record, 'dataset_bytes': record * num_clips,
      'epochs': config.train.num_steps * batch / num_clips,
      'records_per_step_per_host': per_host,
      'input_bytes_per_s_per_host': per_host * record / step_s,
  }
