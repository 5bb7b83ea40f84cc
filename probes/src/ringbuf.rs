//! The BPF ring buffer reader (`BPF_MAP_TYPE_RINGBUF`, Linux 5.8+).
//!
//! The kernel maps the data area twice in a row, so a record never wraps from
//! the reader's point of view: every sample is handed out in place (zero-copy).
//!
//! # Wakeup policies
//! The wakeup is decided by the BPF program's `bpf_ringbuf_output` flags (set
//! through the probe config), and the reader must match it:
//! - [`RingBufWakeup::Adaptive`] (flags 0): the kernel wakes the reader when it
//!   has caught up; the reader blocks in `poll`.
//! - [`RingBufWakeup::NoWakeup`] (`BPF_RB_NO_WAKEUP`): the kernel never wakes
//!   anyone; the reader drains on a timer every `poll` interval.
//! - [`RingBufWakeup::Forced`] (`BPF_RB_FORCE_WAKEUP`): a wakeup per record.
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
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::perf::{page_size, poll_fds};
use crate::record::{Batch, RecordRef, RecordSource, SourceError};

pub const BPF_RINGBUF_BUSY_BIT: u32 = 1 << 31;
pub const BPF_RINGBUF_DISCARD_BIT: u32 = 1 << 30;
pub const BPF_RINGBUF_HDR_SZ: usize = 8;
pub const BPF_RB_NO_WAKEUP: u64 = 1;
pub const BPF_RB_FORCE_WAKEUP: u64 = 2;

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
            RingBufWakeup::NoWakeup { .. } => BPF_RB_NO_WAKEUP,
            RingBufWakeup::Forced => BPF_RB_FORCE_WAKEUP,
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
    #[error("mmap of the ring buffer's {what} ({bytes} bytes): {source}")]
    Mmap {
        what: &'static str,
        bytes: usize,
        source: io::Error,
    },
    #[error("the no-wakeup poll interval must be > 0")]
    ZeroPoll,
}

/// Reads the kernel's count of failed ring-buffer outputs (summed over CPUs).
pub type LostCounter = Box<dyn FnMut() -> u64 + Send>;

/// Reader of one BPF ring buffer map.
pub struct RingBufReader {
    fd: OwnedFd,
    consumer: *mut u8,
    producer: *mut u8,
    data: *const u8,
    size: usize,
    page: usize,
    wakeup: RingBufWakeup,
    lost: Option<(LostCounter, u64, Instant)>,
    stop: Option<Arc<AtomicBool>>,
    high_water: usize,
}

// SAFETY: the mappings are owned by this value and only used through &mut self.
unsafe impl Send for RingBufReader {}

