//! Emulation of one perf event ring (`kernel/events/ring_buffer.c`) as
//! `bpf_perf_event_output` fills it, and a reader over it that behaves like
//! dropbench's live perf reader.
//!
//! Writer (the kernel side), per `__perf_output_begin` / `perf_output_sample`
//! / `perf_output_end`:
//! - a sample record is `perf_event_header {u32 type = PERF_RECORD_SAMPLE (9),
//!   u16 misc, u16 size}` + `u32 raw_size` + the raw bytes, where
//!   `raw_size = round_up(len + 4, 8) - 4` so the record is 8-aligned; the pad
//!   bytes are skipped, not written (they keep whatever the ring held);
//! - space check `CIRC_SPACE(head, tail, size) >= need`, i.e.
//!   `(tail - head - 1) & (size - 1) >= need`: one byte is always kept free,
//!   so with 8-aligned records at most `size - 8` bytes are ever in use;
//! - no space: the sample is dropped and `rb->lost` grows. The next output
//!   that finds room for a `PERF_RECORD_LOST` (24 bytes: header, u64 id,
//!   u64 lost) *plus* its sample reserves both at once and writes the lost
//!   record first;
//! - wakeups: `rb->wakeup` is bumped every `wakeup_events` samples, and by
//!   `watermark` whenever `head - wakeup > watermark` (the watermark is the
//!   configured one, or half the buffer when none is set, as in
//!   `ring_buffer_init`); the reader is woken when `rb->wakeup` changed during
//!   the output.
//!
//! Reader: loads `data_head` with acquire, walks records from `data_tail`,
//! hands samples out in place (copying only a record that wraps), and stores
//! the new `data_tail` with release after the batch, as libbpf's
//! `perf_buffer__consume` does.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use probes::loader::Wakeup;
use probes::record::{Batch, RecordRef, RecordSource, SourceError};

use super::area::{put_sample, CacheLine, DataArea, Notifier, RingCounters, SampleBytes};

pub const PERF_RECORD_LOST: u32 = 2;
pub const PERF_RECORD_SAMPLE: u32 = 9;
/// `misc` of a sample from a tracepoint: the regs are kernel regs.
pub const PERF_RECORD_MISC_KERNEL: u16 = 1;
/// `struct { perf_event_header; u64 id; u64 lost; }`.
pub const LOST_RECORD_LEN: u64 = 24;
/// perf_event_header (8) + u32 raw size (4).
pub const SAMPLE_OVERHEAD: u64 = 12;

/// Bytes a sample of `len` raw bytes occupies in the ring.
pub fn record_len(len: usize) -> u64 {
    SAMPLE_OVERHEAD + raw_len(len)
}

/// `raw_size` of a `len`-byte sample: `round_up(len + 4, 8) - 4`.
pub fn raw_len(len: usize) -> u64 {
    ((len as u64 + 4 + 7) & !7) - 4
}

/// State shared by the writer and the reader of one ring.
pub struct PerfShared {
    pub ring: u32,
    pub area: DataArea,
    /// `user_page->data_head`.
    head: CacheLine<AtomicU64>,
    /// `user_page->data_tail`.
    tail: CacheLine<AtomicU64>,
    closed: AtomicBool,
    pub notifier: Arc<Notifier>,
    pub counters: RingCounters,
    /// PERF_RECORD_LOST records written.
    pub lost_records: AtomicU64,
}

impl PerfShared {
    /// Bytes written and not yet consumed.
    pub fn used(&self) -> u64 {
        self.head.load(Ordering::Acquire) - self.tail.load(Ordering::Acquire)
    }
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
    fn has_data(&self) -> bool {
        self.head.load(Ordering::Acquire) != self.tail.load(Ordering::Relaxed)
    }
}

/// Creates one emulated perf ring of `size` bytes (a power of two).
pub fn perf_ring(
    ring: u32,
    size: u64,
    wakeup: Wakeup,
    notifier: Arc<Notifier>,
) -> (PerfWriter, PerfReader) {
    let shared = Arc::new(PerfShared {
        ring,
        area: DataArea::new(size),
        head: Default::default(),
        tail: Default::default(),
        closed: AtomicBool::new(false),
        notifier,
        counters: Default::default(),
        lost_records: AtomicU64::new(0),
    });
    let (wakeup_events, watermark) = match wakeup {
        // ring_buffer_init: no watermark given -> half the buffer.
        Wakeup::Events(n) => (n, size / 2),
        // ring_buffer_init: min(max_size, watermark); 0 -> half.
        Wakeup::Watermark(0) => (0, size / 2),
        Wakeup::Watermark(b) => (0, b.min(size)),
        // A ring-buffer policy on a perf ring: the kernel default, every event.
        Wakeup::Adaptive | Wakeup::NoWakeupPoll(_) | Wakeup::Forced => (1, size / 2),
    };
    (
        PerfWriter {
            s: shared.clone(),
            head: 0,
            lost: 0,
            wakeup: 0,
            events: 0,
            wakeup_events,
            watermark,
            id: 0x1000 + ring as u64,
        },
        PerfReader {
            s: shared,
            scratch: Vec::with_capacity(8192),
        },
    )
}

