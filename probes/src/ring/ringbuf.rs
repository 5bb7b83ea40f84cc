//! The BPF ring buffer reader (`BPF_MAP_TYPE_RINGBUF`, Linux 5.8+), one code
//! path for the kernel's ring and an emulated one: [`RingBufReader::drain`]
//! walks memory laid out like the kernel's mmap ([`RingBufMem`]), whose data
//! area is mapped twice so every sample is handed out in place (zero-copy).
//!
//! # Wakeup policies
//! The wakeup is decided by the BPF program's `bpf_ringbuf_output` flags (set
//! through the probe config), and the reader must match it:
//! - [`RingBufWakeup::Adaptive`] (flags 0): the kernel wakes the reader when
//!   it commits the record the reader is waiting at; the reader waits on its
//!   [`Waiter`], then drains, as libbpf's `ring_buffer__poll` does.
//! - [`RingBufWakeup::NoWakeup`] (`BPF_RB_NO_WAKEUP`): the kernel never wakes
//!   anyone; the reader drains, and sleeps one `poll` interval when it found
//!   nothing (a timer loop around `ring_buffer__consume`).
//! - [`RingBufWakeup::Forced`] (`BPF_RB_FORCE_WAKEUP`): a wakeup per record.
//!
//! The ring buffer's poll is level-triggered: it reports the ring readable
//! whenever data is available, not once per wakeup as perf's does.
//!
//! # Lost samples
//! A full ring buffer makes `bpf_ringbuf_output` fail with -EAGAIN and tells the
//! reader nothing. The probes count those failures per CPU; give the reader a
//! [`LostCounter`] and it turns increases of that counter into
//! [`RecordRef::Lost`] records in the stream.
//!
//! # Use
//! ```ignore
//! let mut rb = RingBufReader::open(map_fd, data_bytes, RingBufWakeup::NoWakeup { poll: Duration::from_millis(1) })?;
//! rb.read_batch(4096, Duration::from_millis(10), &mut |rec| { /* RecordRef */ })?;
//! ```

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::format::origin_of;
use super::format::ringbuf::{self as fmt, LenWord};
use super::mem::{page_size, Area, Mapping, MemError};
use super::wait::{Pollable, RingPending, Stop, Waiter};
use crate::record::{Batch, RecordRef, RecordSource, ShardedSource, SourceError};

/// How much a drain reads before it releases the space to the writer
/// ([`RingBufReader::drain`]). 256 KiB is 1/128 of a 32 MiB ring, 63 fixed4k
/// records or ~2 000 compact ones; the drain copies it out in ~30 us
/// (docs/tuning.md, "Drain"), so the writer sees freed space at most that
/// late, while a reader that keeps pace stops drawing a wakeup per record.
pub const PUBLISH_BYTES: u64 = 256 << 10;

/// After an adaptive wakeup, how long the reader waits before it drains.
/// The kernel queues a wakeup (an `irq_work` on the writing CPU) for each
/// commit that finds the reader caught up. A reader that drains the moment it
/// wakes catches up again within microseconds, and the next record pays for
/// another wakeup: at 260 k fixed4k records/s that is most records. While the
/// reader waits here, `consumer_pos` stays behind the records being
/// committed, so none of them draws a wakeup; one wakeup then covers every
/// record of the pause. The ring is empty when the pause starts (the reader
/// had caught up), so it overflows only if the pause outlasts the ring:
/// 200 us (about 250 us with the kernel's default 50 us timer slack) is 65
/// records at 260 k/s, 1 % of the 27 ms a 32 MiB ring holds at that rate,
/// and a 1 MiB ring of fixed4k records (252 of them) would need over 1 M
/// records/s to fill in it. Measured live against libbpf's reader (docs/tuning.md,
/// "Wakeup policy"): the traced loop ran 1.55x (fixed4k) and 2.24x (compact)
/// as fast, with 50 us 1.40x and 1.94x, and without the pause 0.88x and 1.04x.
pub const ADAPTIVE_GATHER: Duration = Duration::from_micros(200);