impl RingBufReader {
    /// Maps the ring buffer behind `fd` (a `BPF_MAP_TYPE_RINGBUF` map of `size` bytes).
    pub fn open(fd: OwnedFd, size: usize, wakeup: RingBufWakeup) -> Result<Self, RingBufError> {
        let page = page_size();
        if size < page || !size.is_power_of_two() {
            return Err(RingBufError::BadSize { bytes: size, page });
        }
        if let RingBufWakeup::NoWakeup { poll } = wakeup {
            if poll.is_zero() {
                return Err(RingBufError::ZeroPoll);
            }
        }
        // SAFETY: the consumer page is mapped read-write at offset 0.
        let consumer = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if consumer == libc::MAP_FAILED {
            return Err(RingBufError::Mmap {
                what: "consumer page",
                bytes: page,
                source: io::Error::last_os_error(),
            });
        }
        // The producer page and the data area, which the kernel maps twice: page + 2 * size.
        let plen = page + 2 * size;
        // SAFETY: read-only mapping at offset `page`, as the kernel lays it out.
        let producer = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                plen,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                page as libc::off_t,
            )
        };
        if producer == libc::MAP_FAILED {
            let source = io::Error::last_os_error();
            // SAFETY: undo the first mapping.
            unsafe { libc::munmap(consumer, page) };
            return Err(RingBufError::Mmap {
                what: "producer page and data",
                bytes: plen,
                source,
            });
        }
        let producer = producer as *mut u8;
        Ok(RingBufReader {
            fd,
            consumer: consumer as *mut u8,
            producer,
            // SAFETY: data follows the producer page.
            data: unsafe { producer.add(page) },
            size,
            page,
            wakeup,
            lost: None,
            stop: None,
            high_water: 0,
        })
    }

    /// Emit [`RecordRef::Lost`] from increases of this counter (read at most every 10 ms).
    pub fn with_lost_counter(mut self, mut counter: LostCounter) -> Self {
        let base = counter();
        self.lost = Some((counter, base, Instant::now()));
        self
    }

    /// After `stop` is set, a read that finds the ring empty returns [`Batch::Closed`].
    pub fn set_stop(&mut self, stop: Arc<AtomicBool>) {
        self.stop = Some(stop);
    }

    pub fn high_water(&self) -> usize {
        self.high_water
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: consumer_pos is the first u64 of the consumer page.
        unsafe { &*(self.consumer as *const AtomicU64) }
    }
    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: producer_pos is the first u64 of the producer page.
        unsafe { &*(self.producer as *const AtomicU64) }
    }

    /// True when committed or in-flight records wait.
    pub fn pending(&self) -> bool {
        self.producer_pos().load(Ordering::Acquire) != self.consumer_pos().load(Ordering::Relaxed)
    }

    /// Hands up to `max` committed records to `f` and releases their space.
    pub fn drain(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<usize, SourceError> {
        let mut cons = self.consumer_pos().load(Ordering::Relaxed);
        let prod = self.producer_pos().load(Ordering::Acquire);
        self.high_water = self.high_water.max(prod.wrapping_sub(cons) as usize);
        let mask = self.size as u64 - 1;
        let mut n = 0;
        while cons < prod && n < max {
            let off = (cons & mask) as usize;
            // SAFETY: the header is inside the (double-mapped) data area; the
            // kernel publishes it with smp_store_release, so read it with acquire.
            let hdr = unsafe { &*(self.data.add(off) as *const AtomicU32) }.load(Ordering::Acquire);
            if hdr & BPF_RINGBUF_BUSY_BIT != 0 {
                break; // reserved but not yet committed: stop here, keep order
            }
            let len = (hdr & !(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)) as usize;
            let total = (len + BPF_RINGBUF_HDR_SZ + 7) & !7;
            if total > self.size {
                return Err(SourceError::Corrupt {
                    ring: 0,
                    what: format!(
                        "record length {len} at position {cons} exceeds the {}-byte ring",
                        self.size
                    ),
                });
            }
            if hdr & BPF_RINGBUF_DISCARD_BIT == 0 {
                // SAFETY: off + 8 + len <= 2 * size thanks to the double mapping.
                let data = unsafe {
                    std::slice::from_raw_parts(self.data.add(off + BPF_RINGBUF_HDR_SZ), len)
                };
                let origin_ns = if len >= 8 {
                    u64::from_le_bytes(data[0..8].try_into().unwrap())
                } else {
                    0
                };
                f(RecordRef::Sample {
                    ring: 0,
                    origin_ns,
                    data,
                });
                n += 1;
            }
            cons += total as u64;
            // Release each record as we go, as libbpf does, so the producer sees room early.
            self.consumer_pos().store(cons, Ordering::Release);
        }
        Ok(n)
    }

    fn emit_lost(&mut self, force: bool, f: &mut dyn FnMut(RecordRef<'_>)) -> usize {
        if let Some((counter, seen, at)) = self.lost.as_mut() {
            if force || at.elapsed() >= Duration::from_millis(10) {
                *at = Instant::now();
                let now = counter();
                if now > *seen {
                    f(RecordRef::Lost {
                        ring: 0,
                        count: now - *seen,
                    });
                    *seen = now;
                    return 1;
                }
            }
        }
        0
    }

    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Acquire))
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
        let mut n = self.drain(max, f)?;
        if n == 0 {
            if self.stopped() {
                // Final lost count before closing, so nothing is unaccounted for.
                return Ok(if self.emit_lost(true, f) > 0 {
                    Batch::Records(1)
                } else {
                    Batch::Closed
                });
            }
            match self.wakeup {
                RingBufWakeup::NoWakeup { poll } => std::thread::sleep(poll.min(timeout)),
                _ => {
                    let mut pfd = [libc::pollfd {
                        fd: self.fd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    }];
                    poll_fds(&mut pfd, timeout, 0)?;
                }
            }
            n = self.drain(max, f)?;
        }
        n += self.emit_lost(false, f);
        Ok(if n == 0 {
            Batch::Idle
        } else {
            Batch::Records(n)
        })
    }
}

impl Drop for RingBufReader {
    fn drop(&mut self) {
        // SAFETY: unmapping our own two mappings.
        unsafe {
            libc::munmap(self.consumer as *mut libc::c_void, self.page);
            libc::munmap(
                self.producer as *mut libc::c_void,
                self.page + 2 * self.size,
            );
        }
    }
}
