//! Fidelity: does replay lose samples the way the kernel does?
//!
//! 1. Record the load's full stream losslessly (64 MiB perf rings, compact events).
//! 2. Run the same load live into small rings read by a deliberately slow reader
//!    (a fixed busy-wait per sample, so it cannot keep up with the rate).
//! 3. Replay the capture from step 1, at its original timing, into emulated rings of
//!    the same size and wakeup policy, read by the same slow reader.
//!
//! Prints the lost % of steps 2 and 3 side by side for several ring sizes.
//!
//! `sudo cargo bench -p harness --bench fidelity` (root: it attaches the probes).
//! `FIDELITY_RATE` (default 60000 ops/s), `FIDELITY_COST_US` (default 20 µs per sample),
//! `FIDELITY_SECS` (default 3).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use harness::capture::{monotonic_ns, Capture};
use harness::cmd::record::{record, RecordArgs};
use harness::replay::{self, Bound, ConsumerReport, Pacing, ReplayOptions};
use probes::abi::Layout;
use probes::loader::{Filter, Probe, ProbeSpec, Transport, Wakeup};
use probes::record::{Batch, RecordRef, RecordSource};

const LOAD_CPU: usize = 0;
const READER_CPU: usize = 1;

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t with one bit set, for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The slow reader: a fixed busy-wait per sample. Returns (read, lost seen).
fn slow_read(src: &mut dyn RecordSource, cost_ns: u64) -> (u64, u64) {
    pin(READER_CPU);
    let (mut read, mut lost) = (0u64, 0u64);
    loop {
        let b = src
            .read_batch(256, Duration::from_millis(20), &mut |r| match r {
                RecordRef::Sample { .. } => {
                    let until = monotonic_ns() + cost_ns;
                    while monotonic_ns() < until {
                        std::hint::spin_loop();
                    }
                    read += 1;
                }
                RecordRef::Lost { count, .. } => lost += count,
            })
            .unwrap();
        if b == Batch::Closed {
            return (read, lost);
        }
    }
}

fn load_config(rate: f64, secs: f64) -> loadgen::LoadConfig {
    let mut cfg = loadgen::LoadConfig::new(
        loadgen::Rate::PerSecond(rate),
        loadgen::RunEnd::Duration(Duration::from_secs_f64(secs)),
    );
    cfg.cpus = Some(vec![LOAD_CPU]);
    cfg
}

/// Step 2: live, small rings, slow reader. Returns (emitted, lost).
fn live(ring_bytes: usize, wakeup: Wakeup, rate: f64, secs: f64, cost_ns: u64) -> (u64, u64) {
    let mut load = loadgen::Load::spawn(load_config(rate, secs)).unwrap();
    let mut spec = ProbeSpec::new(Layout::Compact, Transport::Perf);
    spec.ring_bytes = ring_bytes;
    spec.wakeup = wakeup;
    spec.filter = Filter::Tgids(vec![load.pid() as u32]);
    spec.emit_exit = false;
    let mut probe = Probe::load(&spec).unwrap();
    let mut src = probe.take_source().unwrap();
    let stop = probe.stop_handle();
    let reader = std::thread::spawn(move || slow_read(&mut *src, cost_ns));
    load.release();
    load.join().unwrap();
    probe.detach().unwrap();
    stop.store(true, Ordering::Release);
    let (_read, _lost_seen) = reader.join().unwrap();
    let k = probe.counters().unwrap().total();
    (k.emitted, k.failed())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Err(e) = probes::loader::check_privileges() {
        println!("fidelity: skipped: {e}");
        return;
    }
    let rate: f64 = env("FIDELITY_RATE", 60_000.0);
    let cost_ns: u64 = env::<u64>("FIDELITY_COST_US", 20) * 1000;
    let secs: f64 = env("FIDELITY_SECS", 3.0);
    let dir = tempfile::tempdir().unwrap();
    let cap_path = dir.path().join("full.pcapng");

    // Step 1: the full stream, losslessly.
    let args = RecordArgs {
        output: cap_path.clone(),
        probe: Layout::Compact,
        transport: Transport::Perf,
        ring_bytes: 64 << 20,
        wakeup: Some("watermark:1m".into()),
        duration: None,
        filter: None,
        no_exit: true,
        load_rate: Some(rate.to_string()),
        load_duration: Some(Duration::from_secs_f64(secs)),
        load_mix: None,
        load_cpus: Some(vec![LOAD_CPU]),
        tracefs: "/sys/kernel/tracing".into(),
        json: None,
    };
    let rec = record(&args).unwrap();
    assert_eq!(
        rec.lost_reported + rec.lost_unreported,
        0,
        "the reference capture must be lossless"
    );
    let capture = Capture::load(Path::new(&cap_path)).unwrap();
    println!("\nfidelity: compact events, load {rate:.0} ops/s on cpu{LOAD_CPU} for {secs} s, reader on cpu{READER_CPU} at {} us per sample (capacity ~{:.0}/s)", cost_ns / 1000, 1e9 / cost_ns as f64);
    println!("reference capture: {} samples, 0 lost\n", rec.samples);
    println!(
        "{:>10} {:<18} | {:>9} {:>9} {:>8} | {:>9} {:>9} {:>8} | {:>7}",
        "ring/cpu",
        "wakeup",
        "live emit",
        "live lost",
        "live %",
        "rep offer",
        "rep lost",
        "replay %",
        "diff pp"
    );
    for (ring, wakeup) in [
        (64 << 10, Wakeup::Events(1)),
        (256 << 10, Wakeup::Events(1)),
        (256 << 10, Wakeup::Watermark(128 << 10)),
        (1 << 20, Wakeup::Watermark(512 << 10)),
    ] {
        let (emitted, lost) = live(ring, wakeup, rate, secs, cost_ns);
        let opts = ReplayOptions {
            pacing: Pacing::Original,
            bound: Bound::Loops(1),
            transport: Some(harness::capture::Transport::Perf),
            ring_bytes: Some(ring as u64),
            rings: None,
            wakeup: Some(wakeup),
        };
        let rep = replay::run(&capture, &opts, |mut src| {
            let (read, lost_seen) = slow_read(&mut src, cost_ns);
            ConsumerReport {
                variant: "slow-reader".into(),
                read,
                lost_seen,
                bytes: 0,
                latency: replay::latency_histogram(),
                stages: Vec::new(),
                end_ns: monotonic_ns(),
                ledger: None,
                problems: Vec::new(),
            }
        })
        .unwrap();
        let live_pct = 100.0 * lost as f64 / emitted.max(1) as f64;
        let rep_pct = 100.0 * rep.lost as f64 / rep.offered.max(1) as f64;
        println!(
            "{:>9}K {:<18} | {:>9} {:>9} {:>7.2}% | {:>9} {:>9} {:>7.2}% | {:>+7.2}",
            ring >> 10,
            wakeup.to_string(),
            emitted,
            lost,
            live_pct,
            rep.offered,
            rep.lost,
            rep_pct,
            rep_pct - live_pct
        );
    }
}
