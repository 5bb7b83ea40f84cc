//! End-to-end replays of a synthetic capture through `replay::run`, and the
//! `harness replay` / `harness inspect` command lines, bad input included
//! (`replay --kernel` too, as far as it needs no privileges).

mod support;

use harness::capture::{Capture, Transport};
use harness::replay::{self, drain_noop, Bound, Pacing, ReplayOptions, Wakeup};
use probes::abi::{Kind, Layout, Syscall};
use support::cli::{assert_clear_error, harness, ok};
use support::events::{header, write_synthetic, SynthCapture};
use support::fixture;
use support::root::harness_without_privileges;

fn synthetic(
    dir: &std::path::Path,
    layout: Layout,
    transport: Transport,
    rings: u32,
    n: usize,
) -> std::path::PathBuf {
    let p = dir.join(format!("{layout}-{transport}-{n}.pcapng"));
    write_synthetic(&p, layout, transport, rings, n);
    p
}

#[test]
fn a_paced_replay_delivers_every_sample_and_the_counts_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let p = synthetic(dir.path(), Layout::Compact, Transport::Perf, 2, 2_000);
    let cap = Capture::load(&p).unwrap();
    let samples = cap.samples() as u64;
    let opts = ReplayOptions {
        pacing: Pacing::Rate(200_000.0),
        bound: Bound::Loops(3),
        ring_bytes: Some(1 << 20),
        ..Default::default()
    };
    let rep = replay::run(&cap, &opts, drain_noop).unwrap();
    assert_eq!(rep.offered, 3 * samples);
    assert_eq!(rep.lost, 0);
    assert_eq!(rep.consumer.read, rep.offered);
    assert_eq!(rep.loops_done, 3);
    assert_eq!(rep.per_ring.len(), 2);
    let r = rep.to_run_result();
    assert_eq!(r.schema, "dropbench.run/1");
    let lat = r.latency.unwrap();
    assert_eq!(lat.count, rep.offered);
    assert!(lat.p50_ns <= lat.p99_ns && lat.p99_ns <= lat.p999_ns);
}

#[test]
fn a_tiny_ring_at_top_speed_loses_and_every_loss_is_accounted() {
    let dir = tempfile::tempdir().unwrap();
    let p = synthetic(dir.path(), Layout::Fixed4k, Transport::Perf, 1, 3_000);
    let cap = Capture::load(&p).unwrap();
    for (transport, wakeup) in [
        (Transport::Perf, Wakeup::Watermark(8192)),
        (
            Transport::Ringbuf,
            Wakeup::NoWakeupPoll(std::time::Duration::from_millis(5)),
        ),
    ] {
        let opts = ReplayOptions {
            pacing: Pacing::Max,
            bound: Bound::Loops(2),
            transport: Some(transport),
            ring_bytes: Some(16384),
            wakeup: Some(wakeup),
            ..Default::default()
        };
        let rep = replay::run(&cap, &opts, drain_noop).unwrap();
        assert!(
            rep.lost > 0,
            "{transport}: a 16 KiB ring polled every 5 ms must overflow"
        );
        assert_eq!(rep.offered, rep.accepted + rep.lost);
        assert_eq!(rep.consumer.read, rep.accepted, "{transport}");
        // Every drop is seen in-band except perf's last, unreported batch.
        assert_eq!(
            rep.consumer.lost_seen + rep.unreported_lost,
            rep.lost,
            "{transport}"
        );
        let hw = rep.per_ring[0].high_water_bytes;
        assert!(hw > 8192 && hw < 16384, "{transport}: high water {hw}");
    }
}

