#!/usr/bin/env bash
# dropbench's one test command: installs what the tests need, then runs every test,
# privileged ones included. `.ci/run` calls exactly this. Run it as root on a Linux
# machine with eBPF (CI does, with CI=true: there a skipped privileged test is a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
log() { printf '\n== %s\n' "$*"; }

# 1. Debian packages: clang + libbpf-dev rebuild the BPF objects (the objects test) and the
#    libbpf peer of the live benchmark; tshark checks captures; cmake builds librdkafka;
#    chromium checks reports; strace checks which syscalls the load generator issues;
#    bpftool/bpftrace cross-check what the probes emit.
pkgs=(clang llvm libbpf-dev bpftool bpftrace tshark cmake pkg-config libssl-dev libsasl2-dev
      zlib1g-dev libelf-dev libzstd-dev chromium util-linux strace)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. The Kafka-protocol broker (tansu, crates.io). About 17 minutes the first time on 2 cores;
#    cargo install skips it once installed.
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v tansu >/dev/null; then
  log "installing tansu (first time only, ~17 min)"
  cargo install tansu --locked --features dynostore,libsql
fi

# 3. tracefs is not mounted on a fresh machine; the loader mounts it too, but bpftrace needs it.
if [ "$(id -u)" = 0 ] && [ ! -d /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing || true
fi

# 4. A real broker on loopback for the Kafka tests.
if [ -x ci/kafka-up.sh ]; then
  log "starting the broker"
  # shellcheck disable=SC1091
  source ci/kafka-up.sh
  trap 'bash "$root/ci/kafka-down.sh" || true' EXIT
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "building"
cargo build --workspace --all-targets --locked

log "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test (workspace, privileged included)"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee target/ci-test.log
