//! The per-CPU perf buffer reader, with the wakeup policy as a first-class knob.
//!
//! aya 0.13 opens perf buffers with `wakeup_events = 1`: the kernel wakes the
//! reader on every sample, and on these VMs that alone cut a traced loop from
//! 0.87 M to 0.11 M ops/s (docs/tuning.md). So dropbench opens the
//! `PERF_COUNT_SW_BPF_OUTPUT` events itself, with `wakeup_events = N` or a byte
//! watermark, mmaps them, and stores their fds in the program's
//! `BPF_MAP_TYPE_PERF_EVENT_ARRAY`.
//!
//! # Use
//! ```ignore
//! let opts = PerfRingOptions::new(8 << 20)?.watermark(4 << 20)?;
//! let mut rings = PerfRings::open(&opts, &online_cpus)?;   // one PerfRing per CPU
//! rings.install(&map_fd)?;                                  // fds into the perf event array
//! rings.read_batch(4096, Duration::from_millis(10), &mut |rec| { /* RecordRef */ })?;
//! ```
//! Minimum kernel: 4.4 (`PERF_COUNT_SW_BPF_OUTPUT`); the tracepoint probes need 4.7.
//! Reads are zero-copy: a record that does not wrap around the end of the data
//! area is handed out in place; a wrapped one is copied into a buffer the ring
//! reuses. Lost samples arrive in the stream as [`RecordRef::Lost`].

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::Duration;

use crate::record::{Batch, RecordRef, RecordSource, ShardedSource, SourceError};

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_BPF_OUTPUT: u64 = 10;
const PERF_SAMPLE_RAW: u64 = 1 << 10;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
/// `perf_event_attr.watermark`: bit 14 of the flags word.
const ATTR_FLAG_WATERMARK: u64 = 1 << 14;
/// `_IO('$', 0)`.
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;

pub const PERF_RECORD_LOST: u32 = 2;
pub const PERF_RECORD_SAMPLE: u32 = 9;

/// `struct perf_event_attr`, the PERF_ATTR_SIZE_VER0 (64-byte) prefix, which
/// is all a BPF output event needs. The kernel accepts any published size.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    /// `wakeup_events`, or `wakeup_watermark` when the watermark flag is set.
    wakeup: u32,
    bp_type: u32,
    config1: u64,
}
const _: () = assert!(std::mem::size_of::<PerfEventAttr>() == 64);

/// Offsets in `struct perf_event_mmap_page` (include/uapi/linux/perf_event.h).
const DATA_HEAD_OFF: usize = 1024;
const DATA_TAIL_OFF: usize = 1032;

/// Errors from opening or reading perf rings. Each carries the CPU.
#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    #[error("perf ring size {bytes} bytes is not a power-of-two multiple of the {page}-byte page")]
    BadSize { bytes: usize, page: usize },
    #[error("wakeup_events and watermark are both set; choose one wakeup policy")]
    ConflictingWakeup,
    #[error("wakeup_events must be at least 1")]
    ZeroWakeupEvents,
    #[error("watermark {watermark} bytes must be between 1 and the ring size {ring} bytes")]
    BadWatermark { watermark: usize, ring: usize },
    #[error("perf_event_open(PERF_COUNT_SW_BPF_OUTPUT) on cpu {cpu}: {source}")]
    Open { cpu: u32, source: io::Error },
    #[error("mmap of the {bytes}-byte perf ring on cpu {cpu}: {source}")]
    Mmap {
        cpu: u32,
        bytes: usize,
        source: io::Error,
    },
    #[error("enabling the perf event on cpu {cpu}: {source}")]
    Enable { cpu: u32, source: io::Error },
    #[error("storing the perf fd of cpu {cpu} in map {map}: {source}")]
    MapUpdate {
        map: String,
        cpu: u32,
        source: io::Error,
    },
}

/// When the kernel wakes the reader. Exactly one policy; the builder rejects both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerfWakeup {
    /// Wake after every N samples (aya's fixed default is N = 1).
    Events(u32),
    /// Wake when this many bytes are pending.
    Watermark(u32),
}

impl std::fmt::Display for PerfWakeup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PerfWakeup::Events(n) => write!(f, "events:{n}"),
            PerfWakeup::Watermark(b) => write!(f, "watermark:{b}"),
        }
    }
}

