//! [`CaptureWriter`]: the hot path of `harness record`.
//!
//! The SHB and IDBs are written with pcap-file's block types (in `blocks.rs`).
//! EPBs and ISBs are written as raw bytes here: EPBs because the writer must
//! not allocate per record (pcap-file's `EnhancedPacketBlock` write path
//! measures each block by writing it twice and its options live in a `Vec`),
//! ISBs because pcap-file 2.0.0 writes the ISB timestamp as one u64, which
//! puts the low word first in a little-endian file where pcapng wants the
//! high word first.
//!
//! Blocks are assembled whole in the writer's own buffer and handed to the
//! output in large writes, so the output always ends on a block boundary
//! unless a write fails part-way. When one does (a full disk, an I/O error),
//! the writer cuts the output back to the last whole block it holds and
//! forgets the records that did not make it: the file stays a readable
//! capture of everything before the failure, and
//! [`CaptureWriter::close`] then adds the kernel counters and a
//! note of the failure if they fit.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use probes::record::RecordRef;
use serde::{Deserialize, Serialize};

use super::blocks::{header_blocks, le32, put_u16, put_u32, whole_blocks, EPB_FIXED};
// The reader takes the block types from here.
pub(crate) use super::blocks::{EPB, ISB};
use super::{file_name, pad4, trimmed_len, CaptureError, CaptureMeta};

/// The writer's buffer. 8 MiB is ~2000 fixed4k records or ~100 k compact ones
/// per write(2), which keeps syscall cost far below the copy cost.
const BUF_BYTES: usize = 8 << 20;
/// Most bytes of records [`CaptureWriter::close`] cuts off a
/// capture whose disk filled up, to make room for its statistics blocks: the
/// blocks and the note take well under 1 KiB per ring, and a filesystem frees
/// space in blocks of 4 KiB (ext4, tmpfs pages) up to 64 KiB (some RAID and
/// XFS setups), so 64 KiB of records is enough wherever a freed block can be
/// reused, and is ~200 fixed4k samples at the ~300 bytes each they take stored.
pub const TRAILER_ROOM: usize = 64 << 10;

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

/// Returned by [`CaptureWriter::finish`] and [`CaptureWriter::close`]:
/// what the file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureSummary {
    pub path: PathBuf,
    /// Bytes in the file.
    pub file_bytes: u64,
    pub samples: u64,
    pub lost_markers: u64,
    pub lost: u64,
    pub per_ring: Vec<RingCount>,
    /// Statistics blocks in the file (one per ring when it ended normally; after
    /// a write error, as many as fitted).
    pub stats_blocks: usize,
}

/// Where a capture's bytes go: a file, or (in tests and the fuzz round trip)
/// memory. Besides writing, the output can be cut back to a block boundary.
pub trait CaptureOutput: Write {
    /// Cuts the output back to its first `len` bytes; writing continues there.
    fn cut(&mut self, len: u64) -> std::io::Result<()>;
    /// Makes what was written durable.
    fn sync(&mut self) -> std::io::Result<()>;
}

impl CaptureOutput for File {
    fn cut(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)?;
        self.seek(SeekFrom::Start(len)).map(|_| ())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
}

/// Writing through a borrow leaves the output with the caller after
/// [`CaptureWriter::finish`] (an in-memory capture to read back).
impl<W: CaptureOutput + ?Sized> CaptureOutput for &mut W {
    fn cut(&mut self, len: u64) -> std::io::Result<()> {
        (**self).cut(len)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        (**self).sync()
    }
}

