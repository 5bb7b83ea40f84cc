//! The perf ring reader, one code path for the kernel's rings and emulated
//! ones: [`PerfRing::drain`] walks the records between `data_tail` and
//! `data_head` of memory laid out like the kernel's mmap ([`PerfMem`]), and
//! [`PerfRings`] drains only the rings its [`Waiter`] reports ready.
//!
//! # Use
//! ```ignore
//! let opts = PerfRingOptions::new(8 << 20)?.watermark(4 << 20)?;
//! let mut rings = PerfRings::open(&opts, &online_cpus)?;   // one PerfRing per CPU
//! rings.install(&map_fd, "events")?;                        // fds into the perf event array
//! rings.read_batch(4096, Duration::from_millis(10), &mut |rec| { /* RecordRef */ })?;
//! ```
//! Reads are zero-copy: a record that does not wrap around the end of the
//! data area is handed out in place; a wrapped one is copied into a buffer the
//! ring reuses. Lost samples arrive in the stream as [`RecordRef::Lost`].
//!
//! # When a ring is read
//! As libbpf's `perf_buffer__poll`: wait, then drain the rings the wait
//! reported (each wakeup is reported once: `perf_poll` clears `rb->poll`). A
//! ring whose drain was cut short by `max` is drained again without waiting,
//! since its wakeup was already spent. A wait that times out drains nothing:
//! records below the wakeup threshold stay in the ring until the next wakeup,
//! or until the reader is stopped, when every ring is drained to the end.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::format::perf::{self as fmt, Header, Record};
use super::format::{origin_of, FormatError};
use super::mem::{page_size, Area, Mapping, MemError};
use super::perf_event::open_output_event;
pub use super::perf_event::{PerfError, PerfRingOptions, PerfWakeup};
use super::wait::{EmulatedPoll, Pollable, Stop, Waiter};
use crate::record::{Batch, RecordRef, RecordSource, ShardedSource, SourceError};

/// A perf ring's memory as the kernel maps it: the metadata page (with
/// `data_head` and `data_tail`), then the data area.
pub struct PerfMem {
    map: Mapping,
    page: usize,
    size: usize,
}

impl PerfMem {
    /// The kernel's ring behind a perf event fd.
    fn of_fd(fd: &OwnedFd, size: usize) -> Result<Self, MemError> {
        let page = page_size();
        let map = Mapping::of_fd(fd.as_fd(), page + size, 0, true, "a perf ring")?;
        Ok(PerfMem { map, page, size })
    }

    /// Zeroed memory with the kernel's layout, for an emulated ring of `size`
    /// data bytes (a power of two, at least a page).
    pub fn emulated(size: usize) -> Result<Self, MemError> {
        let page = page_size();
        let map = Mapping::anonymous(page + size, "an emulated perf ring")?;
        Ok(PerfMem { map, page, size })
    }

    /// `user_page->data_head`: the writer's position.
    #[inline]
    pub fn data_head(&self) -> &AtomicU64 {
        self.map.atomic_u64(fmt::DATA_HEAD_OFF)
    }

    /// `user_page->data_tail`: the reader's position.
    #[inline]
    pub fn data_tail(&self) -> &AtomicU64 {
        self.map.atomic_u64(fmt::DATA_TAIL_OFF)
    }

    /// The data area (mapped once: records may wrap).
    #[inline]
    pub fn area(&self) -> Area {
        // SAFETY: the data area follows the metadata page inside `map`, which
        // lives as long as self.
        unsafe { Area::new(self.map.ptr().add(self.page), self.size, self.size) }
    }

    /// Data area bytes.
    #[inline]
    pub fn size(&self) -> usize {
        self.size
    }

    /// Bytes written and not yet read.
    #[inline]
    pub fn used(&self) -> u64 {
        let head = self.data_head().load(Ordering::Acquire);
        head.wrapping_sub(self.data_tail().load(Ordering::Acquire))
    }

    /// Writes a sample record at `data_head` if it fits in the free space, for
    /// benchmarks and tests of the reader: no lost records, no wakeups (the
    /// kernel's writer side is emulated in `harness::replay`).
    pub fn append_sample(&self, raw: &[u8]) -> bool {
        let Some(prefix) = fmt::sample_prefix(raw.len()) else {
            return false;
        };
        let len = fmt::sample_record_len(raw.len()) as u64;
        let head = self.data_head().load(Ordering::Relaxed);
        if self.used() + len > self.size as u64 {
            return false;
        }
        let area = self.area();
        // SAFETY: [head, head + len) is free: the reader is behind `used`.
        unsafe {
            area.write(head, &prefix);
            area.write(head + fmt::SAMPLE_OVERHEAD as u64, raw);
        }
        self.data_head().store(head + len, Ordering::Release);
        true
    }
}

