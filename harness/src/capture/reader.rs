//! Reading captures: [`CaptureReader`] streams a file block by block.
//!
//! Both check every block (lengths, trailer, interface ids, link types,
//! metadata version and ABI) and name the file and byte offset of anything
//! wrong. A truncated *final* block (a capture whose writer was killed after a
//! flush) ends the stream cleanly and is reported by
//! [`CaptureReader::truncated_tail`]; a bad block anywhere else is an error.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use probes::abi::ABI_VERSION;
use probes::record::RecordRef;

use super::writer::{EPB, ISB};
use super::{file_name, CaptureError, CaptureMeta, RingStats, CAPTURE_VERSION, TSRESOL_NS};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Largest block accepted. The biggest block dropbench writes is the SHB
/// (≤ 64 KiB of metadata option + a few strings) or a 4148-byte sample EPB;
/// 1 MiB leaves room for foreign tools' blocks while rejecting garbage lengths
/// before allocating for them.
const MAX_BLOCK: u32 = 1 << 20;
/// Largest sample accepted: no event is larger than 4148 bytes; 64 KiB bounds
/// the zero-padding a corrupt `original_len` could ask for.
const MAX_SAMPLE: u32 = 1 << 16;

/// One record read from a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub ring: u32,
    /// The sample's kernel CLOCK_MONOTONIC timestamp (for a lost marker, the
    /// timestamp of the sample before it).
    pub origin_ns: u64,
    pub rec: RecordRef<'a>,
}

/// What the block parser produced, before zero-padding.
enum Parsed {
    Sample {
        ring: u32,
        origin_ns: u64,
        /// Range of the trimmed bytes inside the block buffer.
        start: usize,
        cap: usize,
        orig: usize,
    },
    Lost {
        ring: u32,
        origin_ns: u64,
        count: u64,
    },
    /// A block that carries no record (IDB, ISB, unknown).
    Other,
    End,
}

/// Streams a capture block by block. Generic over the byte source so tests
/// can read from memory; [`CaptureReader::open`] reads a file.
pub struct CaptureReader<R: Read = BufReader<File>> {
    src: R,
    file: String,
    /// Offset of the next block.
    offset: u64,
    meta: CaptureMeta,
    /// Link type of each interface seen so far.
    interfaces: Vec<u16>,
    /// Current block (without its 8-byte head).
    buf: Vec<u8>,
    /// The current sample with its trailing zeros restored.
    data: Vec<u8>,
    truncated: Option<(u64, String)>,
    ring_stats: Vec<RingStats>,
    /// Comments of the statistics blocks (a recording that stopped early says why there).
    notes: Vec<String>,
    /// The recorded command's CPU profile, once its custom block is read.
    cpu_profile: Option<super::cpu_profile::CpuProfile>,
    done: bool,
}

impl CaptureReader<BufReader<File>> {
    /// Opens `path` and reads its section header and metadata.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let f = File::open(path).map_err(|source| CaptureError::Io {
            file: file_name(path),
            op: "open",
            source,
        })?;
        Self::from_reader(file_name(path), BufReader::with_capacity(1 << 20, f))
    }
}

