"""TFDS dataset builders of eye2eye_jax."""
