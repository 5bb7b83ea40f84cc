//! [`CaptureWriter`]: the hot path of `harness record`.
//!
//! The SHB and IDBs are written with pcap-file's block types. EPBs and ISBs are
//! written as raw bytes here: EPBs because the writer must not allocate per
//! record (pcap-file's `EnhancedPacketBlock` write path measures each block by
//! writing it twice and its options live in a `Vec`), ISBs because pcap-file
//! 2.0.0 writes the ISB timestamp as one u64, which puts the low word first in
//! a little-endian file where pcapng wants the high word first.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness};
use probes::record::RecordRef;
use serde::{Deserialize, Serialize};

use super::{file_name, pad4, trimmed_len, CaptureError, CaptureMeta, TSRESOL_NS};

/// pcapng block type of an Enhanced Packet Block.
pub(crate) const EPB: u32 = 6;
/// pcapng block type of an Interface Statistics Block.
pub(crate) const ISB: u32 = 5;
/// Fixed part of an EPB: type, length, interface, ts high, ts low, captured
/// length, original length (7 × 4 bytes), plus the trailing length (4 bytes).
pub(crate) const EPB_FIXED: usize = 32;
/// The writer's buffer. 8 MiB is ~2000 fixed4k records or ~100 k compact ones
/// per write(2), which keeps syscall cost far below the copy cost.
const BUF_BYTES: usize = 8 << 20;
/// Snap length written in the IDBs: larger than any event (4148 bytes with
/// perf padding), so nothing is ever cut.
const SNAPLEN: u32 = 262_144;

/// Kernel-side counters of one ring, passed to [`CaptureWriter::finish`] and
/// stored in that ring's Interface Statistics Block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingStats {
    pub ring: u32,
    /// Samples the kernel handled for this ring (`isb_ifrecv`).
    pub received: u64,
    /// Samples the kernel failed to output (`isb_ifdrop`).
    pub dropped: u64,
}

/// What the writer stored for one ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingCount {
    pub ring: u32,
    pub samples: u64,
    pub lost_markers: u64,
    /// Sum of the lost markers' counts.
    pub lost: u64,
    /// Sum of the samples' original lengths.
    pub bytes: u64,
}

/// Returned by [`CaptureWriter::finish`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureSummary {
    pub path: PathBuf,
    /// Bytes in the file.
    pub file_bytes: u64,
    pub samples: u64,
    pub lost_markers: u64,
    pub lost: u64,
    pub per_ring: Vec<RingCount>,
}

/// Writes a capture. See the module docs and `docs/capture-format.md`.
pub struct CaptureWriter {
    out: BufWriter<File>,
    path: PathBuf,
    meta: CaptureMeta,
    /// Bytes handed to `out` so far (the offset of the next block).
    offset: u64,
    per_ring: Vec<RingCount>,
    /// Wall-clock timestamp of the last sample, used for lost markers.
    last_ts: u64,
    /// Reused for lost-marker comments, so markers do not allocate either.
    scratch: Vec<u8>,
}

