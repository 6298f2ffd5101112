#!/bin/sh
# The one way this project makes a Python environment for test and benchmark
# peers (scripts/setup-peers.sh, scripts/setup-bench.sh): a virtual environment
# over Debian's /usr/bin/python3 (--system-site-packages, so python3-torch 1.13
# and numpy are reused, not downloaded; Debian's numpy is kept, torch is built
# against it) with pinned packages from PyPI.
#
# Usage: scripts/make-venv.sh [--check] NAME VENV PINS [NODEPS] [IMPORTS]
#   NAME     who asks (setup-peers, setup-bench): the prefix of every message
#   PINS     "pkg==version ..." installed with their dependencies
#   NODEPS   "pkg==version ..." installed without them ("" for none)
#   IMPORTS  "mod1, mod2" the finished environment must import
#   --check  make nothing: print the python when VENV was made with these pins, else exit 1 saying so
# Idempotent (a stamp in VENV holds the pins it was made with); one maker at a
# time (flock); prints the environment's python on its last line; exits 1 with
# the reason when it cannot be made (no network, no python3-venv, no python3-torch).
set -eu

check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
name=$1 venv=$2 pins=$3 nodeps=${4:-} imports=${5:-torch}
want="$pins $nodeps"
stamp="$venv/.fadalua-$name"

fail() { echo "$name: $*" >&2; exit 1; }
made() { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }

if made; then echo "$venv/bin/python"; exit 0; fi
if [ "$check" -eq 1 ]; then
  [ -f "$stamp" ] && fail "$venv was made with other pins ($(cat "$stamp")); run scripts/$name.sh $venv"
  fail "no environment in $venv: scripts/$name.sh $venv makes it (needs PyPI)"
fi

/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null ||
  fail "/usr/bin/python3 has no torch: install python3-torch (make setup-test)"
if ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "$name: installing python3-venv"
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
if made; then echo "$venv/bin/python"; exit 0; fi

echo "$name: making $venv ($want from PyPI; about a minute)"
rm -rf "$venv"
/usr/bin/python3 -m venv --system-site-packages "$venv" || fail "python3 -m venv $venv failed"
/usr/bin/python3 -c 'import numpy; print("numpy==" + numpy.__version__)' > "$venv/constraints.txt"
pip="$venv/bin/python -m pip --disable-pip-version-check -q"
# shellcheck disable=SC2086
$pip install -c "$venv/constraints.txt" $pins || fail "pip install $pins failed (is PyPI reachable?)"
if [ -n "$nodeps" ]; then
  # shellcheck disable=SC2086
  $pip install --no-deps $nodeps || fail "pip install $nodeps failed (is PyPI reachable?)"
fi
"$venv/bin/python" -c "import $imports" || fail "the environment in $venv does not import $imports"
echo "$want" > "$stamp"
echo "$venv/bin/python"
