//! The kernel's writer side of an emulated BPF ring buffer
//! (`kernel/bpf/ringbuf.c`), as `bpf_ringbuf_output` fills it. The reader is
//! the live one, `probes::ring::ringbuf::RingBufReader`, over memory laid out
//! as the kernel maps it ([`RingBufMem`]: consumer page, producer page, data
//! area mapped twice); headers are encoded by `probes::ring::format::ringbuf`.
//!
//! Per `__bpf_ringbuf_reserve` and `bpf_ringbuf_commit`:
//! - each record is an 8-byte header `{u32 len, u32 pg_off}` + the sample,
//!   taking `round_up(len + 8, 8)` bytes;
//! - reserve: advance `pending_pos` over committed records, then fail if
//!   `new_prod - cons > mask` or `new_prod - pending > mask`; otherwise write
//!   the header with `len | BUSY` and publish `producer_pos` (release);
//! - commit: clear BUSY with an atomic exchange (setting DISCARD for a
//!   discard), then wake the reader if forced, or, unless `BPF_RB_NO_WAKEUP`,
//!   if the consumer had caught up to this very record (adaptive wakeup);
//! - a failed reserve tells the reader nothing. Like the probes' kernel-side
//!   `FAIL_AGAIN` counter, drops are counted in the writer, and the reader
//!   reads that counter and turns its growth into an in-band
//!   `RecordRef::Lost` (so its position in the stream is approximate, as it
//!   is live when the counter is polled).
//!
//! The replay has a single producer thread. In the kernel, CPUs serialise on
//! the ring's spinlock for the reserve, so records land in the same layout;
//! what a single producer does not reproduce is two CPUs' records being
//! reserved-but-uncommitted at once (the reader then briefly stops at a BUSY
//! header). The reserve/commit code still handles that case (see the tests).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use probes::loader::Wakeup;
use probes::ring::format::ringbuf::{self as fmt, LenWord};
use probes::ring::mem::page_size;
use probes::ring::ringbuf::{RingBufError, RingBufMem, RingBufReader, RingBufWakeup};
use probes::ring::wait::{EmulatedPoll, PollRule};

use super::ring_writer::{put_sample, RingCounters, SampleBytes};

/// Creates an emulated ring buffer of `size` data bytes (a power of two, at
/// least a page): its writer and its reader. `Wakeup::NoWakeupPoll(p)` gives
/// the reader a timer of `p`; a perf policy is treated as adaptive (the ring
/// buffer's default).
pub fn ring_buffer(size: u64, wakeup: Wakeup) -> Result<(RbWriter, RingBufReader), RingBufError> {
    let mem = Arc::new(RingBufMem::emulated(size as usize)?);
    let poll = EmulatedPoll::new(vec![PollRule::RingBuf(mem.clone())]);
    let dropped = Arc::new(AtomicU64::new(0));
    let seen = dropped.clone();
    let policy = wakeup.ringbuf().unwrap_or(RingBufWakeup::Adaptive);
    let reader = RingBufReader::emulated(
        mem.clone(),
        &poll.pollable(0),
        policy,
        Box::new(move || seen.load(Ordering::Relaxed)),
    )?;
    let writer = RbWriter {
        mem,
        poll,
        producer_pos: 0,
        pending_pos: 0,
        policy,
        page: page_size(),
        counters: RingCounters::default(),
        dropped,
        closed: false,
    };
    Ok((writer, reader))
}

/// The kernel side. Single producer (the replay thread).
pub struct RbWriter {
    mem: Arc<RingBufMem>,
    poll: Arc<EmulatedPoll>,
    /// `rb->producer_pos` (the writer's own copy).
    producer_pos: u64,
    /// `rb->pending_pos`.
    pending_pos: u64,
    policy: RingBufWakeup,
    page: usize,
    counters: RingCounters,
    /// Failed reserves: the kernel-side drop counter the reader polls.
    dropped: Arc<AtomicU64>,
    closed: bool,
}

impl RbWriter {
    /// Data area bytes.
    pub fn size(&self) -> u64 {
        self.mem.size() as u64
    }

