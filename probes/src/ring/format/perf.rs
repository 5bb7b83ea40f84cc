//! The perf ring: `struct perf_event_mmap_page` and the records
//! `bpf_perf_event_output` writes (include/uapi/linux/perf_event.h,
//! kernel/events/ring_buffer.c).
//!
//! The mapping is one metadata page, then a data area of 2^n pages:
//! ```text
//! page 0   perf_event_mmap_page: u64 data_head at byte 1024, u64 data_tail at 1032
//! page 1.. data area; positions are free-running u64s, masked by (size - 1)
//! ```
//! The kernel advances `data_head` (store-release) after writing a record;
//! the reader advances `data_tail` (store-release) after reading. The data
//! area is mapped once, so a record may wrap around its end.
//!
//! Every record starts with `perf_event_header { u32 type; u16 misc; u16 size }`
//! in native byte order, and every record's `size` is a multiple of 8, so a
//! header never straddles the end of the area. The two a BPF output event
//! produces:
//! - `PERF_RECORD_SAMPLE` with `PERF_SAMPLE_RAW`: header, `u32 raw_size`,
//!   then `raw_size` bytes, where `raw_size = round_up(len + 4, 8) - 4` for a
//!   `len`-byte sample, so the record (12 + raw_size bytes) is 8-aligned. The
//!   `raw_size - len` pad bytes are skipped, not written: they keep whatever
//!   the ring held.
//! - `PERF_RECORD_LOST`: header, `u64 id`, `u64 lost` (24 bytes).

use super::FormatError;

/// Byte offset of `data_head` in the metadata page.
pub const DATA_HEAD_OFF: usize = 1024;
/// Byte offset of `data_tail` in the metadata page.
pub const DATA_TAIL_OFF: usize = 1032;

pub const PERF_RECORD_LOST: u32 = 2;
pub const PERF_RECORD_SAMPLE: u32 = 9;
/// `misc` of a sample output from a tracepoint's BPF program (kernel regs).
pub const PERF_RECORD_MISC_KERNEL: u16 = 1;

/// `sizeof(struct perf_event_header)`.
pub const HEADER_LEN: usize = 8;
/// Every record's size is a multiple of this.
pub const RECORD_ALIGN: usize = 8;
/// A sample record's bytes before the raw data: the header and `u32 raw_size`.
pub const SAMPLE_OVERHEAD: usize = HEADER_LEN + 4;
/// `struct { perf_event_header; u64 id; u64 lost; }`.
pub const LOST_RECORD_LEN: usize = HEADER_LEN + 8 + 8;
/// The largest record: `size` is a u16 and a multiple of 8, so 65528.
pub const MAX_RECORD_LEN: usize = u16::MAX as usize & !(RECORD_ALIGN - 1);

/// `raw_size` of a `len`-byte sample: `round_up(len + 4, 8) - 4`, so that
/// header (8) + raw_size field (4) + raw_size is a multiple of 8.
/// A 4144-byte fixed4k event: 4148. A 48-byte exit event: 52.
#[inline]
pub const fn raw_size(len: usize) -> usize {
    ((len + 4 + RECORD_ALIGN - 1) & !(RECORD_ALIGN - 1)) - 4
}

/// Bytes a `len`-byte sample takes in the ring: 12 + `raw_size(len)`.
/// A 4144-byte fixed4k event: 4160. A 48-byte exit event: 64.
#[inline]
pub const fn sample_record_len(len: usize) -> usize {
    SAMPLE_OVERHEAD + raw_size(len)
}

/// `struct perf_event_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub type_: u32,
    pub misc: u16,
    pub size: u16,
}

impl Header {
    #[inline]
    pub fn encode(self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.type_.to_ne_bytes());
        b[4..6].copy_from_slice(&self.misc.to_ne_bytes());
        b[6..8].copy_from_slice(&self.size.to_ne_bytes());
        b
    }

    #[inline]
    pub fn decode(b: [u8; HEADER_LEN]) -> Self {
        Header {
            type_: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            misc: u16::from_ne_bytes([b[4], b[5]]),
            size: u16::from_ne_bytes([b[6], b[7]]),
        }
    }

    /// The record's size if it is one the kernel could have written with
    /// `pending` bytes published: at least a header, a multiple of 8, and
    /// within what is pending.
    #[inline]
    pub fn checked_size(self, pending: u64) -> Result<usize, FormatError> {
        let size = self.size as usize;
        if size < HEADER_LEN || !size.is_multiple_of(RECORD_ALIGN) || size as u64 > pending {
            return Err(FormatError::BadSize {
                type_: self.type_,
                size: self.size,
                pending,
            });
        }
        Ok(size)
    }
}

/// The first bytes of a `len`-byte sample's record (header and `raw_size`),
/// or `None` if the record would not fit the u16 `size` (the kernel refuses
/// such an output).
#[inline]
pub fn sample_prefix(len: usize) -> Option<[u8; SAMPLE_OVERHEAD]> {
    let size = sample_record_len(len);
    if size > MAX_RECORD_LEN {
        return None;
    }
    let mut b = [0u8; SAMPLE_OVERHEAD];
    b[..HEADER_LEN].copy_from_slice(
        &Header {
            type_: PERF_RECORD_SAMPLE,
            misc: PERF_RECORD_MISC_KERNEL,
            size: size as u16,
        }
        .encode(),
    );
    b[HEADER_LEN..].copy_from_slice(&(raw_size(len) as u32).to_ne_bytes());
    Some(b)
}

