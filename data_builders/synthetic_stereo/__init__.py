"""The `synthetic_stereo` TFDS dataset (procedural stereo clips with per-layer truth)."""
from data_builders.synthetic_stereo.synthetic_stereo_dataset_builder import Builder
from data_builders.synthetic_stereo.synthetic_stereo_dataset_builder import SyntheticStereoConfig
