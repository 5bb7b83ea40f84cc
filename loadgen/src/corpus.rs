//! The paths the ops run on: a generated corpus in a temporary directory, or a user's list file.
//!
//! The generated corpus aims at what a file tracer sees on a real machine:
//! - a random recursive directory tree (each new directory picks a uniformly random existing parent,
//!   giving depths around `ln(dirs)`, up to about 12 for a few thousand directories);
//! - name lengths mostly short (70% 3–12 bytes, 25% 13–32, 5% 33–100), files with common extensions;
//! - a `long_share` of paths 3840..=4095 bytes long, i.e. within 256 bytes of PATH_MAX (4096 with the
//!   NUL), built from a chain of 255-byte directories (NAME_MAX) so no component exceeds NAME_MAX;
//! - a `missing_share` of paths that do not exist: a missing leaf in an existing directory (3 in 4) or
//!   a missing directory (1 in 4), both ENOENT.
//!
//! The list is shuffled, so missing and long paths are spread through it, and the same seed gives the
//! same corpus (names, depths, order), up to the random name of the temporary root.

use crate::config::{CorpusSpec, PathSource};
use crate::error::LoadError;
use serde::Serialize;
use std::ffi::{CString, OsStr};
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Longest path the kernel accepts: PATH_MAX (4096) less the terminating NUL.
pub const PATH_MAX_LEN: usize = 4095;
/// Longest path component (NAME_MAX).
pub const NAME_MAX_LEN: usize = 255;
/// Shortest "near PATH_MAX" path: within 256 bytes of PATH_MAX.
pub const LONG_PATH_MIN: usize = 3840;
/// The deepest a generated directory may be placed (the long-path chain aside).
const MAX_DEPTH: usize = 12;

/// Paths ready for the hot path: NUL-terminated, built once before the run.
pub struct Corpus {
    paths: Vec<CString>,
    missing: usize,
    long: usize,
    source: String,
    dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Corpus {
    /// The summary, not the (possibly million) paths.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Corpus")
            .field("summary", &self.summary())
            .finish()
    }
}

/// What a run's report says about its corpus.
#[derive(Clone, Debug, Serialize)]
pub struct CorpusSummary {
    /// `generated in DIR` or the list file's path.
    pub source: String,
    pub paths: usize,
    /// Paths that did not exist when the corpus was built.
    pub missing: usize,
    /// Paths of at least 3840 bytes.
    pub long: usize,
    pub max_path_len: usize,
}

impl Corpus {
    /// Builds the corpus a [`PathSource`] describes.
    pub fn load(source: &PathSource) -> Result<Corpus, LoadError> {
        match source {
            PathSource::Generated(spec) => Corpus::generate(spec),
            PathSource::ListFile(path) => Corpus::from_list(path),
        }
    }

    /// The paths, in the order the workers walk them.
    pub fn paths(&self) -> &[CString] {
        &self.paths
    }