/// The kernel side of one ring. Single producer.
pub struct PerfWriter {
    s: Arc<PerfShared>,
    /// `rb->head`.
    head: u64,
    /// `rb->lost`: drops not yet reported by a PERF_RECORD_LOST.
    lost: u64,
    /// `rb->wakeup`.
    wakeup: u64,
    /// `rb->events`.
    events: u32,
    wakeup_events: u32,
    watermark: u64,
    /// `event->id`, written into PERF_RECORD_LOST.
    id: u64,
}

impl PerfWriter {
    pub fn shared(&self) -> &Arc<PerfShared> {
        &self.s
    }

    /// Drops not yet reported in-band (`rb->lost`).
    pub fn pending_lost(&self) -> u64 {
        self.lost
    }

    /// `bpf_perf_event_output` of one sample. Returns false if it was dropped.
    #[inline]
    pub fn output(&mut self, sample: &SampleBytes<'_>) -> bool {
        let c = &self.s.counters;
        RingCounters::add(&c.offered, 1);
        let raw = raw_len(sample.len);
        let rec = SAMPLE_OVERHEAD + raw;
        let have_lost = self.lost > 0;
        let need = rec + if have_lost { LOST_RECORD_LEN } else { 0 };
        let size = self.s.area.size();
        // perf_event_header.size is a u16: larger samples cannot be output.
        if rec > u16::MAX as u64 {
            self.drop_sample();
            return false;
        }
        let tail = self.s.tail.load(Ordering::Acquire);
        let head = self.head;
        // CIRC_SPACE(head, tail, size) >= need
        if (tail.wrapping_sub(head + 1) & (size - 1)) < need {
            self.drop_sample();
            return false;
        }
        let handle_wakeup = self.wakeup;
        self.head = head + need;
        if self.head - self.wakeup > self.watermark {
            self.wakeup += self.watermark;
        }
        let area = &self.s.area;
        let mut pos = head;
        if have_lost {
            let mut l = [0u8; LOST_RECORD_LEN as usize];
            l[0..4].copy_from_slice(&PERF_RECORD_LOST.to_le_bytes());
            l[4..6].copy_from_slice(&0u16.to_le_bytes());
            l[6..8].copy_from_slice(&(LOST_RECORD_LEN as u16).to_le_bytes());
            l[8..16].copy_from_slice(&self.id.to_le_bytes());
            l[16..24].copy_from_slice(&self.lost.to_le_bytes());
            // SAFETY: [head, head + need) was free per the space check.
            unsafe { area.write(pos, &l) };
            self.lost = 0;
            RingCounters::add(&self.s.lost_records, 1);
            pos += LOST_RECORD_LEN;
        }
        let mut h = [0u8; SAMPLE_OVERHEAD as usize];
        h[0..4].copy_from_slice(&PERF_RECORD_SAMPLE.to_le_bytes());
        h[4..6].copy_from_slice(&PERF_RECORD_MISC_KERNEL.to_le_bytes());
        h[6..8].copy_from_slice(&(rec as u16).to_le_bytes());
        h[8..12].copy_from_slice(&(raw as u32).to_le_bytes());
        // SAFETY: as above. The raw padding (raw - len bytes) is skipped, as
        // perf_output_sample's __output_skip does.
        unsafe {
            area.write(pos, &h);
            put_sample(area, pos + SAMPLE_OVERHEAD, sample);
        }
        if self.wakeup_events > 0 {
            self.events += 1;
            if self.events >= self.wakeup_events {
                self.events -= self.wakeup_events;
                self.wakeup += 1;
            }
        }
        // perf_output_put_handle: publish data_head, then wake if rb->wakeup moved.
        self.s.head.store(self.head, Ordering::Release);
        RingCounters::add(&c.accepted, 1);
        RingCounters::add(&c.bytes, sample.len as u64);
        RingCounters::max(&c.high_water, self.head - tail);
        if handle_wakeup != self.wakeup {
            RingCounters::add(&c.wakeups, 1);
            self.s.notifier.wake();
        }
        true
    }

    fn drop_sample(&mut self) {
        self.lost += 1;
        RingCounters::add(&self.s.counters.lost, 1);
    }

    /// Marks the ring finished and wakes the reader.
    pub fn close(&self) {
        self.s.closed.store(true, Ordering::Release);
        self.s.notifier.wake();
    }
}

impl Drop for PerfWriter {
    fn drop(&mut self) {
        self.close();
    }
}

/// The userspace side of one ring.
pub struct PerfReader {
    s: Arc<PerfShared>,
    /// A record that wraps around the end of the area is copied here.
    scratch: Vec<u8>,
}

impl PerfReader {
    pub fn shared(&self) -> &Arc<PerfShared> {
        &self.s
    }