/// How the reader is woken; must match the flags the probe passes to `bpf_ringbuf_output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingBufWakeup {
    Adaptive,
    NoWakeup { poll: Duration },
    Forced,
}

impl RingBufWakeup {
    /// The `bpf_ringbuf_output` flags for this policy.
    pub fn output_flags(self) -> u64 {
        match self {
            RingBufWakeup::Adaptive => 0,
            RingBufWakeup::NoWakeup { .. } => fmt::BPF_RB_NO_WAKEUP,
            RingBufWakeup::Forced => fmt::BPF_RB_FORCE_WAKEUP,
        }
    }

    /// How long the reader lets records gather between a wakeup and its
    /// drain: [`ADAPTIVE_GATHER`] under adaptive wakeups, whose count falls
    /// with it; none when the kernel wakes per record anyway (forced) or never.
    pub fn gather(self) -> Option<Duration> {
        match self {
            RingBufWakeup::Adaptive => Some(ADAPTIVE_GATHER),
            RingBufWakeup::NoWakeup { .. } | RingBufWakeup::Forced => None,
        }
    }
}

impl std::fmt::Display for RingBufWakeup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RingBufWakeup::Adaptive => f.write_str("adaptive"),
            RingBufWakeup::NoWakeup { poll } => write!(f, "no-wakeup/poll:{}us", poll.as_micros()),
            RingBufWakeup::Forced => f.write_str("forced"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RingBufError {
    #[error(
        "ring buffer size {bytes} bytes is not a power-of-two multiple of the {page}-byte page"
    )]
    BadSize { bytes: usize, page: usize },
    #[error("duplicating the ring buffer map's fd: {source}")]
    Dup { source: io::Error },
    #[error("the ring buffer's memory: {0}")]
    Mem(#[from] MemError),
    #[error("the no-wakeup poll interval must be > 0")]
    ZeroPoll,
}

/// Reads the kernel's count of failed ring-buffer outputs (summed over CPUs).
pub type LostCounter = Box<dyn FnMut() -> u64 + Send>;

/// A ring buffer's memory as the kernel maps it: the consumer page, the
/// producer page, and the data area twice in a row.
pub struct RingBufMem {
    _maps: Vec<Mapping>,
    consumer: *mut u8,
    producer: *mut u8,
    data: *mut u8,
    size: usize,
}

// SAFETY: plain shared memory owned by `_maps`; positions are atomics, and
// the data bytes follow the ring protocol (see `Area`).
unsafe impl Send for RingBufMem {}
unsafe impl Sync for RingBufMem {}

impl RingBufMem {
    /// The kernel's ring buffer behind a map fd: the consumer page read-write,
    /// the producer page and the doubled data area read-only.
    fn of_fd(fd: &OwnedFd, size: usize) -> Result<Self, MemError> {
        let page = page_size();
        let consumer = Mapping::of_fd(fd.as_fd(), page, 0, true, "consumer page")?;
        let producer = Mapping::of_fd(
            fd.as_fd(),
            page + 2 * size,
            page,
            false,
            "producer page and data",
        )?;
        let (c, p) = (consumer.ptr(), producer.ptr());
        Ok(RingBufMem {
            consumer: c,
            producer: p,
            // SAFETY: the data follows the producer page in its mapping.
            data: unsafe { p.add(page) },
            size,
            _maps: vec![consumer, producer],
        })
    }

    /// Zeroed memory with the kernel's layout for an emulated ring of `size`
    /// data bytes (a power of two, at least a page), data mapped twice.
    pub fn emulated(size: usize) -> Result<Self, MemError> {
        let page = page_size();
        let map = Mapping::mirrored(fmt::POS_PAGES * page, size, "an emulated ring buffer")?;
        let base = map.ptr();
        // SAFETY: the mapping holds the two position pages, then the data twice.
        unsafe {
            Ok(RingBufMem {
                consumer: base,
                producer: base.add(page),
                data: base.add(fmt::POS_PAGES * page),
                size,
                _maps: vec![map],
            })
        }
    }

