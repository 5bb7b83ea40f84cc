//! What both emulated ring writers share: their counters, and the sample
//! bytes a capture stores, written into a ring's data area.
//!
//! The memory itself, laid out like the kernel's mmap, is `probes::ring::mem`.

use std::sync::atomic::{AtomicU64, Ordering};

use probes::ring::mem::Area;

/// Producer-side counters of one ring, readable from any thread.
#[derive(Debug, Default)]
pub struct RingCounters {
    /// Samples the producer tried to write.
    pub offered: AtomicU64,
    /// Samples written.
    pub accepted: AtomicU64,
    /// Samples dropped for lack of space.
    pub lost: AtomicU64,
    /// Sample payload bytes written.
    pub bytes: AtomicU64,
    /// Most bytes ever in the ring, measured right after each write.
    pub high_water: AtomicU64,
    /// Reader wakeups this ring's writer signalled.
    pub wakeups: AtomicU64,
}

impl RingCounters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        // Only the producer thread writes: a load + store is enough and cheaper than an RMW.
        c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
    pub(crate) fn max(c: &AtomicU64, v: u64) {
        if v > c.load(Ordering::Relaxed) {
            c.store(v, Ordering::Relaxed);
        }
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// A sample to write into a ring: `prefix` followed by zeros up to `len`
/// bytes (how a preloaded capture stores samples), with the first 8 bytes
/// (the event's `ts_ns`) replaced by `ts` when given.
#[derive(Debug, Clone, Copy)]
pub struct SampleBytes<'a> {
    pub prefix: &'a [u8],
    pub len: usize,
    pub ts: Option<u64>,
}

impl<'a> SampleBytes<'a> {
    /// A sample given whole.
    pub fn whole(data: &'a [u8]) -> Self {
        SampleBytes {
            prefix: data,
            len: data.len(),
            ts: None,
        }
    }
}

/// Writes `s` at `pos`.
///
/// # Safety
/// The caller owns `[pos, pos + s.len)` under the ring protocol.
#[inline]
pub(crate) unsafe fn put_sample(area: &Area, pos: u64, s: &SampleBytes<'_>) {
    let prefix = &s.prefix[..s.prefix.len().min(s.len)];
    let written = match s.ts {
        Some(ts) if s.len >= 8 => {
            area.write(pos, &ts.to_le_bytes());
            let rest = prefix.get(8..).unwrap_or(&[]);
            area.write(pos + 8, rest);
            8 + rest.len()
        }
        _ => {
            area.write(pos, prefix);
            prefix.len()
        }
    };
    area.zero(pos + written as u64, s.len - written);
}