/// One CPU's perf ring, live or emulated, and its reader state.
pub struct PerfRing {
    cpu: u32,
    mem: Arc<PerfMem>,
    pollable: Pollable,
    /// The perf event (live rings); closed after the mapping is gone.
    _fd: Option<OwnedFd>,
    /// Reused for records that wrap around the end of the data area.
    wrap_buf: Vec<u8>,
}

impl PerfRing {
    /// Opens, maps and enables the BPF output event for `cpu`.
    pub fn open(opts: &PerfRingOptions, cpu: u32) -> Result<Self, PerfError> {
        let fd = open_output_event(opts, cpu)?;
        let mem = PerfMem::of_fd(&fd, opts.data_bytes)
            .map_err(|source| PerfError::Mmap { cpu, source })?;
        super::perf_event::enable(&fd, cpu)?;
        Ok(PerfRing {
            cpu,
            mem: Arc::new(mem),
            pollable: Pollable::Fd(fd.as_raw_fd()),
            _fd: Some(fd),
            wrap_buf: Vec::with_capacity(8192),
        })
    }

    /// The reader of an emulated ring: `mem` is shared with its writer, and
    /// `pollable` is its slot in the emulated poll set.
    pub fn emulated(cpu: u32, mem: Arc<PerfMem>, pollable: Pollable) -> Self {
        PerfRing {
            cpu,
            mem,
            pollable,
            _fd: None,
            wrap_buf: Vec::with_capacity(8192),
        }
    }

    pub fn cpu(&self) -> u32 {
        self.cpu
    }

    /// The ring's memory, shared: its `data_head` and `data_tail` tell how
    /// much it holds ([`PerfMem::used`]) while a reader drains it elsewhere.
    pub fn mem(&self) -> &Arc<PerfMem> {
        &self.mem
    }

    /// The perf event fd (-1 for an emulated ring).
    pub fn fd(&self) -> i32 {
        match self.pollable {
            Pollable::Fd(fd) => fd,
            Pollable::Emulated { .. } => -1,
        }
    }

