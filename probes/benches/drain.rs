//! The perf reader's drain path over synthetic fixed4k and compact records:
//! the same `PerfRing::drain` that reads the kernel's mmap (and emulated
//! rings in replay), run over memory with the kernel's layout. Prints
//! records/s and GB/s.
//!
//! `cargo bench -p probes --bench drain`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use probes::abi::{encode_event, Event, EventHeader, Kind, Layout, Syscall};
use std::sync::Arc;

use probes::record::{Record, RecordRef};
use probes::ring::perf::{PerfMem, PerfRing};
use probes::ring::wait::{EmulatedPoll, PollRule};

/// 32 MiB data area, about the seed's 35 MB buffer rounded to a power of two.
const RING: usize = 32 << 20;

/// A full ring's reader: `RING` bytes of `layout` records, and their count and bytes.
fn full_ring(layout: Layout) -> (PerfRing, u64, u64) {
    let mem = Arc::new(PerfMem::emulated(RING).expect("ring memory"));
    let (n, bytes) = fill(&mem, layout);
    let poll = EmulatedPoll::new(vec![PollRule::Perf]);
    (PerfRing::emulated(0, mem, poll.pollable(0)), n, bytes)
}

fn fill(ring: &PerfMem, layout: Layout) -> (u64, u64) {
    let mut buf = Vec::new();
    let (mut n, mut bytes) = (0u64, 0u64);
    loop {
        let path = format!("/usr/lib/x86_64-linux-gnu/libexample-{n}.so.6");
        let h = EventHeader {
            ts_ns: n,
            pid: 42,
            tid: 42,
            syscall: Syscall::Openat as u8,
            kind: Kind::Enter as u8,
            ..Default::default()
        };
        encode_event(layout, &h, path.as_bytes(), &mut buf);
        if !ring.append_sample(&buf) {
            return (n, bytes);
        }
        n += 1;
        bytes += buf.len() as u64;
    }
}

/// What the consumer does with each record: decode in place, or copy it out
/// into a reused buffer (`Record::assign`, the `read_into` path).
#[derive(Clone, Copy)]
enum Consume {
    ZeroCopyDecode,
    CopyOut,
}

fn consume(r: &mut PerfRing, how: Consume, rec: &mut Record) -> (usize, u64) {
    let mut sum = 0u64;
    let n = r
        .drain(usize::MAX, &mut |x| match how {
            Consume::ZeroCopyDecode => {
                if let RecordRef::Sample { data, .. } = x {
                    let e = Event::decode(data).unwrap();
                    sum = sum.wrapping_add(e.header.ts_ns + e.path.len() as u64);
                }
            }
            Consume::CopyOut => {
                rec.assign(x);
                sum = sum.wrapping_add(rec.data[rec.data.len() - 1] as u64 + rec.data.len() as u64);
            }
        })
        .unwrap();
    (n, sum)
}

fn drain(c: &mut Criterion) {
    let mut g = c.benchmark_group("perf_drain");
    g.sample_size(20);
    for layout in [Layout::Fixed4k, Layout::Compact] {
        for (how, label) in [
            (Consume::ZeroCopyDecode, "zero-copy+decode"),
            (Consume::CopyOut, "read_into copy"),
        ] {
            let (_, records, bytes) = full_ring(layout);
            g.throughput(Throughput::Elements(records));
            let mut rec = Record::default();
            g.bench_function(BenchmarkId::new(label, layout.name()), |b| {
                b.iter_batched_ref(
                    || full_ring(layout).0,
                    |r| consume(r, how, &mut rec),
                    criterion::BatchSize::PerIteration,
                )
            });
            // One direct figure from draining full 32 MiB rings (median of 5).
            let mut rates = Vec::new();
            for _ in 0..5 {
                let mut r = full_ring(layout).0;
                let t = std::time::Instant::now();
                let (n, _) = std::hint::black_box(consume(&mut r, how, &mut rec));
                rates.push((
                    n as f64 / t.elapsed().as_secs_f64(),
                    bytes as f64 / t.elapsed().as_secs_f64(),
                ));
            }
            rates.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (rps, bps) = rates[2];
            println!(
                "drain {:>8} {:<17}: {:>8} records/ring -> {:>7.2} M records/s, {:>6.2} GB/s",
                layout.name(),
                label,
                records,
                rps / 1e6,
                bps / 1e9
            );
        }
    }
    g.finish();
}

criterion_group!(benches, drain);
criterion_main!(benches);
