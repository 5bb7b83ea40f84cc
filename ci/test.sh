#!/usr/bin/env bash
# dropbench's one test command: installs what the tests need, then runs every test,
# privileged ones included. `.ci/run` calls exactly this. Run it as root on a Linux
# machine with eBPF (CI does, with CI=true). The tests that need root and eBPF, or the
# broker, are ignored by a plain `cargo test`; the features below turn them on, and then
# one that cannot run fails (and under CI=true so does one whose tool is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
log() { printf '\n== %s\n' "$*"; }
export PATH="$HOME/.cargo/bin:$PATH"

# Wall time of each phase, printed at the end (and on failure).
phase_names=(); phase_secs=(); phase_t0=$SECONDS; phase_cur=""
phase() {
  if [ -n "$phase_cur" ]; then
    phase_names+=("$phase_cur"); phase_secs+=($((SECONDS - phase_t0))); phase_free+=("$(free_mib)")
  fi
  phase_cur="$1"; phase_t0=$SECONDS
  [ -n "$1" ] && log "phase: $1"
  return 0
}
# Free disk where target/ lives, in MiB, printed with each phase: a full disk shows up
# as a linker crash (ld: signal 7, Bus error), not as a message about disk.
free_mib() { df -Pm "$root" | awk 'NR == 2 {print $4}'; }
phase_free=()
report_phases() {
  phase ""
  printf '\n== phase times (and free disk after each)\n'
  for i in "${!phase_names[@]}"; do
    printf '  %-34s %5d s  %7s MiB free\n' "${phase_names[$i]}" "${phase_secs[$i]}" "${phase_free[$i]:-?}"
  done
}
cleanup() {
  report_phases
  if [ -n "${broker_up:-}" ]; then bash "$root/ci/kafka-down.sh" || true; fi
}
trap cleanup EXIT

# The whole run needs about 5 GiB under target/ and fuzz/target/ (docs/ci.md): warn
# up front when there is less, so a link that dies later is not a mystery.
if [ "$(free_mib)" -lt 6144 ]; then
  log "warning: only $(free_mib) MiB free on $(df -P "$root" | awk 'NR == 2 {print $6}'); this run needs about 5 GiB"
fi

# 0. The main job on nothing but the Rust toolchain, before any package is installed:
#    librdkafka builds with its own configure + make, never cmake (CMAKE=/nonexistent makes the
#    cmake crate fail loudly if anything reaches for it), and the default sweep runs to the end.
#    This is what a newcomer does first (README), so it is what CI proves first.
phase "build without system packages"
CMAKE=/nonexistent cargo build --release --locked -p harness
phase "default sweep (debug, no packages)"
CMAKE=/nonexistent cargo run --locked -p harness -- sweep --out target/ci-default-sweep

# 1. Debian packages the *tests* need (none of them is needed to build): clang + libbpf-dev
#    rebuild the BPF objects (the objects test) and, with libelf-dev and zlib1g-dev, link the
#    libbpf peer of the live benchmark; tshark checks captures; chromium checks reports; strace
#    checks which syscalls the load generator issues; bpftool/bpftrace cross-check what the
#    probes emit; valgrind counts instructions for the comparison below.
phase "packages"
pkgs=(clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool bpftrace tshark chromium util-linux strace valgrind)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 1b. The project holds itself to its own comparison (docs/gate.md, "Comparing two
#     builds"): this tree against the revision in ci/compare-baseline (moved forward on
#     purpose, as the sweep baseline is), both release builds, in turn, on the CI cells.
#     Exit 1 (a regression) fails CI; 3 (too noisy to decide) is printed and passes, as a
#     comparison never fails on noise. The baseline is built in a worktree of its own
#     (target/compare/src/<commit>) sharing target/, so only the workspace is rebuilt.
phase "compare against ci/compare-baseline"
compare_rev=$(grep -v '^#' ci/compare-baseline | head -n 1 | tr -d '[:space:]')
compare_rc=0
CMAKE=/nonexistent cargo run --release --locked -p harness -- compare --baseline "$compare_rev" \
  --config ci/sweep-ci.toml --rules ci/gates.toml --pairs 12 --trial 1s \
  --out target/ci-compare || compare_rc=$?
case "$compare_rc" in
  0) ;;
  3) log "compare inconclusive: the host was too noisy to decide (see the spread above); not a failure" ;;
  *) exit "$compare_rc" ;;
