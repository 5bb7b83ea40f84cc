//! The message every sink writes: a key for partitioning and a compact binary
//! value. docs/kafka-message-format.md is the user-facing description; the unit
//! tests below pin the bytes.
//!
//! Key (8 bytes): `pid` then `tid`, both u32 big-endian. Kafka's default
//! partitioner hashes the key, so all events of one thread land in one
//! partition, in order, while a multi-threaded or multi-process load spreads
//! over partitions. A path hash would scatter one thread's events (losing
//! their order) and pile every hot file onto one partition.
//!
//! Value (46 + path_len bytes, little-endian, like the event ABI):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version, [`FORMAT_VERSION`] |
//! | 1 | 1 | syscall (`probes::abi::Syscall` code) |
//! | 2 | 1 | kind (1 enter, 2 exit) |
//! | 3 | 1 | category (`classify::Category` code) |
//! | 4 | 1 | sensitivity (0 low .. 3 critical) |
//! | 5 | 1 | rule kind (0 none, 1 prefix, 2 glob, 3 regex) |
//! | 6 | 2 | rule number (u16, 0xffff = none) |
//! | 8 | 8 | ts_ns (u64) |
//! | 16 | 4 | pid (u32) |
//! | 20 | 4 | tid (u32) |
//! | 24 | 4 | open flags (u32) |
//! | 28 | 4 | mode (u32) |
//! | 32 | 4 | dfd (i32) |
//! | 36 | 8 | ret (i64) |
//! | 44 | 2 | path_len (u16) |
//! | 46 | path_len | path bytes, no NUL |
//!
//! Batch value (version 2, the `message_events` knob): several events in
//! one message, to pay the Kafka client's per-message cost once for many
//! events.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version, [`BATCH_VERSION`] |
//! | 1 | 1 | reserved, 0 |
//! | 2 | 2 | count (u16), at least 1 |
//! | 4 | .. | `count` version-1 values back to back (each ends where its path_len says) |
//!
//! Its key is a lane's ([`lane_key`]): every event of one (pid, tid) goes to
//! one lane, so to one partition, in order, as with version 1.

use probes::abi::Event;

use crate::classify::{Category, Classification, Sensitivity};

pub const FORMAT_VERSION: u8 = 1;
/// A value that carries several version-1 values.
pub const BATCH_VERSION: u8 = 2;
/// Version, reserved byte, count.
pub const BATCH_HEADER_LEN: usize = 4;
/// Lanes a batching pipeline thread keeps: events are spread over them by
/// (pid, tid), so a lane's messages keep one thread's order. 16 lanes over
/// the sink's 4 partitions spread a many-threaded load about evenly.
pub const LANES: usize = 16;
pub const KEY_LEN: usize = 8;
/// Fixed part of the value before the path.
pub const VALUE_HEADER_LEN: usize = 46;

/// Writes the key for `ev` (pid, tid big-endian).
pub fn encode_key(ev: &Event<'_>) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    k[..4].copy_from_slice(&ev.header.pid.to_be_bytes());
    k[4..].copy_from_slice(&ev.header.tid.to_be_bytes());
    k
}

/// Writes the value for `ev` and its classification into `out` (which it clears
/// first), reusing `out`'s allocation.
pub fn encode_value(ev: &Event<'_>, v: &Classification, out: &mut Vec<u8>) {
    out.clear();
    append_value(ev, v, out);
}

/// The lane of `ev`'s thread: a hash of (pid, tid), below [`LANES`].
pub fn lane_of(ev: &Event<'_>) -> usize {
    let x = (u64::from(ev.header.pid) << 32 | u64::from(ev.header.tid))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 32) as usize % LANES
}

/// The key of a batch message of `lane`: `ff ff ff ff` (no pid is that
/// large, so it never equals a version-1 key) then the lane, big-endian.
pub fn lane_key(lane: usize) -> [u8; KEY_LEN] {
    let mut k = [0xff; KEY_LEN];
    k[4..].copy_from_slice(&(lane as u32).to_be_bytes());
    k
}

/// Starts a batch value in `out` (cleared first); [`append_value`] adds
/// events and [`set_batch_count`] writes their number.
pub fn begin_batch(out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[BATCH_VERSION, 0, 0, 0]);
}

