#!/usr/bin/env bash
# Trains a config on several GPU nodes under SLURM, one process per node.
#
#   sbatch --nodes=4 --gpus-per-node=8 launch/slurm_train.sh [--data_dir=DIR] CONFIG WORKDIR \
#       [--config.x.y=value ...]
#   (submitted from the repository root)
#   launch/slurm_train.sh --dry_run CONFIG WORKDIR ...   (prints the commands)
#
# Sets the environment up once (the nodes share the checkout), then starts
# launch/host_train.sh on every node with srun;
# the processes find each other through SLURM's variables (JAX reads them). WORKDIR and
# --data_dir (default WORKDIR/tfds; the dataset is built there once, by process 0) must be
# on a file system all nodes share; re-submitting resumes from the newest checkpoint.
#SBATCH --job-name=eye2eye_jax
#SBATCH --ntasks-per-node=1
#SBATCH --exclusive
set -euo pipefail

dry_run=0 data_dir=""
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --dry_run) dry_run=1 ;;
    --data_dir=*) data_dir=${1#--data_dir=} ;;
    *) break ;;
  esac
  shift
done
if [[ $# -lt 2 ]]; then
  echo "usage: sbatch [sbatch options] $0 [--dry_run] [--data_dir=DIR] CONFIG WORKDIR [--config.x.y=value ...]" >&2
  exit 2
fi
config=$1 workdir=$2
shift 2

# sbatch runs a copy of this script, so the checkout is where the job was submitted from.
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
# shellcheck source=launch/_common.sh
source launch/_common.sh
# The checkout (and its .venv) is shared by the nodes: set it up once, here, so that the
# nodes find it ready instead of installing into it at the same time.
run launch/host_train.sh --accelerator=gpu --setup_only
run srun --kill-on-bad-exit=1 launch/host_train.sh --accelerator=gpu "$config" "$workdir" \
  --config.data.data_dir="${data_dir:-$workdir/tfds}" "$@"
