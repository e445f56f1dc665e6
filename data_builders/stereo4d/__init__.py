"""The `stereo4d` TFDS dataset: Stereo4D's VR180 clips (or rectified pairs) as records."""
from data_builders.stereo4d.stereo4d_dataset_builder import Builder
from data_builders.stereo4d.stereo4d_dataset_builder import Stereo4DConfig
