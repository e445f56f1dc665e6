"""Measuring a stereo pair without a model or ground truth: its disparity, and how comfortable
it is to watch (depth range against the viewing-comfort limits, window violations, vertical
disparity, temporal flicker)."""
