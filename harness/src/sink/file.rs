//! The file sink: appends length-prefixed messages to a file, then re-reads
//! the file in `finish` to count and checksum what is actually there.
//!
//! The messages go to a temporary file next to the target, which replaces it
//! in `finish` only if every write succeeded: a failed write (a full disk)
//! never leaves a half file where a good one was. The run then reports every
//! message as failed, with the error.
//!
//! Frame format, repeated to the end of the file (little-endian):
//! `u16 key_len, u32 value_len, key bytes, value bytes`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use std::time::Duration;
use tempfile::TempPath;

use super::message::{events_in, message_crc};
use super::{DropReason, ReadBack, Sink, SinkError, SinkProgress, SinkReport};

/// Size of the frame header: u16 key length + u32 value length.
const FRAME_HEADER: usize = 6;

pub struct FileSink {
    path: PathBuf,
    out: Mutex<Output>,
    /// Events (a batch message counts its own), and messages.
    accepted: AtomicU64,
    messages: AtomicU64,
    /// Events whose message could not be stored.
    failed: AtomicU64,
    crc_sum: AtomicU64,
}

/// The temporary file being written, and the first write error, after which
/// nothing more is written (the file will not be kept).
struct Output {
    file: BufWriter<File>,
    tmp: Option<TempPath>,
    error: Option<std::io::Error>,
}

