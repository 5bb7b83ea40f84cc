//! The harness binary from a test: one way to start it, to read what it
//! printed, and to judge a clear error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use harness::experiment::results::SweepResults;

use super::workspace;

/// The harness binary, run in the workspace root: a relative path in a test
/// (`ci/gates.toml`, `fixtures/captures/...`) is the repository's, as in the
/// README's commands. Every other path a test passes is absolute; a test
/// that needs another working directory sets it with `current_dir`.
pub fn harness() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_harness"));
    c.current_dir(workspace());
    c
}

/// stdout and stderr, as text.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The stdout of a run that must have succeeded; fails showing both streams.
pub fn ok(out: &Output) -> String {
    let (stdout, stderr) = text(out);
    assert!(
        out.status.success(),
        "{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

/// One clear error: exit code `code`, no panic, and on stderr a single line,
/// `error: ...`, holding `needle` (a command-line parse error may add clap's
/// `For more information, try '--help'.` after it). Returns that line.
pub fn assert_clear_error(out: &Output, code: i32, needle: &str) -> String {
    let (stdout, err) = text(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code; stderr:\n{err}\nstdout:\n{stdout}"
    );
    assert!(!err.contains("panicked"), "must not panic:\n{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information, try '--help'"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line:\n{err}");
    let line = lines[0];
    assert!(line.starts_with("error: "), "{line}");
    assert!(line.contains(needle), "{needle:?} missing from: {line}");
    line.to_string()
}

/// `harness sweep` of `plan` (TOML), written to `dir/plan.toml`, into
/// `dir/results`, on `cmd` (from [`harness`], or the harness without
/// privileges): add arguments and run it; [`sweep_results`] reads what it wrote.
pub fn sweep(mut cmd: Command, dir: &Path, plan: &str) -> Command {
    let cfg = dir.join("plan.toml");
    std::fs::write(&cfg, plan).unwrap();
    cmd.args(["sweep", "--config"])
        .arg(cfg)
        .arg("--out")
        .arg(results_dir(dir));
    cmd
}

/// Where [`sweep`] in `dir` writes: `dir/results`.
pub fn results_dir(dir: &Path) -> PathBuf {
    dir.join("results")
}

/// Each series of `r` as (variant, mode), in order.
pub fn cells(r: &SweepResults) -> Vec<(&str, &str)> {
    r.series
        .iter()
        .map(|s| (s.key.variant.as_str(), s.key.mode.name()))
        .collect()
}

/// The latest results of [`sweep`] in `dir`.
pub fn sweep_results(dir: &Path) -> SweepResults {
    SweepResults::read(&results_dir(dir).join("latest/sweep.json")).unwrap()
}
