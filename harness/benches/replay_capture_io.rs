//! Capture writer and reader throughput (the `harness record` hot path and the
//! replay loader). What must hold: the writer sustains well over 1 M compact
//! records/s and >= 300 k fixed4k records/s to a file.
//!
//! fixed4k is measured twice: as the probe emits it (path, then zeros, which
//! the writer trims) and a worst case where all 4144 bytes are non-zero and
//! must be written whole.
//!
//! Env: CAPTURE_BENCH_RECORDS (default 400 000). Files go to $TMPDIR.
//! Run: `cargo bench -p harness --bench replay_capture_io`

use std::time::Instant;

use harness::capture::{Capture, CaptureMeta, CaptureReader, CaptureWriter, RingStats, Transport};
use probes::abi::{encode_event, EventHeader, Kind, Layout, Syscall};
use probes::record::RecordRef;

fn events(layout: Layout, stale: bool) -> Vec<Vec<u8>> {
    (0..1024u64)
        .map(|i| {
            let h = EventHeader {
                ts_ns: i,
                pid: 42,
                tid: 42,
                syscall: Syscall::Newfstatat as u8,
                kind: Kind::Enter as u8,
                ..Default::default()
            };
            let mut b = Vec::new();
            let path = format!("/home/user/project/target/debug/deps/libfoo-{i:016x}.rlib");
            encode_event(layout, &h, path.as_bytes(), &mut b);
            if stale {
                for (k, x) in b[120..].iter_mut().enumerate() {
                    *x = (k % 251) as u8 | 1;
                }
            }
            // perf alignment padding, as the live reader hands it over.
            let raw = ((b.len() + 4 + 7) & !7) - 4;
            b.resize(raw, 0);
            b
        })
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // Without --bench (`cargo test --all-targets`): a 2 000-record smoke run.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let n: u64 = std::env::var("CAPTURE_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 2_000 } else { 400_000 });
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "capture writer/reader, {n} records per case, file in {}",
        dir.path().display()
    );
    println!(
        "{:<22} {:>14} {:>10} {:>12} {:>14} {:>14}",
        "case", "write rec/s", "MB/s in", "file MB", "load rec/s", "stream rec/s"
    );
    for (name, layout, stale) in [
        ("compact", Layout::Compact, false),
        ("fixed4k", Layout::Fixed4k, false),
        ("fixed4k (no zeros)", Layout::Fixed4k, true),
    ] {
        let evs = events(layout, stale);
        let p = dir
            .path()
            .join(format!("{}.pcapng", name.replace([' ', '(', ')'], "_")));
        let meta = CaptureMeta::now(
            layout,
            Transport::Perf,
            1 << 20,
            2,
            probes::Wakeup::Events(1),
        );
        let t = Instant::now();
        let mut w = CaptureWriter::create(&p, &meta).expect("create");
        let mut bytes = 0u64;
        for i in 0..n {
            let d = &evs[(i % 1024) as usize];
            bytes += d.len() as u64;
            w.write(RecordRef::Sample {
                ring: (i & 1) as u32,
                origin_ns: meta.start_monotonic_ns + i * 100,
                data: d,
            })
            .expect("write");
        }
        let stats = [
            RingStats {
                ring: 0,
                received: n / 2,
                dropped: 0,
            },
            RingStats {
                ring: 1,
                received: n / 2,
                dropped: 0,
            },
        ];
        let sum = w.finish(&stats).expect("finish"); // includes flush + fdatasync
        let wsecs = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let c = Capture::load(&p).expect("load");
        let lsecs = t.elapsed().as_secs_f64();
        assert_eq!(c.samples() as u64, n);

        let t = Instant::now();
        let mut r = CaptureReader::open(&p).expect("open");
        let mut k = 0u64;
        while let Some(_e) = r.next_entry().expect("read") {
            k += 1;
        }
        let ssecs = t.elapsed().as_secs_f64();
        assert_eq!(k, n);
        println!(
            "{:<22} {:>14.0} {:>10.0} {:>12.1} {:>14.0} {:>14.0}",
            name,
            n as f64 / wsecs,
            bytes as f64 / wsecs / 1e6,
            sum.file_bytes as f64 / 1e6,
            n as f64 / lsecs,
            n as f64 / ssecs
        );
    }
}
