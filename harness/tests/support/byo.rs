//! For the tests that run outside readers on the kernel's pinned rings: the
//! example reader (examples/byo-reader) and bpftool.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::tools;

/// Builds the example reader with its Makefile's command (`cc ... -lbpf -lelf
/// -lz`) into `dir`; `None` (a [`tools::skip`]) when it does not build.
pub fn build_example_reader(dir: &Path) -> Option<PathBuf> {
    let src = super::workspace().join("examples/byo-reader/reader.c");
    let bin = dir.join("reader");
    let out = Command::new("cc")
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&bin)
        .arg(&src)
        .args(["-lbpf", "-lelf", "-lz"])
        .output();
    let why = match out {
        Ok(o) if o.status.success() => return Some(bin),
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
        Err(e) => e.to_string(),
    };
    tools::skip(&format!(
        "the example reader does not build (Debian package libbpf-dev): {why}"
    ));
    None
}

/// Whether Debian's bpftool is here (a [`tools::skip`] when not).
pub fn bpftool_installed() -> bool {
    tools::installed("bpftool", "version", "bpftool")
}
