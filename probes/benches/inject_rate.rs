//! How fast the injector of kernel-backed replay pushes events into the real
//! kernel rings: events/s and events per syscall (BPF_PROG_TEST_RUN), for
//! fixed4k and compact events, perf and ring buffer, with dropbench's own
//! reader on the rings only draining them.
//!
//! Each round stages a batch per CPU in the mmapped slots (as the replay
//! engine does: header with a fresh timestamp + the path, zeros past it) and
//! emits it with one test run on that CPU, for `INJECT_RATE_SECS` seconds
//! (default 1) per setting. `emitted/s` is the injector's rate; `ok/s` is how
//! many of those the rings took (a reader that cannot keep up makes the rest
//! fail, which the counters show).
//!
//! Needs root (or CAP_BPF + CAP_PERFMON); prints why and exits otherwise.
//!
//! `sudo cargo bench -p probes --bench inject_rate`
//! `INJECT_RATE_ONLY=compact` / `=perf` / `=ringbuf` / `=fixed4k` runs a subset.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use probes::abi::{encode_event, EventHeader, Kind, Layout, Syscall};
use probes::inject::{Injector, InjectorSpec};
use probes::loader::{check_privileges, Transport, Wakeup};
use probes::record::{Batch, RecordRef, RecordSource};

/// 32 MiB rings (per CPU for perf): about the seed's 35 MB buffer.
const RING: usize = 32 << 20;

fn main() {
    if let Err(e) = check_privileges() {
        eprintln!("inject_rate: skipped: {e}");
        return;
    }
    let secs: f64 = std::env::var("INJECT_RATE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let only = std::env::var("INJECT_RATE_ONLY").unwrap_or_default();
    println!(
        "{:<8} {:<8} {:>6} {:>12} {:>10} {:>12} {:>10} {:>10}",
        "layout", "ring", "batch", "emitted/s", "ev/syscall", "ok/s", "MB/s ok", "read"
    );
    for layout in [Layout::Compact, Layout::Fixed4k] {
        for transport in [Transport::Perf, Transport::Ringbuf] {
            if !only.is_empty() && only != layout.name() && only != transport.name() {
                continue;
            }
            for batch in [1usize, 32, 256] {
                one(layout, transport, batch, Duration::from_secs_f64(secs));
            }
        }
    }
}

/// Paths of realistic lengths (30-60 bytes), so compact events vary in size.
fn events(layout: Layout, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let h = EventHeader {
                ts_ns: 1,
                pid: 42,
                tid: 42,
                syscall: Syscall::Openat as u8,
                kind: Kind::Enter as u8,
                ..Default::default()
            };
            let path = format!(
                "/usr/lib/x86_64-linux-gnu/lib{}-{i}.so.6",
                "x".repeat(i % 24)
            );
            let mut buf = Vec::new();
            encode_event(layout, &h, path.as_bytes(), &mut buf);
            buf
        })
        .collect()
}

fn one(layout: Layout, transport: Transport, batch: usize, dur: Duration) {
    let wakeup = match transport {
        // Half the ring, and a 1 ms poll: the defaults of a live run (ProbeSpec::new).
        Transport::Perf => Wakeup::Watermark((RING / 2) as u64),
        Transport::Ringbuf => Wakeup::NoWakeupPoll(Duration::from_millis(1)),
    };
    let mut spec = InjectorSpec::new(transport, RING, wakeup);
    spec.slots_per_cpu = batch as u32;
    let mut inj = match Injector::load(&spec) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("inject_rate: {layout} {transport}: {e}");
            return;
        }
    };
    let mut src = inj.open_reader().expect("open the reader");
    let stop = src.stop_handle();
    let read = Arc::new(AtomicU64::new(0));
    let reader = {
        let read = read.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            loop {
                let b = src
                    .read_batch(8192, Duration::from_millis(10), &mut |r| {
                        if let RecordRef::Sample { .. } = r {
                            n += 1;
                        }
                    })
                    .expect("read");
                if b == Batch::Closed {
                    break;
                }
            }
            read.store(n, Ordering::Release);
        })
    };
    let evs = events(layout, 1024);
    // Trimmed of trailing zeros as a capture stores them: the engine stages the same way.
    let used: Vec<usize> = evs
        .iter()
        .map(|e| {
            e.iter()
                .rposition(|&b| b != 0)
                .map_or(8, |p| (p + 1).max(8))
        })
        .collect();
    let ncpu = inj.cpus().len();
    let (mut syscalls, mut k) = (0u64, 0usize);
    let t0 = Instant::now();
    let end = t0 + dur;
    let running = AtomicBool::new(true);
    while running.load(Ordering::Relaxed) {
        for cpu in 0..ncpu {
            for i in 0..batch {
                let (e, used) = (&evs[k % evs.len()], used[k % evs.len()]);
                k += 1;
                let ts = (t0.elapsed().as_nanos() as u64).to_le_bytes();
                inj.stage(cpu, i, &ts, &e[8..used], e.len()).expect("stage");
            }
            inj.inject(cpu, batch).expect("inject");
            syscalls += 1;
        }
        if Instant::now() >= end {
            running.store(false, Ordering::Relaxed);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Release);
    reader.join().expect("reader thread");
    let t = inj.counters().expect("counters").kernel.total();
    let mean_len = evs.iter().map(|e| e.len()).sum::<usize>() as f64 / evs.len() as f64;
    println!(
        "{:<8} {:<8} {:>6} {:>12.0} {:>10.1} {:>12.0} {:>10.0} {:>10}",
        layout.name(),
        transport.name(),
        batch,
        t.emitted as f64 / secs,
        t.emitted as f64 / syscalls.max(1) as f64,
        t.output_ok as f64 / secs,
        t.output_ok as f64 * mean_len / secs / 1e6,
        read.load(Ordering::Acquire),
    );
    assert_eq!(
        t.emitted,
        t.output_ok + t.failed(),
        "the injector's books balance"
    );
    assert_eq!(
        read.load(Ordering::Acquire),
        t.output_ok,
        "the reader read every output"
    );
}
