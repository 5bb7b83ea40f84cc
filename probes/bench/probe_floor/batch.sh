#!/usr/bin/env bash
# What in-kernel batching would buy compact events on the traced CPU: the live
# benchmark's loop (../traced_loop.c, openat + close + fstatat pinned to CPU 0)
# untraced, and traced by batch.bpf.c built four ways:
#   event        one ring-buffer record per event, bpf_ktime_get_ns() per event
#                (what dropbench's compact probe does, without its filter and counters)
#   event-noclk  the same without the clock
#   batch        events packed into a per-CPU buffer, one record per ~4 KiB
#   batch-noclk  the same without the clock
# Every setting is read by attach.c on CPU 1 every 1 ms (no wakeups). Each
# round runs the loop untraced before and after, and each ratio is over the
# mean of the two (the machine's speed drifts by tens of percent in minutes).
# Then one run of each setting with the kernel's BPF statistics on
# (kernel.bpf_stats_enabled=1, which adds two clock reads to every run), for the
# programs' own time per event: less at the mercy of the host's drift than ops/s.
# Root; needs clang, cc and libbpf-dev (ci/test.sh installs them).
#
#   sudo bash probes/bench/probe_floor/batch.sh [ROUNDS]     # default 6
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
settings=(event event-noclk batch batch-noclk)
bpf event batch.bpf.c -DBATCH=0 -DCLOCK=1
bpf event-noclk batch.bpf.c -DBATCH=0 -DCLOCK=0
bpf batch batch.bpf.c -DBATCH=1 -DCLOCK=1
bpf batch-noclk batch.bpf.c -DBATCH=1 -DCLOCK=0

# records, bytes a record, failed outputs of the last run of setting $1
readout() { awk '/^records/ {printf "%d rec, %d B/rec, %d failed", $2, ($2 ? $4 / $2 : 0), $6}' "$out/$1.log"; }
echo "M ops/s: untraced, ${settings[*]}, untraced again; ratios over the untraced mean"
for r in $(seq "${1:-6}"); do
  u=$(loop)
  vals=()
  for s in "${settings[@]}"; do
    vals+=("$(traced "$s")")
    printf '  round %d %-12s %s M ops/s  (%s)\n' "$r" "$s" "${vals[-1]}" "$(readout "$s")"
  done
  v=$(loop)
  awk -v r="$r" -v u="$u" -v v="$v" -v vals="${vals[*]}" -v names="${settings[*]}" 'BEGIN {
    n = split(vals, x, " "); split(names, s, " "); m = (u + v) / 2
    printf "round %d  untraced %s / %s ", r, u, v
    for (i = 1; i <= n; i++) printf " %s %.2fx", s[i], x[i] / m
    printf "\n"
  }'
done

# The programs' own time per event, from the kernel's statistics.
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
trap 'sysctl -qw kernel.bpf_stats_enabled="$stats_was"; rm -rf "$out"' EXIT
sysctl -qw kernel.bpf_stats_enabled=1
for s in "${settings[@]}"; do
  ops=$(traced "$s")
  awk -v s="$s" -v ops="$ops" '/^records/ {printf "stats %-12s %s M ops/s  %.1f ns per program run (%d runs)\n", s, ops, ($8 ? $10 / $8 : 0), $8}' "$out/$s.log"
done
