//! Synthetic events and the captures that hold them: one family of builders
//! for every test that makes its own events.

use std::path::Path;

use harness::capture::{CaptureMeta, CaptureWriter, RingStats, Transport};
use probes::abi::{encode_event, EventHeader, Kind, Layout, Syscall};
use probes::record::RecordRef;
use probes::ring::format::perf::raw_size;

/// The header of a `syscall` `kind` event at `ts_ns` from `pid`/`tid`: exits
/// return -2 (ENOENT), every other field is zero. Tests that need flags or a
/// dfd set them with `..header(...)`.
pub fn header(ts_ns: u64, pid: u32, tid: u32, syscall: Syscall, kind: Kind) -> EventHeader {
    EventHeader {
        ts_ns,
        pid,
        tid,
        syscall: syscall as u8,
        kind: kind as u8,
        ret: if kind == Kind::Exit { -2 } else { 0 },
        ..Default::default()
    }
}

/// Bytes a `len`-byte event takes as `transport` hands it out: perf pads it
/// to its raw size (`round_up(len + 4, 8) - 4`), the ring buffer does not.
pub fn stored_len(transport: Transport, len: usize) -> usize {
    match transport {
        Transport::Perf => raw_size(len),
        Transport::Ringbuf => len,
    }
}

/// Encodes `h` with `path` in `layout` into `buf`, as `transport` stores the
/// sample; `None` (a memory source) is the event alone.
pub fn encode(
    buf: &mut Vec<u8>,
    layout: Layout,
    transport: Option<Transport>,
    h: &EventHeader,
    path: &[u8],
) {
    encode_event(layout, h, path, buf);
    if let Some(t) = transport {
        buf.resize(stored_len(t, buf.len()), 0);
    }
}

/// A capture being written by a test: its metadata (the clock it starts at)
/// and its writer, which stores events as the capture's transport does.
pub struct SynthCapture {
    pub meta: CaptureMeta,
    w: CaptureWriter,
    buf: Vec<u8>,
}

impl SynthCapture {
    /// A capture of `rings` 1 MiB rings woken every event.
    pub fn create(path: &Path, layout: Layout, transport: Transport, rings: u32) -> Self {
        Self::with_meta(
            path,
            CaptureMeta::now(layout, transport, 1 << 20, rings, probes::Wakeup::Events(1)),
        )
    }

    pub fn with_meta(path: &Path, meta: CaptureMeta) -> Self {
        let w = CaptureWriter::create(path, &meta).unwrap();
        SynthCapture {
            meta,
            w,
            buf: Vec::new(),
        }
    }

    /// CLOCK_MONOTONIC when the capture starts: its first sample's time.
    pub fn start_ns(&self) -> u64 {
        self.meta.start_monotonic_ns
    }

    /// Writes the event `h` with `path` on `ring` at its own `ts_ns`, and
    /// returns the bytes stored.
    pub fn event(&mut self, ring: u32, h: &EventHeader, path: &[u8]) -> &[u8] {
        let (layout, transport) = (self.meta.layout, self.meta.transport);
        encode(&mut self.buf, layout, Some(transport), h, path);
        self.w
            .write(RecordRef::Sample {
                ring,
                origin_ns: h.ts_ns,
                data: &self.buf,
            })
            .unwrap();
        &self.buf
    }

    /// Writes `data` as it is, as a sample on `ring` at `origin_ns`.
    pub fn raw(&mut self, ring: u32, origin_ns: u64, data: &[u8]) {
        self.w
            .write(RecordRef::Sample {
                ring,
                origin_ns,
                data,
            })
            .unwrap();
    }

    /// Writes a lost marker of `count` on `ring`.
    pub fn lost(&mut self, ring: u32, count: u64) {
        self.w.write(RecordRef::Lost { ring, count }).unwrap();
    }

    pub fn finish(self, stats: &[RingStats]) {
        self.w.finish(stats).unwrap();
    }
}

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
    let mut c = SynthCapture::create(path, layout, transport, rings);
    let mut out = Vec::new();
    for i in 0..n {
        let ring = (i as u32) % rings;
        if i % 50 == 49 {
            c.lost(ring, i as u64);
            out.push((ring, 0, Vec::new(), i as u64));
            continue;
        }
        let kind = if i % 3 == 2 { Kind::Exit } else { Kind::Enter };
        let ts = c.start_ns() + 1_000 * i as u64;
        let syscall = Syscall::ALL[i % Syscall::ALL.len()];
        let h = header(ts, 100 + (i as u32 % 7), 200, syscall, kind);
        let path = format!("/usr/lib/x86_64-linux-gnu/file-{i}.so");
        let stored = c.event(ring, &h, path.as_bytes()).to_vec();
        out.push((ring, ts, stored, 0));
    }
    let stats: Vec<RingStats> = (0..rings)
        .map(|ring| RingStats {
            ring,
            received: n as u64,
            dropped: 3,
        })
        .collect();
    c.finish(&stats);
    out
}