/// Writes the batch's event count into its header.
pub fn set_batch_count(out: &mut [u8], count: u16) {
    out[2..4].copy_from_slice(&count.to_le_bytes());
}

/// How many events a message value carries: a batch's count, else 1 (a
/// version-1 value, or bytes that are not dropbench's: one message each).
pub fn events_in(value: &[u8]) -> u64 {
    match value {
        [BATCH_VERSION, 0, lo, hi, ..] if value.len() > BATCH_HEADER_LEN => {
            u64::from(u16::from_le_bytes([*lo, *hi]))
        }
        _ => 1,
    }
}

/// The version-1 values inside a batch value, checked whole: every event
/// decodes, they fill the value exactly, and there are `count` of them.
pub fn decode_batch(b: &[u8]) -> Result<Vec<DecodedValue<'_>>, MessageError> {
    if b.len() < BATCH_HEADER_LEN {
        return Err(MessageError::Short { len: b.len() });
    }
    if b[0] != BATCH_VERSION {
        return Err(MessageError::Version { found: b[0] });
    }
    let count = u16::from_le_bytes([b[2], b[3]]) as usize;
    let mut out = Vec::with_capacity(count);
    let mut at = BATCH_HEADER_LEN;
    while at < b.len() {
        let rest = &b[at..];
        if rest.len() < VALUE_HEADER_LEN {
            return Err(MessageError::Short { len: rest.len() });
        }
        let len = VALUE_HEADER_LEN + u16::from_le_bytes([rest[44], rest[45]]) as usize;
        if len > rest.len() {
            return Err(MessageError::PathLen {
                path_len: (len - VALUE_HEADER_LEN) as u16,
                len: rest.len(),
            });
        }
        out.push(decode_value(&rest[..len])?);
        at += len;
    }
    if out.len() != count || count == 0 {
        return Err(MessageError::Count {
            count: count as u16,
            found: out.len(),
        });
    }
    Ok(out)
}

/// The events in a message value of either version: a batch's, or the one
/// a version-1 value holds.
pub fn decode_events(b: &[u8]) -> Result<Vec<DecodedValue<'_>>, MessageError> {
    match b.first() {
        Some(&BATCH_VERSION) => decode_batch(b),
        _ => decode_value(b).map(|d| vec![d]),
    }
}

/// Appends the version-1 value for `ev` and its classification to `out`.
pub fn append_value(ev: &Event<'_>, v: &Classification, out: &mut Vec<u8>) {
    let h = &ev.header;
    // The fixed part is built in a stack array and appended in one copy: one
    // capacity check instead of fifteen.
    let mut b = [0u8; VALUE_HEADER_LEN];
    b[0] = FORMAT_VERSION;
    b[1] = h.syscall;
    b[2] = h.kind;
    b[3] = v.category as u8;
    b[4] = v.sensitivity as u8;
    b[5] = v.rule_kind as u8;
    b[6..8].copy_from_slice(&v.rule.to_le_bytes());
    b[8..16].copy_from_slice(&h.ts_ns.to_le_bytes());
    b[16..20].copy_from_slice(&h.pid.to_le_bytes());
    b[20..24].copy_from_slice(&h.tid.to_le_bytes());
    b[24..28].copy_from_slice(&h.flags.to_le_bytes());
    b[28..32].copy_from_slice(&h.mode.to_le_bytes());
    b[32..36].copy_from_slice(&h.dfd.to_le_bytes());
    b[36..44].copy_from_slice(&h.ret.to_le_bytes());
    b[44..46].copy_from_slice(&(ev.path.len() as u16).to_le_bytes());
    out.reserve(VALUE_HEADER_LEN + ev.path.len());
    out.extend_from_slice(&b);
    out.extend_from_slice(ev.path);
}

/// A value read back (consumers, tests, `harness` tools).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedValue<'a> {
    pub syscall: u8,
    pub kind: u8,
    pub category: Category,
    pub sensitivity: Sensitivity,
    pub rule_kind: u8,
    pub rule: u16,
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub flags: u32,
    pub mode: u32,
    pub dfd: i32,
    pub ret: i64,
    pub path: &'a [u8],
}

