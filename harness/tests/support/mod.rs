//! Synthetic captures for the capture and replay tests; `root` for the
//! privileged ones.
#![allow(dead_code)]

pub mod byo;
pub mod root;

use std::path::Path;

use harness::capture::{CaptureMeta, CaptureWriter, RingStats, Transport};
use probes::abi::{encode_event, EventHeader, Kind, Layout, Syscall};
use probes::record::RecordRef;

/// Writes a capture of `n` synthetic events spread over `rings` rings, with a
/// lost marker every 50 records, and returns the samples written (ring,
/// origin_ns, bytes) and lost markers in order.
pub fn write_synthetic(
    path: &Path,
    layout: Layout,
    transport: Transport,
    rings: u32,
    n: usize,
) -> Vec<(u32, u64, Vec<u8>, u64)> {
    let meta = CaptureMeta::now(layout, transport, 1 << 20, rings, "events:1");
    let mut w = CaptureWriter::create(path, &meta).unwrap();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let base = meta.start_monotonic_ns;
    for i in 0..n {
        let ring = (i as u32) % rings;
        if i % 50 == 49 {
            w.write(RecordRef::Lost {
                ring,
                count: i as u64,
            })
            .unwrap();
            out.push((ring, 0, Vec::new(), i as u64));
            continue;
        }
        let kind = if i % 3 == 2 { Kind::Exit } else { Kind::Enter };
        let ts = base + 1_000 * i as u64;
        let h = EventHeader {
            ts_ns: ts,
            pid: 100 + (i as u32 % 7),
            tid: 200,
            syscall: Syscall::ALL[i % Syscall::ALL.len()] as u8,
            kind: kind as u8,
            ret: if kind == Kind::Exit { -2 } else { 0 },
            ..Default::default()
        };
        let path = format!("/usr/lib/x86_64-linux-gnu/file-{i}.so");
        encode_event(layout, &h, path.as_bytes(), &mut buf);
        if transport == Transport::Perf {
            // perf appends alignment padding: raw size = round_up(len + 4, 8) - 4.
            let raw = ((buf.len() + 4 + 7) & !7) - 4;
            buf.resize(raw, 0);
        }
        w.write(RecordRef::Sample {
            ring,
            origin_ns: ts,
            data: &buf,
        })
        .unwrap();
        out.push((ring, ts, buf.clone(), 0));
    }
    let stats: Vec<RingStats> = (0..rings)
        .map(|ring| RingStats {
            ring,
            received: n as u64,
            dropped: 3,
        })
        .collect();
    w.finish(&stats).unwrap();
    out
}
