//! Emulation of the BPF ring buffer (`kernel/bpf/ringbuf.c`) as
//! `bpf_ringbuf_output` fills it, and a reader that consumes it the way
//! libbpf's `ringbuf_process_ring` does.
//!
//! Writer, per `__bpf_ringbuf_reserve` and `bpf_ringbuf_commit`:
//! - one shared power-of-two data area; each record is an 8-byte header
//!   `{u32 len, u32 pg_off}` + the sample, taking `round_up(len + 8, 8)` bytes;
//! - reserve: advance `pending_pos` over committed records, then fail if
//!   `new_prod - cons > mask` or `new_prod - pending > mask`; otherwise write
//!   the header with `len | BUSY` and publish `producer_pos` (release);
//! - commit: clear BUSY with an atomic exchange (setting DISCARD for a
//!   discard), then wake the reader if forced, or, unless `BPF_RB_NO_WAKEUP`,
//!   if the consumer had caught up to this very record (adaptive wakeup);
//! - a failed reserve tells the reader nothing. Like the probes' kernel-side
//!   `FAIL_AGAIN` counter, drops are counted in [`RbShared::dropped`], and the
//!   reader turns growth of that counter into an in-band
//!   [`RecordRef::Lost`] at its next read (so its position in the stream is
//!   approximate, as it is live when the counter is polled).
//!
//! Reader: acquire-load `producer_pos`, then for each record acquire-load its
//! header; stop at a BUSY one; skip DISCARD ones; release-store
//! `consumer_pos` after each record.
//!
//! The kernel maps the data area twice so records never appear split; here a
//! record that wraps is copied out for the callback.
//!
//! The replay has a single producer thread. In the kernel, CPUs serialise on
//! the ring's spinlock for the reserve, so records land in the same layout;
//! what a single producer does not reproduce is two CPUs' records being
//! reserved-but-uncommitted at once (the reader then briefly stops at a BUSY
//! header). The reserve/commit code still handles that case (see the tests).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use probes::loader::Wakeup;
use probes::record::{Batch, RecordRef, RecordSource, SourceError};

use super::area::{put_sample, CacheLine, DataArea, Notifier, RingCounters, SampleBytes};
use super::perf::origin_of;

pub const BPF_RINGBUF_BUSY_BIT: u32 = 1 << 31;
pub const BPF_RINGBUF_DISCARD_BIT: u32 = 1 << 30;
pub const BPF_RINGBUF_HDR_SZ: u64 = 8;
/// `RINGBUF_MAX_RECORD_SZ = UINT_MAX >> 2`.
pub const RINGBUF_MAX_RECORD_SZ: u64 = (u32::MAX >> 2) as u64;
/// The data area starts after the `bpf_ringbuf` struct page, the consumer
/// page and the producer page, so a record's `pg_off` is 3 + its page in the area.
const DATA_PGOFF: u64 = 3;
const PAGE_SHIFT: u32 = 12;

/// Bytes a `len`-byte sample occupies: `round_up(len + 8, 8)`.
pub fn record_len(len: usize) -> u64 {
    (len as u64 + BPF_RINGBUF_HDR_SZ + 7) & !7
}

pub struct RbShared {
    pub area: DataArea,
    consumer_pos: CacheLine<AtomicU64>,
    producer_pos: CacheLine<AtomicU64>,
    closed: AtomicBool,
    pub notifier: Arc<Notifier>,
    pub counters: RingCounters,
    /// Failed reserves: the kernel-side drop counter.
    pub dropped: AtomicU64,
}

impl RbShared {
    pub fn used(&self) -> u64 {
        self.producer_pos.load(Ordering::Acquire) - self.consumer_pos.load(Ordering::Acquire)
    }
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
    fn has_data(&self) -> bool {
        self.producer_pos.load(Ordering::Acquire) != self.consumer_pos.load(Ordering::Relaxed)
    }
}

