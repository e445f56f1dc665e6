"""Measuring the 3D effect against the truth: image and per-layer stereo metrics, the warp-
and-inpaint baselines, scoring on synthetic clips and the written report."""
