//! For the tests that run outside readers on the kernel's pinned rings: the
//! privilege check, the example reader (examples/byo-reader) and bpftool.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the example reader with its Makefile's command (`cc ... -lbpf -lelf
/// -lz`) into `dir`; `None` to skip when it does not build, which under
/// CI=true is a failure (ci/test.sh installs libbpf-dev).
pub fn build_example_reader(dir: &Path) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/byo-reader/reader.c");
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
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "CI=true but the example reader does not build (ci/test.sh installs libbpf-dev): {why}"
        );
    }
    eprintln!("skipping: the example reader does not build: {why}");
    None
}

/// Whether Debian's bpftool is here; under CI=true it must be (ci/test.sh installs it).
pub fn bpftool_installed() -> bool {
    let ok = Command::new("bpftool")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but bpftool is missing (ci/test.sh installs it)");
    }
    ok
}
