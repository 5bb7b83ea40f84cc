//! The capture format: pcapng that tshark opens, holding each sample's bytes
//! exactly as the probe emitted them into the ring.
//!
//! The full format is specified in `docs/capture-format.md`. In short:
//! - one Section Header Block whose `opt_comment` holds a JSON [`CaptureMeta`];
//! - one Interface Description Block per ring (`cpuN` for perf, `ringbuf`),
//!   link type [`LINKTYPE_PERF`] or [`LINKTYPE_RINGBUF`], `if_tsresol` = 9 (ns);
//! - one Enhanced Packet Block per sample, trailing zero bytes trimmed
//!   (`captured_len < original_len`; the reader pads the zeros back);
//! - lost markers: an EPB with no payload and `epb_dropcount` = N;
//! - at the end, one Interface Statistics Block per ring with the kernel counters;
//! - for a recorded command, one Custom Block with its tasks' CPU profile
//!   ([`cpu_profile`]).
//!
//! [`CaptureWriter`] is the hot path of `harness record`; [`CaptureReader`]
//! streams a file, [`Capture`] holds one for replay (preloaded or streamed).

mod blocks;
pub mod cpu_profile;
mod reader;
mod source;
mod writer;

pub use reader::{CaptureReader, Entry};
pub(crate) use source::Body;
pub use source::{fits, Capture, Loading, StoredRecord, Summary};
pub use writer::{CaptureOutput, CaptureSummary, CaptureWriter, RingCount, RingStats};

use std::path::Path;

use probes::abi::{Layout, ABI_VERSION};
use probes::Wakeup;
use serde::{Deserialize, Serialize};

/// A wakeup policy in capture metadata, as the text its `Display` writes and
/// its `FromStr` reads.
mod wakeup_text {
    use probes::Wakeup;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(w: &Wakeup, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(w)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Wakeup, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Version of the capture layout described in `docs/capture-format.md`.
pub const CAPTURE_VERSION: u32 = 1;
/// pcapng link type of a perf-buffer ring: LINKTYPE_USER0.
pub const LINKTYPE_PERF: u16 = 147;
/// pcapng link type of a BPF ring buffer: LINKTYPE_USER1.
pub const LINKTYPE_RINGBUF: u16 = 148;
/// `if_tsresol` value: 10^-9 s, so EPB timestamps are nanoseconds.
pub const TSRESOL_NS: u8 = 9;

/// The kernel transport a capture was recorded from (or a replay emulates):
/// the probes' own type, so live and replayed runs name it the same way.
pub use probes::Transport;

/// The pcapng link type of a transport's interfaces.
pub fn linktype(t: Transport) -> u16 {
    match t {
        Transport::Perf => LINKTYPE_PERF,
        Transport::Ringbuf => LINKTYPE_RINGBUF,
    }
}

/// The `if_name` of ring `ring` of a transport.
pub fn ring_name(t: Transport, ring: u32) -> String {
    match t {
        Transport::Perf => format!("cpu{ring}"),
        Transport::Ringbuf => "ringbuf".to_string(),
    }
}

/// The metadata of a capture, stored as one JSON object in the SHB's
/// `opt_comment`. Field names are part of the format (docs/capture-format.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureMeta {
    /// Always [`CAPTURE_VERSION`]; its presence marks a dropbench capture.
    pub dropbench_capture: u32,
    /// The event ABI version of the samples ([`probes::abi::ABI_VERSION`]).
    pub abi_version: u16,
    /// The event layout (`probe` in captures written before issue 31, still
    /// read).
    #[serde(alias = "probe")]
    pub layout: Layout,
    pub transport: Transport,
    /// Size of one ring's data area in bytes.
    pub ring_bytes: u64,
    /// Number of rings (= interfaces).
    pub rings: u32,
    /// Online CPUs when recorded.
    pub cpus: u32,
    /// Wakeup policy, written as `events:N`, `watermark:B`, `adaptive`,
    /// `no-wakeup/poll:1ms` or `forced`; a capture whose policy does not
    /// parse is refused when it is opened.
    #[serde(with = "wakeup_text")]
    pub wakeup: Wakeup,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    pub hostname: String,
    /// Wall clock at the start (ns since the Unix epoch).
    pub start_unix_ns: u64,
    /// CLOCK_MONOTONIC at the same instant as `start_unix_ns`.
    pub start_monotonic_ns: u64,
    /// Load generator settings, if a load ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<serde_json::Value>,
    /// The command line that made the capture.
    #[serde(default)]
    pub command: Vec<String>,
}

impl CaptureMeta {
    /// Metadata for a capture starting now on this machine: kernel, hostname,
    /// CPUs, both clocks and the process's argv are filled in.
    pub fn now(
        layout: Layout,
        transport: Transport,
        ring_bytes: u64,
        rings: u32,
        wakeup: Wakeup,
    ) -> Self {
        let (kernel, hostname) = crate::host::uname();
        let (start_unix_ns, start_monotonic_ns) = crate::host::clock_pair();
        CaptureMeta {
            dropbench_capture: CAPTURE_VERSION,
            abi_version: ABI_VERSION,
            layout,
            transport,
            ring_bytes,
            rings,
            cpus: crate::host::cpus(),
            wakeup,
            kernel,
            hostname,
            start_unix_ns,
            start_monotonic_ns,
            load: None,
            command: std::env::args().collect(),
        }
    }

