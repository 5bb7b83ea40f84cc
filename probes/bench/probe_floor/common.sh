# shellcheck shell=bash
# What run.sh and batch.sh share: a scratch folder ($out), the BPF objects
# (bpf NAME SOURCE [CLANG ARGS...] writes $out/NAME.o), the attacher and the
# loop, tracefs, and the two measurements:
#   loop          the untraced loop for 3 s on CPU 0: prints M ops/s
#   traced NAME   the loop with $out/NAME.o attached: prints M ops/s; what the
#                 attacher printed is in $out/NAME.log
# Root; needs clang, cc and libbpf-dev (ci/test.sh installs them).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
arch_inc=/usr/include/$(uname -m)-linux-gnu
bpf() { local name=$1 src=$2; shift 2; clang -O2 -g -target bpf -I"$arch_inc" "$@" -c "$here/$src" -o "$out/$name.o"; }
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
