//! The record layouts of the two kernel rings, as the kernel writes them into
//! the memory a reader maps. Live readers, emulated writers and emulated
//! readers all encode and decode records here and nowhere else.
//!
//! - [`perf`]: `kernel/events/ring_buffer.c` (one ring per CPU).
//! - [`ringbuf`]: `kernel/bpf/ringbuf.c` (one ring shared by all CPUs).
//!
//! Both carry the same sample payload, an event whose header starts with its
//! timestamp: [`origin_of`] reads it for either reader.

pub mod perf;
pub mod ringbuf;

/// Why the bytes at a ring position are not a valid record. The reader wraps
/// it in [`crate::record::SourceError::Corrupt`] with the ring and position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("position is not 8-byte aligned")]
    Misaligned,
    #[error("{pending} bytes pending, short of an 8-byte record header")]
    ShortHeader { pending: u64 },
    #[error("record type {type_} has size {size}: not a multiple of 8 of at least 8, or more than the {pending} bytes pending")]
    BadSize { type_: u32, size: u16, pending: u64 },
    #[error("sample's raw size {raw} overruns its {size}-byte record")]
    RawOverrun { raw: u32, size: u16 },
    #[error(
        "PERF_RECORD_LOST of {size} bytes, shorter than {}",
        perf::LOST_RECORD_LEN
    )]
    ShortLost { size: u16 },
    #[error("ring buffer record of {len} bytes takes {record} bytes, more than the {pending} bytes up to the producer position")]
    PastProducer { len: u32, record: u64, pending: u64 },
}

/// A sample's origin: its event header's `ts_ns` (bytes 0..8, little-endian
/// per the event ABI): the kernel timestamp live, the scheduled time in
/// replay. 0 if the sample is too short to hold one.
#[inline]
pub fn origin_of(data: &[u8]) -> u64 {
    data.get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}
