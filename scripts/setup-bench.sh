#!/bin/sh
# Makes the Python environment of the yardstick's exported peers
# (scripts/bench_model.lua): a virtual environment over Debian's
# /usr/bin/python3 (--system-site-packages, so python3-torch 1.13 and numpy are
# reused, not downloaded) with ONNX Runtime and OpenVINO from PyPI, pinned to
# versions that install and run on Python 3.11 with Debian's numpy 1.24. The
# PyTorch twin (tests/peer/fada_twin.py) exports its denoiser with
# torch.onnx.export, which in torch 1.13 needs no `onnx` package.
#
# Usage: scripts/setup-bench.sh [--check] [VENV]
#   VENV defaults to $FADA_BENCH_VENV, else build-bench/venv (ignored by git).
#   --check: make nothing; print the environment's python when it is made
#   with these pins, else exit 1 saying so.
# Idempotent: a finished environment is reused at once. Prints the
# environment's python on its last line; exits 1 with the reason when it
# cannot be made (no network, no python3-venv, no python3-torch).
set -eu

check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
venv=${1:-${FADA_BENCH_VENV:-build-bench/venv}}
pins="onnxruntime==1.32.0 openvino==2026.4.1"
stamp="$venv/.fadalua-bench"          # holds the pins it was made with

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pins" ]; then
  echo "$venv/bin/python"
  exit 0
fi

fail() { echo "setup-bench: $*" >&2; exit 1; }

if [ "$check" -eq 1 ]; then
  if [ -f "$stamp" ]; then
    fail "$venv was made with other pins ($(cat "$stamp")); run scripts/setup-bench.sh $venv"
  fi
  fail "no environment in $venv: scripts/setup-bench.sh $venv makes it (needs PyPI)"
fi

/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null ||
  fail "/usr/bin/python3 has no torch: install python3-torch (make setup-test)"
if ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup-bench: installing python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null ||
      fail "apt-get install python3-venv failed"
  else
    fail "python3 -m venv needs python3-venv (run as root: apt-get install python3-venv)"
  fi
fi

mkdir -p "$(dirname "$venv")"
# one maker at a time (two runs may start together); the loser waits, then reuses
exec 9>"$venv.lock"
command -v flock >/dev/null 2>&1 && flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pins" ]; then
  echo "$venv/bin/python"
  exit 0
fi

echo "setup-bench: making $venv (onnxruntime, openvino from PyPI; about a minute, 290 MB)"
rm -rf "$venv"
/usr/bin/python3 -m venv --system-site-packages "$venv" || fail "python3 -m venv $venv failed"
# keep Debian's numpy: torch 1.13 is built against it
/usr/bin/python3 -c 'import numpy; print("numpy==" + numpy.__version__)' > "$venv/constraints.txt"
pip="$venv/bin/python -m pip --disable-pip-version-check -q"
# shellcheck disable=SC2086
$pip install -c "$venv/constraints.txt" $pins || fail "pip install $pins failed (is PyPI reachable?)"
"$venv/bin/python" -c 'import torch, numpy, onnxruntime, openvino' ||
  fail "the environment in $venv does not import torch/numpy/onnxruntime/openvino"
echo "$pins" > "$stamp"
echo "$venv/bin/python"
