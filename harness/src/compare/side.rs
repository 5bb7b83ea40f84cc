//! The two builds a comparison runs: each is a harness binary, given by path
//! or built from a git revision in a worktree of its own.
//!
//! A revision is resolved to its commit (`git rev-parse --verify REV^{commit}`),
//! checked out with `git worktree add --detach` under
//! `target/compare/src/<commit>` and built there with the same profile as the
//! running binary, sharing this tree's `target/` directory so that only the
//! workspace's own crates are rebuilt. The binary is copied to
//! `target/compare/bin/<commit>/harness`: a later comparison against the same
//! commit reuses it without building. The running binary is copied too
//! before anything is built, since the build replaces `target/<profile>/harness`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::CompareInputError;

/// One side of a comparison, ready to run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Side {
    /// `baseline` or `candidate`.
    pub role: String,
    /// What the user named: a revision, a path, or `this build`.
    pub source: String,
    /// The commit a revision resolved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub binary: PathBuf,
    /// What `binary --version` printed.
    pub version: String,
    /// Seconds spent building it (0 when cached or given by path).
    pub build_s: f64,
}

/// Where builds and copies are kept: `target/compare` of the repository the
/// current directory is in (or of the current directory).
pub fn cache_dir() -> PathBuf {
    let top = git(&["rev-parse", "--show-toplevel"], Path::new("."))
        .map(|s| PathBuf::from(s.trim()))
        .unwrap_or_else(|_| PathBuf::from("."));
    top.join("target/compare")
}

fn git(args: &[&str], dir: &Path) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("could not run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or("git failed")
            .to_string())
    }
}

/// Checks that `binary` is dropbench's harness: `--version` says `harness
/// X.Y.Z` and `replay --help` offers `--json`. Returns the version line.
pub fn check_binary(role: &str, binary: &Path) -> Result<String, CompareInputError> {
    let not = |what: String| CompareInputError::NotHarness {
        role: role.to_string(),
        path: binary.display().to_string(),
        what,
    };
    if !binary.is_file() {
        return Err(not("no such file".into()));
    }
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .map_err(|e| not(format!("cannot run it: {e}")))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || !version.starts_with("harness ") {
        return Err(not(format!(
            "`--version` printed {:?}, not `harness X.Y.Z`",
            version.lines().next().unwrap_or("")
        )));
    }
    let help = Command::new(binary)
        .args(["replay", "--help"])
        .output()
        .map_err(|e| not(format!("cannot run it: {e}")))?;
    if !String::from_utf8_lossy(&help.stdout).contains("--json") {
        return Err(not(
            "its `replay` has no --json (older than the results schema)".into(),
        ));
    }
    Ok(version)
}

/// Whether `binary` has `count` (builds from before it cannot be counted).
pub fn can_count(binary: &Path) -> bool {
    Command::new(binary)
        .args(["count", "--help"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The running binary, copied aside so that building the other side cannot
/// replace it.
pub fn this_build(role: &str, cache: &Path) -> Result<Side, CompareInputError> {
    let exe = std::env::current_exe().map_err(|e| CompareInputError::Options {
        what: format!("cannot find this binary: {e}"),
    })?;
    let dir = cache.join(format!("bin/this-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| CompareInputError::Options {
        what: format!("{}: {e}", dir.display()),
    })?;
    let copy = dir.join("harness");
    std::fs::copy(&exe, &copy).map_err(|e| CompareInputError::Options {
        what: format!("copying {} to {}: {e}", exe.display(), copy.display()),
    })?;
    let version = check_binary(role, &copy)?;
    Ok(Side {
        role: role.into(),
        source: "this build".into(),
        commit: None,
        binary: copy,
        version,
        build_s: 0.0,
    })
}

/// A side named by the user: an existing file is a binary; anything else a
/// git revision, built (or taken from the cache).
/// Cargo names a path package's artifacts by its path relative to the
/// workspace root, so the worktree's build of `harness` (and of the other
/// workspace crates) took the main tree's artifact names, and their
/// fingerprints now point at the worktree's sources: the next `cargo build`
/// in the main tree would call the baseline's binary fresh. Removing the
/// workspace crates' fingerprints makes cargo rebuild them (the third-party
/// crates, the bulk of the build, stay shared).
fn forget_workspace_builds(profile_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(profile_dir.join(".fingerprint")) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let krate = name.rsplit_once('-').map_or(name.as_str(), |(k, _)| k);
        if ["harness", "probes", "loadgen", "reports"].contains(&krate) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

pub fn resolve(role: &str, spec: &str, cache: &Path) -> Result<Side, CompareInputError> {
    let path = Path::new(spec);
    if path.is_file() || spec.contains('/') && !spec.starts_with("origin/") && path.exists() {
        let version = check_binary(role, path)?;
        let binary = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        return Ok(Side {
            role: role.into(),
            source: spec.into(),
            commit: None,
            binary,
            version,
            build_s: 0.0,
        });
    }
    let bad_rev = |what: String| CompareInputError::Revision {
        role: role.to_string(),
        rev: spec.to_string(),
        what,
    };
    let top = git(&["rev-parse", "--show-toplevel"], Path::new("."))
        .map(|s| PathBuf::from(s.trim()))
        .map_err(|e| {
            bad_rev(format!(
                "not a file, and no git repository here to find a revision in ({e})"
            ))
        })?;
    let commit = git(
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{spec}^{{commit}}"),
        ],
        &top,
    )
    .map(|s| s.trim().to_string())
    .ok()
    .filter(|s| !s.is_empty())
    .ok_or_else(|| bad_rev("not a file and not a commit of this repository".into()))?;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let bin_dir = cache.join(format!("bin/{commit}-{profile}"));
    let binary = bin_dir.join("harness");
    let mut build_s = 0.0;
    if !binary.is_file() {
        let t0 = Instant::now();
        let src = cache.join(format!("src/{commit}"));
        if !src.join("Cargo.toml").is_file() {
            let _ = std::fs::remove_dir_all(&src);
            let _ = git(&["worktree", "prune"], &top);
            git(
                &[
                    "worktree",
                    "add",
                    "--detach",
                    "--force",
                    &src.display().to_string(),
                    &commit,
                ],
                &top,
            )
            .map_err(|e| bad_rev(format!("git worktree add: {e}")))?;
        }
        eprintln!(
            "compare: building {role} {spec} ({commit:.12}, {profile}) in {}",
            src.display()
        );
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo
            .args(["build", "--locked", "-p", "harness"])
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", top.join("target"));
        if profile == "release" {
            cargo.arg("--release");
        }
        let status = cargo
            .status()
            .map_err(|e| bad_rev(format!("could not run cargo: {e}")))?;
        if !status.success() {
            return Err(bad_rev(format!("cargo build failed in {}", src.display())));
        }
        std::fs::create_dir_all(&bin_dir).map_err(|e| bad_rev(e.to_string()))?;
        std::fs::copy(top.join(format!("target/{profile}/harness")), &binary)
            .map_err(|e| bad_rev(format!("copying the built binary: {e}")))?;
        forget_workspace_builds(&top.join("target").join(profile));
        build_s = t0.elapsed().as_secs_f64();
    }
    let version = check_binary(role, &binary)?;
    Ok(Side {
        role: role.into(),
        source: spec.into(),
        commit: Some(commit),
        binary,
        version,
        build_s,
    })
}