impl<'b> CaptureReader<&'b [u8]> {
    /// Reads a capture held in memory; `name` stands for the file in errors.
    pub fn from_bytes(name: &str, bytes: &'b [u8]) -> Result<Self, CaptureError> {
        Self::from_reader(name.to_string(), bytes)
    }
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_full<R: Read>(src: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Walks a pcapng option list, calling `f(code, value, offset_in_opts)`.
/// Stops at `opt_endofopt` or the end of `opts`; errors if an option runs past.
fn for_each_option(
    opts: &[u8],
    mut f: impl FnMut(u16, &[u8], usize) -> Result<(), String>,
) -> Result<(), String> {
    let mut o = 0;
    while o + 4 <= opts.len() {
        let code = le16(opts, o);
        let len = le16(opts, o + 2) as usize;
        if code == 0 {
            return Ok(());
        }
        let end = o + 4 + len;
        if end > opts.len() {
            return Err(format!(
                "option {code} at +{o} is {len} bytes, past the end of the block"
            ));
        }
        f(code, &opts[o + 4..end], o)?;
        o = end + ((4 - len % 4) % 4);
    }
    if o != opts.len() && o < opts.len() {
        return Err(format!("{} stray bytes after the options", opts.len() - o));
    }
    Ok(())
}

impl<R: Read> CaptureReader<R> {
    /// Reads the section header from `src` and checks that it is a dropbench
    /// capture this build understands.
    pub fn from_reader(file: String, mut src: R) -> Result<Self, CaptureError> {
        let io = |source| CaptureError::Io {
            file: file.clone(),
            op: "read",
            source,
        };
        let mut head = [0u8; 12];
        let n = read_full(&mut src, &mut head).map_err(io)?;
        if n == 0 {
            return Err(CaptureError::Truncated {
                file,
                offset: 0,
                what: "the file is empty".into(),
            });
        }
        if n >= 4 && le32(&head, 0) != SHB {
            return Err(CaptureError::Foreign {
                file,
                offset: 0,
                what: format!(
                    "first block type is {:#010x}, not a pcapng section header (a pcap or other file?)",
                    le32(&head, 0)
                ),
            });
        }
        if n < 12 {
            return Err(CaptureError::Truncated {
                file,
                offset: n as u64,
                what: "the section header is cut short".into(),
            });
        }
        match le32(&head, 8) {
            BYTE_ORDER_MAGIC => {}
            0x4D3C_2B1A => {
                return Err(CaptureError::Foreign {
                    file,
                    offset: 8,
                    what: "big-endian pcapng; dropbench captures are little-endian".into(),
                })
            }
            m => {
                return Err(CaptureError::Corrupt {
                    file,
                    offset: 8,
                    what: format!("bad byte-order magic {m:#010x}"),
                })
            }
        }
        let len = le32(&head, 4);
        if !len.is_multiple_of(4) || !(28..=MAX_BLOCK).contains(&len) {
            return Err(CaptureError::Corrupt {
                file,
                offset: 4,
                what: format!("section header length {len} is not a multiple of 4 in 28..=1 MiB"),
            });
        }
        let mut body = vec![0u8; len as usize - 8];
        body[..4].copy_from_slice(&head[8..12]);
        let got = read_full(&mut src, &mut body[4..]).map_err(io)?;
        if got < body.len() - 4 {
            return Err(CaptureError::Truncated {
                file,
                offset: 12 + got as u64,
                what: format!("the {len}-byte section header is cut short"),
            });
        }
        let blen = body.len();
        if le32(&body, blen - 4) != len {
            return Err(CaptureError::Corrupt {
                file,
                offset: len as u64 - 4,
                what: format!(
                    "section header trailer length {} != leading length {len}",
                    le32(&body, blen - 4)
                ),
            });
        }
        let major = le16(&body, 4);
        if major != 1 {
            return Err(CaptureError::Foreign {
                file,
                offset: 12,
                what: format!("pcapng major version {major}, expected 1"),
            });
        }
        let meta = parse_meta(&file, &body[16..blen - 4])?;
        Ok(CaptureReader {
            src,
            file,
            offset: len as u64,
            meta,
            interfaces: Vec::new(),
            buf: Vec::with_capacity(8192),
            data: Vec::with_capacity(8192),
            truncated: None,
            ring_stats: Vec::new(),
            notes: Vec::new(),
            cpu_profile: None,
            done: false,
        })
    }

    pub fn meta(&self) -> &CaptureMeta {
        &self.meta
    }

    /// The file name used in errors.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// If the last block was cut short (writer killed after a flush): its
    /// offset and what was missing. Everything before it was read.
    pub fn truncated_tail(&self) -> Option<(u64, &str)> {
        self.truncated.as_ref().map(|(o, w)| (*o, w.as_str()))
    }

    /// Kernel counters from the Interface Statistics Blocks read so far (a
    /// complete capture has one per ring, at the end).
    pub fn ring_stats(&self) -> &[RingStats] {
        &self.ring_stats
    }

    /// The recorded command's CPU profile, once its block has been read (it
    /// sits before the statistics blocks, at the end).
    pub fn cpu_profile(&self) -> Option<&super::cpu_profile::CpuProfile> {
        self.cpu_profile.as_ref()
    }

    /// The comments of the statistics blocks read so far: a recording that
    /// stopped early (a full disk) notes why in its first one.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    fn corrupt(&self, offset: u64, what: impl Into<String>) -> CaptureError {
        CaptureError::Corrupt {
            file: self.file.clone(),
            offset,
            what: what.into(),
        }
    }

    /// The next record, with the sample's trailing zeros restored; `None` at
    /// the end (or at a truncated final block).
    pub fn next_entry(&mut self) -> Result<Option<Entry<'_>>, CaptureError> {
        // The stored bytes borrow the block buffer: pad them into `data`,
        // taken out of `self` meanwhile.
        let mut data = std::mem::take(&mut self.data);
        let next = self.next_stored().map(|s| {
            s.map(|s| {
                data.clear();
                data.extend_from_slice(s.bytes);
                data.resize(s.orig as usize, 0);
                (s.ring, s.origin_ns, s.lost, s.orig)
            })
        });
        self.data = data;
        Ok(next?.map(|(ring, origin_ns, count, orig)| Entry {
            ring,
            origin_ns,
            rec: if orig == 0 {
                RecordRef::Lost { ring, count }
            } else {
                RecordRef::Sample {
                    ring,
                    origin_ns,
                    data: &self.data,
                }
            },
        }))
    }