#[test]
fn a_replay_stops_once_its_rings_have_lost_more_than_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let p = synthetic(dir.path(), Layout::Fixed4k, Transport::Perf, 1, 3_000);
    let cap = Capture::load(&p).unwrap();
    let tiny = |stop_at_loss| ReplayOptions {
        pacing: Pacing::Max,
        bound: Bound::Loops(4),
        transport: Some(Transport::Perf),
        ring_bytes: Some(16384),
        wakeup: Some(Wakeup::Watermark(8192)),
        stop_at_loss,
        rings: None,
        co_runner: None,
    };
    let whole = replay::run(&cap, &tiny(None), drain_noop).unwrap();
    assert!(whole.lost > 200 && !whole.stopped_at_loss, "{}", whole.lost);
    assert_eq!(whole.loops_done, 4);
    let stop = replay::StopAtLoss {
        lost: 100,
        after: std::time::Duration::ZERO,
    };
    let r = replay::run(&cap, &tiny(Some(stop)), drain_noop).unwrap();
    assert!(r.stopped_at_loss);
    // It stops at the first loss past the limit, with every count balanced.
    assert_eq!(r.lost, 101);
    assert_eq!(r.offered, r.accepted + r.lost);
    assert_eq!(r.consumer.read, r.accepted);
    assert!(
        r.offered < whole.offered,
        "{} vs {}",
        r.offered,
        whole.offered
    );
    // A limit it never reaches changes nothing.
    let far = replay::StopAtLoss {
        lost: u64::MAX,
        ..stop
    };
    let r = replay::run(&cap, &tiny(Some(far)), drain_noop).unwrap();
    assert!(!r.stopped_at_loss && r.loops_done == 4);
    // Nor does one that may only stop after the run has ended.
    let late = replay::StopAtLoss {
        lost: 0,
        after: std::time::Duration::from_secs(3600),
    };
    let r = replay::run(&cap, &tiny(Some(late)), drain_noop).unwrap();
    assert!(!r.stopped_at_loss && r.loops_done == 4 && r.lost > 0);
}

#[test]
fn replay_options_default_to_the_capture_and_reject_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    let p = synthetic(dir.path(), Layout::Compact, Transport::Perf, 2, 10);
    let cap = Capture::load(&p).unwrap();
    let cfg = ReplayOptions::default().resolve(&cap.meta).unwrap();
    assert_eq!(cfg.ring_bytes, cap.meta.ring_bytes);
    assert_eq!(cfg.rings, 2);
    assert_eq!(cfg.wakeup, Wakeup::Events(1));
    let bad = ReplayOptions {
        ring_bytes: Some(5000),
        ..Default::default()
    };
    assert!(bad
        .resolve(&cap.meta)
        .unwrap_err()
        .to_string()
        .contains("5000"));
    let bad = ReplayOptions {
        transport: Some(Transport::Perf),
        wakeup: Some(Wakeup::Forced),
        ..Default::default()
    };
    assert!(bad.resolve(&cap.meta).is_err());
    let rb = ReplayOptions {
        transport: Some(Transport::Ringbuf),
        ..Default::default()
    }
    .resolve(&cap.meta)
    .unwrap();
    assert_eq!((rb.rings, rb.wakeup), (1, Wakeup::Adaptive));
    for s in [
        "events:64",
        "watermark:4194304",
        "adaptive",
        "no-wakeup/poll:1ms",
        "forced",
    ] {
        assert_eq!(s.parse::<Wakeup>().unwrap().to_string(), s);
    }
    assert!("events:0".parse::<Wakeup>().is_err());
}

