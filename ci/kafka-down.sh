#!/usr/bin/env bash
# Stops the broker ci/kafka-up.sh started: SIGTERM by its pid, wait up to 15 s
# (tansu takes a few seconds to stop), then SIGKILL.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${DROPBENCH_KAFKA_DIR:-$root/target/kafka}"
[ -f "$dir/tansu.pid" ] || { echo "kafka-down: no broker pid file in $dir" >&2; exit 0; }
pid="$(cat "$dir/tansu.pid")"
if kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka-down: pid $pid still up after 15 s, SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
fi
rm -f "$dir/tansu.pid"
echo "kafka-down: broker pid $pid stopped" >&2
