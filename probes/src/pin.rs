//! Private, temporary pins on bpffs, so an outside program can open the rings.
//!
//! A run pins its maps under its own directory,
//! `/sys/fs/bpf/dropbench/<pid>-<start time>-<random>/`, created mode 0700, with
//! every pin chmod'ed to 0600 (readable only by the invoking user). The
//! directory and its pins are removed when the [`PinDir`] is dropped: at the
//! end of the run, on an error, and on Ctrl-C (the CLI's handler stops the run,
//! which drops it). A run killed outright (SIGKILL) leaves its directory
//! behind; the next [`PinDir::create`] finds it, sees that its process is gone
//! (no such pid, or a pid reused by a process that started at another time),
//! removes it and reports it. A directory is never reused: the random part
//! makes every name new, and `mkdir` refuses an existing one.
//!
//! bpffs is mounted at the given path if it is not there yet (fresh machines
//! here do not mount it).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where bpffs is mounted by convention.
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf";
/// The directory under bpffs that holds every run's directory.
pub const BASE_DIR: &str = "dropbench";
/// `statfs.f_type` of bpffs (`BPF_FS_MAGIC`, include/uapi/linux/magic.h).
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// Errors creating, filling or removing a pin directory. Each carries the path.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("bpffs is not mounted at {path} and mounting it failed: {source} (pinning the rings for an outside reader needs CAP_SYS_ADMIN to mount bpffs, or bpffs already mounted there)")]
    Mount { path: PathBuf, source: io::Error },
    #[error("{path} is not a bpffs mount and not an empty directory to mount one on; pass the bpffs mount point (usually /sys/fs/bpf)")]
    NotBpffs { path: PathBuf },
    #[error("creating the pin directory {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    #[error("pinning map {map} at {path}: {source}")]
    Pin {
        map: String,
        path: PathBuf,
        source: aya::pin::PinError,
    },
    #[error("making {path} private (chmod 0600): {source}")]
    Chmod { path: PathBuf, source: io::Error },
    #[error("removing {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
}

/// A stale directory left by a run that was killed, found and removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    pub path: PathBuf,
    pub pid: u32,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "removed stale pins {} (their run, pid {}, is gone)",
            self.path.display(),
            self.pid
        )
    }
}

/// One run's pin directory. Removed, with its pins, on drop.
#[derive(Debug)]
pub struct PinDir {
    path: PathBuf,
    pins: Vec<PathBuf>,
    removed: bool,
}

impl PinDir {
    /// Mounts bpffs at `bpffs` if needed, removes stale directories of dead
    /// runs under `bpffs/dropbench/`, and creates this run's directory.
    /// Returns the directory and the stale ones it removed.
    pub fn create(bpffs: &Path) -> Result<(PinDir, Vec<Stale>), PinError> {
        ensure_bpffs(bpffs)?;
        let base = bpffs.join(BASE_DIR);
        if !base.is_dir() {
            // Sticky and open to all, like the bpffs root itself: each user's run
            // directory inside is 0700, and only its owner may remove it.
            match fs::DirBuilder::new().mode(0o1777).create(&base) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(PinError::Dir { path: base, source }),
            }
            // The umask may have taken bits off.
            fs::set_permissions(&base, fs::Permissions::from_mode(0o1777)).map_err(|source| {
                PinError::Chmod {
                    path: base.clone(),
                    source,
                }
            })?;
        }
        let stale = remove_stale(&base)?;
        let me = std::process::id();
        let path = base.join(format!(
            "{me}-{}-{:08x}",
            start_time(me).unwrap_or(0),
            random_u32()
        ));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|source| PinError::Dir {
                path: path.clone(),
                source,
            })?;
        Ok((
            PinDir {
                path,
                pins: Vec::new(),
                removed: false,
            },
            stale,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Pins `map` as `name` in this directory, readable and writable only by
    /// the invoking user (0600). Returns the pin's path.
    pub fn pin(&mut self, name: &str, map: &aya::maps::Map) -> Result<PathBuf, PinError> {
        let path = self.path.join(name);
        map.pin(&path).map_err(|source| PinError::Pin {
            map: name.to_string(),
            path: path.clone(),
            source,
        })?;
        self.pins.push(path.clone());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(|source| {
            PinError::Chmod {
                path: path.clone(),
                source,
            }
        })?;
        Ok(path)
    }

    /// Removes the pins and the directory. Idempotent; [`Drop`] calls it too.
    pub fn remove(&mut self) -> Result<(), PinError> {
        if self.removed {
            return Ok(());
        }
        for p in self.pins.drain(..) {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(PinError::Remove { path: p, source }),
            }
        }
        remove_dir_all_pins(&self.path)?;
        self.removed = true;
        Ok(())
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!("warning: {e}");
        }
    }
}

