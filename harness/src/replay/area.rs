//! The pieces both ring emulations share: a data area that a producer thread
//! writes and a consumer thread reads without locks, and the reader wakeup.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// Pads a value to its own cache line so head and tail do not false-share.
#[repr(align(64))]
#[derive(Debug, Default)]
pub struct CacheLine<T>(pub T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A power-of-two byte area shared by one producer and one consumer.
///
/// The bytes are plain memory, like the kernel's mmapped ring: who may touch
/// which range is decided by the head/tail protocol of the ring on top
/// (the producer writes only between head and tail + size, the consumer reads
/// only between tail and head, and each publishes its position with a release
/// store that the other loads with acquire).
pub struct DataArea {
    /// u64 storage keeps every 8-aligned offset aligned for the ring buffer's
    /// atomic record headers.
    mem: Box<[std::cell::UnsafeCell<u64>]>,
    size: u64,
}

// SAFETY: concurrent access is ordered by the rings' head/tail protocol, as
// documented above; the area itself never reallocates.
unsafe impl Sync for DataArea {}
unsafe impl Send for DataArea {}

impl DataArea {
    /// `size` must be a power of two and a multiple of 8.
    pub fn new(size: u64) -> Self {
        assert!(size.is_power_of_two() && size >= 8);
        let words = (size / 8) as usize;
        let mem: Vec<std::cell::UnsafeCell<u64>> =
            (0..words).map(|_| std::cell::UnsafeCell::new(0)).collect();
        DataArea {
            mem: mem.into_boxed_slice(),
            size,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    fn base(&self) -> *mut u8 {
        self.mem.as_ptr() as *mut u8
    }

    /// Copies `src` to ring position `pos` (masked), wrapping at the end.
    ///
    /// # Safety
    /// The caller owns `[pos, pos + src.len())` under the ring protocol.
    #[inline]
    pub unsafe fn write(&self, pos: u64, src: &[u8]) {
        let off = (pos & (self.size - 1)) as usize;
        let first = src.len().min(self.size as usize - off);
        std::ptr::copy_nonoverlapping(src.as_ptr(), self.base().add(off), first);
        if first < src.len() {
            std::ptr::copy_nonoverlapping(src.as_ptr().add(first), self.base(), src.len() - first);
        }
    }

    /// Writes `n` zero bytes at `pos`, wrapping.
    ///
    /// # Safety
    /// As [`DataArea::write`].
    #[inline]
    pub unsafe fn zero(&self, pos: u64, n: usize) {
        let off = (pos & (self.size - 1)) as usize;
        let first = n.min(self.size as usize - off);
        std::ptr::write_bytes(self.base().add(off), 0, first);
        if first < n {
            std::ptr::write_bytes(self.base(), 0, n - first);
        }
    }

    /// Copies `dst.len()` bytes from `pos`, wrapping.
    ///
    /// # Safety
    /// The caller may read `[pos, pos + dst.len())` under the ring protocol.
    #[inline]
    pub unsafe fn read(&self, pos: u64, dst: &mut [u8]) {
        let off = (pos & (self.size - 1)) as usize;
        let first = dst.len().min(self.size as usize - off);
        std::ptr::copy_nonoverlapping(self.base().add(off), dst.as_mut_ptr(), first);
        if first < dst.len() {
            std::ptr::copy_nonoverlapping(
                self.base(),
                dst.as_mut_ptr().add(first),
                dst.len() - first,
            );
        }
    }

    /// Borrows `len` bytes at `pos` if they do not wrap.
    ///
    /// # Safety
    /// As [`DataArea::read`], for as long as the slice lives.
    #[inline]
    pub unsafe fn slice(&self, pos: u64, len: usize) -> Option<&[u8]> {
        let off = (pos & (self.size - 1)) as usize;
        if off + len <= self.size as usize {
            Some(std::slice::from_raw_parts(self.base().add(off), len))
        } else {
            None
        }
    }

    /// The u32 at an 8-aligned position, as an atomic (ring buffer record headers).
    #[inline]
    pub fn atomic_u32(&self, pos: u64) -> &AtomicU32 {
        let off = (pos & (self.size - 1)) as usize;
        debug_assert!(off.is_multiple_of(8));
        // SAFETY: off is in bounds and 8-aligned in u64-aligned storage;
        // AtomicU32 has the layout of u32.
        unsafe { &*(self.base().add(off) as *const AtomicU32) }
    }
}

/// How the reader is woken: the emulated `wake_up_all` on the ring's
/// wait queue. The producer pays for a wakeup only when a reader waits, as in
/// the kernel, where irq_work + wake_up costs only with sleepers.
#[derive(Default)]
pub struct Notifier {
    generation: Mutex<u64>,
    cv: Condvar,
    waiters: AtomicU32,
    /// Wakeups signalled (whether or not anyone was waiting).
    pub signalled: AtomicU64,
}

impl Notifier {
    /// Wakes every waiting reader. Call after publishing the new head.
    pub fn wake(&self) {
        self.signalled.fetch_add(1, Ordering::Relaxed);
        // Pairs with the fence in `wait`: either the reader's re-check sees the
        // new head, or we see its waiter count and take the lock.
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::Relaxed) > 0 {
            let mut g = self.generation.lock().unwrap_or_else(|e| e.into_inner());
            *g += 1;
            self.cv.notify_all();
        }
    }

    /// Waits until woken or `deadline`, unless `ready()` already holds.
    pub fn wait(&self, deadline: Instant, ready: impl Fn() -> bool) {
        let mut g = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        self.waiters.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let start = *g;
        while !ready() && *g == start {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            g = self
                .cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

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
pub(crate) unsafe fn put_sample(area: &DataArea, pos: u64, s: &SampleBytes<'_>) {
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
