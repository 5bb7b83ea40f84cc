//! A fixed, hand-written sweep used by the golden, render and browser tests.
#![allow(dead_code)]

use reports::{Point, Series, SweepReport};

/// Every point of the fixture ran for 2 s.
const RUN_S: u64 = 2;
const MIB: u64 = 1 << 20;

/// A point at `rate` events/s over a 2 s run that lost `lost` events.
pub fn point(rate: u64, lost: u64, p50_ns: u64, p99_ns: u64, p999_ns: u64, hw: u64) -> Point {
    let offered = rate * RUN_S;
    let delivered = offered - lost;
    Point {
        rate: rate as f64,
        offered,
        delivered,
        lost,
        lost_pct: lost as f64 * 100.0 / offered as f64,
        // A fixed, made-up interval around the figure (the harness computes
        // the real one; the reports only draw it).
        lost_pct_interval: (lost > 0).then(|| {
            let pct = lost as f64 * 100.0 / offered as f64;
            (pct * 0.8, pct * 1.25)
        }),
        throughput: delivered as f64 / RUN_S as f64,
        p50_ns,
        p99_ns,
        p999_ns,
        high_water_bytes: hw,
    }
}

/// Stages with their CPU seconds over a 2 s trial that read 300 000 events on 2 CPUs.
pub fn stage_cpu(stages: &[(&str, f64)]) -> Vec<reports::StageCpu> {
    stages
        .iter()
        .map(|&(stage, seconds)| reports::StageCpu {
            stage: stage.to_string(),
            seconds,
            ns_per_event: seconds * 1e9 / 300_000.0,
            share: seconds / (RUN_S as f64 * 2.0),
        })
        .collect()
}

pub fn series(variant: &str, layout: &str, transport: &str, ring_bytes: u64) -> Series {
    Series {
        variant: variant.to_string(),
        layout: layout.to_string(),
        transport: transport.to_string(),
        ring_bytes,
        baseline: Some(0),
        mode: reports::Mode::Replay,
        pdr: None,
        wakeup: "watermark 50%".to_string(),
        capture: String::new(),
        sink: "kafka (mock cluster)".to_string(),
        zero_loss_rate: None,
        valid: true,
        problems: Vec::new(),
        points: Vec::new(),
        occupancy: Vec::new(),
        cpu_per_stage: Vec::new(),
    }
}

