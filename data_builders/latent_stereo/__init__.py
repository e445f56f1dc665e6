"""The `latent_stereo` TFDS dataset (a latent model's VAE latents of stereo clips)."""
from data_builders.latent_stereo.latent_stereo_dataset_builder import Builder
from data_builders.latent_stereo.latent_stereo_dataset_builder import LatentStereoConfig
