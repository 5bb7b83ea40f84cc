//! The kernel's two rings, one format and one reader for live and emulated rings.
//!
//! - [`format`](mod@format): the record layouts (perf and BPF ring buffer), encoders and
//!   decoders; the only place they are written down.
//! - [`mem`]: ring memory, the kernel's mappings or emulated ones laid out the
//!   same way, and [`mem::Area`], the data area view both sides share.
//! - [`perf`], [`ringbuf`]: the readers. Each has one drain, which reads the
//!   kernel's mmap live and an emulated ring's memory in replay.
//! - [`wait`]: one [`wait::Waiter`] per ring set: epoll on kernel fds, or the
//!   emulated wakeup ([`wait::EmulatedPoll`]) that emulated writers set exactly
//!   where the kernel would wake the reader.
//! - [`perf_event`]: opening the kernel's perf rings with a chosen wakeup policy.
//!
//! # Order
//! Each module uses only those above it, never a sibling reader:
//! 1. [`format`](mod@format): the record layouts (and [`format::origin_of`], a sample's
//!    timestamp, which both readers hand out).
//! 2. [`mem`]: ring memory.
//! 3. [`perf_event`]: opening perf events; uses `mem`.
//! 4. [`wait`]: the waiter; it knows a ring buffer's memory only through the
//!    [`wait::RingPending`] trait, and imports no reader.
//! 5. [`perf`] (uses `format`, `mem`, `perf_event`, `wait`) and [`ringbuf`]
//!    (uses `format`, `mem`, `wait`, and implements [`wait::RingPending`] for
//!    its memory). Neither imports the other.
//!
//! The kernel's *writer* side of an emulated ring (space checks, drops, lost
//! records, the wakeup rule) is `harness::replay`; it writes through
//! [`format`](mod@format) into [`mem`] and wakes readers through [`wait::EmulatedPoll`].

pub mod format;
pub mod mem;
pub mod perf;
pub mod perf_event;
pub mod ringbuf;
pub mod wait;

#[cfg(test)]
mod test_support {
    use crate::record::RecordRef;

    /// A record as a test sees it, owned.
    #[derive(Debug, PartialEq)]
    pub enum Got {
        Sample(Vec<u8>),
        Lost(u64),
    }

    impl Got {
        pub fn of(r: RecordRef<'_>) -> Got {
            match r {
                RecordRef::Sample { data, .. } => Got::Sample(data.to_vec()),
                RecordRef::Lost { count, .. } => Got::Lost(count),
            }
        }
    }

    /// `len` recognisable non-zero bytes.
    pub fn bytes(seed: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| seed.wrapping_add(i as u8) | 1).collect()
    }
}