/// Four series over 100 k..1.2 M events/s (a 12x span, so the rate axis is
/// logarithmic): a baseline, a 2x better one, one that never loses, and an
/// invalid one (unbalanced ledger) that lost even at the lowest rate.
pub fn fixture() -> SweepReport {
    let mut baseline = series("seed-baseline", "fixed4k", "perf", 35 * MIB);
    baseline.zero_loss_rate = Some(150_000.0);
    baseline.pdr = Some(200_000.0);
    baseline.points = vec![
        point(100_000, 0, 18_000, 95_000, 240_000, 9 * MIB),
        point(150_000, 0, 21_000, 130_000, 410_000, 14 * MIB),
        point(200_000, 1_812, 64_000, 2_900_000, 6_100_000, 35 * MIB),
        point(300_000, 61_200, 210_000, 8_700_000, 12_400_000, 35 * MIB),
        point(600_000, 432_000, 330_000, 14_200_000, 19_800_000, 35 * MIB),
        point(
            1_200_000,
            1_526_400,
            360_000,
            16_900_000,
            22_300_000,
            35 * MIB,
        ),
    ];

    let mut batched = series("batched", "fixed4k", "perf", 35 * MIB);
    batched.zero_loss_rate = Some(300_000.0);
    // Input order is not rate order: reports sort points for display.
    batched.points = vec![
        point(600_000, 151_200, 150_000, 9_800_000, 13_500_000, 35 * MIB),
        point(100_000, 0, 9_000, 41_000, 88_000, 3 * MIB),
        point(200_000, 0, 11_000, 57_000, 130_000, 6 * MIB),
        point(300_000, 0, 14_000, 88_000, 260_000, 11 * MIB),
        point(
            1_200_000,
            1_200_000,
            190_000,
            12_100_000,
            17_000_000,
            35 * MIB,
        ),
    ];

    let mut ringbuf = series("ringbuf", "compact", "ringbuf", 32 * MIB);
    ringbuf.zero_loss_rate = Some(1_200_000.0);
    ringbuf.wakeup = "no-wakeup, poll 1 ms".to_string();
    ringbuf.problems = vec!["kafka mock cluster, not a real broker".to_string()];
    ringbuf.points = vec![
        point(100_000, 0, 4_100, 12_000, 30_000, 256 * 1024),
        point(300_000, 0, 4_300, 15_000, 41_000, 768 * 1024),
        point(600_000, 0, 4_700, 19_000, 52_000, 2 * MIB),
        point(1_200_000, 0, 5_900, 33_000, 97_000, 5 * MIB),
    ];

    let mut zero_copy = series("zero-copy-sharded", "fixed4k", "perf", 35 * MIB);
    zero_copy.valid = false;
    zero_copy.problems = vec![
        "ledger unbalanced: read 199,872 != decoded 199,744 + dropped 0 (128 unaccounted)"
            .to_string(),
    ];
    zero_copy.points = vec![
        point(100_000, 128, 7_000, 36_000, 91_000, 2 * MIB),
        point(600_000, 9_000, 44_000, 3_100_000, 7_700_000, 35 * MIB),
    ];

    // Ring occupancy over the zero-loss trial: the baseline's reader keeps
    // up, the zero-copy one's backlog climbs and drains.
    baseline.occupancy = (0..=10)
        .map(|i| (f64::from(i) * 0.1, f64::from(i % 3) * 64.0 * 1024.0))
        .collect();
    // 300 000 events read over the 2 s trial on 2 CPUs: ns/event = s x 1e9 / 3e5,
    // share = s / 4.
    baseline.cpu_per_stage = stage_cpu(&[
        ("producer", 0.42),
        ("reader", 0.3),
        ("hand-off", 0.06),
        ("decode", 0.012),
        ("classify", 0.57),
        ("serialize", 0.018),
        ("sink client", 0.33),
        ("broker", 0.09),
    ]);
    // An inline variant: no hand-off, classify in the readers.
    zero_copy.cpu_per_stage = stage_cpu(&[
        ("producer", 0.4),
        ("reader", 0.15),
        ("decode", 0.009),
        ("classify", 0.54),
        ("serialize", 0.015),
        ("sink client", 0.3),
    ]);
    zero_copy.occupancy = (0..=10)
        .map(|i| {
            (
                f64::from(i) * 0.1,
                f64::from(5 - (i - 5_i32).abs()) * 4.0 * MIB as f64,
            )
        })
        .collect();

    SweepReport {
        title: "dropbench sweep: fixed4k capture, perf vs ring buffer".to_string(),
        generated_unix_s: 1_795_550_237, // 2026-11-24 19:57:17 UTC
        environment: vec![
            (
                "kernel".into(),
                "6.18.0-dropbench #1 SMP PREEMPT_DYNAMIC".into(),
            ),
            ("cpus".into(), "2".into()),
            ("cpu model".into(), "AMD EPYC 7B13".into()),
            ("hostname".into(), "ci-runner-1".into()),
            ("dropbench version".into(), "0.1.0".into()),
            (
                "sink".into(),
                "kafka: librdkafka in-process mock cluster".into(),
            ),
        ],
        capture: Some("fixtures/captures/fixed4k-perf.pcapng".to_string()),
        notes: vec!["Replay of a recorded capture into emulated rings; 2 s per rate.".to_string()],
        goal_rate: Some(600_000.0),
        series: vec![baseline, batched, ringbuf, zero_copy],
        missing: Vec::new(),
        loss_log: false,
        comparison: None,
    }
}

/// [`fixture`] with cells run in more than one mode: batched in all three
/// (kernel-backed replay a little under emulated replay, live under both),
/// the seed's baseline replayed and kernel-backed but not live, ringbuf
/// replayed and live, and an outside reader (`exec:`), which runs in kernel
/// mode only and so is in the NDR chart but not among the modes.
pub fn fixture_three_modes() -> SweepReport {
    let mut r = fixture();
    let twin = |s: &Series, mode: reports::Mode, ndr: Option<f64>| {
        let mut t = s.clone();
        t.mode = mode;
        t.zero_loss_rate = ndr;
        t.pdr = None;
        t
    };
    let (baseline, batched, ringbuf) = (&r.series[0], &r.series[1], &r.series[2]);
    let mut more = [
        twin(batched, reports::Mode::Kernel, Some(270_000.0)),
        twin(batched, reports::Mode::Live, Some(240_000.0)),
        twin(baseline, reports::Mode::Kernel, Some(140_000.0)),
        twin(ringbuf, reports::Mode::Live, Some(900_000.0)),
    ]
    .to_vec();
    let mut exec = twin(baseline, reports::Mode::Kernel, Some(180_000.0));
    exec.variant = "exec:libbpf-example".to_string();
    exec.sink = "none".to_string();
    more.push(exec);
    r.series.extend(more);
    r.title = "dropbench sweep: replay, kernel and live".to_string();
    r
}
