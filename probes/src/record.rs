//! The record type every reader hands out, live or replayed.
//!
//! A pipeline reads through [`RecordSource`] and cannot tell a kernel ring from
//! an emulated one. Lost samples arrive in the same stream as data
//! ([`RecordRef::Lost`]), never as log lines.

use std::time::Duration;

/// One record, borrowed from the reader's buffer for the duration of a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordRef<'a> {
    /// A sample: the bytes the BPF program emitted (perf may append up to 7
    /// bytes of alignment padding; decoders use `path_len`).
    Sample {
        /// The ring this came from (a CPU for perf; 0 for the shared ring buffer).
        ring: u32,
        /// CLOCK_MONOTONIC ns at which the record was due: the event's kernel
        /// timestamp live, the scheduled time in replay. Latency is measured from here.
        origin_ns: u64,
        data: &'a [u8],
    },
    /// `count` samples were dropped on `ring` since the previous marker.
    Lost { ring: u32, count: u64 },
}

impl RecordRef<'_> {
    pub fn ring(&self) -> u32 {
        match *self {
            RecordRef::Sample { ring, .. } | RecordRef::Lost { ring, .. } => ring,
        }
    }
}

/// An owned record whose buffer is reused across reads (`read_into`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub ring: u32,
    pub origin_ns: u64,
    /// Non-zero for a lost marker; `data` is then empty.
    pub lost: u64,
    pub data: Vec<u8>,
}

impl Record {
    /// Copies `r` into `self`, reusing `self.data`'s allocation.
    pub fn assign(&mut self, r: RecordRef<'_>) {
        self.data.clear();
        match r {
            RecordRef::Sample {
                ring,
                origin_ns,
                data,
            } => {
                self.ring = ring;
                self.origin_ns = origin_ns;
                self.lost = 0;
                self.data.extend_from_slice(data);
            }
            RecordRef::Lost { ring, count } => {
                self.ring = ring;
                self.origin_ns = 0;
                self.lost = count;
            }
        }
    }

    pub fn as_ref(&self) -> RecordRef<'_> {
        if self.lost > 0 {
            RecordRef::Lost {
                ring: self.ring,
                count: self.lost,
            }
        } else {
            RecordRef::Sample {
                ring: self.ring,
                origin_ns: self.origin_ns,
                data: &self.data,
            }
        }
    }
}

/// What one `read_batch` call saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// This many records were handed to the callback (at least one).
    Records(usize),
    /// The timeout passed with nothing to read.
    Idle,
    /// The producer is finished and everything it wrote has been read
    /// (replay end, or a live reader that was stopped).
    Closed,
}

/// Errors a reader can return.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("ring {ring}, offset {offset}: {what}")]
    Corrupt {
        ring: u32,
        /// The ring position (free-running byte count) of the bad record.
        offset: u64,
        what: crate::ring::format::FormatError,
    },
    #[error("waiting on ring {ring}: {source}")]
    Wait { ring: u32, source: std::io::Error },
}

/// Anything that hands out records: the live perf/ring-buffer readers and the
/// replay driver's emulated rings.
pub trait RecordSource: Send {
    /// Number of rings behind this source (CPUs for perf, 1 for a ring buffer).
    fn rings(&self) -> u32;

    /// Waits up to `timeout` for data, then hands up to `max` available
    /// records to `f` in ring order, borrowing them in place (zero-copy where
    /// the ring layout allows it), and releases the space they used.
    fn read_batch(
        &mut self,
        max: usize,
        timeout: Duration,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<Batch, SourceError>;

    /// Reads one record into `rec`, reusing its buffer. Returns `Ok(false)` on
    /// timeout, and `Ok(false)` with `closed` set once the source has ended.
    fn read_into(&mut self, rec: &mut Record, timeout: Duration) -> Result<ReadInto, SourceError> {
        let mut got = false;
        let b = self.read_batch(1, timeout, &mut |r| {
            rec.assign(r);
            got = true;
        })?;
        Ok(match b {
            Batch::Closed => ReadInto::Closed,
            _ if got => ReadInto::Record,
            _ => ReadInto::Idle,
        })
    }
}

/// Result of [`RecordSource::read_into`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadInto {
    Record,
    Idle,
    Closed,
}

/// A source that can be split into one independent source per ring, for
/// per-CPU readers (sharded pipelines).
pub trait ShardedSource: RecordSource {
    fn into_shards(self: Box<Self>) -> Vec<Box<dyn RecordSource>>;
}