    /// The generated corpus's root, removed when the corpus is dropped; `None` for a list file.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(|d| d.path())
    }

    pub fn summary(&self) -> CorpusSummary {
        CorpusSummary {
            source: self.source.clone(),
            paths: self.paths.len(),
            missing: self.missing,
            long: self.long,
            max_path_len: self
                .paths
                .iter()
                .map(|p| p.as_bytes().len())
                .max()
                .unwrap_or(0),
        }
    }

    /// Reads a list file: one path per line, as bytes; empty lines are skipped.
    pub fn from_list(path: &Path) -> Result<Corpus, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::CorpusFile {
            path: path.to_path_buf(),
            source,
        })?;
        let mut paths = Vec::new();
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            if line.len() > PATH_MAX_LEN {
                return Err(LoadError::PathTooLong {
                    path: path.to_path_buf(),
                    line: i + 1,
                    len: line.len(),
                });
            }
            let c = CString::new(line).map_err(|_| LoadError::PathHasNul {
                path: path.to_path_buf(),
                line: i + 1,
            })?;
            paths.push(c);
        }
        if paths.is_empty() {
            return Err(LoadError::EmptyCorpus {
                path: path.to_path_buf(),
            });
        }
        let missing = paths.iter().filter(|p| !exists(p.as_bytes())).count();
        let long = paths
            .iter()
            .filter(|p| p.as_bytes().len() >= LONG_PATH_MIN)
            .count();
        Ok(Corpus {
            paths,
            missing,
            long,
            source: path.display().to_string(),
            dir: None,
        })
    }

    /// Generates a corpus as the module docs describe.
    pub fn generate(spec: &CorpusSpec) -> Result<Corpus, LoadError> {
        let parent = spec.parent_dir.clone().unwrap_or_else(default_parent_dir);
        let dir = tempfile::Builder::new()
            .prefix("loadgen-corpus-")
            .tempdir_in(&parent)
            .map_err(|source| LoadError::CorpusDir {
                path: parent.clone(),
                source,
            })?;
        let root = dir.path().as_os_str().as_bytes().to_vec();
        let io_err = |path: &[u8], source: std::io::Error| LoadError::CorpusDir {
            path: PathBuf::from(OsStr::from_bytes(path)),
            source,
        };

        let mut rng = SplitMix64(spec.seed);
        let n_missing = ((spec.paths as f64) * spec.missing_share).round() as usize;
        let n_missing = n_missing.min(spec.paths);
        let n_present = spec.paths - n_missing;
        let mut long_present = ((n_present as f64) * spec.long_share).round() as usize;
        let mut long_missing = ((n_missing as f64) * spec.long_share).round() as usize;

        // Directory tree: one directory per 16 paths (files per directory on a real disk vary a lot;
        // 16 keeps the tree a few levels deep for a few thousand paths), at most 4096.
        let n_dirs = (spec.paths / 16).clamp(1, 4096);
        let mut dirs: Vec<(Vec<u8>, usize)> = vec![(root.clone(), 0)];
        let mut attempts = 0;
        while dirs.len() <= n_dirs && attempts < n_dirs * 8 {
            attempts += 1;
            let (parent, depth) = dirs[rng.below(dirs.len())].clone();
            if depth >= MAX_DEPTH {
                continue;
            }
            let path = join(&parent, &random_name(&mut rng));
            match std::fs::create_dir(OsStr::from_bytes(&path)) {
                Ok(()) => dirs.push((path, depth + 1)),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(&path, e)),
            }
        }

        // The long-path chain: 255-byte directories until the chain is 3835 or 3836 bytes long. A long
        // path is then chain + "/" + sub + "/" + leaf with sub + leaf = T - chain - 2 for a target
        // length T in 3840..=4095, i.e. 2..=258 bytes, split so both are 1..=255.
        let chain_target = LONG_PATH_MIN - 4;
        let mut chain = root.clone();
        if chain.len() + 2 > chain_target {
            long_present = 0;
            long_missing = 0;
        }
        if long_present + long_missing > 0 {
            while chain.len() + 1 < chain_target {
                let len = NAME_MAX_LEN.min(chain_target - chain.len() - 1);
                chain = join(&chain, &random_chars(&mut rng, len));
                std::fs::create_dir(OsStr::from_bytes(&chain)).map_err(|e| io_err(&chain, e))?;
            }
        }

        let mut entries: Vec<(Vec<u8>, bool)> = Vec::with_capacity(spec.paths);
        let mut guard = 0usize;
        let guard_limit = spec.paths * 16 + 64;
        // Existing files.
        while entries.len() < n_present && guard < guard_limit {
            guard += 1;
            let long = entries.len() < long_present;
            let path = if long {
                let (sub, leaf) = long_parts(&mut rng, chain.len());
                let sub_path = join(&chain, &sub);
                match std::fs::create_dir(OsStr::from_bytes(&sub_path)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_err(&sub_path, e)),
                }
                join(&sub_path, &leaf)
            } else {
                let (dir, _) = &dirs[rng.below(dirs.len())];
                join(dir, &random_file_name(&mut rng))
            };
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(OsStr::from_bytes(&path))
            {
                Ok(_) => entries.push((path, true)),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(&path, e)),
            }
        }
        // Missing paths.
        let mut made_missing = 0;
        while made_missing < n_missing && guard < guard_limit {
            guard += 1;
            let path = if made_missing < long_missing {
                let (sub, leaf) = long_parts(&mut rng, chain.len());
                join(&join(&chain, &sub), &leaf)
            } else {
                let (dir, _) = &dirs[rng.below(dirs.len())];
                if rng.below(4) == 0 {
                    join(
                        &join(dir, &random_name(&mut rng)),
                        &random_file_name(&mut rng),
                    )
                } else {
                    join(dir, &random_file_name(&mut rng))
                }
            };
            if !exists(&path) {
                entries.push((path, false));
                made_missing += 1;
            }
        }
        if entries.len() < spec.paths {
            return Err(io_err(
                &root,
                std::io::Error::other(format!(
                    "could only make {} of {} distinct paths",
                    entries.len(),
                    spec.paths
                )),
            ));
        }

        // Fisher–Yates, so missing and long paths are spread through the walk order.
        for i in (1..entries.len()).rev() {
            entries.swap(i, rng.below(i + 1));
        }
        let long = entries
            .iter()
            .filter(|(p, _)| p.len() >= LONG_PATH_MIN)
            .count();
        let paths = entries
            .into_iter()
            .map(|(p, _)| CString::new(p).expect("generated names hold no NUL"))
            .collect();
        Ok(Corpus {
            paths,
            missing: n_missing,
            long,
            source: format!("generated in {}", dir.path().display()),
            dir: Some(dir),
        })
    }
}

