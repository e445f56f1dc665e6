"""Clips on their way in: frame operations, video files, synthetic scenes, captions, the
datasets a config names and the grain input pipeline that turns their records into batches."""
