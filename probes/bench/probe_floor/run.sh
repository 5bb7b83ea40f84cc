#!/usr/bin/env bash
# The probes' floor: the live benchmark's loop (../traced_loop.c, openat + close +
# fstatat pinned to CPU 0) untraced, with empty programs on the syscall tracepoints
# dropbench attaches to, and with empty programs on the raw sys_enter/sys_exit
# tracepoints; each round runs the loop untraced before and after, and each ratio is
# over the mean of the two (the machine's speed drifts by tens of percent in minutes).
# Root; needs clang, cc and libbpf-dev (ci/test.sh installs them).
#
#   sudo bash probes/bench/probe_floor/run.sh [ROUNDS]     # default 8
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
arch_inc=/usr/include/$(uname -m)-linux-gnu
for o in tracepoints raw_tracepoints; do
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
echo "M ops/s: untraced, tracepoints, raw tracepoints, untraced again; ratios over the untraced mean"
for r in $(seq "${1:-8}"); do
  u=$(loop); t=$(traced tracepoints); w=$(traced raw_tracepoints); v=$(loop)
  awk -v r="$r" -v u="$u" -v t="$t" -v w="$w" -v v="$v" 'BEGIN {
    m = (u + v) / 2
    printf "round %d  %s %s %s %s  tracepoints %.2fx  raw %.2fx  raw - tracepoints %+.2f\n", r, u, t, w, v, t / m, w / m, (w - t) / m
  }'
done