/// Removes every pin in `dir` (pins are files; bpffs has no other kind here) and `dir`.
fn remove_dir_all_pins(dir: &Path) -> Result<(), PinError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(PinError::Remove {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for e in entries.flatten() {
        let p = e.path();
        fs::remove_file(&p).map_err(|source| PinError::Remove { path: p, source })?;
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PinError::Remove {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Makes sure `path` is a bpffs mount, mounting one there if nothing is:
/// only on an empty directory that is not already a mount point, so a wrong
/// path never hides what is there.
pub fn ensure_bpffs(path: &Path) -> Result<(), PinError> {
    if is_bpffs(path) {
        return Ok(());
    }
    let empty_dir = fs::read_dir(path).is_ok_and(|mut d| d.next().is_none());
    if path.exists() && (!empty_dir || is_mount_point(path)) {
        return Err(PinError::NotBpffs {
            path: path.to_path_buf(),
        });
    }
    let target = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| {
        PinError::Mount {
            path: path.to_path_buf(),
            source: io::Error::from(io::ErrorKind::InvalidInput),
        }
    })?;
    // SAFETY: valid NUL-terminated strings; no data argument.
    let r = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(PinError::Mount {
            path: path.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero statfs is a valid out-buffer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    r == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// True when `path` is the root of a mount (its device differs from its parent's).
fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parent = path.parent().unwrap_or(Path::new("/"));
    match (fs::metadata(path), fs::metadata(parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

/// Removes the directories under `base` whose run is gone.
fn remove_stale(base: &Path) -> Result<Vec<Stale>, PinError> {
    let mut out = Vec::new();
    let entries = fs::read_dir(base).map_err(|source| PinError::Dir {
        path: base.to_path_buf(),
        source,
    })?;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some((pid, started)) = parse_dir_name(&name.to_string_lossy()) else {
            continue;
        };
        if run_alive(pid, started) {
            continue;
        }
        let path = e.path();
        remove_dir_all_pins(&path)?;
        out.push(Stale { path, pid });
    }
    Ok(out)
}

/// `<pid>-<start time>-<random>` -> (pid, start time).
fn parse_dir_name(name: &str) -> Option<(u32, u64)> {
    let mut it = name.split('-');
    let pid = it.next()?.parse().ok()?;
    let started = it.next()?.parse().ok()?;
    let rand = it.next()?;
    (it.next().is_none() && u32::from_str_radix(rand, 16).is_ok()).then_some((pid, started))
}

/// The run that made a directory is alive if its pid exists and that process
/// started when the run's process did (a reused pid has another start time).
fn run_alive(pid: u32, started: u64) -> bool {
    match start_time(pid) {
        Some(t) => started == 0 || t == started,
        None => false,
    }
}

/// A process's start time in clock ticks since boot (field 22 of /proc/PID/stat).
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: skip past its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields 3.. follow; the start time is field 22, the 20th after the ')'.
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: b is a valid 4-byte buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, b.len(), 0) };
    if n == 4 {
        u32::from_ne_bytes(b)
    } else {
        // No entropy source: the time still makes the name new (mkdir refuses reuse).
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_parse_and_reject_foreign_ones() {
        assert_eq!(parse_dir_name("123-456-0badf00d"), Some((123, 456)));
        assert_eq!(parse_dir_name("123-456"), None);
        assert_eq!(parse_dir_name("maps"), None);
        assert_eq!(parse_dir_name("123-456-zz"), None);
        assert_eq!(parse_dir_name("123-456-0-1"), None);
    }

    #[test]
    fn bpffs_is_never_mounted_over_a_directory_that_holds_something() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep"), b"x").unwrap();
        let e = ensure_bpffs(dir.path()).unwrap_err();
        assert!(matches!(e, PinError::NotBpffs { .. }), "{e}");
        assert!(dir.path().join("keep").exists());
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = std::process::id();
        let t = start_time(me).expect("/proc/self/stat has a start time");
        assert!(run_alive(me, t));
        assert!(
            !run_alive(me, t + 1),
            "same pid, other start time: a reused pid"
        );
        // pid_max is at most 2^22, so this pid cannot exist.
        assert!(!run_alive(u32::MAX - 1, 1));
    }
}
