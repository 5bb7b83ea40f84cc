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
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
for o in enter raw_enter enter_exit; do bpf "$o" "$o.bpf.c"; done

echo "M ops/s: untraced, enter, raw-enter, enter+exit, untraced again; ratios over the untraced mean"
for r in $(seq "${1:-8}"); do
  u=$(loop); t=$(traced enter); w=$(traced raw_enter); x=$(traced enter_exit); v=$(loop)
  awk -v r="$r" -v u="$u" -v t="$t" -v w="$w" -v x="$x" -v v="$v" 'BEGIN {
    m = (u + v) / 2
    printf "round %d  %s %s %s %s %s  enter %.2fx  raw-enter %.2fx  enter+exit %.2fx\n", r, u, t, w, x, v, t / m, w / m, x / m
  }'
done