/// Creates an emulated ring buffer of `size` bytes (a power of two).
/// `Wakeup::NoWakeupPoll(p)` gives the reader a timer of `p`; a perf policy
/// is treated as adaptive (the ring buffer's default).
pub fn ring_buffer(size: u64, wakeup: Wakeup) -> (RbWriter, RbReader) {
    let s = Arc::new(RbShared {
        area: DataArea::new(size),
        consumer_pos: Default::default(),
        producer_pos: Default::default(),
        closed: AtomicBool::new(false),
        notifier: Arc::new(Notifier::default()),
        counters: Default::default(),
        dropped: AtomicU64::new(0),
    });
    (
        RbWriter {
            s: s.clone(),
            producer_pos: 0,
            pending_pos: 0,
            wakeup,
        },
        RbReader {
            s,
            scratch: Vec::with_capacity(8192),
            reported: 0,
            poll: match wakeup {
                Wakeup::NoWakeupPoll(p) => Some(p),
                _ => None,
            },
        },
    )
}

/// The kernel side. Single producer (the replay thread).
pub struct RbWriter {
    s: Arc<RbShared>,
    /// `rb->producer_pos` (the writer's own copy).
    producer_pos: u64,
    /// `rb->pending_pos`.
    pending_pos: u64,
    wakeup: Wakeup,
}

impl RbWriter {
    pub fn shared(&self) -> &Arc<RbShared> {
        &self.s
    }

    /// `__bpf_ringbuf_reserve`: the position of the record header, or None.
    pub fn reserve(&mut self, size: u64) -> Option<u64> {
        if size > RINGBUF_MAX_RECORD_SZ {
            return None;
        }
        let len = record_len(size as usize);
        let area = &self.s.area;
        let mask = area.size() - 1;
        if len > area.size() {
            return None;
        }
        let cons_pos = self.s.consumer_pos.load(Ordering::Acquire);
        let prod_pos = self.producer_pos;
        let mut pend_pos = self.pending_pos;
        let new_prod_pos = prod_pos + len;
        while pend_pos < prod_pos {
            let hdr_len = area.atomic_u32(pend_pos).load(Ordering::Acquire);
            if hdr_len & BPF_RINGBUF_BUSY_BIT != 0 {
                break;
            }
            pend_pos += record_len((hdr_len & !BPF_RINGBUF_DISCARD_BIT) as usize);
        }
        self.pending_pos = pend_pos;
        if new_prod_pos - cons_pos > mask || new_prod_pos - pend_pos > mask {
            return None;
        }
        let pg_off = (DATA_PGOFF + ((prod_pos & mask) >> PAGE_SHIFT)) as u32;
        area.atomic_u32(prod_pos)
            .store(size as u32 | BPF_RINGBUF_BUSY_BIT, Ordering::Relaxed);
        // SAFETY: [prod_pos, new_prod_pos) is ours after the space check.
        unsafe { area.write(prod_pos + 4, &pg_off.to_le_bytes()) };
        self.producer_pos = new_prod_pos;
        // Pairs with the consumer's smp_load_acquire of producer_pos.
        self.s.producer_pos.store(new_prod_pos, Ordering::Release);
        RingCounters::max(&self.s.counters.high_water, new_prod_pos - cons_pos);
        Some(prod_pos)
    }

    /// `bpf_ringbuf_commit`.
    pub fn commit(&mut self, pos: u64, discard: bool) {
        let area = &self.s.area;
        let hdr = area.atomic_u32(pos);
        let mut new_len = hdr.load(Ordering::Relaxed) ^ BPF_RINGBUF_BUSY_BIT;
        if discard {
            new_len |= BPF_RINGBUF_DISCARD_BIT;
        }
        // xchg: a full barrier, so the sample bytes are visible before the header.
        hdr.swap(new_len, Ordering::SeqCst);
        let mask = area.size() - 1;
        let cons_pos = self.s.consumer_pos.load(Ordering::Acquire) & mask;
        let wake = match self.wakeup {
            Wakeup::Forced => true,
            Wakeup::NoWakeupPoll(_) => false,
            Wakeup::Adaptive | Wakeup::Events(_) | Wakeup::Watermark(_) => cons_pos == pos & mask,
        };
        if wake {
            RingCounters::add(&self.s.counters.wakeups, 1);
            self.s.notifier.wake();
        }
    }