/// Options for the per-CPU perf rings.
#[derive(Debug, Clone)]
pub struct PerfRingOptions {
    /// Data area per CPU, bytes: a power-of-two number of pages.
    pub data_bytes: usize,
    wakeup_events: Option<u32>,
    watermark: Option<u32>,
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

impl PerfRingOptions {
    /// `data_bytes` per CPU must be 2^n pages (the kernel requires it).
    pub fn new(data_bytes: usize) -> Result<Self, PerfError> {
        let page = page_size();
        if data_bytes < page || !data_bytes.is_power_of_two() {
            return Err(PerfError::BadSize {
                bytes: data_bytes,
                page,
            });
        }
        Ok(PerfRingOptions {
            data_bytes,
            wakeup_events: None,
            watermark: None,
        })
    }
    pub fn wakeup_events(mut self, n: u32) -> Result<Self, PerfError> {
        if self.watermark.is_some() {
            return Err(PerfError::ConflictingWakeup);
        }
        if n == 0 {
            return Err(PerfError::ZeroWakeupEvents);
        }
        self.wakeup_events = Some(n);
        Ok(self)
    }
    pub fn watermark(mut self, bytes: u32) -> Result<Self, PerfError> {
        if self.wakeup_events.is_some() {
            return Err(PerfError::ConflictingWakeup);
        }
        if bytes == 0 || bytes as usize >= self.data_bytes {
            return Err(PerfError::BadWatermark {
                watermark: bytes as usize,
                ring: self.data_bytes,
            });
        }
        self.watermark = Some(bytes);
        Ok(self)
    }
    pub fn with_wakeup(self, w: PerfWakeup) -> Result<Self, PerfError> {
        match w {
            PerfWakeup::Events(n) => self.wakeup_events(n),
            PerfWakeup::Watermark(b) => self.watermark(b),
        }
    }
    /// The policy in force: an unset policy is one wakeup per sample, as the kernel defaults.
    pub fn wakeup(&self) -> PerfWakeup {
        match (self.wakeup_events, self.watermark) {
            (_, Some(b)) => PerfWakeup::Watermark(b),
            (Some(n), None) => PerfWakeup::Events(n),
            (None, None) => PerfWakeup::Events(1),
        }
    }
}

/// One CPU's perf ring: the event fd and its mmapped metadata page + data area.
pub struct PerfRing {
    cpu: u32,
    /// The perf event fd; `None` for a heap-backed ring (benchmarks, tests).
    fd: Option<OwnedFd>,
    /// Heap backing of a synthetic ring: metadata page + data area.
    heap: Option<Vec<u64>>,
    base: *mut u8,
    map_len: usize,
    data: *const u8,
    data_len: usize,
    /// Reused for records that wrap around the end of the data area.
    wrap_buf: Vec<u8>,
    /// Bytes pending at the most recent read, for high-water tracking.
    high_water: usize,
}

// SAFETY: the mapping is owned by this value and only touched through &mut self
// (the kernel is the only other writer, synchronised through data_head/data_tail).
unsafe impl Send for PerfRing {}

impl PerfRing {
    /// Opens and maps the BPF output event for `cpu`.
    pub fn open(opts: &PerfRingOptions, cpu: u32) -> Result<Self, PerfError> {
        let mut attr = PerfEventAttr {
            type_: PERF_TYPE_SOFTWARE,
            size: std::mem::size_of::<PerfEventAttr>() as u32,
            config: PERF_COUNT_SW_BPF_OUTPUT,
            sample_period: 1,
            sample_type: PERF_SAMPLE_RAW,
            ..Default::default()
        };
        match opts.wakeup() {
            PerfWakeup::Events(n) => attr.wakeup = n,
            PerfWakeup::Watermark(b) => {
                attr.flags |= ATTR_FLAG_WATERMARK;
                attr.wakeup = b;
            }
        }
        // SAFETY: attr is a valid perf_event_attr of the size it declares.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const PerfEventAttr,
                -1i32,
                cpu as i32,
                -1i32,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(PerfError::Open {
                cpu,
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: fd was just returned by the kernel and is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        let page = page_size();
        let map_len = page + opts.data_bytes;
        // SAFETY: mapping a perf fd with the length the kernel expects (1 + 2^n pages).
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(PerfError::Mmap {
                cpu,
                bytes: map_len,
                source: io::Error::last_os_error(),
            });
        }
        let base = base as *mut u8;
        // SAFETY: ioctl on our own perf fd.
        if unsafe { libc::ioctl(fd.as_raw_fd(), PERF_EVENT_IOC_ENABLE, 0) } < 0 {
            let source = io::Error::last_os_error();
            // SAFETY: unmapping what we mapped above.
            unsafe { libc::munmap(base as *mut libc::c_void, map_len) };
            return Err(PerfError::Enable { cpu, source });
        }
        Ok(PerfRing {
            cpu,
            fd: Some(fd),
            heap: None,
            base,
            map_len,
            // SAFETY: the data area starts one page after the metadata page.
            data: unsafe { base.add(page) },
            data_len: opts.data_bytes,
            wrap_buf: Vec::with_capacity(8192),
            high_water: 0,
        })
    }

    pub fn cpu(&self) -> u32 {
        self.cpu
    }
    /// The perf event fd (-1 for a heap-backed ring).
    pub fn fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    /// A ring in ordinary memory with the kernel's layout (a metadata page with
    /// data_head/data_tail, then `data_bytes` of data), for benchmarks and tests
    /// of the drain path. Fill it with [`PerfRing::push_sample`].
    pub fn heap(cpu: u32, data_bytes: usize) -> PerfRing {
        assert!(data_bytes.is_power_of_two() && data_bytes >= 4096);
        let page = page_size();
        let mut heap = vec![0u64; (page + data_bytes) / 8];
        let base = heap.as_mut_ptr() as *mut u8;
        PerfRing {
            cpu,
            fd: None,
            // SAFETY: the data area starts one page in; the Vec is never resized.
            data: unsafe { base.add(page) },
            heap: Some(heap),
            base,
            map_len: page + data_bytes,
            data_len: data_bytes,
            wrap_buf: Vec::with_capacity(8192),
            high_water: 0,
        }
    }

    /// Writes a PERF_RECORD_SAMPLE the way the kernel does (header, u32 size,
    /// raw bytes, padded to 8) into a heap-backed ring. Returns false, writing
    /// nothing, when it does not fit.
    pub fn push_sample(&mut self, raw: &[u8]) -> bool {
        assert!(self.heap.is_some(), "push_sample is for heap-backed rings");
        let size = (8 + 4 + raw.len() + 7) & !7;
        let head = self.head().load(Ordering::Relaxed);
        let tail = self.tail().load(Ordering::Acquire);
        if self.data_len - (head.wrapping_sub(tail) as usize) < size + 8 {
            return false;
        }
        let mut rec = Vec::with_capacity(size);
        rec.extend_from_slice(&PERF_RECORD_SAMPLE.to_ne_bytes());
        rec.extend_from_slice(&0u16.to_ne_bytes());
        rec.extend_from_slice(&(size as u16).to_ne_bytes());
        rec.extend_from_slice(&((size - 12) as u32).to_ne_bytes());
        rec.extend_from_slice(raw);
        rec.resize(size, 0);
        let mask = self.data_len - 1;
        let data = self.data as *mut u8;
        for (i, b) in rec.iter().enumerate() {
            // SAFETY: the index is masked into the data area.
            unsafe { *data.add((head as usize + i) & mask) = *b };
        }
        self.head().store(head + size as u64, Ordering::Release);
        true
    }
    /// Largest number of unread bytes seen at the start of a read.
    pub fn high_water(&self) -> usize {
        self.high_water
    }

    fn head(&self) -> &AtomicU64 {
        // SAFETY: data_head is an aligned u64 in the mapped metadata page.
        unsafe { &*(self.base.add(DATA_HEAD_OFF) as *const AtomicU64) }
    }
    fn tail(&self) -> &AtomicU64 {
        // SAFETY: data_tail is an aligned u64 in the mapped metadata page.
        unsafe { &*(self.base.add(DATA_TAIL_OFF) as *const AtomicU64) }
    }

    /// True when unread records are waiting.
    pub fn pending(&self) -> bool {
        self.head().load(Ordering::Acquire) != self.tail().load(Ordering::Relaxed)
    }

    /// Hands up to `max` records to `f`, then releases their space to the kernel.
    /// Returns how many records were delivered.
    pub fn drain(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<usize, SourceError> {
        // Acquire pairs with the kernel's smp_store_release of data_head:
        // every byte before head is visible once we see head.
        let head = self.head().load(Ordering::Acquire);
        let mut tail = self.tail().load(Ordering::Relaxed);
        let pending = head.wrapping_sub(tail) as usize;
        self.high_water = self.high_water.max(pending);
        let mask = self.data_len - 1;
        let mut n = 0;
        while tail != head && n < max {
            let off = tail as usize & mask;
            // The 8-byte perf_event_header never straddles the end: records are 8-aligned.
            // SAFETY: off + 8 <= data_len because off is 8-aligned and data_len is a multiple of 8.
            let hdr = unsafe { std::slice::from_raw_parts(self.data.add(off), 8) };
            let type_ = u32::from_ne_bytes(hdr[0..4].try_into().unwrap());
            let size = u16::from_ne_bytes(hdr[6..8].try_into().unwrap()) as usize;
            let left = head.wrapping_sub(tail) as usize;
            if size < 8 || size > left {
                return Err(SourceError::Corrupt {
                    ring: self.cpu,
                    what: format!(
                        "record of size {size} at offset {tail} with {left} bytes pending"
                    ),
                });
            }
            let rec: &[u8] = if off + size <= self.data_len {
                // SAFETY: in bounds of the data area, and the kernel will not
                // overwrite it until we advance data_tail past it.
                unsafe { std::slice::from_raw_parts(self.data.add(off), size) }
            } else {
                let first = self.data_len - off;
                self.wrap_buf.clear();
                // SAFETY: both pieces are inside the data area.
                unsafe {
                    self.wrap_buf
                        .extend_from_slice(std::slice::from_raw_parts(self.data.add(off), first));
                    self.wrap_buf
                        .extend_from_slice(std::slice::from_raw_parts(self.data, size - first));
                }
                &self.wrap_buf
            };
            match type_ {
                PERF_RECORD_SAMPLE if size >= 12 => {
                    let raw = u32::from_ne_bytes(rec[8..12].try_into().unwrap()) as usize;
                    let data = &rec[12..(12 + raw).min(size)];
                    let origin_ns = if data.len() >= 8 {
                        u64::from_le_bytes(data[0..8].try_into().unwrap())
                    } else {
                        0
                    };
                    f(RecordRef::Sample {
                        ring: self.cpu,
                        origin_ns,
                        data,
                    });
                }
                PERF_RECORD_LOST if size >= 24 => {
                    let count = u64::from_ne_bytes(rec[16..24].try_into().unwrap());
                    f(RecordRef::Lost {
                        ring: self.cpu,
                        count,
                    });
                }
                _ => {} // other record types (throttle etc.) carry no samples
            }
            tail = tail.wrapping_add(size as u64);
            n += 1;
        }
        if n > 0 {
            // Release: our reads of the records happen before the kernel may
            // reuse the space. Skipped when nothing was read, so an idle ring's
            // data_tail line is not dirtied for the writer.
            fence(Ordering::Release);
            self.tail().store(tail, Ordering::Release);
        }
        Ok(n)
    }
}

impl Drop for PerfRing {
    fn drop(&mut self) {
        if self.heap.is_none() {
            // SAFETY: unmapping our own mapping; the fd closes with OwnedFd.
            unsafe { libc::munmap(self.base as *mut libc::c_void, self.map_len) };
        }
    }
}

/// Waits until one of `fds` is readable or `timeout` passes.
pub(crate) fn poll_fds(
    pfds: &mut [libc::pollfd],
    timeout: Duration,
    ring: u32,
) -> Result<bool, SourceError> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: pfds is a valid slice of pollfd.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(SourceError::Wait { ring, source: e });
    }
    Ok(r > 0)
}

/// Waits until any ring's fd is readable. An epoll set registered once (as
/// libbpf's perf_buffer does): with a wakeup per event, one `epoll_wait` per
/// wakeup is measurably cheaper than a `poll` that re-arms every fd. Falls back
/// to `poll` if epoll cannot be set up.
struct RingWaiter {
    epoll: Option<OwnedFd>,
    pfds: Vec<libc::pollfd>,
}

impl RingWaiter {
    fn new(fds: &[RawFd]) -> Self {
        let pfds: Vec<libc::pollfd> = fds
            .iter()
            .filter(|&&fd| fd >= 0)
            .map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: epoll_create1 has no preconditions; the fd is ours on success.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        let epoll = (ep >= 0)
            .then(|| unsafe { OwnedFd::from_raw_fd(ep) })
            .filter(|ep| {
                pfds.iter().all(|p| {
                    let mut ev = libc::epoll_event {
                        events: libc::EPOLLIN as u32,
                        u64: p.fd as u64,
                    };
                    // SAFETY: registering a valid fd with our epoll set.
                    unsafe {
                        libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, p.fd, &mut ev) == 0
                    }
                })
            });
        RingWaiter { epoll, pfds }
    }

