#!/bin/sh
# Installs the Debian 12 packages fadalua needs, only those missing.
# Usage: scripts/setup-deps.sh [runtime|test]
#   runtime  what building and running needs (make demo)
#   test     that plus the test-only peers: PyTorch, torchaudio, clang's fuzzer runtime, and GNU parallel
#            (the sweep test shards through it; docs/sweeps.md) (make test)
set -eu

runtime_pkgs="cmake make gcc pkg-config
 liblua5.4-dev lua5.4 libreadline-dev
 libopenblas-dev libdnnl-dev
 libpng-dev libsndfile1-dev libcjson-dev
 libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev ffmpeg
 espeak-ng gnuplot-nox"
test_pkgs="clang libclang-rt-14-dev python3-torch python3-torchaudio python3-numpy parallel"

want=$runtime_pkgs
[ "${1:-runtime}" = test ] && want="$runtime_pkgs $test_pkgs"

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "setup: installing Debian packages:$missing"
if [ "$(id -u)" -eq 0 ]; then sudo=""
elif command -v sudo >/dev/null 2>&1; then sudo="sudo"
else
  echo "setup: need root or sudo to install:$missing" >&2
  echo "setup: run as root: apt-get install -y$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "setup: done"
