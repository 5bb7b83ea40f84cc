//! The null sink: counts and discards. It isolates the pipeline's own cost.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::message::events_in;
use super::{DropReason, Sink, SinkError, SinkProgress, SinkReport};

/// Accepts everything; a message counts as delivered as soon as it is sent.
#[derive(Debug, Default)]
pub struct NullSink {
    /// Events, and the messages that carried them.
    accepted: AtomicU64,
    messages: AtomicU64,
}

impl NullSink {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Sink for NullSink {
    fn progress(&self) -> SinkProgress {
        let n = self.accepted.load(Relaxed);
        SinkProgress {
            accepted: n,
            done: n,
        }
    }

    fn send(&self, _key: &[u8], value: &[u8]) -> Result<(), DropReason> {
        self.accepted.fetch_add(events_in(value), Relaxed);
        self.messages.fetch_add(1, Relaxed);
        Ok(())
    }

    fn finish(&self, _timeout: Duration) -> Result<SinkReport, SinkError> {
        let n = self.accepted.load(Relaxed);
        Ok(SinkReport {
            label: "null (discards messages)".into(),
            accepted: n,
            messages: self.messages.load(Relaxed),
            delivered: n,
            ..Default::default()
        })
    }
}