    fn wait(&mut self, timeout: Duration) -> Result<bool, SourceError> {
        match &self.epoll {
            Some(ep) => {
                let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 8];
                let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
                // SAFETY: evs is a valid buffer of 8 events.
                let r = unsafe {
                    libc::epoll_wait(ep.as_raw_fd(), evs.as_mut_ptr(), evs.len() as i32, ms)
                };
                if r < 0 {
                    let e = io::Error::last_os_error();
                    return if e.kind() == io::ErrorKind::Interrupted {
                        Ok(false)
                    } else {
                        Err(SourceError::Wait { ring: 0, source: e })
                    };
                }
                Ok(r > 0)
            }
            None => poll_fds(&mut self.pfds, timeout, 0),
        }
    }
}

/// All CPUs' perf rings behind one [`RecordSource`], drained round-robin.
pub struct PerfRings {
    rings: Vec<PerfRing>,
    waiter: RingWaiter,
    /// The last batch stopped at `max`: records may remain without a new wakeup.
    more: bool,
    next: usize,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl PerfRings {
    pub fn open(opts: &PerfRingOptions, cpus: &[u32]) -> Result<Self, PerfError> {
        let rings = cpus
            .iter()
            .map(|&c| PerfRing::open(opts, c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_rings(rings))
    }
    fn from_rings(rings: Vec<PerfRing>) -> Self {
        let fds: Vec<RawFd> = rings.iter().map(|r| r.fd()).collect();
        PerfRings {
            waiter: RingWaiter::new(&fds),
            more: false,
            rings,
            next: 0,
            stop: None,
        }
    }
    /// After `stop` is set, a read that finds every ring empty returns [`Batch::Closed`].
    pub fn set_stop(&mut self, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        self.stop = Some(stop);
    }
    pub fn rings(&self) -> &[PerfRing] {
        &self.rings
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
    pub fn high_water(&self) -> usize {
        self.rings.iter().map(|r| r.high_water()).max().unwrap_or(0)
    }
    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Acquire))
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
        // Drain once per wakeup, as libbpf does, rather than re-draining until
        // empty: data_head is written by the kernel on every record, so a
        // reader that keeps re-reading it (and rewriting data_tail) bounces
        // those cache lines to the traced CPU and slows it down (measured by
        // the live_peer benchmark). Only a batch cut short by `max`, or a stop,
        // drains again without waiting.
        let total = if self.more || self.stopped() {
            let n = self.drain_all(max, f)?;
            if n == 0 && self.stopped() {
                return Ok(Batch::Closed);
            }
            n
        } else {
            self.waiter.wait(timeout)?;
            self.drain_all(max, f)?
        };
        self.more = total >= max;
        Ok(if total == 0 {
            Batch::Idle
        } else {
            Batch::Records(total)
        })
    }
}

impl PerfRings {
    fn drain_all(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<usize, SourceError> {
        let n = self.rings.len();
        let mut total = 0;
        for i in 0..n {
            if total >= max {
                break;
            }
            let idx = (self.next + i) % n;
            total += self.rings[idx].drain(max - total, f)?;
        }
        self.next = (self.next + 1) % n.max(1);
        Ok(total)
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
