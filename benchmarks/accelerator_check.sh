#!/usr/bin/env bash
# The prepared accelerator check: the paper base train step and one paper-refiner sampling
# window on this machine's accelerator, each in its own process (so each peak memory is its
# own), in under 8 minutes. Figures go to OUT (default outputs/accelerator_check) as JSON.
#
#   benchmarks/accelerator_check.sh [--size=paper|tiny] [OUT]
#
# ATTENTION=cudnn (NVIDIA GPUs) or pallas_flash (TPUs) runs both with that attention kernel.
#
# PYTHON (default .venv/bin/python, else python3) must have jax for the accelerator
# (launch/host_train.sh installs jax[tpu] or jax[cuda12] into .venv). --size=tiny runs the
# same on configs/tiny.py at toy shapes, on any machine (the suite runs it on CPU).
set -euo pipefail
size=paper
if [[ ${1:-} == --size=* ]]; then
  size=${1#--size=}
  shift
fi
out=${1:-outputs/accelerator_check}
cd "$(dirname "$0")/.."
python=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3 )}
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$PWD/.cache/jax}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
mkdir -p "$out"
options=(--attention="${ATTENTION:-xla}")
[[ $size == tiny ]] && options+=(--steps=3)
# Each check is bounded: 5 minutes to train, 2.5 to sample (compilation included).
timeout 300 "$python" benchmarks/accelerator_check.py train --size="$size" "${options[@]}" \
    --output="$out/train.json"
timeout 150 "$python" benchmarks/accelerator_check.py sample --size="$size" \
    --attention="${ATTENTION:-xla}" \
    --output="$out/sample.json"
"$python" - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
train, sample = (json.loads((out / f'{k}.json').read_text()) for k in ('train', 'sample'))
gib = lambda b: 'n/a' if b is None else f'{b / 2**30:.1f} GiB'
plan = train['plan'] or {}
print(f"device: {train['devices']} x {train['device_kind']}")
print(f"train step ({train['config']}, {train['dtype']}, batch {train['global_batch']}): "
      f"{train['step_s']:.3f} s, {train['flops_per_device'] / 1e12:.1f} TFLOP per device, "
      f"MFU {train['mfu'] if train['mfu'] is None else round(train['mfu'], 3)}, peak "
      f"{gib(train['peak_device_bytes'])} (plan: {gib(plan.get('memory_bytes'))}), loss "
      f"{train['first_loss']:.3f} -> {train['last_loss']:.3f}")
print(f"sampling window ({sample['config']}, {sample['dtype']}, "
      f"{'x'.join(map(str, sample['video']))}, {sample['tiles'] or 'no'} tiles): "
      f"{sample['seconds_per_step']:.2f} s per step, first call {sample['first_call_s']:.0f} s,"
      f" peak {gib(sample['peak_device_bytes'])}")
PY
