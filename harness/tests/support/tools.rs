//! The one skip rule, for a tool a test needs that the machine lacks
//! (tshark, bpftool, a C toolchain with libbpf): the test says so and
//! returns, except under `CI=true`, where `ci/test.sh` installs every one and
//! a missing tool fails the test. Missing privileges are never a skip (see
//! [`super::root`]).

use std::path::Path;
use std::process::Command;

/// `what` is missing: under `CI=true` the test fails; elsewhere it says so on
/// stderr and the caller returns.
pub fn skip(what: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but {what} (ci/test.sh installs it)");
    }
    eprintln!("skipping: {what}");
}

/// Whether `cmd version_arg` runs and succeeds; if not, [`skip`]s naming the
/// Debian package that brings it.
pub fn installed(cmd: &str, version_arg: &str, package: &str) -> bool {
    let ok = Command::new(cmd)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(&format!(
            "{cmd} is not installed (Debian package {package})"
        ));
    }
    ok
}

/// Whether tshark is here (see [`installed`]).
pub fn tshark_installed() -> bool {
    installed("tshark", "--version", "tshark")
}

/// stderr of tshark (or capinfos) without its notice about running as root
/// (CI runs as root): that line is about the user, not the file.
pub fn without_root_notice(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| !l.starts_with("Running as user \"root\""))
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// tshark reads the capture at `path` to its end with nothing to say about
/// it; skipped (see [`installed`]) where tshark is missing.
pub fn assert_tshark_reads_cleanly(path: &Path) {
    if !tshark_installed() {
        return;
    }
    let t = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .arg("-q")
        .output()
        .unwrap();
    let complaints = without_root_notice(&t.stderr);
    assert!(
        t.status.success() && complaints.is_empty(),
        "tshark on {}: {}: {complaints}",
        path.display(),
        t.status
    );
}
