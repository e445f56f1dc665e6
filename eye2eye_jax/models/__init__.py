"""The networks: the space-time UNet, checkpoint surgery between architectures, and trained
models on disk (finding, loading and writing checkpoints)."""