/// Where a corpus goes when the spec names no directory: `/dev/shm` (tmpfs) when it is a writable
/// directory, else the system temp dir. Creating a file on this VM's ext4 root costs ~0.6 ms (4096
/// paths took 2.4 s) against ~0.1 ms on tmpfs; lookups of existing paths hit the dentry cache on
/// both, and the syscall tracepoints see the same calls either way.
pub fn default_parent_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let writable = std::fs::metadata(shm).is_ok_and(|m| m.is_dir())
        // SAFETY: the path is a NUL-terminated literal.
        && unsafe { libc::access(c"/dev/shm".as_ptr(), libc::W_OK | libc::X_OK) } == 0;
    if writable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn exists(path: &[u8]) -> bool {
    std::fs::symlink_metadata(OsStr::from_bytes(path)).is_ok()
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// Splits a long path's tail: target length T in 3840..=4095, `sub + leaf = T - chain - 2`, both
/// 1..=255 bytes.
fn long_parts(rng: &mut SplitMix64, chain_len: usize) -> (Vec<u8>, Vec<u8>) {
    let total = LONG_PATH_MIN + rng.below(PATH_MAX_LEN - LONG_PATH_MIN + 1);
    let rest = total
        .saturating_sub(chain_len + 2)
        .clamp(2, 2 * NAME_MAX_LEN);
    let sub_min = rest.saturating_sub(NAME_MAX_LEN).max(1);
    let sub_max = (rest - 1).min(NAME_MAX_LEN);
    let sub_len = sub_min + rng.below(sub_max - sub_min + 1);
    (
        random_chars(rng, sub_len),
        random_chars(rng, rest - sub_len),
    )
}

/// Name lengths: 70% 3–12 bytes, 25% 13–32, 5% 33–100.
fn random_name(rng: &mut SplitMix64) -> Vec<u8> {
    let len = match rng.below(100) {
        0..=69 => 3 + rng.below(10),
        70..=94 => 13 + rng.below(20),
        _ => 33 + rng.below(68),
    };
    random_chars(rng, len)
}

fn random_file_name(rng: &mut SplitMix64) -> Vec<u8> {
    const EXTS: [&str; 14] = [
        "rs", "txt", "json", "so", "h", "c", "py", "conf", "log", "png", "md", "toml", "o",
        "tar.gz",
    ];
    let mut name = random_name(rng);
    if rng.below(8) != 0 {
        name.push(b'.');
        name.extend_from_slice(EXTS[rng.below(EXTS.len())].as_bytes());
    }
    name
}

/// `len` bytes of [a-z0-9_.-], starting with a letter (so never `.` or `..`).
fn random_chars(rng: &mut SplitMix64, len: usize) -> Vec<u8> {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_-.";
    (0..len)
        .map(|i| {
            if i == 0 {
                b'a' + rng.below(26) as u8
            } else {
                CHARS[rng.below(CHARS.len())]
            }
        })
        .collect()
}

/// SplitMix64: a tiny, well-mixed generator; enough for names and shuffles, and seedable.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0), by the multiply-shift method (bias below 2^-32 for n < 2^32).
    fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(paths: usize, missing: f64, long: f64) -> CorpusSpec {
        CorpusSpec {
            paths,
            missing_share: missing,
            long_share: long,
            seed: 7,
            parent_dir: None,
        }
    }

    #[test]
    fn generated_corpus_has_the_asked_shape() {
        let corpus = Corpus::generate(&spec(1000, 0.2, 0.05)).unwrap();
        let root = corpus.dir().unwrap().to_path_buf();
        assert_eq!(corpus.paths().len(), 1000);
        let mut missing = 0;
        let mut long = 0;
        let mut max_depth = 0;
        for p in corpus.paths() {
            let bytes = p.as_bytes();
            assert!(bytes.len() <= PATH_MAX_LEN, "{} bytes", bytes.len());
            assert!(bytes.starts_with(root.as_os_str().as_bytes()));
            assert!(bytes.split(|&b| b == b'/').all(|c| c.len() <= NAME_MAX_LEN));
            if bytes.len() >= LONG_PATH_MIN {
                long += 1;
            } else {
                let rel = &bytes[root.as_os_str().len()..];
                max_depth = max_depth.max(rel.iter().filter(|&&b| b == b'/').count());
            }
            match std::fs::symlink_metadata(OsStr::from_bytes(bytes)) {
                Ok(m) => assert!(m.is_file()),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::NotFound);
                    missing += 1;
                }
            }
        }
        assert_eq!(missing, 200);
        assert_eq!(corpus.summary().missing, 200);
        // round(800 * 0.05) + round(200 * 0.05) = 40 + 10.
        assert_eq!(long, 50);
        assert!(
            corpus.summary().max_path_len >= 4000,
            "{}",
            corpus.summary().max_path_len
        );
        assert!(max_depth >= 4, "tree too flat: depth {max_depth}");
        // Missing paths are spread, not bunched at the end.
        let first_half_missing = corpus.paths()[..500]
            .iter()
            .filter(|p| !exists(p.as_bytes()))
            .count();
        assert!(
            (50..150).contains(&first_half_missing),
            "{first_half_missing}"
        );
        drop(corpus);
        assert!(!root.exists(), "temporary corpus not removed");
    }

    #[test]
    fn same_seed_same_relative_paths() {
        let rel = |c: &Corpus| -> Vec<Vec<u8>> {
            let n = c.dir().unwrap().as_os_str().len();
            c.paths()
                .iter()
                .map(|p| p.as_bytes()[n..].to_vec())
                .collect()
        };
        let a = Corpus::generate(&spec(200, 0.1, 0.02)).unwrap();
        let b = Corpus::generate(&spec(200, 0.1, 0.02)).unwrap();
        // Long paths fill their chain to a length that depends on the root's name length, which is
        // the same for both (same prefix + 6 random chars).
        assert_eq!(rel(&a), rel(&b));
    }

    #[test]
    fn all_missing_and_none_missing() {
        let all = Corpus::generate(&spec(64, 1.0, 0.0)).unwrap();
        assert!(all.paths().iter().all(|p| !exists(p.as_bytes())));
        let none = Corpus::generate(&spec(64, 0.0, 0.0)).unwrap();
        assert!(none.paths().iter().all(|p| exists(p.as_bytes())));
    }

    #[test]
    fn list_file_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("paths.txt");
        std::fs::write(&list, b"/\n\n/nonexistent-x\n").unwrap();
        let c = Corpus::from_list(&list).unwrap();
        assert_eq!(c.paths().len(), 2);
        assert_eq!(c.summary().missing, 1);

        let mut long = b"/".to_vec();
        long.extend([b'a'; 4100]);
        std::fs::write(&list, [b"/etc\n".to_vec(), long].concat()).unwrap();
        let err = Corpus::from_list(&list).unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("4101 bytes"),
            "{err}"
        );

        std::fs::write(&list, b"\n\n").unwrap();
        assert!(matches!(
            Corpus::from_list(&list),
            Err(LoadError::EmptyCorpus { .. })
        ));

        std::fs::write(&list, b"/etc\n/a\0b\n").unwrap();
        assert!(Corpus::from_list(&list)
            .unwrap_err()
            .to_string()
            .contains("line 2"));

        let err = Corpus::from_list(&dir.path().join("nope.txt"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.txt"), "{err}");
    }
}
