//! pcapng block encoding for [`CaptureWriter`](super::CaptureWriter): the
//! block type codes, the header blocks (the section header with the
//! metadata, one interface description per ring) and the little-endian
//! helpers that build and walk the raw blocks.

use std::borrow::Cow;
use std::path::Path;

use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness};

use super::{file_name, CaptureError, CaptureMeta, TSRESOL_NS};

/// pcapng block type of an Enhanced Packet Block.
pub(crate) const EPB: u32 = 6;
/// pcapng block type of an Interface Statistics Block.
pub(crate) const ISB: u32 = 5;
/// Fixed part of an EPB: type, length, interface, ts high, ts low, captured
/// length, original length (7 × 4 bytes), plus the trailing length (4 bytes).
pub(crate) const EPB_FIXED: usize = 32;

/// Snap length written in the IDBs: larger than any event (4148 bytes with
/// perf padding), so nothing is ever cut.
const SNAPLEN: u32 = 262_144;

/// The end of the last whole block within `blocks[..limit]`; `blocks` holds
/// whole blocks this writer built, back to back.
pub(super) fn whole_blocks(blocks: &[u8], limit: usize) -> usize {
    let mut o = 0;
    while o + 8 <= limit {
        let end = o + (le32(blocks, o + 4) as usize).max(12);
        if end > limit {
            break;
        }
        o = end;
    }
    o
}

#[inline]
pub(super) fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// The section header (with `meta` as JSON in its comment) and one interface
/// description per ring, encoded.
pub(super) fn header_blocks(path: &Path, meta: &CaptureMeta) -> Result<Vec<u8>, CaptureError> {
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
            SectionHeaderOption::Hardware(Cow::Owned(crate::host::cpu_model())),
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
                    meta.layout, meta.transport
                ))),
                InterfaceDescriptionOption::IfTsResol(TSRESOL_NS),
            ],
        };
        head.write_pcapng_block(idb).map_err(pcap_err)?;
    }
    Ok(head.into_inner())
}

#[inline]
pub(super) fn put_u32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub(super) fn put_u16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
