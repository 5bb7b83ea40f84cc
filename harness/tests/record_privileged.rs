//! `harness record` on the real kernel: a run interrupted by Ctrl-C leaves a
//! valid capture with everything read, a ring size alone gives a watermark,
//! and a tracefs that cannot be mounted is one clear error. Needs root and
//! eBPF: ignored unless the privileged-tests feature is on.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use support::cli::{assert_clear_error, harness, ok};
use support::root::{require_bpf, require_root};
use support::tools::assert_tshark_reads_cleanly;

#[test]
#[cfg_attr(
    not(feature = "privileged-tests"),
    ignore = "needs root (mounts tracefs)"
)]
fn absent_and_unmountable_tracefs_is_reported() {
    require_root("mounting tracefs");
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
        1,
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
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn ctrl_c_leaves_a_valid_capture_with_everything_read() {
    require_bpf();
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
    // record finishes cleanly after Ctrl-C.
    let stdout = ok(&child.wait_with_output().unwrap());
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
    assert_tshark_reads_cleanly(&path);
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn ring_size_alone_gives_a_watermark_at_half_that_ring() {
    require_bpf();
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
    // --ring-bytes 1m without --wakeup works.
    ok(&out);
    let r = harness::capture::CaptureReader::open(&path).unwrap();
    assert_eq!(r.meta().ring_bytes, 1 << 20);
    assert_eq!(r.meta().wakeup, probes::Wakeup::Watermark(524_288));
    let (samples, _) = read_back(&path);
    assert!(samples > 0, "the load's calls were captured");
}
