//! What the harness's integration tests share, each helper once:
//!
//! - [`cli`]: `harness()`, the binary run in the workspace root; `ok`,
//!   `assert_clear_error` and a sweep of a plan written for the test;
//! - [`events`]: synthetic events and captures (perf's padding by
//!   `probes::ring::format::perf::raw_size`);
//! - [`root`]: privileged tests: the guard, the harness without privileges,
//!   a size-limited tmpfs;
//! - [`tools`]: the one skip rule, for a tool a test needs and the machine
//!   lacks (a failure under `CI=true`), and tshark's check of a capture;
//! - [`byo`]: outside readers: the example libbpf reader and bpftool.
//!
//! Privileged tests live in files of their own, each marked
//! `#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]`:
//! plain `cargo test` lists them as ignored, by name. `ci/test.sh` turns the
//! feature on; the tests then start with a guard from [`root`], which fails
//! (never skips) a process that lacks the privilege.
#![allow(dead_code)]

pub mod byo;
pub mod cli;
pub mod events;
pub mod root;
pub mod tools;

use std::path::{Path, PathBuf};

/// The workspace root: the working directory of [`cli::harness`].
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ is inside the workspace")
        .to_path_buf()
}

/// The bundled captures, `fixtures/captures/`, by its absolute path.
pub fn fixtures_dir() -> PathBuf {
    workspace().join("fixtures/captures")
}

/// A bundled capture, `fixtures/captures/NAME`, by its absolute path.
pub fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}
