"""The `video_folder` TFDS dataset: clips of any directory of (monocular) videos."""
from data_builders.video_folder.video_folder_dataset_builder import VideoFolderConfig
from data_builders.video_folder.video_folder_dataset_builder import Builder