    /// `consumer_pos`: the reader's position.
    #[inline]
    pub fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: the first u64 of the mapped consumer page.
        unsafe { &*(self.consumer as *const AtomicU64) }
    }

    /// `producer_pos`: the writer's position (read-only in a live mapping).
    #[inline]
    pub fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: the first u64 of the mapped producer page.
        unsafe { &*(self.producer as *const AtomicU64) }
    }

    /// The data area, mapped twice in a row: records never wrap.
    #[inline]
    pub fn area(&self) -> Area {
        // SAFETY: 2 * size bytes are mapped at `data` for as long as self lives.
        unsafe { Area::new(self.data, self.size, 2 * self.size) }
    }

    #[inline]
    pub fn size(&self) -> usize {
        self.size
    }

    /// Reserved or committed bytes not yet consumed.
    #[inline]
    pub fn used(&self) -> u64 {
        let prod = self.producer_pos().load(Ordering::Acquire);
        prod.wrapping_sub(self.consumer_pos().load(Ordering::Acquire))
    }

    /// `ringbuf_avail_data_sz() > 0`: what the ring's poll reports.
    #[inline]
    pub fn has_data(&self) -> bool {
        self.used() > 0
    }
}

impl RingPending for RingBufMem {
    #[inline]
    fn has_data(&self) -> bool {
        RingBufMem::has_data(self)
    }
}

struct Lost {
    counter: LostCounter,
    seen: u64,
    /// Read the counter at most this often (it is a map lookup live).
    every: Duration,
    at: Instant,
}

/// Reader of one BPF ring buffer, live or emulated.
pub struct RingBufReader {
    mem: Arc<RingBufMem>,
    /// The map fd (live); closed after the mappings are gone.
    _fd: Option<OwnedFd>,
    waiter: Waiter,
    ready: Vec<usize>,
    wakeup: RingBufWakeup,
    lost: Option<Lost>,
    stop: Stop,
    /// The last drain stopped at `max`: drain again without waiting.
    due: bool,
}

impl RingBufReader {
    /// Maps the ring buffer behind `fd` (a `BPF_MAP_TYPE_RINGBUF` map of `size` bytes).
    pub fn open(fd: OwnedFd, size: usize, wakeup: RingBufWakeup) -> Result<Self, RingBufError> {
        let page = page_size();
        if size < page || !size.is_power_of_two() {
            return Err(RingBufError::BadSize { bytes: size, page });
        }
        let mem = RingBufMem::of_fd(&fd, size)?;
        let pollable = Pollable::Fd(fd.as_raw_fd());
        Self::new(Arc::new(mem), Some(fd), &pollable, wakeup)
    }

    /// The reader of an emulated ring buffer: `mem` is shared with its writer,
    /// `pollable` is its slot in the emulated poll set, and `dropped` reads the
    /// writer's count of failed outputs (checked at every read).
    pub fn emulated(
        mem: Arc<RingBufMem>,
        pollable: &Pollable,
        wakeup: RingBufWakeup,
        dropped: LostCounter,
    ) -> Result<Self, RingBufError> {
        let mut r = Self::new(mem, None, pollable, wakeup)?;
        r.lost = Some(Lost {
            counter: dropped,
            seen: 0,
            every: Duration::ZERO,
            at: Instant::now(),
        });
        if let Pollable::Emulated { set, .. } = pollable {
            r.stop = Stop::on(set.closed());
        }
        Ok(r)
    }

    fn new(
        mem: Arc<RingBufMem>,
        fd: Option<OwnedFd>,
        pollable: &Pollable,
        wakeup: RingBufWakeup,
    ) -> Result<Self, RingBufError> {
        if let RingBufWakeup::NoWakeup { poll } = wakeup {
            if poll.is_zero() {
                return Err(RingBufError::ZeroPoll);
            }
        }
        Ok(RingBufReader {
            mem,
            _fd: fd,
            waiter: Waiter::new([pollable]),
            ready: Vec::with_capacity(1),
            wakeup,
            lost: None,
            stop: Stop::default(),
            due: false,
        })
    }

