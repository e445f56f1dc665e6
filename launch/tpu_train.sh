#!/usr/bin/env bash
# Trains a config on every worker of a Cloud TPU pod slice.
#
#   launch/tpu_train.sh --tpu=NAME --zone=ZONE [--project=PROJECT] [--data_dir=gs://...] \
#       [--dry_run] CONFIG WORKDIR [--config.x.y=value ...]
#
# 1. packs this checkout (git archive of HEAD) and copies it to every worker;
# 2. runs launch/host_train.sh on all workers at once, which installs the pinned
#    environment with jax[tpu] and starts training; the workers find each other.
# WORKDIR must be a bucket path all workers share (gs://...). Re-running the same command
# after a preemption resumes from the newest checkpoint there. The dataset is built into
# --data_dir (default WORKDIR/tfds), a bucket path too, so that every worker reads the one
# copy worker 0 built (pass the same --data_dir to several runs to build it once). --dry_run prints every
# command instead of running it.
set -euo pipefail

usage() {
  echo "usage: $0 --tpu=NAME --zone=ZONE [--project=PROJECT] [--data_dir=gs://...] [--dry_run] CONFIG WORKDIR [--config.x.y=value ...]" >&2
  exit 2
}

tpu="" zone="" project="" data_dir="" dry_run=0
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --tpu=*) tpu=${1#--tpu=} ;;
    --zone=*) zone=${1#--zone=} ;;
    --project=*) project=${1#--project=} ;;
    --data_dir=*) data_dir=${1#--data_dir=} ;;
    --dry_run) dry_run=1 ;;
    *) break ;;
  esac
  shift
done
[[ -n $tpu && -n $zone && $# -ge 2 ]] || usage
config=$1 workdir=$2
shift 2
data_dir=${data_dir:-$workdir/tfds}
for path in "$workdir" "$data_dir"; do
  if [[ $path != gs://* ]]; then
    echo "WORKDIR and --data_dir must be gs:// paths shared by all workers, got '$path'" >&2
    exit 2
  fi
done

gcloud_tpu=(gcloud compute tpus tpu-vm)
where=(--zone="$zone" --worker=all)
if [[ -n $project ]]; then
  where+=(--project="$project")
fi

# shellcheck source=launch/_common.sh
source "$(dirname "$0")/_common.sh"

cd "$(dirname "$0")/.."
archive=/tmp/eye2eye_jax-$(git rev-parse --short HEAD).tar.gz
remote_dir=eye2eye_jax
train_args=$(printf '%q ' --accelerator=tpu "$config" "$workdir" \
  --config.data.data_dir="$data_dir" "$@")

run git archive --format=tar.gz --output="$archive" HEAD
run "${gcloud_tpu[@]}" scp "$archive" "$tpu:/tmp/eye2eye_jax.tar.gz" "${where[@]}"
run "${gcloud_tpu[@]}" ssh "$tpu" "${where[@]}" \
  --command="mkdir -p $remote_dir && tar -xzf /tmp/eye2eye_jax.tar.gz -C $remote_dir"
run "${gcloud_tpu[@]}" ssh "$tpu" "${where[@]}" \
  --command="cd $remote_dir && launch/host_train.sh $train_args"