    /// Hands up to `max` records to `f` in ring order, then releases their
    /// space (one `data_tail` store, and none when nothing was read, so an
    /// idle ring's tail line is not dirtied for the writer). Returns how many
    /// records were handed out.
    pub fn drain(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<usize, SourceError> {
        let mem = &*self.mem;
        let area = mem.area();
        let ring = self.cpu;
        // Acquire pairs with the writer's store-release of data_head: every
        // byte before head is visible once head is.
        let head = mem.data_head().load(Ordering::Acquire);
        let mut tail = mem.data_tail().load(Ordering::Relaxed);
        let corrupt = |offset: u64, what| SourceError::Corrupt { ring, offset, what };
        // Every record's size is a multiple of 8, so an aligned tail stays aligned.
        if tail != head && !tail.is_multiple_of(fmt::RECORD_ALIGN as u64) {
            return Err(corrupt(tail, FormatError::Misaligned));
        }
        let mut n = 0;
        let mut result = Ok(());
        while tail != head && n < max {
            let pending = head.wrapping_sub(tail);
            if pending < fmt::HEADER_LEN as u64 {
                result = Err(corrupt(tail, FormatError::ShortHeader { pending }));
                break;
            }
            let mut hb = [0u8; fmt::HEADER_LEN];
            // SAFETY: [tail, head) is published; an 8-aligned header never
            // straddles the end of the area.
            unsafe { area.read(tail, &mut hb) };
            let header = Header::decode(hb);
            let size = match header.checked_size(pending) {
                Ok(size) => size,
                Err(e) => {
                    result = Err(corrupt(tail, e));
                    break;
                }
            };
            // SAFETY: the record is published, and the writer does not reuse
            // it until data_tail moves past it.
            let rec: &[u8] = match unsafe { area.slice(tail, size) } {
                Some(r) => r,
                None => {
                    self.wrap_buf.resize(size, 0);
                    // SAFETY: as above.
                    unsafe { area.read(tail, &mut self.wrap_buf) };
                    &self.wrap_buf
                }
            };
            match fmt::parse(header, rec) {
                Ok(Record::Sample(data)) => f(RecordRef::Sample {
                    ring,
                    origin_ns: origin_of(data),
                    data,
                }),
                Ok(Record::Lost(count)) => f(RecordRef::Lost { ring, count }),
                Ok(Record::Other { .. }) => {}
                Err(e) => {
                    result = Err(corrupt(tail, e));
                    break;
                }
            }
            tail = tail.wrapping_add(size as u64);
            n += 1;
        }
        if n > 0 {
            // Release what was handed out (also before reporting a corrupt
            // record after it). Release: our reads of the records happen
            // before the writer may reuse their space.
            fence(Ordering::Release);
            mem.data_tail().store(tail, Ordering::Release);
        }
        result.map(|()| n)
    }
}

/// A set of perf rings (all CPUs, or one per shard) behind one
/// [`RecordSource`], drained round-robin among the ready ones.
pub struct PerfRings {
    rings: Vec<PerfRing>,
    waiter: Waiter,
    /// Rings to drain without waiting: reported ready and not yet seen empty.
    due: Vec<bool>,
    /// Scratch for the waiter's report.
    ready: Vec<usize>,
    next: usize,
    stop: Stop,
}

impl PerfRings {
    /// Opens one live ring per CPU.
    pub fn open(opts: &PerfRingOptions, cpus: &[u32]) -> Result<Self, PerfError> {
        let rings = cpus
            .iter()
            .map(|&c| PerfRing::open(opts, c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_rings(rings))
    }

    /// The reader side of emulated rings that share the poll set `poll`; the
    /// set's closing is the reader's stop.
    pub fn emulated(rings: Vec<PerfRing>, poll: &EmulatedPoll) -> Self {
        let mut set = Self::from_rings(rings);
        set.stop = Stop::on(poll.closed());
        set
    }

    fn from_rings(rings: Vec<PerfRing>) -> Self {
        PerfRings {
            waiter: Waiter::new(rings.iter().map(|r| &r.pollable)),
            due: vec![false; rings.len()],
            ready: Vec::with_capacity(rings.len()),
            rings,
            next: 0,
            stop: Stop::default(),
        }
    }

    /// After `stop` is set, reads drain every ring without waiting, and a read
    /// that finds every ring empty returns [`Batch::Closed`].
    pub fn set_stop(&mut self, stop: Arc<AtomicBool>) {
        self.stop = Stop::on(stop);
    }

    pub fn rings(&self) -> &[PerfRing] {
        &self.rings
    }

    /// The rings alone, to drain without waiting (benchmarks, tests).
    pub fn into_rings(self) -> Vec<PerfRing> {
        self.rings
    }

    /// Stores each ring's fd at its CPU's index of a perf event array map.
    pub fn install(&self, map: &impl AsRawFd, map_name: &str) -> Result<(), PerfError> {
        for r in &self.rings {
            crate::sys::map_update_u32(map.as_raw_fd(), r.cpu, r.fd() as u32).map_err(
                |source| PerfError::MapUpdate {
                    map: map_name.to_string(),
                    cpu: r.cpu,
                    source,
                },
            )?;
        }
        Ok(())
    }

    /// Drains the rings marked in `due` (all of them when `all`), round-robin
    /// from `next`, up to `max` records. A ring that gave fewer records than it
    /// was allowed is empty and no longer due.
    fn drain_due(
        &mut self,
        all: bool,
        max: usize,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<usize, SourceError> {
        let n = self.rings.len();
        let mut total = 0;
        for k in 0..n {
            let i = (self.next + k) % n;
            if !(all || self.due[i]) {
                continue;
            }
            if total >= max {
                // Not reached this time: it stays due, so its wakeup is not lost.
                self.due[i] = true;
                continue;
            }
            let budget = max - total;
            let got = self.rings[i].drain(budget, f)?;
            total += got;
            self.due[i] = got >= budget;
        }
        self.next = (self.next + 1) % n.max(1);
        Ok(total)
    }
}

impl RecordSource for PerfRings {
    fn rings(&self) -> u32 {
        self.rings.len() as u32
    }

    fn read_batch(
        &mut self,
        max: usize,
        timeout: Duration,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<Batch, SourceError> {
        let max = max.max(1);
        let mut started: Option<Instant> = None;
        loop {
            if self.stop.is_set() {
                let n = self.drain_due(true, max, f)?;
                return Ok(if n == 0 {
                    Batch::Closed
                } else {
                    Batch::Records(n)
                });
            }
            if !self.due.iter().any(|&d| d) {
                let left = match started {
                    None => {
                        started = Some(Instant::now());
                        timeout
                    }
                    Some(s) => timeout.saturating_sub(s.elapsed()),
                };
                self.ready.clear();
                self.waiter.wait(left, &mut self.ready)?;
                for &i in &self.ready {
                    self.due[i] = true;
                }
                if self.ready.is_empty() {
                    if self.stop.is_set() {
                        continue;
                    }
                    return Ok(Batch::Idle);
                }
            }
            let n = self.drain_due(false, max, f)?;
            if n > 0 {
                return Ok(Batch::Records(n));
            }
            // Every reported ring was already empty: wait out the rest.
            if started.is_some_and(|s| s.elapsed() >= timeout) {
                return Ok(Batch::Idle);
            }
        }
    }
}

impl ShardedSource for PerfRings {
    fn into_shards(self: Box<Self>) -> Vec<Box<dyn RecordSource>> {
        let stop = self.stop.clone();
        self.rings
            .into_iter()
            .map(|r| {
                let mut one = PerfRings::from_rings(vec![r]);
                one.stop = stop.clone();
                Box::new(one) as Box<dyn RecordSource>
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    //! The shared drain over fake memory with the kernel's layout, as aya's
    //! `perf_buffer.rs` and cilium/ebpf's `ring_test.go` test theirs.
    use super::*;
    use crate::ring::format::perf::{lost_record, Header, PERF_RECORD_LOST, PERF_RECORD_SAMPLE};
    use crate::ring::test_support::{bytes, Got};
    use crate::ring::wait::PollRule;
    use proptest::prelude::*;

    const CPU: u32 = 3;

    fn ring(size: usize) -> (Arc<PerfMem>, PerfRing) {
        let mem = Arc::new(PerfMem::emulated(size).unwrap());
        let poll = EmulatedPoll::new(vec![PollRule::Perf]);
        let ring = PerfRing::emulated(CPU, mem.clone(), poll.pollable(0));
        (mem, ring)
    }

    /// Writes raw bytes at data_head and publishes them.
    fn put(mem: &PerfMem, bytes: &[u8]) {
        let head = mem.data_head().load(Ordering::Relaxed);
        // SAFETY: single-threaded test; the bytes are past data_head.
        unsafe { mem.area().write(head, bytes) };
        mem.data_head()
            .store(head + bytes.len() as u64, Ordering::Release);
    }

    fn drain(r: &mut PerfRing, max: usize) -> (Result<usize, SourceError>, Vec<Got>) {
        let mut out = Vec::new();
        let res = r.drain(max, &mut |rec| {
            assert_eq!(rec.ring(), CPU);
            out.push(Got::of(rec))
        });
        (res, out)
    }

    #[test]
    fn records_that_wrap_are_copied_whole_and_in_order() {
        let (mem, mut r) = ring(4096);
        // 60 records of 64 bytes (52-byte samples), then read them: tail at 3840.
        for i in 0..60 {
            assert!(mem.append_sample(&bytes(i, 52)));
        }
        assert_eq!(drain(&mut r, 100).0.unwrap(), 60);
        // A 1000-byte sample (1012 -> 1016-byte record) runs from 3840 past 4096.
        let big = bytes(7, 1000);
        assert!(mem.append_sample(&big));
        assert!(mem.append_sample(&bytes(9, 4)));
        let (res, got) = drain(&mut r, 100);
        assert_eq!(res.unwrap(), 2);
        // raw_size(1000) = 1004: the 4 pad bytes are handed out too.
        let Got::Sample(d) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!((d.len(), &d[..1000]), (1004, &big[..]));
        assert_eq!(got[1], Got::Sample(bytes(9, 4)));
        assert_eq!(mem.used(), 0);
    }

    #[test]
    fn lost_and_other_records_are_decoded_or_skipped() {
        let (mem, mut r) = ring(4096);
        put(&mem, &lost_record(0x1000, 5));
        let throttle = Header {
            type_: 5,
            misc: 0,
            size: 24,
        };
        let mut t = throttle.encode().to_vec();
        t.resize(24, 0xee);
        put(&mem, &t);
        assert!(mem.append_sample(&bytes(1, 8)));
        let (res, got) = drain(&mut r, 100);
        // Three records consumed, two handed out.
        assert_eq!(res.unwrap(), 3);
        // An 8-byte sample has raw size 12: 4 pad bytes (zero in fresh memory).
        let padded = [bytes(1, 8), vec![0; 4]].concat();
        assert_eq!(got, vec![Got::Lost(5), Got::Sample(padded)]);
    }

    #[test]
    fn bad_records_are_corrupt_errors_naming_the_ring_and_offset() {
        let header = |type_, size: u16| Header {
            type_,
            misc: 0,
            size,
        };
        let mut sample_overrun = header(PERF_RECORD_SAMPLE, 16).encode().to_vec();
        sample_overrun.extend_from_slice(&100u32.to_ne_bytes());
        sample_overrun.resize(16, 0);
        let mut short_lost = header(PERF_RECORD_LOST, 16).encode().to_vec();
        short_lost.resize(16, 0);
        let cases: Vec<(Vec<u8>, FormatError)> = vec![
            (
                header(9, 0).encode().to_vec(),
                FormatError::BadSize {
                    type_: 9,
                    size: 0,
                    pending: 8,
                },
            ),
            (
                [header(9, 12).encode().to_vec(), vec![0; 8]].concat(),
                FormatError::BadSize {
                    type_: 9,
                    size: 12,
                    pending: 16,
                },
            ),
            (
                header(9, 64).encode().to_vec(),
                FormatError::BadSize {
                    type_: 9,
                    size: 64,
                    pending: 8,
                },
            ),
            (vec![1, 2, 3, 4], FormatError::ShortHeader { pending: 4 }),
            (
                sample_overrun,
                FormatError::RawOverrun { raw: 100, size: 16 },
            ),
            (short_lost, FormatError::ShortLost { size: 16 }),
        ];
        for (bad, want) in cases {
            let (mem, mut r) = ring(4096);
            // One good record first: it is handed out and released before the error.
            assert!(mem.append_sample(&bytes(2, 20)));
            put(&mem, &bad);
            let (res, got) = drain(&mut r, 100);
            assert_eq!(got, vec![Got::Sample(bytes(2, 20))]);
            match res {
                Err(SourceError::Corrupt { ring, offset, what }) => {
                    assert_eq!((ring, offset, &what), (CPU, 32, &want));
                    let msg = SourceError::Corrupt { ring, offset, what }.to_string();
                    assert!(msg.contains("ring 3, offset 32"), "{msg}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
            assert_eq!(mem.data_tail().load(Ordering::Relaxed), 32);
        }
        // A data_tail that is not 8-aligned.
        let (mem, mut r) = ring(4096);
        put(&mem, &[0; 16]);
        mem.data_tail().store(4, Ordering::Relaxed);
        assert!(matches!(
            drain(&mut r, 100).0,
            Err(SourceError::Corrupt {
                ring: CPU,
                offset: 4,
                what: FormatError::Misaligned
            })
        ));
    }

    #[test]
    fn a_read_stops_at_max_and_releases_only_what_it_read() {
        let (mem, mut r) = ring(4096);
        for i in 0..5 {
            assert!(mem.append_sample(&bytes(i, 52)));
        }
        assert_eq!(drain(&mut r, 2).0.unwrap(), 2);
        assert_eq!(mem.used(), 3 * 64);
        assert_eq!(drain(&mut r, 0).0.unwrap(), 0);
        assert_eq!(drain(&mut r, 10).0.unwrap(), 3);
    }

    proptest! {
        /// Whatever the memory holds, a drain hands out records or reports
        /// corruption: it never panics or reads outside the ring.
        #[test]
        fn garbage_never_panics(
            junk in prop::collection::vec(any::<u8>(), 0..4096),
            tail in 0u64..8192,
            pending in 0u64..4096,
        ) {
            let (mem, mut r) = ring(4096);
            // SAFETY: single-threaded test.
            unsafe { mem.area().write(0, &junk) };
            mem.data_tail().store(tail, Ordering::Relaxed);
            mem.data_head().store(tail + pending, Ordering::Relaxed);
            let mut seen = 0;
            let res = r.drain(usize::MAX, &mut |rec| {
                if let RecordRef::Sample { data, .. } = rec {
                    assert!(data.len() <= 4096);
                }
                seen += 1;
            });
            if let Ok(n) = res {
                prop_assert!(seen <= n);
                prop_assert_eq!(mem.used(), 0);
            }
        }
    }
}
