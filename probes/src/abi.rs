//! The event ABI, mirrored from `probes/bpf/dropbench_abi.h`.
//!
//! Every size and offset is checked at compile time against the C layout, so
//! a change on one side that is not made on the other fails the build.

use std::mem::{offset_of, size_of};

/// Bumped whenever the layout below changes. Captures record it.
pub const ABI_VERSION: u16 = 1;
/// The filename buffer of the fixed4k layout.
pub const PATH_MAX: usize = 4096;
/// Size of [`EventHeader`] on the wire.
pub const HEADER_LEN: usize = 48;
/// Size of a whole fixed4k event: 48-byte header + 4096-byte path buffer.
pub const FIXED4K_LEN: usize = HEADER_LEN + PATH_MAX;

/// `db_event_header`. Plain old data, little-endian, explicit padding.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// `bpf_ktime_get_ns()`, CLOCK_MONOTONIC.
    pub ts_ns: u64,
    /// tgid.
    pub pid: u32,
    pub tid: u32,
    pub abi_version: u16,
    /// [`Syscall`] as u8.
    pub syscall: u8,
    /// [`Kind`] as u8.
    pub kind: u8,
    pub flags: u32,
    pub mode: u32,
    pub dfd: i32,
    /// Exit events: the syscall's return value. Enter events: 0.
    pub ret: i64,
    /// Filename bytes, without the NUL.
    pub path_len: u16,
    /// [`Layout`] as u8.
    pub layout: u8,
    pub _pad0: u8,
    pub _pad1: u32,
}

const _: () = {
    assert!(size_of::<EventHeader>() == HEADER_LEN);
    assert!(offset_of!(EventHeader, ts_ns) == 0);
    assert!(offset_of!(EventHeader, pid) == 8);
    assert!(offset_of!(EventHeader, tid) == 12);
    assert!(offset_of!(EventHeader, abi_version) == 16);
    assert!(offset_of!(EventHeader, syscall) == 18);
    assert!(offset_of!(EventHeader, kind) == 19);
    assert!(offset_of!(EventHeader, flags) == 20);
    assert!(offset_of!(EventHeader, mode) == 24);
    assert!(offset_of!(EventHeader, dfd) == 28);
    assert!(offset_of!(EventHeader, ret) == 32);
    assert!(offset_of!(EventHeader, path_len) == 40);
    assert!(offset_of!(EventHeader, layout) == 42);
    assert!(offset_of!(EventHeader, _pad0) == 43);
    assert!(offset_of!(EventHeader, _pad1) == 44);
};

/// `db_config`, the single entry of the `config` map.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ProbeConfig {
    pub filter_mode: u32,
    pub emit_exit: u32,
    pub cgroup_id: u64,
    pub ringbuf_flags: u64,
    /// `FILTER_TGID`: how many of `tgids` are the targets (1..=[`INLINE_TGIDS`]),
    /// or 0 when there are more and they are all in the `targets` hash.
    pub ntgids: u32,
    pub tgids: [u32; INLINE_TGIDS],
    pub _pad: u32,
}
const _: () = {
    assert!(size_of::<ProbeConfig>() == 48);
    assert!(offset_of!(ProbeConfig, cgroup_id) == 8);
    assert!(offset_of!(ProbeConfig, ringbuf_flags) == 16);
    assert!(offset_of!(ProbeConfig, ntgids) == 24);
    assert!(offset_of!(ProbeConfig, tgids) == 28);
};

/// `DB_INLINE_TGIDS`: a tgid filter of at most this many targets is compared
/// inline in the probe, without the hash lookup.
pub const INLINE_TGIDS: usize = 4;
// SAFETY: repr(C), no padding (checked above), every bit pattern valid.
unsafe impl aya::Pod for ProbeConfig {}

pub const FILTER_ALL: u32 = 0;
pub const FILTER_TGID: u32 = 1;
pub const FILTER_CGROUP: u32 = 2;

/// Number of u64 slots in `db_counters`.
pub const COUNTER_SLOTS: usize = 16;

/// `db_counters`: one per CPU in the `counters` per-CPU array.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCounters {
    pub v: [u64; COUNTER_SLOTS],
}
const _: () = assert!(size_of::<RawCounters>() == 8 * COUNTER_SLOTS);
// SAFETY: an array of u64.
unsafe impl aya::Pod for RawCounters {}

