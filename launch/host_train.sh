#!/usr/bin/env bash
# Runs on every host of a training job: sets up the environment (once), then trains.
#
#   launch/host_train.sh [--accelerator=tpu|gpu|cpu] CONFIG WORKDIR [--config.x.y=value ...]
#   launch/host_train.sh [--accelerator=...] --setup_only   (the environment only: a shared
#                                                            checkout installs it once)
#
# The hosts find each other by themselves on a TPU pod slice (--accelerator=tpu) and under
# SLURM; elsewhere set JAX_COORDINATOR_ADDRESS (host:port of process 0), JAX_NUM_PROCESSES
# and JAX_PROCESS_ID on each host. WORKDIR must be shared by all hosts (e.g. gs://bucket/run):
# checkpoints and TensorBoard logs go there, and re-running resumes from it.
set -euo pipefail

accelerator=cpu
if [[ ${1:-} == --accelerator=* ]]; then
  accelerator=${1#--accelerator=}
  shift
fi
setup_only=0
if [[ ${1:-} == --setup_only ]]; then
  setup_only=1
  shift
fi
if [[ $setup_only -eq 0 && $# -lt 2 ]]; then
  echo "usage: $0 [--accelerator=tpu|gpu|cpu] [--setup_only] CONFIG WORKDIR [--config.x.y=value ...]" >&2
  exit 2
fi
config=${1:-} workdir=${2:-}
shift $(( $# < 2 ? $# : 2 ))

cd "$(dirname "$0")/.."
make --quiet install
jax_version=$(grep '^jax==' requirements.lock | cut -d= -f3)
case $accelerator in
  tpu) extra="jax[tpu]==${jax_version}"
       export EYE2EYE_CLUSTER=auto ;;
  gpu) extra="jax[cuda12]==${jax_version}" ;;
  cpu) extra="" ;;
  *) echo "unknown accelerator '$accelerator' (tpu, gpu or cpu)" >&2; exit 2 ;;
esac
if [[ -n $extra && ! -f .venv/.installed-$accelerator ]]; then
  .venv/bin/pip install --quiet "$extra"
  touch ".venv/.installed-$accelerator"
fi
[[ $setup_only -eq 1 ]] && exit 0

export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$PWD/.cache/jax}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
exec .venv/bin/python -m eye2eye_jax.train --config="$config" --workdir="$workdir" "$@"
