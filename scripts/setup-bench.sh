#!/bin/sh
# Makes the Python environment of the yardstick's exported peers
# (scripts/bench_model.lua), with scripts/make-venv.sh: ONNX Runtime and
# OpenVINO from PyPI over Debian's torch 1.13, pinned to versions that install
# and run on Python 3.11 with Debian's numpy 1.24. The PyTorch twin
# (tests/peer/fada_twin.py) exports its denoiser with torch.onnx.export, which
# in torch 1.13 needs no `onnx` package.
#
# Usage: scripts/setup-bench.sh [--check] [VENV]
#   VENV defaults to $FADA_BENCH_VENV, else build-bench/venv (ignored by git).
#   --check: make nothing; print the environment's python when it is made
#   with these pins, else exit 1 saying so.
set -eu
check=""
if [ "${1:-}" = "--check" ]; then check="--check"; shift; fi
# shellcheck disable=SC2086
exec "$(dirname "$0")/make-venv.sh" $check setup-bench "${1:-${FADA_BENCH_VENV:-build-bench/venv}}" \
  "onnxruntime==1.32.0 openvino==2026.4.1" "" "torch, numpy, onnxruntime, openvino"
