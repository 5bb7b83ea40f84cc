#!/usr/bin/env bash
# Rebuilds the committed BPF objects. This is the one command:
#   probes/bpf/build.sh            # writes probes/bpf/obj/*.bpf.o
#   probes/bpf/build.sh OUTDIR     # writes them elsewhere (the reproducibility test does this)
# Needs clang and libbpf-dev (Debian). Users of dropbench never need it: the objects are committed.
# -fdebug-prefix-map keeps the checkout path out of the debug info, so two checkouts build identical bytes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/obj}
mkdir -p "$out"
cd "$here"
arch=$(uname -m)
# The raw syscall hook reads the syscall arguments from struct pt_regs, whose
# layout is the architecture's (dropbench.bpf.c has x86-64's).
case $arch in
  x86_64) target_arch=x86 ;;
  aarch64) target_arch=arm64 ;;
  *) target_arch=$arch ;;
esac
# The one list of sources: each source with the layouts it is built for.
# dropbench.bpf.c (the probes): one object per layout x transport, LAYOUT_TRANSPORT.bpf.o.
# inject.bpf.c (kernel-backed replay's injector): layout-independent ("-"), inject_TRANSPORT.bpf.o.
SOURCES=("dropbench.bpf.c:FIXED4K COMPACT" "inject.bpf.c:-")
for entry in "${SOURCES[@]}"; do
  src=${entry%%:*}
  for layout in ${entry#*:}; do
    for transport in PERF RINGBUF; do
      t=$(echo "$transport" | tr A-Z a-z)
      defs=(-DDB_TRANSPORT=DB_TRANSPORT_"$transport")
      if [ "$layout" = - ]; then
        name="$(basename "$src" .bpf.c)_$t"
      else
        name="$(echo "$layout" | tr A-Z a-z)_$t"
        defs+=(-DDB_LAYOUT=DB_LAYOUT_"$layout")
      fi
      clang -target bpf -O2 -g -Wall -Werror \
        -fdebug-prefix-map="$here"=. \
        -I/usr/include/"$arch"-linux-gnu \
        -D__TARGET_ARCH_"$target_arch" \
        "${defs[@]}" \
        -c "$src" -o "$out/$name.bpf.o"
    done
  done
done
