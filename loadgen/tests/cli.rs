//! The real `loadgen` binary: bad input gets one clear line and exit 2; a good run reports JSON; and,
//! under strace, each op reaches exactly the syscall the docs say.

use std::path::Path;
use std::process::{Command, Output};

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("run loadgen")
}

/// Runs with bad input and checks: exit 2, one non-empty stderr line holding `needle`, no panic.
fn rejects(args: &[&str], needle: &str) {
    let out = loadgen(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "args {args:?}: stderr {stderr}");
    assert!(
        !stderr.contains("panicked"),
        "args {args:?} panicked: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "args {args:?}: want one error line, got {stderr}"
    );
    assert!(lines[0].starts_with("loadgen: error: "), "{}", lines[0]);
    assert!(
        lines[0].contains(needle),
        "args {args:?}: '{}' does not name '{needle}'",
        lines[0]
    );
    assert!(out.stdout.is_empty(), "args {args:?}: stdout not empty");
}

#[test]
fn rate_zero_or_below_is_named() {
    rejects(&["--rate", "0", "--ops", "10"], "rate 0 ");
    rejects(&["--rate", "-5", "--ops", "10"], "rate -5 ");
    rejects(&["--rate", "-0.5k", "--duration", "1s"], "rate -500 ");
    rejects(&["--rate", "fast", "--ops", "10"], "'fast'");
}

#[test]
fn unknown_op_is_named() {
    rejects(
        &["--rate", "1000", "--ops", "10", "--mix", "openat=1,open=1"],
        "unknown op 'open'",
    );
    rejects(
        &["--rate", "1000", "--ops", "10", "--mix", "stat=lots"],
        "'lots'",
    );
    rejects(
        &["--rate", "1000", "--ops", "10", "--mix", "stat=0"],
        "all its weights are 0",
    );
}

#[test]
fn missing_corpus_file_is_named() {
    rejects(
        &[
            "--rate",
            "1000",
            "--ops",
            "10",
            "--paths",
            "/nonexistent/loadgen-corpus.txt",
        ],
        "/nonexistent/loadgen-corpus.txt",
    );
    let dir = tempfile::tempdir().unwrap();
    rejects(
        &[
            "--rate",
            "1000",
            "--ops",
            "10",
            "--paths",
            dir.path().to_str().unwrap(),
        ],
        "Is a directory",
    );
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n").unwrap();
    let out = loadgen(&[
        "--rate",
        "1000",
        "--ops",
        "10",
        "--paths",
        empty.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Found but empty: discovered when the corpus is loaded, after validation.
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains("empty.txt") && stderr.contains("holds no paths"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn cpu_that_does_not_exist_is_named() {
    rejects(
        &["--rate", "1000", "--ops", "10", "--cpus", "4096"],
        "CPU 4096 does not exist",
    );
    rejects(&["--rate", "1000", "--ops", "10", "--cpus", "0,x"], "'x'");
}

#[test]
fn other_bad_input_gets_one_line() {
    rejects(&["--rate", "1000"], "--duration");
    rejects(
        &["--rate", "1000", "--ops", "10", "--duration", "1s"],
        "not both",
    );
    rejects(&["--rate", "1000", "--duration", "soon"], "'soon'");
    rejects(&["--rate", "1000", "--ops", "0"], "op count 0");
    rejects(
        &["--rate", "1000", "--ops", "10", "--threads", "0"],
        "thread count 0",
    );
    rejects(
        &["--rate", "1000", "--ops", "10", "--missing", "1.5"],
        "1.5",
    );
    rejects(
        &["--rate", "1000", "--ops", "10", "--frobnicate"],
        "--frobnicate",
    );
    rejects(&["--ops", "10"], "--rate");
    rejects(
        &[
            "--rate",
            "1000",
            "--ops",
            "10",
            "--json",
            "/nonexistent/dir/r.json",
        ],
        "/nonexistent/dir/r.json",
    );
}

#[test]
fn good_run_reports_json() {
    let out = loadgen(&[
        "--rate",
        "20000",
        "--ops",
        "2000",
        "--threads",
        "2",
        "--mix",
        "openat=1,statx=1",
        "--json",
        "-",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is the JSON report");
    assert_eq!(report["ops"], 2000);
    assert_eq!(report["syscalls"]["openat"], 1000);
    assert_eq!(report["syscalls"]["statx"], 1000);
    assert_eq!(report["tids"].as_array().unwrap().len(), 2);
    assert_eq!(report["target_ops_per_sec"], 20000.0);
    assert!(report["lateness_ns"]["p99"].is_u64());
    // 10% of the default corpus is missing, so some ENOENT, all of them on openat/statx.
    let enoent = report["errors"]["ENOENT"].as_u64().unwrap();
    assert!(enoent > 0 && enoent < 2000, "{enoent}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("achieved") && stderr.contains("lateness"),
        "summary on stderr: {stderr}"
    );
}

fn strace_available() -> bool {
    let ok = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "strace is not installed; CI must install it (apt-get install strace)"
        );
        eprintln!("skipping: strace is not installed");
    }
    ok
}

/// Counts per syscall from `strace -c` output.
fn strace_counts(file: &Path) -> std::collections::BTreeMap<String, u64> {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            // % time, seconds, usecs/call, calls, [errors], syscall
            if cols.len() >= 5 && cols[0].parse::<f64>().is_ok() {
                Some((cols.last()?.to_string(), cols[3].parse().ok()?))
            } else {
                None
            }
        })
        .collect()
}

/// Each op reaches exactly the syscall the `ops` module documents: N ops of one kind give N of that
/// syscall (plus the few of process start-up), and none of the others.
#[test]
fn syscalls_match_strace() {
    if !strace_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("paths.txt");
    std::fs::write(&list, "/\n/proc/self\n/nonexistent-loadgen-x\n").unwrap();
    const N: u64 = 3000;
    // op -> (syscall that must count N, syscalls that must stay near zero)
    let cases: [(&str, &[&str], &[&str]); 5] = [
        (
            "openat",
            &["openat", "close"],
            &["newfstatat", "statx", "stat", "lstat"],
        ),
        ("stat", &["newfstatat"], &["statx", "stat", "lstat"]),
        ("lstat", &["newfstatat"], &["statx", "stat", "lstat"]),
        ("fstatat", &["newfstatat"], &["statx", "stat", "lstat"]),
        ("statx", &["statx"], &["newfstatat", "stat", "lstat"]),
    ];
    for (op, want, not) in cases {
        let summary = dir.path().join(format!("{op}.strace"));
        let status = Command::new("strace")
            .args(["-f", "-c", "-o"])
            .arg(&summary)
            .args(["-e", "trace=openat,close,newfstatat,statx,stat,lstat"])
            .arg(env!("CARGO_BIN_EXE_loadgen"))
            .args([
                "--rate",
                "max",
                "--ops",
                &N.to_string(),
                "--mix",
                op,
                "--quiet",
                "--paths",
            ])
            .arg(&list)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "strace of {op} failed");
        let counts = strace_counts(&summary);
        for s in want {
            let n = counts.get(*s).copied().unwrap_or(0);
            // Start-up (loader, list file, /proc reads) adds a few dozen; 2/3 of openats close (one
            // path is missing).
            let expect = if *s == "close" { N * 2 / 3 } else { N };
            assert!(
                n >= expect && n < expect + 200,
                "op {op}: {s} x{n}, want ~{expect}: {counts:?}"
            );
        }
        for s in not {
            let n = counts.get(*s).copied().unwrap_or(0);
            assert!(n < 200, "op {op}: {s} x{n}, want ~0: {counts:?}");
        }
    }
}
