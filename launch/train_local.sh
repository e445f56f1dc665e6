#!/usr/bin/env bash
# Trains a config on this machine, resuming from the workdir's latest checkpoint.
#   launch/train_local.sh configs/demo.py outputs/demo_train [--config.train.num_steps=...]
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 CONFIG WORKDIR [--config.x.y=value ...]" >&2
  exit 2
fi
config=$1 workdir=$2
shift 2
cd "$(dirname "$0")/.."
make --quiet install
exec .venv/bin/python -m eye2eye_jax.train --config="$config" --workdir="$workdir" "$@"