    /// Emit [`RecordRef::Lost`] from increases of this counter (read at most every 10 ms).
    pub fn with_lost_counter(mut self, mut counter: LostCounter) -> Self {
        let seen = counter();
        self.lost = Some(Lost {
            counter,
            seen,
            every: Duration::from_millis(10),
            at: Instant::now(),
        });
        self
    }

    /// After `stop` is set, a read that finds the ring empty returns [`Batch::Closed`].
    pub fn set_stop(&mut self, stop: Arc<AtomicBool>) {
        self.stop = Stop::on(stop);
    }

    /// Hands up to `max` committed records to `f`, re-reading `producer_pos`
    /// until nothing new has arrived, as libbpf's `ringbuf_process_ring` does.
    /// Stops at a record still BUSY (reserved, not committed), keeping order;
    /// skips discarded ones.
    ///
    /// Unlike libbpf, which stores `consumer_pos` after every record, this
    /// publishes it every [`PUBLISH_BYTES`] and once before returning. The
    /// kernel's adaptive wakeup fires on a commit that finds `consumer_pos`
    /// equal to the new record's position, that is, whenever the reader has
    /// caught up; with a store per record, a reader that keeps pace while it
    /// is still draining makes the kernel queue a wakeup for nearly every
    /// record, each one paid on the traced CPU (docs/tuning.md, "Wakeup
    /// policy"). The last store comes before the caller's next wait, whose
    /// poll re-checks for data, so no wakeup is lost.
    pub fn drain(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<usize, SourceError> {
        let mem = &*self.mem;
        let area = mem.area();
        let mut cons = mem.consumer_pos().load(Ordering::Relaxed);
        // Every record takes a multiple of 8 bytes, so an aligned position stays aligned.
        if !cons.is_multiple_of(8) {
            return Err(SourceError::Corrupt {
                ring: 0,
                offset: cons,
                what: super::format::FormatError::Misaligned,
            });
        }
        let mut n = 0;
        let mut published = cons;
        // Releases the space read so far to the writer.
        let publish = |cons: u64| mem.consumer_pos().store(cons, Ordering::Release);
        loop {
            let mut got_new_data = false;
            // Pairs with the writer's store-release of producer_pos.
            let prod = mem.producer_pos().load(Ordering::Acquire);
            while cons < prod {
                if n >= max {
                    publish(cons);
                    return Ok(n);
                }
                // Acquire pairs with the commit's xchg: the sample bytes are
                // visible once the header says committed.
                let word = LenWord::decode(area.atomic_u32(cons).load(Ordering::Acquire));
                if word.busy {
                    publish(cons);
                    return Ok(n);
                }
                got_new_data = true;
                let step = match word.checked_record_len((prod - cons).min(area.size() as u64)) {
                    Ok(step) => step,
                    Err(what) => {
                        // The good records before it are released all the same.
                        publish(cons);
                        return Err(SourceError::Corrupt {
                            ring: 0,
                            offset: cons,
                            what,
                        });
                    }
                };
                if !word.discard {
                    // SAFETY: a committed record inside [cons, prod); the area
                    // is mirrored and len < size, so it is contiguous.
                    let data =
                        unsafe { area.slice(cons + fmt::HEADER_LEN as u64, word.len as usize) }
                            .unwrap_or_default();
                    f(RecordRef::Sample {
                        ring: 0,
                        origin_ns: origin_of(data),
                        data,
                    });
                    n += 1;
                }
                cons += step as u64;
                if cons - published >= PUBLISH_BYTES {
                    publish(cons);
                    published = cons;
                }
            }
            if !got_new_data {
                publish(cons);
                return Ok(n);
            }
        }
    }

    /// A [`RecordRef::Lost`] for drops counted since the last one, if the
    /// counter is due to be read (or `force`). Returns the records emitted.
    fn report_lost(&mut self, force: bool, f: &mut dyn FnMut(RecordRef<'_>)) -> usize {
        let Some(l) = self.lost.as_mut() else {
            return 0;
        };
        if !(force || l.every.is_zero() || l.at.elapsed() >= l.every) {
            return 0;
        }
        if !l.every.is_zero() {
            l.at = Instant::now();
        }
        let now = (l.counter)();
        if now <= l.seen {
            return 0;
        }
        f(RecordRef::Lost {
            ring: 0,
            count: now - l.seen,
        });
        l.seen = now;
        1
    }
}

impl RecordSource for RingBufReader {
    fn rings(&self) -> u32 {
        1
    }

    fn read_batch(
        &mut self,
        max: usize,
        timeout: Duration,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<Batch, SourceError> {
        let max = max.max(1);
        loop {
            if self.stop.is_set() {
                let n = self.drain(max, f)?;
                // The final lost count before closing, so nothing is unaccounted for.
                let n = n + self.report_lost(n == 0, f);
                return Ok(if n == 0 {
                    Batch::Closed
                } else {
                    Batch::Records(n)
                });
            }
            let n = if self.due {
                self.drain(max, f)?
            } else {
                match self.wakeup {
                    RingBufWakeup::NoWakeup { poll } => match self.drain(max, f)? {
                        0 => {
                            self.waiter.pause(poll.min(timeout));
                            self.drain(max, f)?
                        }
                        n => n,
                    },
                    RingBufWakeup::Adaptive | RingBufWakeup::Forced => {
                        self.ready.clear();
                        self.waiter.wait(timeout, &mut self.ready)?;
                        if self.ready.is_empty() {
                            0
                        } else {
                            if let Some(pause) = self.wakeup.gather() {
                                self.waiter.pause(pause);
                            }
                            self.drain(max, f)?
                        }
                    }
                }
            };
            self.due = n >= max;
            let n = n + self.report_lost(false, f);
            if n == 0 && self.stop.is_set() {
                continue;
            }
            return Ok(if n == 0 {
                Batch::Idle
            } else {
                Batch::Records(n)
            });
        }
    }
}

impl ShardedSource for RingBufReader {
    fn into_shards(self: Box<Self>) -> Vec<Box<dyn RecordSource>> {
        vec![self]
    }
}

#[cfg(test)]
mod tests {
    //! The shared drain and reads over fake memory with the kernel's layout.
    use super::*;
    use crate::ring::format::FormatError;
    use crate::ring::test_support::{bytes, Got};
    use crate::ring::wait::{EmulatedPoll, PollRule};
    use proptest::prelude::*;

    struct Fake {
        mem: Arc<RingBufMem>,
        poll: Arc<EmulatedPoll>,
        dropped: Arc<AtomicU64>,
        prod: u64,
    }

    impl Fake {
        fn new(size: usize, wakeup: RingBufWakeup) -> (Fake, RingBufReader) {
            let mem = Arc::new(RingBufMem::emulated(size).unwrap());
            let poll = EmulatedPoll::new(vec![PollRule::RingBuf(mem.clone())]);
            let dropped = Arc::new(AtomicU64::new(0));
            let d = dropped.clone();
            let r = RingBufReader::emulated(
                mem.clone(),
                &poll.pollable(0),
                wakeup,
                Box::new(move || d.load(Ordering::Relaxed)),
            )
            .unwrap();
            let fake = Fake {
                mem,
                poll,
                dropped,
                prod: 0,
            };
            (fake, r)
        }

        /// Writes a record with `word`'s flags and `data`, publishes it, and
        /// returns its position.
        fn put(&mut self, data: &[u8], busy: bool, discard: bool) -> u64 {
            let pos = self.prod;
            let area = self.mem.area();
            let word = LenWord {
                len: data.len() as u32,
                busy,
                discard,
            };
            // SAFETY: single-threaded test, past producer_pos.
            unsafe { area.write(pos + fmt::HEADER_LEN as u64, data) };
            area.atomic_u32(pos).store(word.encode(), Ordering::Release);
            self.prod += fmt::record_len(data.len()) as u64;
            self.mem.producer_pos().store(self.prod, Ordering::Release);
            pos
        }
    }

    fn read(r: &mut RingBufReader, max: usize, timeout: Duration) -> (Batch, Vec<Got>) {
        let mut out = Vec::new();
        let b = r
            .read_batch(max, timeout, &mut |rec| out.push(Got::of(rec)))
            .unwrap();
        (b, out)
    }

    #[test]
    fn a_record_across_the_end_is_handed_out_in_place() {
        let (mut fake, mut r) = Fake::new(4096, RingBufWakeup::Adaptive);
        // Advance both positions to 4080, then write 40 bytes of data that
        // cross the end of the area.
        fake.prod = 4080;
        fake.mem.consumer_pos().store(4080, Ordering::Relaxed);
        let d = bytes(3, 40);
        fake.put(&d, false, false);
        let mut ptrs = Vec::new();
        let n = r
            .drain(10, &mut |rec| {
                if let RecordRef::Sample { data, .. } = rec {
                    assert_eq!(data, &d[..]);
                    ptrs.push(data.as_ptr() as usize);
                }
            })
            .unwrap();
        assert_eq!(n, 1);
        // In place: right after the header, in the second image of the data.
        let data = fake.mem.area();
        // SAFETY: reading a pointer only.
        let header = unsafe { data.slice(4080, 8) }.unwrap().as_ptr() as usize;
        assert_eq!(ptrs, vec![header + 8]);
        assert_eq!(fake.mem.used(), 0);
    }

    #[test]
    fn busy_stops_the_reader_and_discarded_records_are_skipped() {
        let (mut fake, mut r) = Fake::new(4096, RingBufWakeup::Adaptive);
        let a = fake.put(&bytes(1, 16), true, false);
        fake.put(&bytes(2, 16), false, false);
        assert_eq!(r.drain(10, &mut |_| {}).unwrap(), 0);
        assert_eq!(fake.mem.consumer_pos().load(Ordering::Relaxed), 0);
        // Committed as discarded: skipped, its space released.
        let area = fake.mem.area();
        area.atomic_u32(a).store(
            LenWord {
                len: 16,
                busy: false,
                discard: true,
            }
            .encode(),
            Ordering::Release,
        );
        let mut got = Vec::new();
        r.drain(10, &mut |rec| {
            if let RecordRef::Sample { data, .. } = rec {
                got.push(data.to_vec())
            }
        })
        .unwrap();
        assert_eq!(got, vec![bytes(2, 16)]);
        assert_eq!(fake.mem.used(), 0);
    }

    #[test]
    fn a_record_past_the_producer_is_a_corrupt_error_naming_the_offset() {
        let (mut fake, mut r) = Fake::new(4096, RingBufWakeup::Adaptive);
        fake.put(&bytes(1, 8), false, false);
        let bad = fake.put(&bytes(2, 8), false, false);
        // Claim 100 bytes where only 16 are published.
        fake.mem
            .area()
            .atomic_u32(bad)
            .store(100, Ordering::Release);
        let mut seen = 0;
        let err = r.drain(10, &mut |_| seen += 1).unwrap_err();
        assert_eq!(seen, 1);
        match err {
            SourceError::Corrupt { ring, offset, what } => {
                assert_eq!((ring, offset), (0, 16));
                assert_eq!(
                    what,
                    FormatError::PastProducer {
                        len: 100,
                        record: 112,
                        pending: 16
                    }
                );
            }
            e => panic!("{e}"),
        }
        // The good record was released.
        assert_eq!(fake.mem.consumer_pos().load(Ordering::Relaxed), 16);
    }

    #[test]
    fn a_drain_releases_space_every_publish_bytes_and_once_at_the_end() {
        // 1 MiB holds 70 records of 4 KiB: past one PUBLISH_BYTES, short of two.
        let (mut fake, mut r) = Fake::new(1 << 20, RingBufWakeup::Adaptive);
        let rec = fmt::record_len(4096) as u64;
        for i in 0..70u8 {
            fake.put(&bytes(i, 4096), false, false);
        }
        let mem = fake.mem.clone();
        let mut seen = Vec::new();
        let n = r
            .drain(usize::MAX, &mut |_| {
                seen.push(mem.consumer_pos().load(Ordering::Relaxed))
            })
            .unwrap();
        assert_eq!(n, 70);
        // The first store follows the record that crosses PUBLISH_BYTES.
        let first = PUBLISH_BYTES.div_ceil(rec) as usize;
        assert!(seen[..first].iter().all(|&c| c == 0), "{seen:?}");
        assert!(
            seen[first..].iter().all(|&c| c == first as u64 * rec),
            "{seen:?}"
        );
        assert_eq!(fake.mem.consumer_pos().load(Ordering::Relaxed), 70 * rec);
    }

    #[test]
    fn reads_report_drops_in_band_and_close_after_the_last() {
        let (mut fake, mut r) = Fake::new(4096, RingBufWakeup::Adaptive);
        fake.put(&bytes(1, 8), false, false);
        fake.poll.wake(0);
        fake.dropped.store(3, Ordering::Relaxed);
        let (b, got) = read(&mut r, 10, Duration::ZERO);
        assert_eq!(b, Batch::Records(2));
        assert_eq!(got, vec![Got::Sample(bytes(1, 8)), Got::Lost(3)]);
        // Nothing new: the timeout passes.
        assert_eq!(read(&mut r, 10, Duration::ZERO), (Batch::Idle, vec![]));
        // Drops after the last record are reported before closing.
        fake.dropped.store(5, Ordering::Relaxed);
        fake.poll.close_writer();
        assert_eq!(
            read(&mut r, 10, Duration::ZERO),
            (Batch::Records(1), vec![Got::Lost(2)])
        );
        assert_eq!(read(&mut r, 10, Duration::ZERO).0, Batch::Closed);
    }

    #[test]
    fn an_adaptive_reader_lets_records_gather_before_it_drains() {
        let (mut fake, mut r) = Fake::new(4096, RingBufWakeup::Adaptive);
        fake.put(&bytes(1, 8), false, false);
        fake.poll.wake(0);
        let t = Instant::now();
        assert_eq!(read(&mut r, 10, Duration::ZERO).0, Batch::Records(1));
        assert!(t.elapsed() >= ADAPTIVE_GATHER, "{:?}", t.elapsed());
    }

    #[test]
    fn level_triggered_poll_reports_data_left_without_a_wakeup() {
        let (mut fake, mut r) = Fake::new(4096, RingBufWakeup::Adaptive);
        fake.put(&bytes(1, 8), false, false);
        fake.poll.wake(0);
        assert_eq!(read(&mut r, 10, Duration::ZERO).0, Batch::Records(1));
        // The adaptive writer wakes only a reader that has caught up; a record
        // that lands while the ring is still listed is reported by the
        // level-triggered re-poll without a wakeup.
        fake.put(&bytes(2, 8), false, false);
        assert_eq!(read(&mut r, 10, Duration::ZERO).0, Batch::Records(1));
        // Once a wait found the ring empty, only a wakeup lists it again.
        assert_eq!(read(&mut r, 10, Duration::ZERO).0, Batch::Idle);
        fake.put(&bytes(3, 8), false, false);
        assert_eq!(read(&mut r, 10, Duration::ZERO).0, Batch::Idle);
        fake.poll.wake(0);
        assert_eq!(read(&mut r, 10, Duration::ZERO).0, Batch::Records(1));
    }

    proptest! {
        /// Whatever the memory holds, a drain hands out records or reports
        /// corruption: it never panics or reads outside the ring.
        #[test]
        fn garbage_never_panics(
            junk in prop::collection::vec(any::<u8>(), 0..4096),
            cons in 0u64..8192,
            pending in 0u64..=4096,
        ) {
            let (fake, mut r) = Fake::new(4096, RingBufWakeup::Adaptive);
            // SAFETY: single-threaded test.
            unsafe { fake.mem.area().write(0, &junk) };
            fake.mem.consumer_pos().store(cons, Ordering::Relaxed);
            fake.mem.producer_pos().store(cons + pending, Ordering::Relaxed);
            let res = r.drain(usize::MAX, &mut |rec| {
                if let RecordRef::Sample { data, .. } = rec {
                    assert!(data.len() <= 4096);
                }
            });
            if let Err(e) = res {
                let corrupt = matches!(e, SourceError::Corrupt { ring: 0, .. });
                prop_assert!(corrupt, "{}", e);
            }
        }
    }
}