/// Counter slot indices (`DB_CNT_*`).
pub mod slot {
    pub const SEEN: usize = 0;
    pub const FILTERED: usize = 1;
    pub const EMITTED: usize = 2;
    pub const OUTPUT_OK: usize = 3;
    pub const FAIL_NOSPC: usize = 4;
    pub const FAIL_NOENT: usize = 5;
    pub const FAIL_AGAIN: usize = 6;
    pub const FAIL_OTHER: usize = 7;
    pub const PATH_FAULT: usize = 8;
    /// Kept by the injector only (`DB_CNT_LOST_PENDING` in inject.bpf.c): perf
    /// -ENOSPC failures since the CPU's last successful output, not yet
    /// reported by a PERF_RECORD_LOST.
    pub const LOST_PENDING: usize = 9;
}

macro_rules! u8_enum {
    ($(#[$m:meta])* $name:ident ($what:literal) { $($(#[$vm:meta])* $v:ident = $n:expr => $s:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $v = $n),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            pub fn from_u8(v: u8) -> Option<Self> { match v { $($n => Some($name::$v),)+ _ => None } }
            pub fn name(self) -> &'static str { match self { $($name::$v => $s),+ } }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.name()) }
        }
        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::ALL.iter().copied().find(|v| v.name() == s).ok_or_else(|| {
                    let names: Vec<_> = $name::ALL.iter().map(|v| v.name()).collect();
                    format!("unknown {} {s:?}; expected one of: {}", $what, names.join(", "))
                })
            }
        }
    };
}

u8_enum!(
    /// Which syscall an event came from (`DB_SYS_*`).
    Syscall ("syscall") {
        Openat = 1 => "openat",
        Openat2 = 2 => "openat2",
        Newfstatat = 3 => "newfstatat",
        Statx = 4 => "statx",
        Newstat = 5 => "newstat",
        Newlstat = 6 => "newlstat",
    }
);

u8_enum!(
    /// Enter or exit side of the syscall (`DB_KIND_*`).
    Kind ("event kind") {
        Enter = 1 => "enter",
        Exit = 2 => "exit",
    }
);

u8_enum!(
    /// Event layout (`DB_LAYOUT_*`), also the probe variant name.
    Layout ("probe variant") {
        /// The seed's layout: header + the whole 4 KiB filename buffer.
        Fixed4k = 1 => "fixed4k",
        /// Header + only the filename bytes used (+ NUL, rounded up to 8).
        Compact = 2 => "compact",
    }
);

/// Why bytes could not be decoded as an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("event is {len} bytes, shorter than the {HEADER_LEN}-byte header")]
    Short { len: usize },
    #[error("event ABI version {found}, this build understands {ABI_VERSION}")]
    AbiVersion { found: u16 },
    #[error("path_len {path_len} runs past the {len}-byte event")]
    PathOverrun { path_len: u16, len: usize },
}

/// A decoded event that borrows its path from the record bytes (zero-copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    pub header: EventHeader,
    /// The filename bytes (no NUL). Empty for exit events.
    pub path: &'a [u8],
}

impl<'a> Event<'a> {
    /// Decodes an event in place. `bytes` is a sample's payload as the BPF
    /// program emitted it (trailing perf alignment padding is allowed).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let header = EventHeader::read(bytes)?;
        let end = HEADER_LEN + header.path_len as usize;
        if end > bytes.len() {
            return Err(DecodeError::PathOverrun {
                path_len: header.path_len,
                len: bytes.len(),
            });
        }
        Ok(Event {
            header,
            path: &bytes[HEADER_LEN..end],
        })
    }

    pub fn syscall(&self) -> Option<Syscall> {
        Syscall::from_u8(self.header.syscall)
    }
    pub fn kind(&self) -> Option<Kind> {
        Kind::from_u8(self.header.kind)
    }
}

fn le_u16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le_u32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn le_u64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

impl EventHeader {
    /// Reads the header from the front of `bytes`, checking length and ABI version.
    pub fn read(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::Short { len: bytes.len() });
        }
        let b = bytes;
        let h = EventHeader {
            ts_ns: le_u64(b, 0),
            pid: le_u32(b, 8),
            tid: le_u32(b, 12),
            abi_version: le_u16(b, 16),
            syscall: b[18],
            kind: b[19],
            flags: le_u32(b, 20),
            mode: le_u32(b, 24),
            dfd: le_u32(b, 28) as i32,
            ret: le_u64(b, 32) as i64,
            path_len: le_u16(b, 40),
            layout: b[42],
            _pad0: b[43],
            _pad1: le_u32(b, 44),
        };
        if h.abi_version != ABI_VERSION {
            return Err(DecodeError::AbiVersion {
                found: h.abi_version,
            });
        }
        Ok(h)
    }

    /// Serializes the header as the BPF program lays it out.
    pub fn write(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.ts_ns.to_le_bytes());
        out[8..12].copy_from_slice(&self.pid.to_le_bytes());
        out[12..16].copy_from_slice(&self.tid.to_le_bytes());
        out[16..18].copy_from_slice(&self.abi_version.to_le_bytes());
        out[18] = self.syscall;
        out[19] = self.kind;
        out[20..24].copy_from_slice(&self.flags.to_le_bytes());
        out[24..28].copy_from_slice(&self.mode.to_le_bytes());
        out[28..32].copy_from_slice(&self.dfd.to_le_bytes());
        out[32..40].copy_from_slice(&self.ret.to_le_bytes());
        out[40..42].copy_from_slice(&self.path_len.to_le_bytes());
        out[42] = self.layout;
        out[43] = self._pad0;
        out[44..48].copy_from_slice(&self._pad1.to_le_bytes());
    }
}

