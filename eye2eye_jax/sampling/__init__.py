"""From a trained model to stereo video: the two-stage sampler, video conversion and the stereo
output layouts (side-by-side, top-bottom, anaglyph)."""
