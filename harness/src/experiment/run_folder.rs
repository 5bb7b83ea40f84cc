//! A sweep's run folder: `results/<UTC time>/` with `plan.toml` (the plan that
//! ran), `series/NNNN.json` (each series as it finishes), `sweep.json` (all
//! of them, rewritten after each series) and `report/`; and `results/latest`,
//! a link to the newest complete run.
//!
//! Every run gets a new folder, so a failed or interrupted sweep never
//! overwrites an earlier run's results; a resumed run reads the old folder
//! and writes a new one. Files are written atomically (temp file + rename).

use std::path::{Path, PathBuf};

use crate::experiment::results::CellOutcome;

/// Errors creating, reading or writing a run folder. Each names the path.
#[derive(Debug, thiserror::Error)]
pub enum RunFolderError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a series result: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunFolderError + '_ {
    move |source| RunFolderError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically ([`crate::results::write_atomically`]).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RunFolderError> {
    crate::results::write_atomically(path, bytes).map_err(io(path))
}

/// One run's folder.
#[derive(Debug, Clone)]
pub struct RunFolder {
    pub dir: PathBuf,
}

impl RunFolder {
    /// Creates `root/<UTC time>[-suffix]` (with `-2`, `-3`... if taken).
    pub fn create(root: &Path, suffix: Option<&str>) -> Result<RunFolder, RunFolderError> {
        std::fs::create_dir_all(root).map_err(io(root))?;
        // 2026-11-29T12:05:00Z -> 2026-11-29T12-05-00Z: no colons in file names.
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace(':', "-");
        let base = match suffix {
            Some(s) => format!("{stamp}-{s}"),
            None => stamp,
        };
        for n in 1.. {
            let name = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let dir = root.join(name);
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    std::fs::create_dir(dir.join("series")).map_err(io(&dir))?;
                    return Ok(RunFolder { dir });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(&dir)(e)),
            }
        }
        unreachable!("an unbounded counter finds a free name")
    }

    pub fn sweep_json(&self) -> PathBuf {
        self.dir.join("sweep.json")
    }
    pub fn plan_toml(&self) -> PathBuf {
        self.dir.join("plan.toml")
    }
    pub fn report_dir(&self) -> PathBuf {
        self.dir.join("report")
    }

    /// Saves one finished series as `series/NNNN.json`.
    pub fn save_series(&self, s: &CellOutcome) -> Result<(), RunFolderError> {
        let path = self.dir.join("series").join(format!("{:04}.json", s.index));
        let bytes = serde_json::to_vec_pretty(s).map_err(|source| RunFolderError::Parse {
            path: path.clone(),
            source,
        })?;
        write_atomically(&path, &bytes)
    }

    /// Points `root/latest` at this folder (a relative symlink, replaced atomically).
    pub fn link_latest(&self, root: &Path) -> Result<(), RunFolderError> {
        let name = self.dir.file_name().map(PathBuf::from).unwrap_or_default();
        let tmp = root.join(format!(".latest.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&name, &tmp).map_err(io(&tmp))?;
        let latest = root.join("latest");
        std::fs::rename(&tmp, &latest).map_err(io(&latest))
    }
}

/// The series an earlier run folder finished (its `series/*.json`), by index.
pub fn finished_series(dir: &Path) -> Result<Vec<CellOutcome>, RunFolderError> {
    let sdir = dir.join("series");
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&sdir).map_err(io(&sdir))?;
    for e in entries {
        let path = e.map_err(io(&sdir))?.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue; // temp files of an interrupted write
        }
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let s: CellOutcome = serde_json::from_slice(&bytes)
            .map_err(|source| RunFolderError::Parse { path, source })?;
        out.push(s);
    }
    out.sort_by_key(|s| s.index);
    Ok(out)
}

/// A checksum of `bytes` as 8 hex digits (CRC-32): identifies a plan or a build.
pub fn checksum(bytes: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(bytes))
}

/// This harness build: version, profile and a checksum of the executable, so
/// shards from different builds are never merged into one result.
pub fn build_id() -> String {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    // Streamed through the hash: a debug executable is ~150 MB.
    let exe = std::env::current_exe()
        .and_then(std::fs::File::open)
        .and_then(|f| {
            use std::io::Read;
            let mut r = std::io::BufReader::with_capacity(1 << 20, f);
            let mut h = crc32fast::Hasher::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match r.read(&mut buf)? {
                    0 => return Ok(format!("{:08x}", h.finalize())),
                    n => h.update(&buf[..n]),
                }
            }
        })
        .unwrap_or_else(|_| "unknown".into());
    format!("{} {profile} exe:{exe}", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_never_reuse_a_name_and_latest_follows() {
        let root = tempfile::tempdir().unwrap();
        let a = RunFolder::create(root.path(), None).unwrap();
        let b = RunFolder::create(root.path(), None).unwrap();
        assert_ne!(a.dir, b.dir);
        assert!(a.dir.join("series").is_dir());
        b.link_latest(root.path()).unwrap();
        assert_eq!(
            std::fs::canonicalize(root.path().join("latest")).unwrap(),
            std::fs::canonicalize(&b.dir).unwrap()
        );
        a.link_latest(root.path()).unwrap();
        assert_eq!(
            std::fs::canonicalize(root.path().join("latest")).unwrap(),
            std::fs::canonicalize(&a.dir).unwrap()
        );
    }

    #[test]
    fn series_round_trip_and_temp_files_are_ignored() {
        let root = tempfile::tempdir().unwrap();
        let f = RunFolder::create(root.path(), Some("shard-1-of-2")).unwrap();
        assert!(f.dir.to_string_lossy().ends_with("-shard-1-of-2"));
        let s: CellOutcome = serde_json::from_value(serde_json::json!({
            "index": 3,
            "key": {"variant": "batched", "capture": "c.pcapng", "layout": "fixed4k",
                    "transport": "perf", "ring_bytes": 1024, "wakeup": "events:64", "sink": "null"},
            "zero_loss_rate": 1000.0, "first_lossy_rate": null, "valid": true,
            "problems": [], "points": []
        }))
        .unwrap();
        f.save_series(&s).unwrap();
        std::fs::write(f.dir.join("series/0004.tmp.99"), b"{half").unwrap();
        let back = finished_series(&f.dir).unwrap();
        assert_eq!(back, vec![s]);
        std::fs::write(f.dir.join("series/0005.json"), b"{half").unwrap();
        let e = finished_series(&f.dir).unwrap_err().to_string();
        assert!(e.contains("0005.json"), "{e}");
    }
}