#[test]
fn cli_replay_and_inspect_work_and_write_results() {
    let dir = tempfile::tempdir().unwrap();
    let p = synthetic(dir.path(), Layout::Fixed4k, Transport::Perf, 2, 500);
    let json = dir.path().join("r.json");
    let out = harness()
        .arg("replay")
        .arg(&p)
        .args([
            "--rate",
            "100000",
            "--loops",
            "2",
            "--ring-bytes",
            "64KiB",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = ok(&out);
    for want in ["offered", "accepted", "lost", "latency   p50", "high-water"] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    let r = harness::results::RunResult::read(&json).unwrap();
    assert_eq!(r.counts.offered, 2 * 490);
    assert_eq!(r.config.layout, "fixed4k");

    let stdout = ok(&harness().arg("inspect").arg(&p).output().unwrap());
    for want in [
        "cpu0",
        "cpu1",
        "openat",
        "statx",
        "rate over time",
        "samples   490",
        "lost 2740 in 10 marker",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    let out = harness()
        .arg("inspect")
        .arg("--json")
        .arg(&p)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["samples"], 490);
    assert_eq!(v["per_ring"].as_array().unwrap().len(), 2);
}

#[test]
fn cli_rejects_bad_captures_with_one_line_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = synthetic(dir.path(), Layout::Compact, Transport::Perf, 1, 100);
    let bytes = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.pcapng", vec![]),
        ("junk.pcapng", b"this is not a capture at all".to_vec()),
        ("header-cut.pcapng", bytes[..100].to_vec()),
    ];
    for (name, b) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        for cmd in ["inspect", "replay"] {
            let out = harness().arg(cmd).arg(&p).output().unwrap();
            let line = assert_clear_error(&out, 1, name);
            assert!(line.contains("byte"), "{cmd} {name}: no offset in {line}");
        }
    }
    let out = harness()
        .arg("inspect")
        .arg(dir.path().join("missing.pcapng"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = harness()
        .arg("replay")
        .arg(&good)
        .args(["--variant", "nope"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown pipeline variant"));
    let out = harness()
        .arg("replay")
        .arg(&good)
        .args(["--ring-bytes", "3000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("power of two"));
}

#[test]
fn kernel_order_merges_rings_by_time_and_keeps_each_ring_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("o.pcapng");
    // Written as a reader drains: all of ring 0's batch, then ring 1's.
    let mut c = SynthCapture::create(&p, Layout::Compact, Transport::Perf, 2);
    for (ring, ts) in [
        (0u32, 10u64),
        (0, 30),
        (0, 50),
        (1, 20),
        (1, 40),
        (1, 45),
        (0, 60),
    ] {
        c.event(ring, &header(ts, 1, 1, Syscall::Openat, Kind::Enter), b"/x");
    }
    c.finish(&[]);
    let cap = Capture::load(&p).unwrap();
    let order: Vec<u64> = replay::kernel_order(&cap)
        .iter()
        .map(|r| r.origin_ns)
        .collect();
    assert_eq!(order, vec![10, 20, 30, 40, 45, 50, 60]);
}

#[test]
fn cli_inspect_reports_a_cut_short_tail_as_an_error_after_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let good = synthetic(dir.path(), Layout::Compact, Transport::Perf, 1, 99);
    // 99 records: 98 samples and one lost marker (record 49); the last is a sample.
    let bytes = std::fs::read(&good).unwrap();
    let p = dir.path().join("killed.pcapng");
    // Drop the ISB and half of the last sample, as a killed recorder would.
    std::fs::write(&p, &bytes[..bytes.len() - 64 - 30]).unwrap();
    let out = harness().arg("inspect").arg(&p).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("killed.pcapng: truncated at byte"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("samples   97"));
    let out = harness()
        .arg("inspect")
        .arg("--allow-truncated")
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success());
    // Replay reads everything before the cut.
    let cap = Capture::load(&p).unwrap();
    assert_eq!(cap.samples(), 97);
    assert!(cap.truncated.is_some());
}

#[test]
fn cli_replay_runs_a_pipeline_variant_and_records_its_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let p = synthetic(dir.path(), Layout::Compact, Transport::Perf, 2, 400);
    let json = dir.path().join("v.json");
    let out = harness()
        .arg("replay")
        .arg(&p)
        // Top speed: this checks the ledger, not pacing (a debug build under
        // parallel tests cannot promise any rate).
        .args(["--variant", "batched", "--max", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    ok(&out);
    let r = harness::results::RunResult::read(&json).unwrap();
    assert_eq!(r.variant, "batched");
    assert_eq!(r.counts.read, r.counts.accepted);
    assert!(r.ledger.is_some());
    assert!(r.valid, "{:?}", r.problems);
}

#[test]
fn without_privileges_the_kernel_mode_says_why_and_points_at_emulated_replay() {
    let out = harness_without_privileges()
        .args(["replay", "--kernel"])
        .arg(fixture("compact-perf.pcapng"))
        .output()
        .expect("setpriv (util-linux) is installed by ci/test.sh");
    for needle in [
        "kernel-backed replay needs root or CAP_BPF + CAP_PERFMON",
        "emulated replay (without --kernel) needs no privileges",
    ] {
        assert_clear_error(&out, 1, needle);
    }
}

/// Bad `replay --kernel` input refused before anything is loaded. (What
/// needs the kernel: tests/replay_kernel.rs, privileged.)
#[test]
fn bad_kernel_replay_input_is_one_clear_line_before_any_privilege() {
    let run = |args: &[&str]| {
        harness()
            .arg("replay")
            .args(args)
            .arg(fixture("compact-perf.pcapng"))
            .output()
            .unwrap()
    };
    assert_clear_error(
        &run(&["--variant", "exec:./r"]),
        1,
        "--variant exec:... needs --kernel",
    );
    assert_clear_error(
        &run(&["--kernel", "--variant", "exec:"]),
        1,
        "needs a command",
    );
    assert_clear_error(
        &run(&["--kernel", "--exec-ready", "soon"]),
        2,
        "bad ready handshake",
    );
}