/// A whole `PERF_RECORD_LOST` reporting `lost` samples of event `id`.
#[inline]
pub fn lost_record(id: u64, lost: u64) -> [u8; LOST_RECORD_LEN] {
    let mut b = [0u8; LOST_RECORD_LEN];
    b[..HEADER_LEN].copy_from_slice(
        &Header {
            type_: PERF_RECORD_LOST,
            misc: 0,
            size: LOST_RECORD_LEN as u16,
        }
        .encode(),
    );
    b[8..16].copy_from_slice(&id.to_ne_bytes());
    b[16..24].copy_from_slice(&lost.to_ne_bytes());
    b
}

/// What one record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// A sample's raw area (`raw_size` bytes, including the pad bytes).
    Sample(&'a [u8]),
    /// A `PERF_RECORD_LOST` count.
    Lost(u64),
    /// Another record type (throttle, ...), which carries no sample.
    Other { type_: u32 },
}

/// Decodes a whole record: `rec` is `header.size` bytes starting at the header.
#[inline]
pub fn parse(header: Header, rec: &[u8]) -> Result<Record<'_>, FormatError> {
    match header.type_ {
        PERF_RECORD_SAMPLE => {
            let Some(&[a, b, c, d]) = rec.get(HEADER_LEN..SAMPLE_OVERHEAD) else {
                return Err(FormatError::RawOverrun {
                    raw: 0,
                    size: header.size,
                });
            };
            let raw = u32::from_ne_bytes([a, b, c, d]);
            match rec.get(SAMPLE_OVERHEAD..SAMPLE_OVERHEAD + raw as usize) {
                Some(data) => Ok(Record::Sample(data)),
                None => Err(FormatError::RawOverrun {
                    raw,
                    size: header.size,
                }),
            }
        }
        PERF_RECORD_LOST => match rec.get(16..LOST_RECORD_LEN) {
            Some(b) => Ok(Record::Lost(u64::from_ne_bytes(
                b.try_into().unwrap_or([0; 8]),
            ))),
            None => Err(FormatError::ShortLost { size: header.size }),
        },
        type_ => Ok(Record::Other { type_ }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_kernel() {
        // fixed4k: 4144-byte event, raw size round_up(4148, 8) - 4 = 4148, record 4160.
        assert_eq!(raw_size(4144), 4148);
        assert_eq!(sample_record_len(4144), 4160);
        // 52 bytes: 8 + 4 + 52 = 64 exactly, no padding; 53 pads to 72.
        assert_eq!(sample_record_len(52), 64);
        assert_eq!(sample_record_len(53), 72);
        // Exit events (48 bytes) and the shortest compact enter (56).
        assert_eq!(sample_record_len(48), 64);
        assert_eq!(sample_record_len(56), 72);
        assert_eq!(MAX_RECORD_LEN, 65528);
        assert!(sample_prefix(MAX_RECORD_LEN - SAMPLE_OVERHEAD).is_some());
        assert!(sample_prefix(MAX_RECORD_LEN - SAMPLE_OVERHEAD + 1).is_none());
    }

    #[test]
    fn records_round_trip() {
        // A 5-byte sample: raw size 12 (7 pad bytes), a 24-byte record.
        let mut rec = sample_prefix(5).unwrap().to_vec();
        rec.extend_from_slice(b"hello");
        rec.resize(sample_record_len(5), 0);
        let h = Header::decode(rec[..8].try_into().unwrap());
        assert_eq!(h.checked_size(1000), Ok(24));
        assert_eq!(
            parse(h, &rec),
            Ok(Record::Sample(&b"hello\0\0\0\0\0\0\0"[..]))
        );

        let lost = lost_record(7, 99);
        let h = Header::decode(lost[..8].try_into().unwrap());
        assert_eq!(parse(h, &lost), Ok(Record::Lost(99)));
    }

    #[test]
    fn bad_records_are_errors() {
        let h = |type_, size| Header {
            type_,
            misc: 0,
            size,
        };
        assert!(h(9, 4).checked_size(100).is_err());
        assert!(h(9, 20).checked_size(100).is_err());
        assert!(h(9, 64).checked_size(56).is_err());
        // raw_size runs past the record.
        let mut rec = sample_prefix(4).unwrap().to_vec();
        rec[8..12].copy_from_slice(&100u32.to_ne_bytes());
        rec.resize(16, 0);
        assert_eq!(
            parse(h(PERF_RECORD_SAMPLE, 16), &rec),
            Err(FormatError::RawOverrun { raw: 100, size: 16 })
        );
        assert_eq!(
            parse(h(PERF_RECORD_SAMPLE, 8), &rec[..8]),
            Err(FormatError::RawOverrun { raw: 0, size: 8 })
        );
        assert_eq!(
            parse(h(PERF_RECORD_LOST, 16), &[0; 16]),
            Err(FormatError::ShortLost { size: 16 })
        );
        assert_eq!(parse(h(5, 8), &[0; 8]), Ok(Record::Other { type_: 5 }));
    }
}