impl FileSink {
    /// Prepares to write `path`: a temporary file in its directory, renamed
    /// over `path` by `finish` if every write succeeded.
    pub fn create(path: &Path) -> Result<Self, SinkError> {
        let err = |source| SinkError::File {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let (f, tmp) = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(err)?
            .into_parts();
        Ok(FileSink {
            path: path.to_owned(),
            out: Mutex::new(Output {
                // 1 MiB: a few thousand messages per write(2).
                file: BufWriter::with_capacity(1 << 20, f),
                tmp: Some(tmp),
                error: None,
            }),
            accepted: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            crc_sum: AtomicU64::new(0),
        })
    }

    /// Reads a sink file back, calling `f(key, value)` for every message.
    pub fn read_messages(
        path: &Path,
        mut f: impl FnMut(&[u8], &[u8]),
    ) -> Result<ReadBack, SinkError> {
        let file = File::open(path).map_err(|source| SinkError::File {
            path: path.to_owned(),
            source,
        })?;
        let mut r = BufReader::with_capacity(1 << 20, file);
        let mut rb = ReadBack::default();
        let mut offset = 0u64;
        let mut hdr = [0u8; FRAME_HEADER];
        let mut key = Vec::new();
        let mut value = Vec::new();
        loop {
            match read_full(&mut r, &mut hdr) {
                Ok(0) => break,
                Ok(FRAME_HEADER) => {}
                Ok(n) => {
                    return Err(SinkError::FileCorrupt {
                        path: path.to_owned(),
                        offset,
                        what: format!("truncated frame header ({n} of {FRAME_HEADER} bytes)"),
                    })
                }
                Err(source) => {
                    return Err(SinkError::File {
                        path: path.to_owned(),
                        source,
                    })
                }
            }
            let klen = u16::from_le_bytes([hdr[0], hdr[1]]) as usize;
            let vlen = u32::from_le_bytes(hdr[2..6].try_into().unwrap()) as usize;
            key.resize(klen, 0);
            value.resize(vlen, 0);
            let io = |source| SinkError::File {
                path: path.to_owned(),
                source,
            };
            let got = read_full(&mut r, &mut key).map_err(io)?
                + read_full(&mut r, &mut value).map_err(io)?;
            if got != klen + vlen {
                return Err(SinkError::FileCorrupt {
                    path: path.to_owned(),
                    offset,
                    what: format!("frame says {} bytes, file has {got}", klen + vlen),
                });
            }
            f(&key, &value);
            rb.events += events_in(&value);
            rb.crc_sum = rb.crc_sum.wrapping_add(message_crc(&key, &value) as u64);
            offset += (FRAME_HEADER + klen + vlen) as u64;
        }
        Ok(rb)
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

impl Sink for FileSink {
    fn progress(&self) -> SinkProgress {
        // A written frame is done (its fate known) at once; so is a failed write.
        let n = self.accepted.load(Relaxed);
        SinkProgress {
            accepted: n,
            done: n,
        }
    }

    fn send(&self, key: &[u8], value: &[u8]) -> Result<(), DropReason> {
        if key.len() > u16::MAX as usize || value.len() > u32::MAX as usize {
            return Err(DropReason::Rejected);
        }
        let mut hdr = [0u8; FRAME_HEADER];
        hdr[..2].copy_from_slice(&(key.len() as u16).to_le_bytes());
        hdr[2..].copy_from_slice(&(value.len() as u32).to_le_bytes());
        let events = events_in(value);
        self.accepted.fetch_add(events, Relaxed);
        self.messages.fetch_add(1, Relaxed);
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if out.error.is_some() {
            drop(out);
            self.failed.fetch_add(events, Relaxed);
            return Ok(());
        }
        let r = out
            .file
            .write_all(&hdr)
            .and_then(|_| out.file.write_all(key))
            .and_then(|_| out.file.write_all(value));
        match r {
            Ok(()) => {
                drop(out);
                self.crc_sum
                    .fetch_add(message_crc(key, value) as u64, Relaxed);
            }
            // Accepted, then failed to be stored: a failed delivery.
            Err(e) => {
                out.error = Some(e);
                drop(out);
                self.failed.fetch_add(events, Relaxed);
            }
        }
        Ok(())
    }

    fn finish(&self, _timeout: Duration) -> Result<SinkReport, SinkError> {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tmp) = out.tmp.take() else {
            return Err(SinkError::File {
                path: self.path.clone(),
                source: std::io::Error::other("finish was called twice"),
            });
        };
        if out.error.is_none() {
            let stored = out
                .file
                .flush()
                .and_then(|()| out.file.get_ref().sync_all());
            out.error = stored
                .and_then(|()| tmp.persist(&self.path).map_err(|e| e.error))
                .err();
        }
        // On an error the temporary file was dropped above or in `persist`,
        // which removes it: whatever was at the path before stays as it was.
        let accepted = self.accepted.load(Relaxed);
        if let Some(e) = out.error.take() {
            let what = format!("writing {}: {e}", self.path.display());
            return Ok(SinkReport {
                label: format!("file {} (not written)", self.path.display()),
                accepted,
                messages: self.messages.load(Relaxed),
                delivered: 0,
                failed: accepted,
                failed_by_error: [(what.clone(), accepted)].into(),
                read_back_error: Some(format!("{what}; nothing was kept")),
                ..Default::default()
            });
        }
        drop(out);
        let failed = self.failed.load(Relaxed);
        let (read_back, read_back_error) = match Self::read_messages(&self.path, |_, _| {}) {
            Ok(rb) => (Some(rb), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(SinkReport {
            label: format!("file {}", self.path.display()),
            accepted,
            messages: self.messages.load(Relaxed),
            delivered: accepted - failed,
            failed,
            delivered_crc_sum: self.crc_sum.load(Relaxed),
            read_back,
            read_back_error,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_hand_written_frames_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.bin");
        let s = FileSink::create(&p).unwrap();
        s.send(b"k1", b"abc").unwrap();
        s.send(b"", b"").unwrap();
        let r = s.finish(Duration::ZERO).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        #[rustfmt::skip]
        let want = [
            2, 0, 3, 0, 0, 0, b'k', b'1', b'a', b'b', b'c',
            0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(bytes, want);
        assert_eq!((r.accepted, r.delivered, r.failed), (2, 2, 0));
        let rb = r.read_back.unwrap();
        assert_eq!(rb.events, 2);
        assert_eq!(rb.crc_sum, r.delivered_crc_sum);
        assert_eq!(
            rb.crc_sum,
            message_crc(b"k1", b"abc") as u64 + message_crc(b"", b"") as u64
        );
    }

    #[test]
    fn truncated_file_names_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.bin");
        std::fs::write(&p, [1, 0, 1, 0, 0, 0, b'k', b'v', 9, 0, 9]).unwrap();
        let e = FileSink::read_messages(&p, |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("offset 8"), "{e}");
    }
}
