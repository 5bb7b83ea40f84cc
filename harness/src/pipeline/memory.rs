//! In-memory stand-ins for a ring and a sink, for tests and benchmarks that
//! need a fixed input and want every output back: [`MemorySource`] hands out
//! prepared records (and lost markers) per ring; [`MemorySink`] keeps every
//! message. Neither paces nor drops anything: they measure pipelines, not rings.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use probes::record::{Batch, RecordRef, RecordSource, ShardedSource, SourceError};

use crate::sink::message::{events_in, message_crc};
use crate::sink::{DropReason, ReadBack, Sink, SinkError, SinkReport};

/// One prepared item of a ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryRecord {
    Sample(Vec<u8>),
    Lost(u64),
}

/// Prepared records on one or more rings.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    /// (ring number, its records, read position).
    rings: Vec<(u32, std::sync::Arc<Vec<MemoryRecord>>, usize)>,
    next: usize,
}

impl MemorySource {
    /// `rings[i]` becomes ring `i`.
    pub fn new(rings: Vec<Vec<MemoryRecord>>) -> Self {
        MemorySource {
            rings: rings
                .into_iter()
                .enumerate()
                .map(|(i, r)| (i as u32, std::sync::Arc::new(r), 0))
                .collect(),
            next: 0,
        }
    }

    /// Samples and lost counts across all rings.
    pub fn totals(&self) -> (u64, u64) {
        let mut s = 0;
        let mut l = 0;
        for (_, r, _) in &self.rings {
            for rec in r.iter() {
                match rec {
                    MemoryRecord::Sample(_) => s += 1,
                    MemoryRecord::Lost(n) => l += n,
                }
            }
        }
        (s, l)
    }
}

impl RecordSource for MemorySource {
    fn rings(&self) -> u32 {
        self.rings.len() as u32
    }

    fn read_batch(
        &mut self,
        max: usize,
        _timeout: Duration,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<Batch, SourceError> {
        let n = self.rings.len();
        let mut got = 0;
        // Round-robin over rings, in ring order within each.
        for _ in 0..n {
            let i = self.next;
            self.next = (self.next + 1) % n.max(1);
            let (ring, recs, pos) = &mut self.rings[i];
            while got < max && *pos < recs.len() {
                match &recs[*pos] {
                    MemoryRecord::Sample(d) => f(RecordRef::Sample {
                        ring: *ring,
                        origin_ns: 0,
                        data: d,
                    }),
                    MemoryRecord::Lost(c) => f(RecordRef::Lost {
                        ring: *ring,
                        count: *c,
                    }),
                }
                *pos += 1;
                got += 1;
            }
        }
        Ok(if got > 0 {
            Batch::Records(got)
        } else {
            Batch::Closed
        })
    }
}

impl ShardedSource for MemorySource {
    fn into_shards(self: Box<Self>) -> Vec<Box<dyn RecordSource>> {
        self.rings
            .into_iter()
            .map(|r| {
                Box::new(MemorySource {
                    rings: vec![r],
                    next: 0,
                }) as Box<dyn RecordSource>
            })
            .collect()
    }
}

/// Keeps every message; delivered at once.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub messages: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
    crc: AtomicU64,
}

impl MemorySink {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn take(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        std::mem::take(&mut *self.messages.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Sink for MemorySink {
    fn progress(&self) -> crate::sink::SinkProgress {
        let n = self
            .messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(_, v)| events_in(v))
            .sum();
        crate::sink::SinkProgress {
            accepted: n,
            done: n,
        }
    }

    fn send(&self, key: &[u8], value: &[u8]) -> Result<(), DropReason> {
        self.crc.fetch_add(message_crc(key, value) as u64, Relaxed);
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((key.to_vec(), value.to_vec()));
        Ok(())
    }

    fn finish(&self, _timeout: Duration) -> Result<SinkReport, SinkError> {
        let msgs = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        let n = msgs.iter().map(|(_, v)| events_in(v)).sum();
        let crc_sum = msgs
            .iter()
            .fold(0u64, |a, (k, v)| a.wrapping_add(message_crc(k, v) as u64));
        Ok(SinkReport {
            label: "memory".into(),
            accepted: n,
            messages: msgs.len() as u64,
            delivered: n,
            delivered_crc_sum: self.crc.load(Relaxed),
            read_back: Some(ReadBack { events: n, crc_sum }),
            ..Default::default()
        })
    }
}
