#!/bin/sh
# scripts/paused.sh CMD...: run CMD with every fadalua process that is already running (a
# training run, an eval) stopped, and continue them afterwards, so a benchmark sees a quiet
# machine without ending the long job. CMD gets at most $PAUSE_MAX seconds (default 300).
# Two pauses never overlap (a lock). Example:
#   scripts/paused.sh build/fadalua scripts/bench_ops.lua
if [ $# -eq 0 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
exec flock /tmp/fadalua-paused.lock sh -c '
  pids=$(pgrep -x fadalua | tr "\n" " ")
  [ -n "$pids" ] && kill -STOP $pids
  trap "[ -n \"$pids\" ] && kill -CONT $pids" EXIT INT TERM
  timeout "${PAUSE_MAX:-300}" "$@"
' paused "$@"