impl CaptureOutput for Vec<u8> {
    fn cut(&mut self, len: u64) -> std::io::Result<()> {
        self.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes a capture. See the module docs and `docs/capture-format.md`.
pub struct CaptureWriter<W: CaptureOutput = File> {
    out: W,
    /// Whole blocks not yet handed to `out`.
    buf: Vec<u8>,
    path: PathBuf,
    meta: CaptureMeta,
    /// Bytes in `out`: always the end of a whole block.
    stored: u64,
    /// Counts of the records written (buffered included).
    per_ring: Vec<RingCount>,
    /// Wall-clock timestamp of the last sample, used for lost markers.
    last_ts: u64,
    /// Reused for lost-marker comments, so markers do not allocate either.
    scratch: Vec<u8>,
    /// The write error that stopped the writer, once one has.
    failed: Option<CaptureError>,
    /// The blocks of the last successful write (its buffer, swapped with `buf`).
    prev: Vec<u8>,
    /// After a failed write: the last whole blocks that reached the output
    /// (the previous write's and those of the failed one that did; they end
    /// at `stored`), so the last of them can be cut off again to make room
    /// for the statistics blocks.
    tail: Vec<u8>,
    /// Bytes of the section header and interface blocks, never cut off.
    head_len: u64,
}

impl CaptureWriter<File> {
    /// Creates `path` and writes the section header (with `meta`) and one
    /// interface per ring to it at once, so a path that cannot be written fails
    /// here. If the header does not fit, the file is removed again.
    pub fn create(path: &Path, meta: &CaptureMeta) -> Result<CaptureWriter, CaptureError> {
        let head = header_blocks(path, meta)?;
        let f = File::create(path).map_err(|source| CaptureError::Io {
            file: file_name(path),
            op: "create",
            source,
        })?;
        let mut w = CaptureWriter::with_output(f, path, meta, head);
        if let Err(e) = w.flush() {
            drop(w);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Ok(w)
    }
}

impl<W: CaptureOutput> CaptureWriter<W> {
    /// Writes a capture into `out`, which must be empty; `path` names it in
    /// errors and summaries. Nothing reaches `out` before the first flush.
    pub fn new(out: W, path: &Path, meta: &CaptureMeta) -> Result<Self, CaptureError> {
        let head = header_blocks(path, meta)?;
        Ok(Self::with_output(out, path, meta, head))
    }

    fn with_output(out: W, path: &Path, meta: &CaptureMeta, head: Vec<u8>) -> Self {
        let head_len = head.len() as u64;
        // Grown as needed: a short capture (a test, the fuzz round trip) stays small.
        let buf = head;
        CaptureWriter {
            out,
            buf,
            path: path.to_path_buf(),
            meta: meta.clone(),
            stored: 0,
            per_ring: (0..meta.rings)
                .map(|ring| RingCount {
                    ring,
                    ..Default::default()
                })
                .collect(),
            last_ts: meta.start_unix_ns,
            scratch: Vec::with_capacity(64),
            failed: None,
            prev: Vec::new(),
            tail: Vec::new(),
            head_len,
        }
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
    /// lost marker an empty EPB with `epb_dropcount`. Blocks go out in large
    /// writes; an error here is a failed write of earlier blocks too (see
    /// [`CaptureWriter::flush`]).
    #[inline]
    pub fn write(&mut self, rec: RecordRef<'_>) -> Result<(), CaptureError> {
        self.check_running()?;
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
        self.push_block(rec);
        if self.buf.len() >= BUF_BYTES {
            self.write_out()?;
        }
        Ok(())
    }

    #[inline]
    fn push_block(&mut self, rec: RecordRef<'_>) {
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
                self.buf.extend_from_slice(&h);
                self.buf.extend_from_slice(&data[..cap]);
                // Padding to 4 bytes, then the trailing block length.
                let mut tail = [0u8; 7];
                let npad = padded - cap;
                tail[npad..npad + 4].copy_from_slice(&(total as u32).to_le_bytes());
                self.buf.extend_from_slice(&tail[..npad + 4]);
                let c = &mut self.per_ring[ring as usize];
                c.samples += 1;
                c.bytes += data.len() as u64;
            }
            RecordRef::Lost { ring, count } => {
                self.scratch.clear();
                // Writing into a Vec cannot fail.
                let _ = write!(&mut self.scratch, "lost {count}");
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
                self.buf.extend_from_slice(&h);
                let mut c = [0u8; 4];
                put_u16(&mut c, 0, 1); // opt_comment
                put_u16(&mut c, 2, clen as u16);
                self.buf.extend_from_slice(&c);
                self.buf.extend_from_slice(&self.scratch);
                let mut tail = [0u8; 11];
                let npad = pad4(clen) - clen;
                // padding, opt_endofopt (4 zero bytes), trailing length.
                tail[npad + 4..npad + 8].copy_from_slice(&(total as u32).to_le_bytes());
                self.buf.extend_from_slice(&tail[..npad + 8]);
                let rc = &mut self.per_ring[ring as usize];
                rc.lost_markers += 1;
                rc.lost += count;
            }
        }
    }

    /// Appends an Interface Statistics Block for `s`, with `note` as its
    /// `opt_comment` if given. `ts` is the wall clock in ns.
    fn push_stats(
        &mut self,
        s: &RingStats,
        ts: u64,
        note: Option<&str>,
    ) -> Result<(), CaptureError> {
        if s.ring >= self.meta.rings {
            return Err(CaptureError::RingOutOfRange {
                file: file_name(&self.path),
                ring: s.ring,
                rings: self.meta.rings,
            });
        }
        // An option's length is a u16: a longer note is cut (at a char boundary).
        let note = note.map(|n| {
            let mut end = n.len().min(u16::MAX as usize - 3);
            while !n.is_char_boundary(end) {
                end -= 1;
            }
            &n[..end]
        });
        let comment = note.map_or(0, |n| 4 + pad4(n.len()));
        // type, len, interface, ts hi, ts lo (20) + [opt_comment] + 3 u64
        // options (3 × 12) + opt_endofopt (4) + trailing length (4) = 64 bytes
        // without a note.
        let total = 64 + comment;
        let delivered = self.per_ring[s.ring as usize].samples;
        let mut b = [0u8; 20];
        put_u32(&mut b, 0, ISB);
        put_u32(&mut b, 4, total as u32);
        put_u32(&mut b, 8, s.ring);
        put_u32(&mut b, 12, (ts >> 32) as u32);
        put_u32(&mut b, 16, ts as u32);
        self.buf.extend_from_slice(&b);
        if let Some(n) = note {
            let mut o = [0u8; 4];
            put_u16(&mut o, 0, 1); // opt_comment
            put_u16(&mut o, 2, n.len() as u16);
            self.buf.extend_from_slice(&o);
            self.buf.extend_from_slice(n.as_bytes());
            self.buf.resize(self.buf.len() + pad4(n.len()) - n.len(), 0);
        }
        // isb_ifrecv, isb_ifdrop, isb_usrdeliv.
        for (code, v) in [(4u16, s.received), (5, s.dropped), (8, delivered)] {
            let mut o = [0u8; 12];
            put_u16(&mut o, 0, code);
            put_u16(&mut o, 2, 8);
            o[4..12].copy_from_slice(&v.to_le_bytes());
            self.buf.extend_from_slice(&o);
        }
        let mut end = [0u8; 8];
        put_u32(&mut end, 4, total as u32); // opt_endofopt, then the trailing length
        self.buf.extend_from_slice(&end);
        Ok(())
    }

    fn check_running(&self) -> Result<(), CaptureError> {
        match &self.failed {
            None => Ok(()),
            Some(why) => Err(CaptureError::Stopped {
                file: file_name(&self.path),
                why: why.to_string(),
            }),
        }
    }

    /// Hands the buffered blocks to the output. If a write fails part-way, the
    /// output is cut back to the end of the last whole block it received, the
    /// records after that are taken off the counts, and the writer stops: the
    /// output stays a readable capture of everything before the failure.
    fn write_out(&mut self) -> Result<(), CaptureError> {
        let mut n = 0;
        let err = loop {
            if n == self.buf.len() {
                break None;
            }
            match self.out.write(&self.buf[n..]) {
                Ok(0) => break Some(std::io::Error::from(std::io::ErrorKind::WriteZero)),
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        let Some(err) = err else {
            self.stored += n as u64;
            std::mem::swap(&mut self.buf, &mut self.prev);
            self.buf.clear();
            return Ok(());
        };
        let keep = whole_blocks(&self.buf, n);
        let mut cut_failed = None;
        if keep < n {
            if let Err(e) = self.out.cut(self.stored + keep as u64) {
                // The output now ends inside a block: say so.
                cut_failed = Some(format!(
                    "{err}; cutting the file back to its last whole block at byte {} failed too: {e}",
                    self.stored + keep as u64
                ));
            }
        }
        self.stored += keep as u64;
        let lost = self.buf.split_off(keep);
        self.uncount(&lost);
        self.tail = std::mem::take(&mut self.prev);
        self.tail.extend_from_slice(&self.buf);
        self.buf.clear();
        // One error kept (for `close`), one returned, both with the OS
        // error's own text (e.g. "No space left on device (os error 28)").
        let error = || match (err.raw_os_error(), &cut_failed) {
            (Some(code), None) => std::io::Error::from_raw_os_error(code),
            (_, cause) => {
                std::io::Error::new(err.kind(), cause.clone().unwrap_or_else(|| err.to_string()))
            }
        };
        self.failed = Some(self.io("write", error()));
        Err(self.io("write", error()))
    }

    /// Takes the records in `blocks` (whole blocks this writer built) off the counts.
    fn uncount(&mut self, blocks: &[u8]) {
        let mut o = 0;
        while o + 8 <= blocks.len() {
            let len = le32(blocks, o + 4) as usize;
            if le32(blocks, o) == EPB {
                let ring = le32(blocks, o + 8) as usize;
                let orig = le32(blocks, o + 24) as u64;
                if let Some(c) = self.per_ring.get_mut(ring) {
                    if orig > 0 {
                        c.samples -= 1;
                        c.bytes -= orig;
                    } else {
                        c.lost_markers -= 1;
                        c.lost -= u64::from_le_bytes(
                            blocks[o + 32..o + 40].try_into().unwrap_or_default(),
                        );
                    }
                }
            }
            o += len.max(12);
        }
    }

    /// Appends the traced tasks' CPU profile as one Custom Block (see
    /// [`super::cpu_profile`]); call it before [`CaptureWriter::close`].
    pub fn write_cpu_profile(
        &mut self,
        profile: &super::cpu_profile::CpuProfile,
    ) -> Result<(), CaptureError> {
        self.check_running()?;
        let json = profile.fit();
        // type, length, enterprise number (12) + padded data + trailing length (4).
        let total = 16 + pad4(json.len());
        let mut b = [0u8; 12];
        put_u32(&mut b, 0, super::cpu_profile::CUSTOM_BLOCK);
        put_u32(&mut b, 4, total as u32);
        put_u32(&mut b, 8, super::cpu_profile::PEN);
        self.buf.extend_from_slice(&b);
        self.buf.extend_from_slice(&json);
        self.buf
            .resize(self.buf.len() + pad4(json.len()) - json.len(), 0);
        self.buf.extend_from_slice(&(total as u32).to_le_bytes());
        Ok(())
    }

    /// Pushes everything buffered to the output. After a flush, the file is
    /// readable up to here even if the process dies. On an error the output
    /// still ends on a whole block (see the module docs) and the writer stops.
    pub fn flush(&mut self) -> Result<(), CaptureError> {
        self.check_running()?;
        self.write_out()?;
        self.out.flush().map_err(|e| self.io("flush", e))
    }

    /// Bytes written so far (buffered included).
    pub fn bytes_written(&self) -> u64 {
        self.stored + self.buf.len() as u64
    }

    /// Records written so far (buffered included), per ring.
    pub fn counts(&self) -> &[RingCount] {
        &self.per_ring
    }

    /// Writes one Interface Statistics Block per entry of `stats`, flushes and
    /// syncs the file, and returns what was stored. On a write error (here or
    /// earlier) the file is finished as [`CaptureWriter::close`] does and the
    /// error returned.
    pub fn finish(self, stats: &[RingStats]) -> Result<CaptureSummary, CaptureError> {
        match self.close(stats) {
            (summary, None) => Ok(summary),
            (_, Some(e)) => Err(e),
        }
    }

    /// Ends the capture whatever happened before, and returns what the file
    /// holds with the write error that stopped the writer, if one did (in
    /// `write`, `flush` or here).
    ///
    /// Normally: one Interface Statistics Block per entry of `stats` (the
    /// kernel counters), flushed and synced. After a write error: the same
    /// blocks, the first carrying a note of the error as its comment, all or
    /// none of them; if they do not fit, the last records of the failed write
    /// are cut off to make room, [`TRAILER_ROOM`] bytes at most (on a full
    /// disk the counters that account for every sample are worth more than
    /// the last few samples). The file ends on a whole block whatever happens.
    pub fn close(mut self, stats: &[RingStats]) -> (CaptureSummary, Option<CaptureError>) {
        let ts = crate::host::clock_pair().0;
        if self.failed.is_none() {
            let start = self.stored + self.buf.len() as u64;
            for s in stats {
                if let Err(e) = self.push_stats(s, ts, None) {
                    return (self.summary(0), Some(e));
                }
            }
            if self.write_out().is_ok() {
                if let Err(e) = self.out.flush().and_then(|()| self.out.sync()) {
                    let e = self.io("sync", e);
                    return (self.summary(stats.len()), Some(e));
                }
                return (self.summary(stats.len()), None);
            }
            // Statistics blocks that did fit are cut off again: all or none.
            if self.stored > start && self.out.cut(start).is_ok() {
                let extra = (self.stored - start) as usize;
                self.tail.truncate(self.tail.len().saturating_sub(extra));
                self.stored = start;
            }
        }
        let failure = self.failed.take();
        let note = match &failure {
            Some(e) => format!("dropbench stopped writing this capture early: {e}. It holds every record before that point; the kernel counters here count every sample the kernel emitted."),
            None => String::new(),
        };
        let written = self.write_trailer(stats, ts, &note);
        // Durability is best effort here: the error that stopped the writer
        // is the one reported.
        let _ = self.out.sync();
        (self.summary(written), failure)
    }

    /// After a write error: appends the statistics blocks with `note`, cutting
    /// off the last records to make room if needed. Returns the blocks written.
    fn write_trailer(&mut self, stats: &[RingStats], ts: u64, note: &str) -> usize {
        let mut tail = std::mem::take(&mut self.tail);
        let end = self.stored;
        for extra in [
            None,
            Some(0),
            Some(TRAILER_ROOM / 16),
            Some(TRAILER_ROOM / 4),
            Some(TRAILER_ROOM),
        ] {
            self.failed = None;
            self.buf.clear();
            let pushed = stats
                .iter()
                .enumerate()
                .try_for_each(|(i, s)| self.push_stats(s, ts, (i == 0).then_some(note)));
            if pushed.is_err() {
                break;
            }
            if let Some(extra) = extra {
                let room = (self.buf.len() + extra) as u64;
                if !self.cut_tail(&mut tail, end.saturating_sub(room)) {
                    break;
                }
                // The counts changed: the blocks are built again.
                self.buf.clear();
                for (i, s) in stats.iter().enumerate() {
                    let _ = self.push_stats(s, ts, (i == 0).then_some(note));
                }
            }
            let start = self.stored;
            if self.write_out().is_ok() {
                let _ = self.out.flush();
                return stats.len();
            }
            if self.stored > start && self.out.cut(start).is_ok() {
                self.stored = start;
            }
        }
        self.buf.clear();
        0
    }

    /// Cuts the output back to the last block boundary in `tail` (the blocks
    /// ending at `stored`) at or before byte `end_at_most`, never into the
    /// header, and takes the records cut off the counts. False if `tail` does
    /// not reach back that far or cutting fails.
    fn cut_tail(&mut self, tail: &mut Vec<u8>, end_at_most: u64) -> bool {
        let Some(limit) = (tail.len() as u64).checked_sub(self.stored.saturating_sub(end_at_most))
        else {
            return false;
        };
        let at = whole_blocks(tail, limit as usize);
        let new_end = self.stored - (tail.len() - at) as u64;
        if new_end < self.head_len || self.out.cut(new_end).is_err() {
            return false;
        }
        let cut = tail.split_off(at);
        self.uncount(&cut);
        self.stored = new_end;
        true
    }

    fn summary(&self, stats_blocks: usize) -> CaptureSummary {
        let per_ring = self.per_ring.clone();
        CaptureSummary {
            path: self.path.clone(),
            file_bytes: self.stored,
            samples: per_ring.iter().map(|r| r.samples).sum(),
            lost_markers: per_ring.iter().map(|r| r.lost_markers).sum(),
            lost: per_ring.iter().map(|r| r.lost).sum(),
            per_ring,
            stats_blocks,
        }
    }
}

#[cfg(test)]
mod tests;
