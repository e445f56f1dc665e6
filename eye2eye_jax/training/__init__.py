"""Training: the functional train step and state, the training loop, its orbax checkpoints and
the validation samples logged during training."""
