//! The kernel's writer side of one emulated perf ring
//! (`kernel/events/ring_buffer.c`), as `bpf_perf_event_output` fills it. The
//! reader is the live one, `probes::ring::perf::PerfRings`, over the same
//! memory layout ([`PerfMem`]); records are encoded by
//! `probes::ring::format::perf`.
//!
//! Per `__perf_output_begin` / `perf_output_sample` / `perf_output_end`:
//! - space check `CIRC_SPACE(head, tail, size) >= need`, i.e.
//!   `(tail - head - 1) & (size - 1) >= need`: one byte is always kept free,
//!   so with 8-aligned records at most `size - 8` bytes are ever in use;
//! - no space: the sample is dropped and `rb->lost` grows. The next output
//!   that finds room for a `PERF_RECORD_LOST` (24 bytes) *plus* its sample
//!   reserves both at once and writes the lost record first;
//! - wakeups: `rb->wakeup` is bumped every `wakeup_events` samples (only when
//!   no watermark is set), and by `watermark` whenever `head - wakeup >
//!   watermark` (the watermark is the configured one, or half the buffer when
//!   none is set, as in `ring_buffer_init`); after publishing `data_head`, the
//!   reader is woken if `rb->wakeup` moved during the output
//!   (`perf_output_put_handle` -> `perf_output_wakeup`, which sets `rb->poll`
//!   for `perf_poll` to report once).

use std::sync::Arc;

use probes::loader::Wakeup;
use probes::ring::format::perf as fmt;
use probes::ring::mem::MemError;
use probes::ring::perf::{PerfMem, PerfRing, PerfRings};
use probes::ring::wait::{EmulatedPoll, PollRule};

use super::ring_writer::{put_sample, RingCounters, SampleBytes};

/// Creates `rings` emulated perf rings of `size` data bytes each (a power of
/// two, at least a page) with one wakeup policy: their writers, and the
/// reader over all of them.
pub fn perf_rings(
    rings: u32,
    size: u64,
    wakeup: Wakeup,
) -> Result<(Vec<PerfWriter>, PerfRings), MemError> {
    let poll = EmulatedPoll::new((0..rings).map(|_| PollRule::Perf).collect());
    let mut writers = Vec::with_capacity(rings as usize);
    let mut readers = Vec::with_capacity(rings as usize);
    for ring in 0..rings {
        let mem = Arc::new(PerfMem::emulated(size as usize)?);
        readers.push(PerfRing::emulated(
            ring,
            mem.clone(),
            poll.pollable(ring as usize),
        ));
        writers.push(PerfWriter::new(ring, mem, poll.clone(), wakeup));
    }
    let source = PerfRings::emulated(readers, &poll);
    Ok((writers, source))
}

/// The kernel side of one ring. Single producer.
pub struct PerfWriter {
    ring: u32,
    mem: Arc<PerfMem>,
    poll: Arc<EmulatedPoll>,
    /// `rb->head`.
    head: u64,
    /// `rb->lost`: drops not yet reported by a PERF_RECORD_LOST.
    lost: u64,
    /// `rb->wakeup`.
    wakeup: u64,
    /// `rb->events`.
    events: u32,
    /// `attr.wakeup_events`; 0 when a watermark is set (the kernel then
    /// ignores the event count).
    wakeup_events: u32,
    /// `rb->watermark`.
    watermark: u64,
    /// `event->id`, written into PERF_RECORD_LOST.
    id: u64,
    counters: RingCounters,
    /// PERF_RECORD_LOST records written.
    lost_records: u64,
    closed: bool,
}