/// Size in bytes the probe emits for an enter event with a `path_len`-byte
/// path: fixed4k always sends 4144; compact sends header + path + NUL rounded
/// up to 8 (the same arithmetic as `on_enter` in dropbench.bpf.c).
pub fn event_size(layout: Layout, kind: Kind, path_len: usize) -> usize {
    match (kind, layout) {
        (Kind::Exit, _) => HEADER_LEN,
        (Kind::Enter, Layout::Fixed4k) => FIXED4K_LEN,
        (Kind::Enter, Layout::Compact) => {
            ((HEADER_LEN + path_len.min(PATH_MAX - 1) + 1 + 7) & !7).min(FIXED4K_LEN)
        }
    }
}

/// Builds an event exactly as the probe would emit it. Used by synthetic
/// fixtures and benchmarks; bytes past the path are zero.
pub fn encode_event(layout: Layout, header: &EventHeader, path: &[u8], out: &mut Vec<u8>) {
    let kind = Kind::from_u8(header.kind).unwrap_or(Kind::Enter);
    let path = &path[..path.len().min(PATH_MAX - 1)];
    let size = event_size(layout, kind, path.len());
    out.clear();
    out.resize(size, 0);
    let mut h = *header;
    h.abi_version = ABI_VERSION;
    h.layout = layout as u8;
    h.path_len = if kind == Kind::Exit {
        0
    } else {
        path.len() as u16
    };
    h.write(&mut out[..HEADER_LEN]);
    if kind == Kind::Enter {
        out[HEADER_LEN..HEADER_LEN + path.len()].copy_from_slice(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_sizes_match_the_c_arithmetic() {
        // 48 + 0 + 1 = 49 -> 56; 48 + 7 + 1 = 56 -> 56; 48 + 8 + 1 = 57 -> 64.
        assert_eq!(event_size(Layout::Compact, Kind::Enter, 0), 56);
        assert_eq!(event_size(Layout::Compact, Kind::Enter, 7), 56);
        assert_eq!(event_size(Layout::Compact, Kind::Enter, 8), 64);
        // The longest path, 4095 bytes + NUL, fills the buffer exactly: 4144.
        assert_eq!(event_size(Layout::Compact, Kind::Enter, 4095), FIXED4K_LEN);
        assert_eq!(event_size(Layout::Fixed4k, Kind::Enter, 3), 4144);
        assert_eq!(event_size(Layout::Fixed4k, Kind::Exit, 3), 48);
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let h = EventHeader {
            ts_ns: 7,
            pid: 10,
            tid: 11,
            syscall: Syscall::Statx as u8,
            kind: Kind::Enter as u8,
            flags: 0x100,
            mode: 0x7ff,
            dfd: -100,
            ..Default::default()
        };
        let mut buf = Vec::new();
        for layout in Layout::ALL {
            encode_event(*layout, &h, b"/etc/passwd", &mut buf);
            let e = Event::decode(&buf).unwrap();
            assert_eq!(e.path, b"/etc/passwd");
            assert_eq!(e.syscall(), Some(Syscall::Statx));
            assert_eq!(e.header.dfd, -100);
            assert_eq!(e.header.layout, *layout as u8);
        }
    }

    #[test]
    fn decode_rejects_bad_input() {
        assert_eq!(
            Event::decode(&[0u8; 10]),
            Err(DecodeError::Short { len: 10 })
        );
        let mut b = vec![0u8; 64];
        b[16] = 9;
        assert_eq!(Event::decode(&b), Err(DecodeError::AbiVersion { found: 9 }));
        b[16] = 1;
        b[40] = 200;
        assert!(matches!(
            Event::decode(&b),
            Err(DecodeError::PathOverrun { .. })
        ));
    }
}
