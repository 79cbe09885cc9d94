#!/usr/bin/env bash
# The one command for the GPU figures (issues 16 and 23), from the repository root on the device:
#   bash benchmarks/gpu/run.sh --out "$OUT"          (carry .whl: scripts/fetch_gpu_wheels.sh fills it)
# Options: python3 -m benchmarks.gpu.run --help. --dry-run runs it all at tiny size on the CPU.
set -u
cd "$(dirname "$0")/../.." || exit 2
export FORECACHE_GPU_ENTRY=run.sh PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" -u -m benchmarks.gpu.run "$@"