esac
# Nothing later uses the release tree (the tests and the gate run debug builds); it
# proved the build, and its disk is worth more to the test binaries.
rm -rf target/release target/compare/src
git worktree prune

# 2. The Kafka-protocol broker (tansu, crates.io). About 17 minutes the first time on 2 cores;
#    cargo install skips it once installed.
phase "broker install"
if ! command -v tansu >/dev/null; then
  log "installing tansu (first time only, ~17 min)"
  cargo install tansu --locked --features dynostore,libsql
fi

# 3. tracefs is not mounted on a fresh machine; the loader mounts it too, but bpftrace needs it.
if [ "$(id -u)" = 0 ] && [ ! -d /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing || true
fi

# 4. A real broker on loopback for the Kafka tests.
phase "broker start"
# shellcheck disable=SC1091
source ci/kafka-up.sh
broker_up=1

# The same features for the build, clippy and the tests, so that nothing is rebuilt
# between them: the privileged tests (root, eBPF, tmpfs mounts) and the broker's.
test_features=harness/privileged-tests,harness/broker-tests,probes/privileged-tests

phase "fmt + build + clippy"
log "cargo fmt --check"
cargo fmt --all -- --check

log "building"
cargo build --workspace --all-targets --locked --features "$test_features"

log "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked --features "$test_features" -- -D warnings

phase "tests"
log "cargo test (workspace, privileged and broker tests included)"
cargo test --workspace --locked --no-fail-fast --features "$test_features" 2>&1 | tee target/ci-test.log

# 5. The project gates itself: the CI sweep (debug build, null sink) judged by
#    its own rules against the committed baseline (docs/gate.md). Exit 1 is a
#    failed rule, 2 bad input; either fails CI. The report and the exports are
#    rendered from the same results file.
phase "self gate"
rm -rf target/ci-gate-sweep target/ci-gate-sweep-again
cargo run --locked -p harness -- sweep --config ci/sweep-ci.toml --out target/ci-gate-sweep
gate_rc=0
cargo run --locked -p harness -- gate target/ci-gate-sweep/latest \
  --rules ci/gates.toml --baseline ci/baseline/sweep.json || gate_rc=$?
if [ "$gate_rc" = 1 ]; then
  # A rule failed: sweep the same plan again and fail only when the rule
  # fails in both runs (docs/gate.md, "Repeats"): a busy shared machine can
  # starve one run; a real slowdown fails both.
  log "gate failed once; confirming with a second sweep of the same plan"
  cargo run --locked -p harness -- sweep --config ci/sweep-ci.toml --out target/ci-gate-sweep-again
  cargo run --locked -p harness -- gate target/ci-gate-sweep/latest \
    --also target/ci-gate-sweep-again/latest \
    --rules ci/gates.toml --baseline ci/baseline/sweep.json
elif [ "$gate_rc" != 0 ]; then
  exit "$gate_rc"
fi
cargo run --locked -p harness -- report target/ci-gate-sweep/latest \
  --baseline ci/baseline/sweep.json --out target/ci-gate-sweep/compare
cargo run --locked -p harness -- export target/ci-gate-sweep/latest --format bmf \
  --out target/ci-gate-sweep/bmf.json

# 6. Coverage-guided fuzzing of everything that reads a file, a fixed number of runs
#    per target (docs/fuzzing.md).
phase "fuzz smoke"
bash ci/fuzz-smoke.sh
