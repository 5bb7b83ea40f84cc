//! `harness record` end to end: bad input gets one clear error, before and
//! without any privilege. (Recording itself: tests/record_privileged.rs.)

mod support;

use support::cli::{assert_clear_error, harness};
use support::root::harness_without_privileges;

#[test]
fn unknown_probe_variant_is_rejected() {
    let out = harness()
        .args(["record", "-o", "/tmp/never.pcapng", "--probe", "huge8k"])
        .output()
        .unwrap();
    assert_clear_error(&out, 2, "unknown probe variant \"huge8k\"");
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
    assert_clear_error(&out, 1, "bad wakeup policy \"events:64\" for ringbuf");
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
    assert_clear_error(&out, 1, "/nonexistent-dir/sub/x.pcapng");
}

#[test]
fn missing_privileges_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("x.pcapng");
    let out = harness_without_privileges()
        .args(["record", "--duration", "1s", "-o"])
        .arg(&out_path)
        .output()
        .expect("setpriv (util-linux) is installed by ci/test.sh");
    assert_clear_error(&out, 1, "needs root or CAP_BPF + CAP_PERFMON");
    assert!(
        !out_path.exists(),
        "a failed record leaves no half file behind"
    );
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
        1,
        "the watermark (4194304 bytes) must be between 1 and the ring size (1048576 bytes)",
    );
}