impl CaptureWriter {
    /// Creates `path` and writes the section header (with `meta`) and one
    /// interface per ring.
    pub fn create(path: &Path, meta: &CaptureMeta) -> Result<CaptureWriter, CaptureError> {
        let file = file_name(path);
        if meta.rings == 0 {
            return Err(CaptureError::Invalid {
                file,
                what: "a capture needs at least one ring".into(),
            });
        }
        let json = serde_json::to_string(meta).map_err(|e| CaptureError::Invalid {
            file: file.clone(),
            what: format!("cannot serialize the metadata: {e}"),
        })?;
        // pcapng option lengths are u16.
        if json.len() > u16::MAX as usize {
            return Err(CaptureError::Invalid {
                file,
                what: format!(
                    "metadata is {} bytes of JSON, over the 65535-byte pcapng option limit (shorten the command or load settings)",
                    json.len()
                ),
            });
        }
        let shb = SectionHeaderBlock {
            endianness: Endianness::Little,
            major_version: 1,
            minor_version: 0,
            section_length: -1,
            options: vec![
                SectionHeaderOption::Hardware(Cow::Owned(cpu_model())),
                SectionHeaderOption::OS(Cow::Owned(format!("Linux {}", meta.kernel))),
                SectionHeaderOption::UserApplication(Cow::Owned(format!(
                    "dropbench {}",
                    env!("CARGO_PKG_VERSION")
                ))),
                SectionHeaderOption::Comment(Cow::Owned(json)),
            ],
        };
        let pcap_err = |e: pcap_file::PcapError| CaptureError::Invalid {
            file: file.clone(),
            what: format!("encoding the header blocks: {e}"),
        };
        let mut head = PcapNgWriter::with_section_header(Vec::new(), shb).map_err(pcap_err)?;
        for ring in 0..meta.rings {
            let idb = InterfaceDescriptionBlock {
                linktype: DataLink::from(super::linktype(meta.transport) as u32),
                snaplen: SNAPLEN,
                options: vec![
                    InterfaceDescriptionOption::IfName(Cow::Owned(super::ring_name(
                        meta.transport,
                        ring,
                    ))),
                    InterfaceDescriptionOption::IfDescription(Cow::Owned(format!(
                        "dropbench {} {} ring {ring}",
                        meta.probe, meta.transport
                    ))),
                    InterfaceDescriptionOption::IfTsResol(TSRESOL_NS),
                ],
            };
            head.write_pcapng_block(idb).map_err(pcap_err)?;
        }
        let head = head.into_inner();

        let f = File::create(path).map_err(|source| CaptureError::Io {
            file: file.clone(),
            op: "create",
            source,
        })?;
        let mut out = BufWriter::with_capacity(BUF_BYTES, f);
        out.write_all(&head).map_err(|source| CaptureError::Io {
            file: file.clone(),
            op: "write",
            source,
        })?;
        Ok(CaptureWriter {
            out,
            path: path.to_path_buf(),
            meta: meta.clone(),
            offset: head.len() as u64,
            per_ring: (0..meta.rings)
                .map(|ring| RingCount {
                    ring,
                    ..Default::default()
                })
                .collect(),
            last_ts: meta.start_unix_ns,
            scratch: Vec::with_capacity(64),
        })
    }

    pub fn meta(&self) -> &CaptureMeta {
        &self.meta
    }

    fn io(&self, op: &'static str, source: std::io::Error) -> CaptureError {
        CaptureError::Io {
            file: file_name(&self.path),
            op,
            source,
        }
    }

    /// Appends one record: a sample becomes an EPB (trailing zeros trimmed), a
    /// lost marker an empty EPB with `epb_dropcount`.
    #[inline]
    pub fn write(&mut self, rec: RecordRef<'_>) -> Result<(), CaptureError> {
        let ring = rec.ring();
        if ring >= self.meta.rings {
            return Err(CaptureError::RingOutOfRange {
                file: file_name(&self.path),
                ring,
                rings: self.meta.rings,
            });
        }
        if let RecordRef::Sample { data: [], .. } = rec {
            return Err(CaptureError::Invalid {
                file: file_name(&self.path),
                what: format!(
                    "empty sample on ring {ring}: a sample holds at least an event header"
                ),
            });
        }
        let r = match self.write_block(rec) {
            Ok(n) => n,
            Err(e) => return Err(self.io("write", e)),
        };
        self.offset += r as u64;
        Ok(())
    }

