//! Pacing accuracy: replay at fixed rates up to 1 M events/s and print target
//! vs achieved. What must hold: within ±1% of the target at every rate.
//!
//! Achieved = (records - 1) / (time of the last write - due time of the first).
//! The schedule is absolute, so this is the rate the consumer was offered.
//!
//! Env: PACING_BENCH_SECS (per rate, default 2).
//! Run: `cargo bench -p harness --bench replay_pacing`

use std::time::Duration;

use harness::capture::{Capture, CaptureMeta, CaptureWriter, Transport};
use harness::replay::{self, drain_noop, Bound, Pacing, ReplayOptions, Wakeup};
use probes::abi::{encode_event, EventHeader, Kind, Layout, Syscall};
use probes::record::RecordRef;

fn capture() -> (Capture, String) {
    let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/captures/compact-perf.pcapng");
    if let Ok(c) = Capture::load(&fx) {
        if c.samples() > 0 {
            return (c, fx.display().to_string());
        }
    }
    let dir = std::env::temp_dir().join(format!("dropbench-pacing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("compact.pcapng");
    let meta = CaptureMeta::now(
        Layout::Compact,
        Transport::Perf,
        1 << 24,
        1,
        probes::Wakeup::Events(1),
    );
    let mut w = CaptureWriter::create(&p, &meta).unwrap();
    let mut b = Vec::new();
    for i in 0..10_000u64 {
        let h = EventHeader {
            ts_ns: i,
            syscall: Syscall::Openat as u8,
            kind: Kind::Enter as u8,
            ..Default::default()
        };
        encode_event(
            Layout::Compact,
            &h,
            format!("/var/lib/x/{i}").as_bytes(),
            &mut b,
        );
        w.write(RecordRef::Sample {
            ring: 0,
            origin_ns: meta.start_monotonic_ns + i * 1000,
            data: &b,
        })
        .unwrap();
    }
    w.finish(&[]).unwrap();
    (
        Capture::load(&p).unwrap(),
        "synthetic compact (10 000 records)".into(),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // Without --bench (`cargo test --all-targets`): a 50 ms smoke run per rate.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("PACING_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 0.05 } else { 2.0 });
    let (cap, name) = capture();
    println!("pacing accuracy, {secs} s per rate, capture {name}, 32 MiB perf ring, watermark wakeup, noop consumer");
    println!(
        "{:>10} {:>12} {:>9} {:>25} {:>8} {:>12} {:>8}",
        "target/s", "achieved/s", "error", "10ms windows p1..p99", "lost", "worst late", "verdict"
    );
    let mut worst: f64 = 0.0;
    for target in [
        10_000.0,
        100_000.0,
        250_000.0,
        500_000.0,
        750_000.0,
        1_000_000.0,
    ] {
        let opts = ReplayOptions {
            pacing: Pacing::Rate(target),
            bound: Bound::Duration(Duration::from_secs_f64(secs)),
            transport: Some(Transport::Perf),
            ring_bytes: Some(32 << 20),
            rings: Some(1),
            wakeup: Some(Wakeup::Watermark(16 << 20)),
            stop_at_loss: None,
            co_runner: None,
        };
        let r = replay::run(&cap, &opts, drain_noop).expect("replay");
        let got = r.achieved_rate();
        let err = 100.0 * (got - target) / target;
        worst = worst.max(err.abs());
        // Per-10 ms window rates, whole windows only (drop the last, partial one).
        let mut w: Vec<u64> = r.windows.clone();
        w.pop();
        w.sort_unstable();
        let pct = |q: f64| {
            w.get(((w.len() as f64 - 1.0) * q) as usize)
                .copied()
                .unwrap_or(0) as f64
                * 100.0
        };
        println!(
            "{:>10.0} {:>12.0} {:>8.3}% {:>11.0}..{:<12.0} {:>8} {:>9.2} ms {:>8}",
            target,
            got,
            err,
            pct(0.01),
            pct(0.99),
            r.lost,
            r.max_lateness_ns as f64 / 1e6,
            if err.abs() <= 1.0 { "ok" } else { "MISSED" }
        );
    }
    println!("worst |error| {worst:.3}% (must be <= 1%)");
}
