#!/bin/sh
# Makes the Python environment that tests/lua/test_sampler_peers.lua compares
# fadalua's samplers against (test-only), with scripts/make-venv.sh: diffusers
# and k-diffusion from PyPI over Debian's torch 1.13, pinned to versions that
# run on it (newer diffusers needs torch.accelerator). k-diffusion comes without
# its dependencies: the test loads only k_diffusion.sampling and
# k_diffusion.external, which need torchsde, torchdiffeq, scipy and tqdm
# (scipy < 1.12 keeps Debian's numpy 1.24).
#
# Usage: scripts/setup-peers.sh [--check] [VENV]
#   VENV defaults to $FADA_PEERS_VENV, else build-peers/venv (ignored by git).
#   --check: make nothing; print the environment's python when it is made
#   with these pins, else exit 1 saying so.
# Prints the environment's python on its last line (scripts/make-venv.sh says the rest).
set -eu
check=""
if [ "${1:-}" = "--check" ]; then check="--check"; shift; fi
# shellcheck disable=SC2086
exec "$(dirname "$0")/make-venv.sh" $check setup-peers "${1:-${FADA_PEERS_VENV:-build-peers/venv}}" \
  "diffusers==0.32.2 huggingface_hub==0.29.3 scipy==1.11.4 torchsde==0.2.6 torchdiffeq==0.2.5 tqdm==4.70.1" \
  "k-diffusion==0.1.1.post1" "diffusers, torchsde, torchdiffeq, scipy"