/// Why bytes are not a dropbench message value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("value is {len} bytes, shorter than the {VALUE_HEADER_LEN}-byte header")]
    Short { len: usize },
    #[error("value format version {found}, this build writes {FORMAT_VERSION}")]
    Version { found: u8 },
    #[error("byte {offset}: {what} code {code} is unknown")]
    Code {
        offset: usize,
        what: &'static str,
        code: u8,
    },
    #[error("path_len {path_len} does not match the {len}-byte value")]
    PathLen { path_len: u16, len: usize },
    #[error("batch header says {count} events, the value holds {found}")]
    Count { count: u16, found: usize },
}

pub fn decode_value(b: &[u8]) -> Result<DecodedValue<'_>, MessageError> {
    if b.len() < VALUE_HEADER_LEN {
        return Err(MessageError::Short { len: b.len() });
    }
    if b[0] != FORMAT_VERSION {
        return Err(MessageError::Version { found: b[0] });
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let category = Category::from_u8(b[3]).ok_or(MessageError::Code {
        offset: 3,
        what: "category",
        code: b[3],
    })?;
    let sensitivity = Sensitivity::from_u8(b[4]).ok_or(MessageError::Code {
        offset: 4,
        what: "sensitivity",
        code: b[4],
    })?;
    let path_len = u16_at(44);
    if VALUE_HEADER_LEN + path_len as usize != b.len() {
        return Err(MessageError::PathLen {
            path_len,
            len: b.len(),
        });
    }
    Ok(DecodedValue {
        syscall: b[1],
        kind: b[2],
        category,
        sensitivity,
        rule_kind: b[5],
        rule: u16_at(6),
        ts_ns: u64_at(8),
        pid: u32_at(16),
        tid: u32_at(20),
        flags: u32_at(24),
        mode: u32_at(28),
        dfd: u32_at(32) as i32,
        ret: u64_at(36) as i64,
        path: &b[VALUE_HEADER_LEN..],
    })
}

