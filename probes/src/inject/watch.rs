//! How much the injector's rings hold, read from the rings' own positions.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::loader::Transport;
use crate::perf::PerfMem;
use crate::ring::mem::page_size;

use super::bpf::map_fd;
use super::source::Source;
use super::{InjectError, InjectSource, Injector};

impl Injector {
    /// Ring buffer only: a read-only view of the ring's positions, to tell
    /// when an outside reader has caught up.
    pub fn ringbuf_watch(&self) -> Result<RingBufWatch, InjectError> {
        self.want(Transport::Ringbuf, "watching the ring buffer's positions")?;
        let fd = map_fd(&self.ebpf, "events", self.object)?;
        let len = 2 * page_size();
        // SAFETY: the consumer and producer pages, read-only (the kernel allows
        // a read-only mapping of both; only the consumer page may be writable).
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(InjectError::Mmap {
                map: "events",
                bytes: len,
                source: io::Error::last_os_error(),
            });
        }
        Ok(RingBufWatch {
            base: base as *const u8,
            len,
        })
    }

    /// A watch on how much the rings hold: the ring buffer's positions, or
    /// the perf rings of `reader` (dropbench's own). An outside reader's perf
    /// rings are its own mappings, out of sight: `None` for perf without `reader`.
    pub fn ring_watch(
        &self,
        reader: Option<&InjectSource>,
    ) -> Result<Option<RingWatch>, InjectError> {
        match (self.spec.transport, reader.map(|r| &r.inner)) {
            (Transport::Ringbuf, _) => Ok(Some(RingWatch::Ringbuf(self.ringbuf_watch()?))),
            (Transport::Perf, Some(Source::Perf(p))) => Ok(Some(RingWatch::Perf(
                p.rings().iter().map(|r| r.mem().clone()).collect(),
            ))),
            (Transport::Perf, _) => Ok(None),
        }
    }
}

/// The ring buffer's consumer and producer positions, read-only.
pub struct RingBufWatch {
    base: *const u8,
    len: usize,
}

// SAFETY: a read-only mapping owned by this value.
unsafe impl Send for RingBufWatch {}

impl RingBufWatch {
    /// Bytes committed or reserved that the reader has not consumed yet.
    pub fn backlog(&self) -> u64 {
        self.producer_pos().saturating_sub(self.consumer_pos())
    }

    /// How far the reader has consumed (bytes since the ring was created,
    /// records with their 8-byte headers, each rounded up to 8).
    pub fn consumer_pos(&self) -> u64 {
        // SAFETY: consumer_pos is the first u64 of the consumer page.
        unsafe { (*(self.base as *const AtomicU64)).load(Ordering::Acquire) }
    }

    /// How far the injector has written (same units).
    pub fn producer_pos(&self) -> u64 {
        // SAFETY: producer_pos is the first u64 of the producer page, the second page.
        unsafe { (*(self.base.add(page_size()) as *const AtomicU64)).load(Ordering::Acquire) }
    }
}

/// Bytes the injector's rings hold that their reader has not consumed yet,
/// read from the rings' own positions while the reader drains them.
pub enum RingWatch {
    /// Each CPU's `data_head - data_tail`, summed.
    Perf(Vec<Arc<PerfMem>>),
    /// `producer_pos - consumer_pos`.
    Ringbuf(RingBufWatch),
}

impl RingWatch {
    pub fn used_bytes(&self) -> u64 {
        match self {
            RingWatch::Perf(mems) => mems.iter().map(|m| m.used()).sum(),
            RingWatch::Ringbuf(w) => w.backlog(),
        }
    }
}

impl Drop for RingBufWatch {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}