impl PerfWriter {
    fn new(ring: u32, mem: Arc<PerfMem>, poll: Arc<EmulatedPoll>, wakeup: Wakeup) -> Self {
        let size = mem.size() as u64;
        let (wakeup_events, watermark) = match wakeup {
            // ring_buffer_init: no watermark given -> half the buffer.
            Wakeup::Events(n) => (n, size / 2),
            // ring_buffer_init: min(max_size, watermark); 0 -> half.
            Wakeup::Watermark(0) => (0, size / 2),
            Wakeup::Watermark(b) => (0, b.min(size)),
            // A ring-buffer policy on a perf ring: the kernel default, every event.
            Wakeup::Adaptive | Wakeup::NoWakeupPoll(_) | Wakeup::Forced => (1, size / 2),
        };
        PerfWriter {
            ring,
            mem,
            poll,
            head: 0,
            lost: 0,
            wakeup: 0,
            events: 0,
            wakeup_events,
            watermark,
            id: 0x1000 + ring as u64,
            counters: RingCounters::default(),
            lost_records: 0,
            closed: false,
        }
    }

    pub fn ring(&self) -> u32 {
        self.ring
    }

    /// Data area bytes.
    pub fn size(&self) -> u64 {
        self.mem.size() as u64
    }

    pub fn counters(&self) -> &RingCounters {
        &self.counters
    }

    /// Bytes written and not yet read.
    pub fn used(&self) -> u64 {
        self.mem.used()
    }

    /// Drops not yet reported in-band (`rb->lost`).
    pub fn pending_lost(&self) -> u64 {
        self.lost
    }

    /// PERF_RECORD_LOST records written.
    pub fn lost_records(&self) -> u64 {
        self.lost_records
    }

    /// `bpf_perf_event_output` of one sample. Returns false if it was dropped.
    #[inline]
    pub fn output(&mut self, sample: &SampleBytes<'_>) -> bool {
        RingCounters::add(&self.counters.offered, 1);
        // perf_event_header.size is a u16: larger samples cannot be output.
        let Some(prefix) = fmt::sample_prefix(sample.len) else {
            self.drop_sample();
            return false;
        };
        let rec = fmt::sample_record_len(sample.len) as u64;
        let have_lost = self.lost > 0;
        let need = rec
            + if have_lost {
                fmt::LOST_RECORD_LEN as u64
            } else {
                0
            };
        let size = self.mem.size() as u64;
        let tail = self
            .mem
            .data_tail()
            .load(std::sync::atomic::Ordering::Acquire);
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
        let area = self.mem.area();
        let mut pos = head;
        // SAFETY: [head, head + need) was free per the space check, and the
        // reader does not look past data_head until it is published below.
        unsafe {
            if have_lost {
                area.write(pos, &fmt::lost_record(self.id, self.lost));
                pos += fmt::LOST_RECORD_LEN as u64;
            }
            area.write(pos, &prefix);
            // The raw padding (raw_size - len bytes) is skipped, as
            // perf_output_sample's __output_skip does.
            put_sample(&area, pos + fmt::SAMPLE_OVERHEAD as u64, sample);
        }
        if have_lost {
            self.lost = 0;
            self.lost_records += 1;
        }
        if self.wakeup_events > 0 {
            self.events += 1;
            if self.events >= self.wakeup_events {
                self.events -= self.wakeup_events;
                self.wakeup += 1;
            }
        }
        // perf_output_put_handle: publish data_head, then wake if rb->wakeup moved.
        self.mem
            .data_head()
            .store(self.head, std::sync::atomic::Ordering::Release);
        let c = &self.counters;
        RingCounters::add(&c.accepted, 1);
        RingCounters::add(&c.bytes, sample.len as u64);
        RingCounters::max(&c.high_water, self.head - tail);
        if handle_wakeup != self.wakeup {
            RingCounters::add(&c.wakeups, 1);
            self.poll.wake(self.ring as usize);
        }
        true
    }

    fn drop_sample(&mut self) {
        self.lost += 1;
        RingCounters::add(&self.counters.lost, 1);
    }

    /// Marks this ring finished; once every ring of the set is, the reader
    /// drains what is left and closes.
    pub fn close(&mut self) {
        if !std::mem::replace(&mut self.closed, true) {
            self.poll.close_writer();
        }
    }
}

impl Drop for PerfWriter {
    fn drop(&mut self) {
        self.close();
    }
}