/// Order-independent checksum of a set of messages: the wrapping sum of
/// CRC-32(key || value) over the messages. Producers and the consume-back see
/// messages in different orders (partitions interleave), so the combination
/// must commute; summing 32-bit CRCs into a u64 cannot overflow below 2^32
/// messages and wraps deterministically above.
pub fn message_crc(key: &[u8], value: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(key);
    h.update(value);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::ClassifierRuleKind;
    use probes::abi::{encode_event, EventHeader, Kind, Layout, Syscall};

    #[test]
    fn key_and_value_match_hand_written_bytes() {
        let h = EventHeader {
            ts_ns: 0x0102_0304_0506_0708,
            pid: 0x0000_1234,
            tid: 0x0000_1235,
            syscall: Syscall::Openat as u8,
            kind: Kind::Enter as u8,
            flags: 0o101, // O_WRONLY|O_CREAT = 0x41
            mode: 0o644,  // 0x1a4
            dfd: -100,
            ret: -2,
            ..Default::default()
        };
        let mut raw = Vec::new();
        encode_event(Layout::Fixed4k, &h, b"/a", &mut raw);
        let ev = Event::decode(&raw).unwrap();
        let v = Classification {
            category: Category::Temp,
            sensitivity: Sensitivity::Medium,
            rule: 0x0203,
            rule_kind: ClassifierRuleKind::Glob,
        };
        assert_eq!(encode_key(&ev), [0, 0, 0x12, 0x34, 0, 0, 0x12, 0x35]);
        let mut out = vec![0xAA; 3]; // stale contents must be cleared
        encode_value(&ev, &v, &mut out);
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            1,          // version
            1,          // syscall openat
            1,          // kind enter
            25,         // category temp
            1,          // sensitivity medium
            2,          // rule kind glob
            0x03, 0x02, // rule 0x0203
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // ts_ns
            0x34, 0x12, 0, 0, // pid
            0x35, 0x12, 0, 0, // tid
            0x41, 0, 0, 0,    // flags
            0xa4, 0x01, 0, 0, // mode
            0x9c, 0xff, 0xff, 0xff, // dfd -100
            0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // ret -2
            2, 0,       // path_len
            b'/', b'a',
        ];
        assert_eq!(out, want);
        let d = decode_value(&out).unwrap();
        assert_eq!(d.path, b"/a");
        assert_eq!(d.category, Category::Temp);
        assert_eq!(d.dfd, -100);
        assert_eq!(d.ret, -2);
        assert_eq!(d.rule, 0x0203);
    }

    #[test]
    fn decode_rejects_bad_values() {
        assert_eq!(decode_value(&[1; 10]), Err(MessageError::Short { len: 10 }));
        let mut b = vec![0u8; VALUE_HEADER_LEN];
        assert_eq!(decode_value(&b), Err(MessageError::Version { found: 0 }));
        b[0] = 1;
        b[3] = 200;
        assert!(matches!(
            decode_value(&b),
            Err(MessageError::Code { offset: 3, .. })
        ));
        b[3] = 0;
        b[44] = 1;
        assert_eq!(
            decode_value(&b),
            Err(MessageError::PathLen {
                path_len: 1,
                len: 46
            })
        );
    }

    fn event(pid: u32, tid: u32, path: &[u8], raw: &mut Vec<u8>) {
        let h = EventHeader {
            pid,
            tid,
            syscall: Syscall::Openat as u8,
            kind: Kind::Enter as u8,
            ..Default::default()
        };
        encode_event(Layout::Compact, &h, path, raw);
    }

    #[test]
    fn a_batch_value_is_a_header_then_version_1_values_back_to_back() {
        let v = Classification {
            category: Category::Temp,
            sensitivity: Sensitivity::Medium,
            rule: 7,
            rule_kind: ClassifierRuleKind::Glob,
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        event(10, 11, b"/a", &mut a);
        event(10, 11, b"/etc/passwd", &mut b);
        let (ea, eb) = (Event::decode(&a).unwrap(), Event::decode(&b).unwrap());
        let mut batch = Vec::new();
        begin_batch(&mut batch);
        append_value(&ea, &v, &mut batch);
        append_value(&eb, &v, &mut batch);
        set_batch_count(&mut batch, 2);
        let (mut one, mut two) = (Vec::new(), Vec::new());
        encode_value(&ea, &v, &mut one);
        encode_value(&eb, &v, &mut two);
        assert_eq!(&batch[..4], &[2, 0, 2, 0]);
        assert_eq!(batch[4..], [one.clone(), two].concat()[..]);
        assert_eq!(events_in(&batch), 2);
        assert_eq!(events_in(&one), 1);
        assert_eq!(events_in(b"not ours"), 1);
        let d = decode_batch(&batch).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].path, d[1].path), (&b"/a"[..], &b"/etc/passwd"[..]));
        assert_eq!((d[1].pid, d[1].tid), (10, 11));
        // A wrong count, a cut value and a stray byte are all refused.
        set_batch_count(&mut batch, 3);
        assert_eq!(
            decode_batch(&batch),
            Err(MessageError::Count { count: 3, found: 2 })
        );
        set_batch_count(&mut batch, 2);
        assert!(decode_batch(&batch[..batch.len() - 1]).is_err());
        let mut stray = batch.clone();
        stray.push(0);
        assert!(decode_batch(&stray).is_err());
        assert_eq!(decode_batch(&one), Err(MessageError::Version { found: 1 }));
        // Either version through one call.
        assert_eq!(decode_events(&one).unwrap().len(), 1);
        assert_eq!(decode_events(&batch).unwrap().len(), 2);
        assert!(decode_events(&[9; 50]).is_err());
    }

    #[test]
    fn one_thread_keeps_one_lane_and_lane_keys_are_never_event_keys() {
        let mut raw = Vec::new();
        let mut seen = [false; LANES];
        for pid in 1..200u32 {
            event(pid, pid + 1, b"/x", &mut raw);
            let ev = Event::decode(&raw).unwrap();
            let lane = lane_of(&ev);
            assert!(lane < LANES);
            seen[lane] = true;
            let mut again = Vec::new();
            event(pid, pid + 1, b"/a/much/longer/path", &mut again);
            assert_eq!(lane_of(&Event::decode(&again).unwrap()), lane);
            assert_ne!(lane_key(lane), encode_key(&ev));
        }
        assert!(seen.iter().all(|&s| s), "199 threads reach every lane");
        assert_eq!(lane_key(3), [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 3]);
    }

    #[test]
    fn crc_is_the_standard_crc32() {
        // CRC-32/ISO-HDLC check value for "123456789".
        assert_eq!(message_crc(b"1234", b"56789"), 0xCBF4_3926);
    }
}
