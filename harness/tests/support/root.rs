//! Privileged tests: the guard each starts with, the harness without
//! privileges, and a size-limited tmpfs (the disk that fills up).
//!
//! A privileged test is ignored unless the `privileged-tests` feature is on
//! (`ci/test.sh` turns it on). Once on, a process that lacks the privilege
//! fails the test with one line: a test that did not run never passes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Fails the test unless this process runs as root; `what` needs it.
pub fn require_root(what: &str) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        refuse(&format!("{what} needs root and this process is not root"));
    }
}

/// Fails the test unless this process may load BPF (root, or CAP_BPF +
/// CAP_PERFMON).
pub fn require_bpf() {
    if let Err(e) = probes::loader::check_privileges() {
        refuse(&format!("this process may not load BPF ({e})"));
    }
}

fn refuse(why: &str) -> ! {
    panic!(
        "the privileged-tests feature is on but {why}: run the tests as root, \
         or without the feature (they are then listed as ignored)"
    )
}

/// The harness without privileges: as root, under `setpriv` with an empty
/// capability bounding set (no CAP_BPF, CAP_PERFMON or CAP_SYS_ADMIN);
/// as anyone else, as it is (it has none). In the workspace root, as
/// [`super::cli::harness`].
pub fn harness_without_privileges() -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return super::cli::harness();
    }
    let mut c = Command::new("setpriv");
    c.args([
        "--inh-caps=-all",
        "--ambient-caps=-all",
        "--bounding-set=-all",
        "--",
    ])
    .arg(env!("CARGO_BIN_EXE_harness"))
    .current_dir(super::workspace());
    c
}

/// A tmpfs of a given size mounted on a fresh directory, unmounted on drop.
pub struct Tmpfs {
    _dir: tempfile::TempDir,
    pub mnt: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's spelling, e.g. `4m`, `256k`).
    pub fn mount(size: &str) -> Tmpfs {
        require_root("mounting a tmpfs");
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("disk");
        std::fs::create_dir(&mnt).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mnt)
            .status()
            .expect("mount (util-linux)");
        assert!(st.success(), "mounting a {size} tmpfs on {}", mnt.display());
        Tmpfs { _dir: dir, mnt }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

/// Every file below `dir`.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_below(&p));
        } else {
            out.push(p);
        }
    }
    out
}