    #[inline]
    fn write_block(&mut self, rec: RecordRef<'_>) -> std::io::Result<usize> {
        match rec {
            RecordRef::Sample {
                ring,
                origin_ns,
                data,
            } => {
                let cap = trimmed_len(data);
                let padded = pad4(cap);
                let total = EPB_FIXED + padded;
                let ts = self.meta.wall_of(origin_ns);
                self.last_ts = ts;
                let mut h = [0u8; 28];
                put_u32(&mut h, 0, EPB);
                put_u32(&mut h, 4, total as u32);
                put_u32(&mut h, 8, ring);
                put_u32(&mut h, 12, (ts >> 32) as u32);
                put_u32(&mut h, 16, ts as u32);
                put_u32(&mut h, 20, cap as u32);
                put_u32(&mut h, 24, data.len() as u32);
                self.out.write_all(&h)?;
                self.out.write_all(&data[..cap])?;
                // Padding to 4 bytes, then the trailing block length.
                let mut tail = [0u8; 7];
                let npad = padded - cap;
                tail[npad..npad + 4].copy_from_slice(&(total as u32).to_le_bytes());
                self.out.write_all(&tail[..npad + 4])?;
                let c = &mut self.per_ring[ring as usize];
                c.samples += 1;
                c.bytes += data.len() as u64;
                Ok(total)
            }
            RecordRef::Lost { ring, count } => {
                self.scratch.clear();
                write!(&mut self.scratch, "lost {count}")?;
                let clen = self.scratch.len();
                // epb_dropcount (4 + 8) + opt_comment (4 + padded text) + opt_endofopt (4).
                let opts = 12 + 4 + pad4(clen) + 4;
                let total = EPB_FIXED + opts;
                let ts = self.last_ts;
                let mut h = [0u8; 40];
                put_u32(&mut h, 0, EPB);
                put_u32(&mut h, 4, total as u32);
                put_u32(&mut h, 8, ring);
                put_u32(&mut h, 12, (ts >> 32) as u32);
                put_u32(&mut h, 16, ts as u32);
                // captured 0, original 0 (bytes 20..28 stay zero).
                put_u16(&mut h, 28, 4); // epb_dropcount
                put_u16(&mut h, 30, 8);
                h[32..40].copy_from_slice(&count.to_le_bytes());
                self.out.write_all(&h)?;
                let mut c = [0u8; 4];
                put_u16(&mut c, 0, 1); // opt_comment
                put_u16(&mut c, 2, clen as u16);
                self.out.write_all(&c)?;
                self.out.write_all(&self.scratch)?;
                let mut tail = [0u8; 11];
                let npad = pad4(clen) - clen;
                // padding, opt_endofopt (4 zero bytes), trailing length.
                tail[npad + 4..npad + 8].copy_from_slice(&(total as u32).to_le_bytes());
                self.out.write_all(&tail[..npad + 8])?;
                let rc = &mut self.per_ring[ring as usize];
                rc.lost_markers += 1;
                rc.lost += count;
                Ok(total)
            }
        }
    }

    /// Pushes everything buffered to the file. After a flush, the file is
    /// readable up to here even if the process dies.
    pub fn flush(&mut self) -> Result<(), CaptureError> {
        self.out.flush().map_err(|e| self.io("flush", e))
    }

    /// Bytes written so far (buffered included).
    pub fn bytes_written(&self) -> u64 {
        self.offset
    }

    /// Writes one Interface Statistics Block per entry of `stats`, flushes and
    /// syncs the file, and returns what was stored.
    pub fn finish(mut self, stats: &[RingStats]) -> Result<CaptureSummary, CaptureError> {
        let ts = super::clock_pair().0;
        for s in stats {
            if s.ring >= self.meta.rings {
                return Err(CaptureError::RingOutOfRange {
                    file: file_name(&self.path),
                    ring: s.ring,
                    rings: self.meta.rings,
                });
            }
            let delivered = self.per_ring[s.ring as usize].samples;
            // type, len, interface, ts hi, ts lo (20) + 3 u64 options (3 × 12)
            // + opt_endofopt (4) + trailing length (4) = 64 bytes.
            let mut b = [0u8; 64];
            put_u32(&mut b, 0, ISB);
            put_u32(&mut b, 4, 64);
            put_u32(&mut b, 8, s.ring);
            put_u32(&mut b, 12, (ts >> 32) as u32);
            put_u32(&mut b, 16, ts as u32);
            for (i, (code, v)) in [(4u16, s.received), (5, s.dropped), (8, delivered)]
                .into_iter()
                .enumerate()
            {
                let o = 20 + i * 12;
                put_u16(&mut b, o, code);
                put_u16(&mut b, o + 2, 8);
                b[o + 4..o + 12].copy_from_slice(&v.to_le_bytes());
            }
            put_u32(&mut b, 60, 64);
            self.out.write_all(&b).map_err(|e| self.io("write", e))?;
            self.offset += 64;
        }
        self.out.flush().map_err(|e| self.io("flush", e))?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(|e| self.io("sync", e))?;
        let per_ring = self.per_ring.clone();
        Ok(CaptureSummary {
            path: self.path.clone(),
            file_bytes: self.offset,
            samples: per_ring.iter().map(|r| r.samples).sum(),
            lost_markers: per_ring.iter().map(|r| r.lost_markers).sum(),
            lost: per_ring.iter().map(|r| r.lost).sum(),
            per_ring,
        })
    }
}

#[inline]
fn put_u32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
#[inline]
fn put_u16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}

/// The CPU model from /proc/cpuinfo, or "unknown".
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