    /// Calls `f` for every record until the end.
    pub fn for_each(&mut self, mut f: impl FnMut(Entry<'_>)) -> Result<(), CaptureError> {
        while let Some(e) = self.next_entry()? {
            f(e);
        }
        Ok(())
    }

    /// The next record as stored: a sample's bytes without their trailing
    /// zeros (`orig` says how long it is with them), or a lost marker.
    pub(crate) fn next_stored(&mut self) -> Result<Option<Stored<'_>>, CaptureError> {
        loop {
            match self.next_parsed()? {
                Parsed::End => return Ok(None),
                Parsed::Other => continue,
                Parsed::Lost {
                    ring,
                    origin_ns,
                    count,
                } => {
                    return Ok(Some(Stored {
                        ring,
                        origin_ns,
                        lost: count,
                        bytes: &[],
                        orig: 0,
                    }))
                }
                Parsed::Sample {
                    ring,
                    origin_ns,
                    start,
                    cap,
                    orig,
                } => {
                    return Ok(Some(Stored {
                        ring,
                        origin_ns,
                        lost: 0,
                        bytes: &self.buf[start..start + cap],
                        orig: orig as u32,
                    }))
                }
            }
        }
    }

    /// Whatever the reader learnt from the blocks it has read: the metadata,
    /// the kernel counters, the notes and a truncated tail.
    pub(crate) fn into_parts(self) -> ReaderParts {
        ReaderParts {
            meta: self.meta,
            ring_stats: self.ring_stats,
            truncated: self.truncated,
            notes: self.notes,
            cpu_profile: self.cpu_profile,
            file: self.file,
        }
    }

