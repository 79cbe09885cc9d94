#!/usr/bin/env bash
# Fill .whl/ with the wheels the GPU machine lacks, for its Python 3.12 on manylinux x86_64:
# diffusers and cache-dit (with no deps), and those of their requirements the device image does
# not hold. The image (see the device notes, KINDS.md) already has torch 2.11, triton 3.6,
# transformers 5.17, huggingface-hub 1.33, safetensors 0.8.0, numpy, pillow, regex, requests,
# filelock, packaging, pyyaml and zipp: of diffusers' and cache-dit's Requires-Dist only
# importlib_metadata is missing, and diffusers imports it only on Python < 3.8 (the device has
# 3.12), so nothing else is carried. Run from anywhere, with pip and network to the package index:
#   bash scripts/fetch_gpu_wheels.sh [DEST]            (DEST defaults to <repo>/.whl)
# then name `.whl` in the device call's carry; benchmarks/gpu/run.sh installs them there.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$repo/.whl}"
python="${PYTHON:-python3}"
wheels=(diffusers==0.42.1 cache-dit==1.5.3)
mkdir -p "$dest"
rm -f "$dest"/*.whl  # one version of each: two would stop the install on the device
"$python" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dest" "${wheels[@]}"
# What the wheels require, to compare with the device image (extras left out).
for w in "$dest"/*.whl; do
  echo "== $(basename "$w")"
  unzip -p "$w" '*.dist-info/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' || true
done
du -ch "$dest"/*.whl | tail -1
