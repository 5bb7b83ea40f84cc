//! What privileged tests share: the root check (under CI=true a skip is a
//! failure) and a size-limited tmpfs, the disk that fills up.

use std::path::{Path, PathBuf};
use std::process::Command;

/// True when running as root. Otherwise the test skips with a reason, except
/// under `CI=true`, where a skip fails.
pub fn privileged(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip(what, "needs root")
}

/// True when this process may load BPF (root, or CAP_BPF + CAP_PERFMON);
/// otherwise a skip, as [`privileged`].
pub fn may_load_bpf(what: &str) -> bool {
    match probes::loader::check_privileges() {
        Ok(()) => true,
        Err(e) => skip(what, &e.to_string()),
    }
}

/// Says why `what` is skipped and returns false; under `CI=true` a skip is a
/// failure.
fn skip(what: &str, why: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but {what} cannot run: {why}");
    }
    eprintln!("skipping {what}: {why}");
    false
}

/// A tmpfs of a given size mounted on a fresh directory, unmounted on drop.
pub struct Tmpfs {
    _dir: tempfile::TempDir,
    pub mnt: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's spelling, e.g. `4m`, `256k`).
    pub fn mount(size: &str) -> Tmpfs {
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