    /// Hands up to `max` records to `f`, then releases their space. Returns
    /// how many were handed out.
    pub fn drain(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<usize, SourceError> {
        let s = &*self.s;
        let ring = s.ring;
        let head = s.head.load(Ordering::Acquire);
        let mut tail = s.tail.load(Ordering::Relaxed);
        let mut n = 0;
        let corrupt = |what: String| SourceError::Corrupt { ring, what };
        while tail != head && n < max {
            let avail = head - tail;
            if avail < 8 {
                return Err(corrupt(format!(
                    "{avail} bytes at {tail}, short of a header"
                )));
            }
            let mut hdr = [0u8; 8];
            // SAFETY: [tail, head) was published by the writer.
            unsafe { s.area.read(tail, &mut hdr) };
            let ty = u32::from_le_bytes(hdr[0..4].try_into().unwrap());
            let size = u16::from_le_bytes([hdr[6], hdr[7]]) as u64;
            if size < 8 || !size.is_multiple_of(8) || size > avail {
                return Err(corrupt(format!(
                    "record type {ty} at {tail} has size {size} ({avail} bytes available)"
                )));
            }
            match ty {
                PERF_RECORD_SAMPLE => {
                    let mut rs = [0u8; 4];
                    unsafe { s.area.read(tail + 8, &mut rs) };
                    let raw = u32::from_le_bytes(rs) as u64;
                    if raw + SAMPLE_OVERHEAD > size {
                        return Err(corrupt(format!(
                            "sample at {tail}: raw size {raw} overruns the {size}-byte record"
                        )));
                    }
                    // SAFETY: inside the published range.
                    let data = match unsafe { s.area.slice(tail + SAMPLE_OVERHEAD, raw as usize) } {
                        Some(d) => d,
                        None => {
                            self.scratch.resize(raw as usize, 0);
                            unsafe { s.area.read(tail + SAMPLE_OVERHEAD, &mut self.scratch) };
                            &self.scratch[..]
                        }
                    };
                    f(RecordRef::Sample {
                        ring,
                        origin_ns: origin_of(data),
                        data,
                    });
                }
                PERF_RECORD_LOST => {
                    if size < LOST_RECORD_LEN {
                        return Err(corrupt(format!("lost record at {tail} is {size} bytes")));
                    }
                    let mut b = [0u8; 8];
                    unsafe { s.area.read(tail + 16, &mut b) };
                    f(RecordRef::Lost {
                        ring,
                        count: u64::from_le_bytes(b),
                    });
                }
                // Other record types carry nothing for a pipeline; skip them.
                _ => {}
            }
            tail += size;
            n += 1;
        }
        s.tail.store(tail, Ordering::Release);
        Ok(n)
    }

    /// True when the writer closed the ring and everything was read.
    pub fn finished(&self) -> bool {
        self.s.is_closed() && !self.s.has_data()
    }
}

/// A sample's origin: its event header's `ts_ns` (the scheduled time in
/// replay, the kernel timestamp live), or 0 if it is too short to hold one.
#[inline]
pub fn origin_of(data: &[u8]) -> u64 {
    data.get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        .unwrap_or(0)
}

/// The reader side of a set of perf rings (one per emulated CPU), read as one
/// source or split into one source per ring.
pub struct PerfSource {
    readers: Vec<PerfReader>,
    notifier: Arc<Notifier>,
    next: usize,
}

impl PerfSource {
    pub fn new(readers: Vec<PerfReader>, notifier: Arc<Notifier>) -> Self {
        PerfSource {
            readers,
            notifier,
            next: 0,
        }
    }
}

impl RecordSource for PerfSource {
    fn rings(&self) -> u32 {
        self.readers.len() as u32
    }

    fn read_batch(
        &mut self,
        max: usize,
        timeout: Duration,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<Batch, SourceError> {
        let deadline = Instant::now() + timeout;
        let max = max.max(1);
        loop {
            let mut n = 0;
            let k = self.readers.len();
            // Round-robin over the rings, starting after the last one served.
            for i in 0..k {
                if n >= max {
                    break;
                }
                let r = (self.next + i) % k;
                n += self.readers[r].drain(max - n, f)?;
            }
            self.next = (self.next + 1) % k.max(1);
            if n > 0 {
                return Ok(Batch::Records(n));
            }
            if self.readers.iter().all(|r| r.finished()) {
                return Ok(Batch::Closed);
            }
            if Instant::now() >= deadline {
                return Ok(Batch::Idle);
            }
            let readers = &self.readers;
            self.notifier.wait(deadline, || {
                readers.iter().any(|r| r.s.has_data() || r.s.is_closed())
            });
            if Instant::now() >= deadline
                && !self
                    .readers
                    .iter()
                    .any(|r| r.s.has_data() || r.s.is_closed())
            {
                return Ok(Batch::Idle);
            }
        }
    }
}

impl probes::record::ShardedSource for PerfSource {
    fn into_shards(self: Box<Self>) -> Vec<Box<dyn RecordSource>> {
        let notifier = self.notifier.clone();
        self.readers
            .into_iter()
            .map(|r| Box::new(PerfSource::new(vec![r], notifier.clone())) as Box<dyn RecordSource>)
            .collect()
    }
}