    /// Wall-clock ns for a CLOCK_MONOTONIC timestamp. Wrapping arithmetic makes
    /// this exactly invertible by [`CaptureMeta::monotonic_of`] for every input.
    pub fn wall_of(&self, monotonic_ns: u64) -> u64 {
        monotonic_ns
            .wrapping_sub(self.start_monotonic_ns)
            .wrapping_add(self.start_unix_ns)
    }

    /// Inverse of [`CaptureMeta::wall_of`].
    pub fn monotonic_of(&self, wall_ns: u64) -> u64 {
        wall_ns
            .wrapping_sub(self.start_unix_ns)
            .wrapping_add(self.start_monotonic_ns)
    }
}

/// Everything that can go wrong writing or reading a capture. Every variant
/// names the file, and read errors the byte offset of the bad block.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{file}: {op}: {source}")]
    Io {
        file: String,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("{file}: corrupt block at byte {offset}: {what}")]
    Corrupt {
        file: String,
        offset: u64,
        what: String,
    },
    #[error("{file}: truncated at byte {offset}: {what}")]
    Truncated {
        file: String,
        offset: u64,
        what: String,
    },
    #[error("{file}: not a dropbench capture (byte {offset}): {what}")]
    Foreign {
        file: String,
        offset: u64,
        what: String,
    },
    #[error("{file}: capture format version {found} (byte {offset}); this build reads version {CAPTURE_VERSION}")]
    UnknownVersion {
        file: String,
        offset: u64,
        found: u64,
    },
    #[error(
        "{file}: event ABI version {found} (byte {offset}); this build understands {ABI_VERSION}"
    )]
    AbiVersion {
        file: String,
        offset: u64,
        found: u64,
    },
    #[error("{file}: ring {ring} is out of range: the capture has {rings} rings")]
    RingOutOfRange { file: String, ring: u32, rings: u32 },
    #[error("{file}: {what}")]
    Invalid { file: String, what: String },
    #[error("{file}: {} MiB does not fit in memory to preload (this process may use {} MiB more, and preloading takes at most half of it); stream it instead (--load stream)", bytes >> 20, budget >> 20)]
    TooBig {
        file: String,
        bytes: u64,
        budget: u64,
    },
    #[error("{file}: the writer stopped after an earlier error: {why}")]
    Stopped { file: String, why: String },
}

pub(crate) fn file_name(path: &Path) -> String {
    path.display().to_string()
}

/// Length of `data` without its trailing zero bytes.
#[inline]
pub(crate) fn trimmed_len(data: &[u8]) -> usize {
    // Scan 8 bytes at a time from the end: a fixed4k event is ~4 KB of mostly zeros.
    let mut end = data.len();
    while end >= 8 {
        let w = u64::from_ne_bytes(data[end - 8..end].try_into().unwrap());
        if w != 0 {
            break;
        }
        end -= 8;
    }
    while end > 0 && data[end - 1] == 0 {
        end -= 1;
    }
    end
}

/// Round up to the pcapng 32-bit alignment.
#[inline]
pub(crate) fn pad4(n: usize) -> usize {
    (n + 3) & !3
}