    fn next_parsed(&mut self) -> Result<Parsed, CaptureError> {
        if self.done {
            return Ok(Parsed::End);
        }
        let at = self.offset;
        let io = |source| CaptureError::Io {
            file: self.file.clone(),
            op: "read",
            source,
        };
        let mut head = [0u8; 8];
        let n = read_full(&mut self.src, &mut head).map_err(io)?;
        if n == 0 {
            self.done = true;
            return Ok(Parsed::End);
        }
        if n < 8 {
            self.done = true;
            self.truncated = Some((at, format!("block header cut short after {n} of 8 bytes")));
            return Ok(Parsed::End);
        }
        let ty = le32(&head, 0);
        let len = le32(&head, 4);
        if !len.is_multiple_of(4) || !(12..=MAX_BLOCK).contains(&len) {
            return Err(self.corrupt(
                at,
                format!("block type {ty:#x} has length {len}, not a multiple of 4 in 12..=1 MiB"),
            ));
        }
        if ty == SHB {
            return Err(self.corrupt(
                at,
                "a second section header (multi-section files are not dropbench captures)",
            ));
        }
        let body_len = len as usize - 8;
        self.buf.resize(body_len, 0);
        let got = read_full(&mut self.src, &mut self.buf).map_err(|source| CaptureError::Io {
            file: self.file.clone(),
            op: "read",
            source,
        })?;
        if got < body_len {
            // A cut-short block is the end of a killed capture only if what
            // is there is a plausible start of a block we write.
            let plausible = match ty {
                EPB => {
                    got < 20 || {
                        let cap = le32(&self.buf, 12);
                        let orig = le32(&self.buf, 16);
                        cap <= orig
                            && orig <= MAX_SAMPLE
                            && 32 + super::pad4(cap as usize) <= len as usize
                            && (le32(&self.buf, 0) as usize) < self.interfaces.len()
                    }
                }
                IDB | ISB => true,
                _ => false,
            };
            if !plausible {
                return Err(CaptureError::Truncated {
                    file: self.file.clone(),
                    offset: at,
                    what: format!(
                        "block type {ty:#x} claims {len} bytes but only {} remain, and its header is not a valid dropbench block",
                        got + 8
                    ),
                });
            }
            self.done = true;
            self.truncated = Some((
                at,
                format!(
                    "final block (type {ty:#x}) has {} of its {len} bytes",
                    got + 8
                ),
            ));
            return Ok(Parsed::End);
        }
        let trailer = le32(&self.buf, body_len - 4);
        if trailer != len {
            return Err(self.corrupt(
                at,
                format!("trailer length {trailer} != leading length {len} (block type {ty:#x})"),
            ));
        }
        self.offset += len as u64;
        let body = &self.buf[..body_len - 4];
        match ty {
            IDB => {
                if body.len() < 8 {
                    return Err(self.corrupt(at, "interface description shorter than 8 bytes"));
                }
                let lt = le16(body, 0);
                let want = super::linktype(self.meta.transport);
                let ifid = self.interfaces.len();
                if lt != want {
                    return Err(CaptureError::Foreign {
                        file: self.file.clone(),
                        offset: at,
                        what: format!(
                            "interface {ifid} has link type {lt}; a {} capture uses {want}",
                            self.meta.transport
                        ),
                    });
                }
                if ifid as u32 >= self.meta.rings {
                    return Err(self.corrupt(
                        at,
                        format!(
                            "interface {ifid} is beyond the {} rings in the metadata",
                            self.meta.rings
                        ),
                    ));
                }
                let mut tsresol = 6u8; // pcapng default: microseconds
                for_each_option(&body[8..], |code, v, _| {
                    if code == 9 {
                        if v.len() != 1 {
                            return Err("if_tsresol is not 1 byte".into());
                        }
                        tsresol = v[0];
                    }
                    Ok(())
                })
                .map_err(|w| self.corrupt(at, format!("interface {ifid}: {w}")))?;
                if tsresol != TSRESOL_NS {
                    return Err(self.corrupt(
                        at,
                        format!("interface {ifid} has if_tsresol {tsresol}; dropbench writes {TSRESOL_NS} (ns)"),
                    ));
                }
                self.interfaces.push(lt);
                Ok(Parsed::Other)
            }
            EPB => {
                if body.len() < 20 {
                    return Err(self.corrupt(at, "enhanced packet block shorter than 20 bytes"));
                }
                let ring = le32(body, 0);
                if ring as usize >= self.interfaces.len() {
                    return Err(self.corrupt(
                        at,
                        format!(
                            "packet on interface {ring}, but only {} interfaces are described",
                            self.interfaces.len()
                        ),
                    ));
                }
                let ts = ((le32(body, 4) as u64) << 32) | le32(body, 8) as u64;
                let origin_ns = self.meta.monotonic_of(ts);
                let cap = le32(body, 12) as usize;
                let orig = le32(body, 16) as usize;
                if cap > orig || orig > MAX_SAMPLE as usize {
                    return Err(self.corrupt(
                        at,
                        format!("captured length {cap} / original length {orig} (need captured <= original <= {MAX_SAMPLE})"),
                    ));
                }
                let dend = 20 + super::pad4(cap);
                if dend > body.len() {
                    return Err(self.corrupt(
                        at,
                        format!("captured length {cap} runs past the {len}-byte block"),
                    ));
                }
                let mut drop = None;
                for_each_option(&body[dend..], |code, v, _| {
                    if code == 4 {
                        if v.len() != 8 {
                            return Err("epb_dropcount is not 8 bytes".into());
                        }
                        drop = Some(le64(v, 0));
                    }
                    Ok(())
                })
                .map_err(|w| self.corrupt(at, w))?;
                if orig == 0 {
                    return match drop {
                        Some(count) => Ok(Parsed::Lost {
                            ring,
                            origin_ns,
                            count,
                        }),
                        None => Err(self.corrupt(at, "empty packet without epb_dropcount")),
                    };
                }
                Ok(Parsed::Sample {
                    ring,
                    origin_ns,
                    start: 20,
                    cap,
                    orig,
                })
            }
            ISB => {
                if body.len() < 12 {
                    return Err(
                        self.corrupt(at, "interface statistics block shorter than 12 bytes")
                    );
                }
                let ring = le32(body, 0);
                if ring as usize >= self.interfaces.len() {
                    return Err(
                        self.corrupt(at, format!("statistics for undescribed interface {ring}"))
                    );
                }
                let mut s = RingStats {
                    ring,
                    ..Default::default()
                };
                let notes = &mut self.notes;
                for_each_option(&body[12..], |code, v, _| {
                    match (code, v.len()) {
                        (1, _) => notes.push(String::from_utf8_lossy(v).into_owned()),
                        (4, 8) => s.received = le64(v, 0),
                        (5, 8) => s.dropped = le64(v, 0),
                        (4 | 5, _) => {
                            return Err(format!("statistics option {code} is not 8 bytes"))
                        }
                        _ => {}
                    }
                    Ok(())
                })
                .map_err(|w| self.corrupt(at, w))?;
                self.ring_stats.push(s);
                Ok(Parsed::Other)
            }
            super::cpu_profile::CUSTOM_BLOCK
                if body.len() >= 4 && le32(body, 0) == super::cpu_profile::PEN =>
            {
                match super::cpu_profile::CpuProfile::parse(&body[4..]) {
                    Some(Ok(p)) => self.cpu_profile = Some(p),
                    Some(Err(what)) => return Err(self.corrupt(at, what)),
                    None => {}
                }
                Ok(Parsed::Other)
            }
            // Name resolution, other custom and other blocks carry nothing for us.
            _ => Ok(Parsed::Other),
        }
    }
}

