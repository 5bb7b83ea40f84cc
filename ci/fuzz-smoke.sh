#!/usr/bin/env bash
# Smoke run of the fuzz targets (docs/fuzzing.md): every target for a fixed number of
# runs from a fixed seed, starting from the committed seed corpus, so the run does the
# same work every time and cannot flake on time. A crash, a panic, a hang (over 10 s on
# one input) or a leak fails it; libFuzzer then prints the input and saves it under
# target/fuzz-smoke/artifacts/ (add it to fuzz/seeds/TARGET/ once fixed, and make it a
# regression test in the ordinary suite).
#
#   bash ci/fuzz-smoke.sh            # ci/test.sh calls this after the tests
#   FUZZ_SMOKE_RUNS=200000 bash ci/fuzz-smoke.sh
#
# Only the stable toolchain exists here: cargo fuzz needs -Z flags (the sanitizer and
# coverage passes), which RUSTC_BOOTSTRAP=1 allows on stable. The fuzz crate is a
# workspace of its own, so the main build never sees any of it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export PATH="$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1
runs=${FUZZ_SMOKE_RUNS:-20000}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz (first time only, about a minute)"
  cargo install cargo-fuzz --locked
fi

echo "== building the fuzz targets (address sanitizer, coverage)"
cargo fuzz build

out="$root/target/fuzz-smoke"
rm -rf "$out"
# target:max_len. Seeds are a few KiB (docs/fuzzing.md); the capture reader also
# starts from the bundled fixtures, cut to their first 64 KiB by -max_len.
for spec in capture_reader:65536 sweep_config:4096 results:16384; do
  t=${spec%%:*} len=${spec##*:}
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  seeds=("fuzz/seeds/$t")
  [ "$t" = capture_reader ] && seeds+=(fixtures/captures)
  echo "== $t: $runs runs"
  log="$out/$t.log"
  status=0
  cargo fuzz run "$t" "$out/corpus/$t" "${seeds[@]}" -- \
    -runs="$runs" -seed=1 -max_len="$len" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$t/" >"$log" 2>&1 || status=$?
  grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|Done [0-9]+ runs)' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log"
    echo "fuzz target $t failed (exit $status): the input is in $out/artifacts/$t/, the log in $log"
    exit 1
  fi
done
echo "== fuzz smoke: every target ran $runs inputs without a crash"
