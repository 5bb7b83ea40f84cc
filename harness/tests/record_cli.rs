//! `harness record` end to end: bad input gets one clear error, and a run
//! interrupted by Ctrl-C leaves a valid capture. Privileged parts run in CI
//! (root, CI=true); elsewhere they skip with a reason, and under CI=true a skip fails.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::root::privileged;

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

/// One clear error line, a non-zero exit, and no panic.
fn assert_clear_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert!(!err.contains("panicked"), "must not panic: {err}");
    assert!(
        err.contains(needle),
        "stderr should mention {needle:?}: {err}"
    );
    assert!(
        err.lines().filter(|l| l.starts_with("error")).count() == 1,
        "one error line: {err}"
    );
}

#[test]
fn unknown_probe_variant_is_rejected() {
    let out = harness()
        .args(["record", "-o", "/tmp/never.pcapng", "--probe", "huge8k"])
        .output()
        .unwrap();
    assert_clear_error(&out, "unknown probe variant \"huge8k\"");
}

#[test]
fn bad_wakeup_policy_is_rejected() {
    let out = harness()
        .args([
            "record",
            "-o",
            "/tmp/never.pcapng",
            "--transport",
            "ringbuf",
            "--wakeup",
            "events:64",
        ])
        .output()
        .unwrap();
    assert_clear_error(&out, "bad wakeup policy \"events:64\" for ringbuf");
}

#[test]
fn unwritable_output_is_rejected_before_attaching() {
    let out = harness()
        .args([
            "record",
            "-o",
            "/nonexistent-dir/sub/x.pcapng",
            "--duration",
            "1s",
        ])
        .output()
        .unwrap();
    assert_clear_error(&out, "/nonexistent-dir/sub/x.pcapng");
}

#[test]
fn missing_privileges_are_reported() {
    if !privileged("dropping capabilities with setpriv") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("x.pcapng");
    // Root with an empty capability bounding set: no CAP_BPF, CAP_PERFMON or CAP_SYS_ADMIN.
    let out = Command::new("setpriv")
        .args([
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--bounding-set=-all",
            "--",
        ])
        .arg(env!("CARGO_BIN_EXE_harness"))
        .args(["record", "--duration", "1s", "-o"])
        .arg(&out_path)
        .output()
        .expect("setpriv (util-linux) is installed by ci/test.sh");
    assert_clear_error(&out, "needs root or CAP_BPF + CAP_PERFMON");
    assert!(
        !out_path.exists(),
        "a failed record leaves no half file behind"
    );
}

#[test]
fn absent_and_unmountable_tracefs_is_reported() {
    if !privileged("the tracefs check") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = harness()
        .args([
            "record",
            "--duration",
            "1s",
            "--tracefs",
            "/nonexistent/tracing",
            "-o",
        ])
        .arg(dir.path().join("x.pcapng"))
        .output()
        .unwrap();
    assert_clear_error(
        &out,
        "tracefs is not mounted at /nonexistent/tracing and mounting it failed",
    );
}

fn read_back(path: &Path) -> (u64, u64) {
    let mut r = harness::capture::CaptureReader::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut samples, mut lost) = (0u64, 0u64);
    r.for_each(|e| match e.rec {
        probes::record::RecordRef::Sample { .. } => samples += 1,
        probes::record::RecordRef::Lost { count, .. } => lost += count,
    })
    .unwrap();
    (samples, lost)
}

#[test]
fn ctrl_c_leaves_a_valid_capture_with_everything_read() {
    if !privileged("recording") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("interrupted.pcapng");
    let json = dir.path().join("summary.json");
    let child = harness()
        .args([
            "record",
            "--probe",
            "compact",
            "--load-rate",
            "20k",
            "--load-duration",
            "30s",
            "-o",
        ])
        .arg(&path)
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "record should finish cleanly after Ctrl-C: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("interrupted by Ctrl-C"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let (samples, lost) = read_back(&path);
    assert!(
        samples > 10_000,
        "2.5 s at 20 k ops/s should capture plenty, got {samples}"
    );
    assert_eq!(
        samples,
        summary["samples"].as_u64().unwrap(),
        "the file holds every sample the reader saw"
    );
    assert_eq!(
        lost,
        summary["lost_reported"].as_u64().unwrap() + summary["lost_unreported"].as_u64().unwrap()
    );
    assert_eq!(summary["balanced"], serde_json::Value::Bool(true));
    // tshark opens it without complaint.
    let t = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .arg("-c")
        .arg("5")
        .output();
    match t {
        Ok(t) => {
            assert!(
                t.status.success(),
                "tshark failed: {}",
                String::from_utf8_lossy(&t.stderr)
            );
            let err = String::from_utf8_lossy(&t.stderr);
            assert!(
                !err.to_lowercase().contains("error") && !err.contains("appears to be damaged"),
                "tshark: {err}"
            );
        }
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but tshark is missing: {e}")
        }
        Err(e) => eprintln!("skipping the tshark check: {e}"),
    }
}

#[test]
fn ring_size_alone_gives_a_watermark_at_half_that_ring() {
    if !privileged("recording") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small-ring.pcapng");
    let out = harness()
        .args([
            "record",
            "--probe",
            "compact",
            "--ring-bytes",
            "1m",
            "--load-rate",
            "5k",
            "--load-duration",
            "300ms",
            "-o",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "record --ring-bytes 1m without --wakeup should work: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = harness::capture::CaptureReader::open(&path).unwrap();
    assert_eq!(r.meta().ring_bytes, 1 << 20);
    assert_eq!(r.meta().wakeup, "watermark:524288");
    let (samples, _) = read_back(&path);
    assert!(samples > 0, "the load's calls were captured");
}

#[test]
fn a_watermark_larger_than_the_ring_names_both() {
    let out = harness()
        .args([
            "record",
            "-o",
            "/tmp/never.pcapng",
            "--ring-bytes",
            "1m",
            "--wakeup",
            "watermark:4m",
        ])
        .output()
        .unwrap();
    assert_clear_error(
        &out,
        "the watermark (4194304 bytes) must be between 1 and the ring size (1048576 bytes)",
    );
}