/// Finds the dropbench metadata among the SHB's options and checks its versions.
fn parse_meta(file: &str, opts: &[u8]) -> Result<CaptureMeta, CaptureError> {
    let mut found: Option<(usize, serde_json::Value)> = None;
    for_each_option(opts, |code, v, o| {
        if code == 1 && found.is_none() {
            if let Ok(val) = serde_json::from_slice::<serde_json::Value>(v) {
                if val.get("dropbench_capture").is_some() {
                    found = Some((o, val));
                }
            }
        }
        Ok(())
    })
    .map_err(|what| CaptureError::Corrupt {
        file: file.to_string(),
        offset: 24,
        what: format!("section header options: {what}"),
    })?;
    // The options start 24 bytes into the file (after the 8-byte block head
    // and the 16 fixed bytes of the SHB body).
    let Some((o, val)) = found else {
        return Err(CaptureError::Foreign {
            file: file.to_string(),
            offset: 24,
            what: "the section header has no dropbench metadata comment".into(),
        });
    };
    let offset = 24 + o as u64;
    let version = val["dropbench_capture"].as_u64().unwrap_or(u64::MAX);
    if version != CAPTURE_VERSION as u64 {
        return Err(CaptureError::UnknownVersion {
            file: file.to_string(),
            offset,
            found: version,
        });
    }
    let abi = val["abi_version"].as_u64().unwrap_or(u64::MAX);
    if abi != ABI_VERSION as u64 {
        return Err(CaptureError::AbiVersion {
            file: file.to_string(),
            offset,
            found: abi,
        });
    }
    let meta: CaptureMeta = serde_json::from_value(val).map_err(|e| CaptureError::Corrupt {
        file: file.to_string(),
        offset,
        what: format!("dropbench metadata: {e}"),
    })?;
    if meta.rings == 0 || meta.rings > 4096 {
        return Err(CaptureError::Corrupt {
            file: file.to_string(),
            offset,
            what: format!("metadata says {} rings (expected 1..=4096)", meta.rings),
        });
    }
    Ok(meta)
}

/// One record as stored in the file (see [`CaptureReader::next_stored`]).
pub(crate) struct Stored<'a> {
    pub ring: u32,
    pub origin_ns: u64,
    /// Non-zero for a lost marker.
    pub lost: u64,
    /// The sample without its trailing zeros.
    pub bytes: &'a [u8],
    /// The sample's length with them; 0 for a lost marker.
    pub orig: u32,
}

/// What a [`CaptureReader`] read besides the records.
pub(crate) struct ReaderParts {
    pub meta: CaptureMeta,
    pub ring_stats: Vec<RingStats>,
    pub truncated: Option<(u64, String)>,
    pub notes: Vec<String>,
    pub cpu_profile: Option<super::cpu_profile::CpuProfile>,
    pub file: String,
}
