//! The BPF ring buffer (`BPF_MAP_TYPE_RINGBUF`): its mapping and the records
//! `bpf_ringbuf_reserve`/`bpf_ringbuf_commit` write (kernel/bpf/ringbuf.c,
//! include/uapi/linux/bpf.h).
//!
//! The mapping, as a reader sees it:
//! ```text
//! page 0         consumer page: u64 consumer_pos at byte 0 (the reader writes it)
//! page 1         producer page: u64 producer_pos at byte 0 (read-only)
//! page 2..       the data area (2^n pages), mapped twice in a row (read-only)
//! ```
//! Because the data pages are mapped twice, a record that starts near the end
//! of the area continues in the second copy: no record ever wraps.
//!
//! Each record is an 8-byte header `{ u32 len; u32 pg_off; }` then the sample,
//! `round_up(len + 8, 8)` bytes in all. `len` carries two flag bits: BUSY
//! while the record is reserved and not yet committed, DISCARD if it was
//! discarded. The kernel publishes the header with a release store (the
//! commit is an `xchg`), so a reader loads it with acquire. `pg_off` is the
//! header's page offset from the start of the kernel's `struct bpf_ringbuf`
//! (whose data starts [`DATA_PGOFF`] pages in), which the kernel uses to find
//! the ring from a record; readers ignore it.

use super::FormatError;

pub const BPF_RINGBUF_BUSY_BIT: u32 = 1 << 31;
pub const BPF_RINGBUF_DISCARD_BIT: u32 = 1 << 30;
/// `BPF_RINGBUF_HDR_SZ`.
pub const HEADER_LEN: usize = 8;
/// `RINGBUF_MAX_RECORD_SZ = UINT_MAX >> 2`: the length bits below the flags.
pub const MAX_RECORD_SZ: u32 = u32::MAX >> 2;
/// The kernel's `struct bpf_ringbuf` keeps one page of its own, then the
/// consumer and producer pages, so its data starts 3 pages in.
pub const DATA_PGOFF: u32 = 3;
/// Pages mapped before the data area: the consumer page and the producer page.
pub const POS_PAGES: usize = 2;

pub const BPF_RB_NO_WAKEUP: u64 = 1;
pub const BPF_RB_FORCE_WAKEUP: u64 = 2;

/// Bytes a `len`-byte sample takes: `round_up(len + 8, 8)`.
/// A 4144-byte fixed4k event: 4152. A 48-byte exit event: 56.
#[inline]
pub const fn record_len(len: usize) -> usize {
    (len + HEADER_LEN + 7) & !7
}

/// The first word of a record header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LenWord {
    pub len: u32,
    pub busy: bool,
    pub discard: bool,
}

impl LenWord {
    #[inline]
    pub fn decode(w: u32) -> Self {
        LenWord {
            len: w & !(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT),
            busy: w & BPF_RINGBUF_BUSY_BIT != 0,
            discard: w & BPF_RINGBUF_DISCARD_BIT != 0,
        }
    }

    #[inline]
    pub fn encode(self) -> u32 {
        let mut w = self.len;
        if self.busy {
            w |= BPF_RINGBUF_BUSY_BIT;
        }
        if self.discard {
            w |= BPF_RINGBUF_DISCARD_BIT;
        }
        w
    }

    /// The record's length, checked against the `pending` bytes up to the
    /// producer position: a committed record never runs past it.
    #[inline]
    pub fn checked_record_len(self, pending: u64) -> Result<usize, FormatError> {
        let record = record_len(self.len as usize);
        if record as u64 > pending {
            return Err(FormatError::PastProducer {
                len: self.len,
                record: record as u64,
                pending,
            });
        }
        Ok(record)
    }
}

/// `pg_off` of a header at byte `offset` of the data area, with pages of `page` bytes.
#[inline]
pub fn pg_off(offset: usize, page: usize) -> u32 {
    DATA_PGOFF + (offset / page) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_kernel() {
        assert_eq!(record_len(4144), 4152);
        assert_eq!(record_len(48), 56);
        assert_eq!(record_len(56), 64);
        assert_eq!(record_len(57), 72);
        assert_eq!(record_len(0), 8);
    }

    #[test]
    fn len_word_round_trips_and_checks_the_producer() {
        for (len, busy, discard) in [(5, true, false), (4144, false, true), (0, false, false)] {
            let w = LenWord { len, busy, discard };
            assert_eq!(LenWord::decode(w.encode()), w);
        }
        let w = LenWord::decode(100 | BPF_RINGBUF_DISCARD_BIT);
        assert_eq!(w.checked_record_len(112), Ok(112));
        assert!(w.checked_record_len(104).is_err());
        assert_eq!(pg_off(0, 4096), 3);
        assert_eq!(pg_off(8192 + 8, 4096), 5);
    }
}