    pub fn counters(&self) -> &RingCounters {
        &self.counters
    }

    /// Bytes reserved or committed and not yet consumed.
    pub fn used(&self) -> u64 {
        self.mem.used()
    }

    /// Failed reserves so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// `__bpf_ringbuf_reserve`: the position of the record header, or None.
    pub fn reserve(&mut self, size: u64) -> Option<u64> {
        if size > fmt::MAX_RECORD_SZ as u64 {
            return None;
        }
        let len = fmt::record_len(size as usize) as u64;
        let area = self.mem.area();
        let mask = area.size() as u64 - 1;
        if len > area.size() as u64 {
            return None;
        }
        let cons_pos = self.mem.consumer_pos().load(Ordering::Acquire);
        let prod_pos = self.producer_pos;
        let mut pend_pos = self.pending_pos;
        let new_prod_pos = prod_pos + len;
        while pend_pos < prod_pos {
            let word = LenWord::decode(area.atomic_u32(pend_pos).load(Ordering::Acquire));
            if word.busy {
                break;
            }
            pend_pos += fmt::record_len(word.len as usize) as u64;
        }
        self.pending_pos = pend_pos;
        if new_prod_pos - cons_pos > mask || new_prod_pos - pend_pos > mask {
            return None;
        }
        let busy = LenWord {
            len: size as u32,
            busy: true,
            discard: false,
        };
        area.atomic_u32(prod_pos)
            .store(busy.encode(), Ordering::Relaxed);
        let pg_off = fmt::pg_off(area.offset(prod_pos), self.page);
        // SAFETY: [prod_pos, new_prod_pos) is ours after the space check.
        unsafe { area.write(prod_pos + 4, &pg_off.to_ne_bytes()) };
        self.producer_pos = new_prod_pos;
        // Pairs with the consumer's load-acquire of producer_pos.
        self.mem
            .producer_pos()
            .store(new_prod_pos, Ordering::Release);
        RingCounters::max(&self.counters.high_water, new_prod_pos - cons_pos);
        Some(prod_pos)
    }

    /// `bpf_ringbuf_commit`.
    pub fn commit(&mut self, pos: u64, discard: bool) {
        let area = self.mem.area();
        let hdr = area.atomic_u32(pos);
        let committed = LenWord {
            busy: false,
            discard,
            ..LenWord::decode(hdr.load(Ordering::Relaxed))
        };
        // xchg: a full barrier, so the sample bytes are visible before the header.
        hdr.swap(committed.encode(), Ordering::SeqCst);
        let cons_pos = area.offset(self.mem.consumer_pos().load(Ordering::Acquire));
        let wake = match self.policy {
            RingBufWakeup::Forced => true,
            RingBufWakeup::NoWakeup { .. } => false,
            RingBufWakeup::Adaptive => cons_pos == area.offset(pos),
        };
        if wake {
            RingCounters::add(&self.counters.wakeups, 1);
            self.poll.wake(0);
        }
    }

    /// `bpf_ringbuf_output`: reserve, copy, commit. Returns false on a drop.
    #[inline]
    pub fn output(&mut self, sample: &SampleBytes<'_>) -> bool {
        RingCounters::add(&self.counters.offered, 1);
        match self.reserve(sample.len as u64) {
            Some(pos) => {
                let area = self.mem.area();
                // SAFETY: reserved above; the mirrored area keeps it contiguous.
                unsafe { put_sample(&area, pos + fmt::HEADER_LEN as u64, sample) };
                self.commit(pos, false);
                let c = &self.counters;
                RingCounters::add(&c.accepted, 1);
                RingCounters::add(&c.bytes, sample.len as u64);
                true
            }
            None => {
                RingCounters::add(&self.counters.lost, 1);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Marks the ring finished; the reader drains what is left and closes.
    pub fn close(&mut self) {
        if !std::mem::replace(&mut self.closed, true) {
            self.poll.close_writer();
        }
    }
}

impl Drop for RbWriter {
    fn drop(&mut self) {
        self.close();
    }
}
