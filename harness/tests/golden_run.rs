//! A recorded run through every reader of results, against golden files made
//! before the restructuring of issue 31 (harness/tests/golden/run/): the
//! results file read and written back, its report, its three exports and the
//! gate's console output must stay byte for byte what they were, apart from
//! the fields renamed on purpose ([`RENAMED`]), which are still read under
//! their old names.
//!
//! The recorded run is the committed CI baseline (ci/baseline/sweep.json, a
//! real sweep: its series, every trial's results, environment and plan).
//! After an intended change of output, regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p harness --test golden_run` and review the
//! diff.

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::experiment::results::SweepResults;

/// Fields renamed on purpose, as (what the golden file has, what is written
/// now). Applied to the golden text before comparing.
const RENAMED: &[(&str, &str)] = &[
    // A series key's ring memory is the total over its rings; `ring_bytes`
    // is per ring everywhere else (a trial's config, a capture's metadata).
    // The key sits at this depth of sweep.json and nowhere else does.
    (
        "\n        \"ring_bytes\": ",
        "\n        \"ring_total_bytes\": ",
    ),
    // The event layout is `layout` everywhere; `probe` names the BPF
    // program set only. Every `"probe": ` in the golden file is a layout.
    ("\"probe\": ", "\"layout\": "),
];

const RUN: &str = "ci/baseline/sweep.json";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/run")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// Compares `actual` with the golden file `name` (after [`RENAMED`]), or
/// rewrites it under UPDATE_GOLDEN=1.
fn check(name: &str, actual: &[u8]) {
    let path = golden_dir().join(name);
    if updating() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        eprintln!("updated {}", path.display());
        return;
    }
    let mut expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading golden file {}: {e} (UPDATE_GOLDEN=1 makes it)",
            path.display()
        )
    });
    for (old, new) in RENAMED {
        expected = expected.replace(old, new);
    }
    let actual = String::from_utf8_lossy(actual);
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from {} at line {}:\n  golden: {:?}\n  actual: {:?}\n\
             (golden {} bytes, actual {} bytes)",
            path.display(),
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first),
            expected.len(),
            actual.len()
        );
    }
}

fn harness(args: &[&str]) -> (i32, Vec<u8>, Vec<u8>) {
    let o = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap();
    (o.status.code().unwrap_or(-1), o.stdout, o.stderr)
}

#[test]
fn results_file_reads_and_writes_back_unchanged() {
    // Read under the old field names (the golden file is the old writer's
    // output), written under the new ones.
    let old = SweepResults::read(&golden_dir().join("sweep.json")).unwrap();
    let r = SweepResults::read(&root().join(RUN)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep.json");
    r.write(&out).unwrap();
    check("sweep.json", &std::fs::read(&out).unwrap());
    assert_eq!(
        old, r,
        "the old field names read back into the same results"
    );
}

#[test]
fn report_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let (code, stdout, stderr) = harness(&["report", RUN, "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&stderr));
    // The console names the output folder, which is a fresh temporary one.
    let console = String::from_utf8_lossy(&stdout).replace(out.to_str().unwrap(), "OUT");
    check("report.console.txt", console.as_bytes());
    let mut files: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        check(&format!("report.{name}"), &std::fs::read(&f).unwrap());
    }
}

#[test]
fn exports_are_unchanged() {
    for format in [
        "bmf",
        "github-action-benchmark",
        "github-action-benchmark-loss",
    ] {
        let (code, stdout, stderr) = harness(&["export", RUN, "--format", format]);
        assert_eq!(code, 0, "{format}: {}", String::from_utf8_lossy(&stderr));
        check(&format!("export.{format}.json"), &stdout);
    }
}

#[test]
fn gate_console_is_unchanged() {
    let (code, stdout, stderr) =
        harness(&["gate", RUN, "--rules", "ci/gates.toml", "--baseline", RUN]);
    let mut text = format!("exit {code}\n").into_bytes();
    text.extend_from_slice(&stdout);
    text.extend_from_slice(b"--- stderr\n");
    text.extend_from_slice(&stderr);
    check("gate.console.txt", &text);
}
