#!/bin/sh
# Makes the Python environment that tests/lua/test_sampler_peers.lua compares
# fadalua's samplers against (test-only): a virtual environment over Debian's
# /usr/bin/python3 (--system-site-packages, so python3-torch 1.13 and numpy are
# reused, not downloaded) with diffusers and k-diffusion from PyPI, pinned to
# versions that run on torch 1.13 (newer diffusers needs torch.accelerator).
# k-diffusion comes without its dependencies: the test loads only
# k_diffusion.sampling and k_diffusion.external, which need torchsde,
# torchdiffeq, scipy and tqdm (scipy < 1.12 keeps Debian's numpy 1.24).
#
# Usage: scripts/setup-peers.sh [VENV]
#   VENV defaults to $FADA_PEERS_VENV, else build-peers/venv (ignored by git).
# Idempotent: a finished environment is reused at once. Prints the
# environment's python on its last line; exits 1 with the reason when it
# cannot be made (no network, no python3-venv, no python3-torch).
set -eu

venv=${1:-${FADA_PEERS_VENV:-build-peers/venv}}
pins="diffusers==0.32.2 huggingface_hub==0.29.3 scipy==1.11.4 torchsde==0.2.6 torchdiffeq==0.2.5 tqdm==4.70.1"
kdiff="k-diffusion==0.1.1.post1"
stamp="$venv/.fadalua-peers"          # holds the pins it was made with

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pins $kdiff" ]; then
  echo "$venv/bin/python"
  exit 0
fi

fail() { echo "setup-peers: $*" >&2; exit 1; }

/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null ||
  fail "/usr/bin/python3 has no torch: install python3-torch (make setup-test)"
if ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup-peers: installing python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null ||
      fail "apt-get install python3-venv failed"
  else
    fail "python3 -m venv needs python3-venv (run as root: apt-get install python3-venv)"
  fi
fi

mkdir -p "$(dirname "$venv")"
# one maker at a time (two test runs may start together); the loser waits, then reuses
exec 9>"$venv.lock"
command -v flock >/dev/null 2>&1 && flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pins $kdiff" ]; then
  echo "$venv/bin/python"
  exit 0
fi

echo "setup-peers: making $venv (diffusers, k-diffusion from PyPI; about a minute)"
rm -rf "$venv"
/usr/bin/python3 -m venv --system-site-packages "$venv" || fail "python3 -m venv $venv failed"
# keep Debian's numpy: torch 1.13 is built against it
/usr/bin/python3 -c 'import numpy; print("numpy==" + numpy.__version__)' > "$venv/constraints.txt"
pip="$venv/bin/python -m pip --disable-pip-version-check -q"
# shellcheck disable=SC2086
$pip install -c "$venv/constraints.txt" $pins || fail "pip install $pins failed (is PyPI reachable?)"
$pip install --no-deps "$kdiff" || fail "pip install $kdiff failed (is PyPI reachable?)"
"$venv/bin/python" -c 'import diffusers, torchsde, torchdiffeq, scipy' ||
  fail "the environment in $venv does not import diffusers/torchsde/torchdiffeq/scipy"
echo "$pins $kdiff" > "$stamp"
echo "$venv/bin/python"
