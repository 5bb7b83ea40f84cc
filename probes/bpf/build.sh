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
# The one list of sources: source file, then one object per layout x transport.
SOURCES=(dropbench.bpf.c)
for src in "${SOURCES[@]}"; do
  for layout in FIXED4K COMPACT; do
    for transport in PERF RINGBUF; do
      name="$(echo "$layout" | tr A-Z a-z)_$(echo "$transport" | tr A-Z a-z)"
      clang -target bpf -O2 -g -Wall -Werror \
        -fdebug-prefix-map="$here"=. \
        -I/usr/include/"$arch"-linux-gnu \
        -DDB_LAYOUT=DB_LAYOUT_"$layout" -DDB_TRANSPORT=DB_TRANSPORT_"$transport" \
        -c "$src" -o "$out/$name.bpf.o"
    done
  done
done
