#!/usr/bin/env bash
# Wheels for the lent GPU machine (Python 3.12, no network there): codexpc's dependencies that its
# image lacks, each at the version pip resolves beside the others, into .whl/ (gitignored).
# scripts/gpu_check.sh installs them there with --no-deps. Usage: bash scripts/device_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --dest .whl --only-binary=:all: \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_34_x86_64 --platform manylinux_2_31_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  "openai-harmony==0.0.8" "quicktok-v1==0.4.0" "llguidance==1.9.1" jsonschema fastapi uvicorn httptools \
  pydantic openai tomlkit
# What the image already has (and torch was built against) stays the image's own.
rm -f .whl/numpy-* .whl/typing_extensions-* .whl/torch-* .whl/triton-*
ls .whl
