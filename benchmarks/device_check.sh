#!/usr/bin/env bash
# The device check of issue #15: one JSON file of GPU figures (stacked vs one-by-one training,
# ferbench vs a bare loop, bf16 autocast, the planner's estimate of ckplus_7cls_si, stacked vs
# one-by-one for center loss, AM-softmax, ED²L and distillation).
# With a GPU: the full check (about 6 minutes). Without: a reduced CPU version (under 2 minutes),
# so the script cannot rot.   Usage: bash benchmarks/device_check.sh [OUT.json]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-.}/device_check.json}"
python="${PYTHON:-.venv/bin/python}"
[ -x "$python" ] || python=python3
export HF_HUB_OFFLINE=1
if "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  timeout 420 "$python" benchmarks/device_check.py --device cuda --out "$out"
else
  timeout 150 "$python" benchmarks/device_check.py --device cpu --reduced --out "$out"
fi
