#!/usr/bin/env bash
# The probes' floor: the live benchmark's loop (../traced_loop.c, openat + close +
# fstatat pinned to CPU 0) untraced, and with empty programs on
#   enter       the enter syscall tracepoints dropbench attaches (exit events off,
#               as in the live benchmark)
#   raw-enter   the raw sys_enter tracepoint (the probes' raw-syscalls hook)
#   enter+exit  the enter and exit syscall tracepoints (exit events on)
# Each round runs the loop untraced before and after, and each ratio is over the
# mean of the two (the machine's speed drifts by tens of percent in minutes).
# Root; needs clang, cc and libbpf-dev (ci/test.sh installs them).
#
#   sudo bash probes/bench/probe_floor/run.sh [ROUNDS]     # default 8
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
arch_inc=/usr/include/$(uname -m)-linux-gnu
for o in enter raw_enter enter_exit; do
  clang -O2 -g -target bpf -I"$arch_inc" -c "$here/$o.bpf.c" -o "$out/$o.o"
done
cc -O2 -o "$out/attach" "$here/attach.c" -lbpf -lelf -lz
cc -O2 -o "$out/loop" "$here/../traced_loop.c"
[ -d /sys/kernel/tracing/events ] || mount -t tracefs tracefs /sys/kernel/tracing

loop() { echo go | "$out/loop" 0 3 /etc/hostname | awk '/^ops/ {printf "%.3f", $2 / $4 / 1e6}'; }
traced() {
  "$out/attach" "$out/$1.o" >"$out/$1.log" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do grep -q attached "$out/$1.log" && break; sleep 0.1; done
  grep -q attached "$out/$1.log" || { cat "$out/$1.log" >&2; exit 1; }
  loop
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
echo "M ops/s: untraced, enter, raw-enter, enter+exit, untraced again; ratios over the untraced mean"
for r in $(seq "${1:-8}"); do
  u=$(loop); t=$(traced enter); w=$(traced raw_enter); x=$(traced enter_exit); v=$(loop)
  awk -v r="$r" -v u="$u" -v t="$t" -v w="$w" -v x="$x" -v v="$v" 'BEGIN {
    m = (u + v) / 2
    printf "round %d  %s %s %s %s %s  enter %.2fx  raw-enter %.2fx  enter+exit %.2fx\n", r, u, t, w, x, v, t / m, w / m, x / m
  }'
done
