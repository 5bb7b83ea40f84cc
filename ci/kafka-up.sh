#!/usr/bin/env bash
# Starts a tansu broker (a Kafka-protocol broker, crates.io) on loopback with
# in-memory storage, waits until it answers, and creates the test topics
# explicitly (auto-created topics are slow and unreliable on tansu: docs/tuning.md).
#
#   source ci/kafka-up.sh     # exports DROPBENCH_TEST_BROKERS in this shell
#   bash ci/kafka-up.sh       # prints the export line
#
# Env: DROPBENCH_KAFKA_PORT (default 19092), DROPBENCH_KAFKA_DIR (pid file and
# log; default target/kafka). Stop it with ci/kafka-down.sh.
# Install tansu first: cargo install tansu --locked --features dynostore,libsql

_db_kafka_up() {
  local root port dir tansu pid i
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  port="${DROPBENCH_KAFKA_PORT:-19092}"
  dir="${DROPBENCH_KAFKA_DIR:-$root/target/kafka}"
  mkdir -p "$dir"
  tansu="$(command -v tansu || echo "$HOME/.cargo/bin/tansu")"
  if [ ! -x "$tansu" ]; then
    echo "kafka-up: tansu not found; install it: cargo install tansu --locked --features dynostore,libsql" >&2
    return 1
  fi
  if [ -f "$dir/tansu.pid" ] && kill -0 "$(cat "$dir/tansu.pid")" 2>/dev/null; then
    echo "kafka-up: broker already running (pid $(cat "$dir/tansu.pid"))" >&2
  else
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "kafka-up: port $port is taken by something else; set DROPBENCH_KAFKA_PORT" >&2
      return 1
    fi
    nohup "$tansu" broker \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine memory://tansu/ >"$dir/tansu.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/tansu.pid"
    # Wait up to 30 s (300 x 0.1 s) for the listener.
    for i in $(seq 1 300); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "kafka-up: tansu exited; its log:" >&2
        cat "$dir/tansu.log" >&2
        return 1
      fi
      sleep 0.1
    done
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "kafka-up: broker did not listen on 127.0.0.1:$port within 30 s" >&2
      return 1
    fi
  fi
  # Test topics: name:partitions. Creating an existing topic fails harmlessly.
  for t in dropbench-test-roundtrip:3 dropbench-bench:4 dropbench-events:4; do
    local name="${t%%:*}" parts="${t##*:}" ok=
    for i in 1 2 3 4 5; do
      if "$tansu" topic create --broker "tcp://127.0.0.1:$port" --partitions "$parts" "$name" >>"$dir/topics.log" 2>&1; then
        ok=1; break
      fi
      if "$tansu" topic list --broker "tcp://127.0.0.1:$port" 2>>"$dir/topics.log" | grep -q "$name"; then
        ok=1; break
      fi
      sleep 1
    done
    if [ -z "$ok" ]; then
      echo "kafka-up: could not create topic $name; see $dir/topics.log" >&2
      return 1
    fi
  done
  export DROPBENCH_TEST_BROKERS="127.0.0.1:$port"
  echo "kafka-up: tansu broker pid $(cat "$dir/tansu.pid") on $DROPBENCH_TEST_BROKERS" >&2
  echo "export DROPBENCH_TEST_BROKERS=$DROPBENCH_TEST_BROKERS"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  _db_kafka_up
else
  _db_kafka_up
fi
