//! The null sink: counts and discards. It isolates the pipeline's own cost.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::{DropReason, Sink, SinkError, SinkProgress, SinkReport};

/// Accepts everything; a message counts as delivered as soon as it is sent.
#[derive(Debug, Default)]
pub struct NullSink {
    accepted: AtomicU64,
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

    fn send(&self, _key: &[u8], _value: &[u8]) -> Result<(), DropReason> {
        self.accepted.fetch_add(1, Relaxed);
        Ok(())
    }

    fn finish(&self, _timeout: Duration) -> Result<SinkReport, SinkError> {
        let n = self.accepted.load(Relaxed);
        Ok(SinkReport {
            label: "null (discards messages)".into(),
            accepted: n,
            delivered: n,
            ..Default::default()
        })
    }
}
