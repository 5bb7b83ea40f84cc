//! `harness record` onto a disk that fills up: a size-limited tmpfs this test
//! mounts. The recording must end with one error line naming the file and
//! "No space left on device", a non-zero exit and no hang, and leave a capture
//! that ends on a whole block: tshark and `harness inspect` open it cleanly
//! and it holds the samples written before the disk filled. Needs root (the
//! mount) and eBPF: ignored unless the privileged-tests feature is on.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use harness::capture::CaptureReader;
use probes::record::RecordRef;
use support::cli::{harness, ok};
use support::root::{require_bpf, Tmpfs};
use support::tools::assert_tshark_reads_cleanly;

/// Runs `cmd`, killing it (and failing) if it takes longer than `limit`.
fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "record hung for {limit:?} after the disk filled; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn a_full_disk_ends_the_recording_with_a_whole_readable_capture() {
    require_bpf();
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount("4m");
    let path = disk.path("full.pcapng");
    let json = dir.path().join("summary.json");

    // fixed4k enter+exit events stored zero-trimmed take roughly 100-300 bytes
    // each, so 50 k ops/s (100 k events/s) fill 4 MiB in well under two seconds;
    // the 30 s cap only bounds a run whose disk never fills.
    let mut cmd = harness();
    cmd.args([
        "record",
        "--probe",
        "fixed4k",
        "--ring-bytes",
        "1m",
        "--load-rate",
        "50k",
        "--load-duration",
        "30s",
        "--duration",
        "30s",
        "-o",
    ])
    .arg(&path)
    .arg("--json")
    .arg(&json);
    let out = run_bounded(cmd, Duration::from_secs(90));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);

    assert!(
        !out.status.success(),
        "a full disk must fail the recording; stdout: {stdout} stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "must not panic: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error") || l.contains("caused by"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    let line = errors[0];
    assert!(
        line.contains(&path.display().to_string()) && line.contains("No space left on device"),
        "the error line names the file and the OS error: {line}"
    );

    // tshark reads every packet with nothing to say about the file.
    assert_tshark_reads_cleanly(&path);

    // harness inspect opens it without --allow-truncated.
    let shown = ok(&harness().arg("inspect").arg(&path).output().unwrap());

    // It ends on a whole block and holds samples from before the disk filled.
    let mut r = CaptureReader::open(&path).unwrap();
    let mut samples = 0u64;
    r.for_each(|e| {
        if let RecordRef::Sample { .. } = e.rec {
            samples += 1
        }
    })
    .unwrap();
    assert_eq!(r.truncated_tail(), None, "the file ends on a whole block");
    assert!(samples > 0, "the samples before the disk filled are kept");
    // The kernel counters and a note of the failure went in: the writer cuts
    // off the last few records to make room for them (at most 64 KiB).
    assert_eq!(r.ring_stats().len(), r.meta().rings as usize);
    assert_eq!(r.notes().len(), 1, "{:?}", r.notes());
    assert!(
        r.notes()[0].contains("No space left on device"),
        "{:?}",
        r.notes()
    );
    assert!(
        shown.contains("note      dropbench stopped writing this capture early"),
        "{shown}"
    );

    // The summary (written elsewhere) agrees with the file.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(summary["samples_stored"].as_u64(), Some(samples));
    assert!(summary["samples"].as_u64().unwrap() >= samples);
    assert!(summary["write_error"]
        .as_str()
        .unwrap()
        .contains("No space left on device"));
    assert_eq!(
        summary["file_bytes"].as_u64(),
        Some(std::fs::metadata(&path).unwrap().len())
    );
}