    /// `bpf_ringbuf_output`: reserve, copy, commit. Returns false on a drop.
    #[inline]
    pub fn output(&mut self, sample: &SampleBytes<'_>) -> bool {
        RingCounters::add(&self.s.counters.offered, 1);
        match self.reserve(sample.len as u64) {
            Some(pos) => {
                // SAFETY: reserved above.
                unsafe { put_sample(&self.s.area, pos + BPF_RINGBUF_HDR_SZ, sample) };
                self.commit(pos, false);
                let c = &self.s.counters;
                RingCounters::add(&c.accepted, 1);
                RingCounters::add(&c.bytes, sample.len as u64);
                true
            }
            None => {
                RingCounters::add(&self.s.counters.lost, 1);
                self.s.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    pub fn close(&self) {
        self.s.closed.store(true, Ordering::Release);
        self.s.notifier.wake();
    }
}

impl Drop for RbWriter {
    fn drop(&mut self) {
        self.close();
    }
}

/// The userspace side, a [`RecordSource`] with one ring.
pub struct RbReader {
    s: Arc<RbShared>,
    scratch: Vec<u8>,
    /// Drops already reported in-band.
    reported: u64,
    poll: Option<Duration>,
}

impl RbReader {
    pub fn shared(&self) -> &Arc<RbShared> {
        &self.s
    }

    /// Hands up to `max` records to `f`, releasing each after its callback.
    pub fn drain(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<usize, SourceError> {
        let s = &*self.s;
        let mut n = 0;
        let dropped = s.dropped.load(Ordering::Relaxed);
        if dropped > self.reported {
            f(RecordRef::Lost {
                ring: 0,
                count: dropped - self.reported,
            });
            self.reported = dropped;
            n += 1;
        }
        let mut cons = s.consumer_pos.load(Ordering::Relaxed);
        'outer: loop {
            let mut got_new_data = false;
            let prod = s.producer_pos.load(Ordering::Acquire);
            while cons < prod {
                if n >= max {
                    break 'outer;
                }
                let len = s.area.atomic_u32(cons).load(Ordering::Acquire);
                if len & BPF_RINGBUF_BUSY_BIT != 0 {
                    break 'outer;
                }
                got_new_data = true;
                let data_len = (len & !BPF_RINGBUF_DISCARD_BIT) as usize;
                let step = record_len(data_len);
                if step > prod - cons {
                    return Err(SourceError::Corrupt {
                        ring: 0,
                        what: format!(
                            "record at {cons} claims {data_len} bytes, past producer position {prod}"
                        ),
                    });
                }
                if len & BPF_RINGBUF_DISCARD_BIT == 0 {
                    // SAFETY: committed record inside [cons, prod).
                    let data = match unsafe { s.area.slice(cons + BPF_RINGBUF_HDR_SZ, data_len) } {
                        Some(d) => d,
                        None => {
                            self.scratch.resize(data_len, 0);
                            unsafe { s.area.read(cons + BPF_RINGBUF_HDR_SZ, &mut self.scratch) };
                            &self.scratch[..]
                        }
                    };
                    f(RecordRef::Sample {
                        ring: 0,
                        origin_ns: origin_of(data),
                        data,
                    });
                    n += 1;
                }
                cons += step;
                s.consumer_pos.store(cons, Ordering::Release);
            }
            if !got_new_data {
                break;
            }
        }
        Ok(n)
    }

    fn finished(&self) -> bool {
        self.s.is_closed()
            && !self.s.has_data()
            && self.s.dropped.load(Ordering::Relaxed) == self.reported
    }
}

impl RecordSource for RbReader {
    fn rings(&self) -> u32 {
        1
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
            let n = self.drain(max, f)?;
            if n > 0 {
                return Ok(Batch::Records(n));
            }
            if self.finished() {
                return Ok(Batch::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Batch::Idle);
            }
            match self.poll {
                // BPF_RB_NO_WAKEUP: nobody wakes us; poll on the timer.
                Some(p) => std::thread::sleep(p.min(deadline - now)),
                None => {
                    let s = &self.s;
                    s.notifier.wait(deadline, || s.has_data() || s.is_closed());
                }
            }
        }
    }
}

impl probes::record::ShardedSource for RbReader {
    fn into_shards(self: Box<Self>) -> Vec<Box<dyn RecordSource>> {
        vec![self]
    }
}
