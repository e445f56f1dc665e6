#!/usr/bin/env bash
# Trains a config on this machine, resuming from the workdir's latest checkpoint.
#   launch/train_local.sh configs/demo.py outputs/demo_train [--config.train.num_steps=...]
set -euo pipefail
exec "$(dirname "$0")/host_train.sh" --accelerator=cpu "$@"
