//! [`InjectSource`]: dropbench's own reader of the injector's rings, opened
//! exactly as a live run opens the probes'.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::loader::{counters_handle, counters_of};
use crate::perf::{PerfRingOptions, PerfRings};
use crate::record::{Batch, RecordRef, RecordSource, ShardedSource, SourceError};
use crate::ringbuf::RingBufReader;

use super::bpf::{dup, map_fd};
use super::{InjectError, Injector};

impl Injector {
    /// Opens dropbench's own reader on the rings, exactly as a live run does:
    /// perf events per online CPU (opened by [`PerfRings`], with the wakeup)
    /// stored in the perf event array, or the ring buffer mapped, with the
    /// injector's failure count as its lost-sample counter.
    pub fn open_reader(&self) -> Result<InjectSource, InjectError> {
        let stop = Arc::new(AtomicBool::new(false));
        match (self.spec.wakeup.perf(), self.spec.wakeup.ringbuf()) {
            (Some(w), _) => {
                let opts = PerfRingOptions::new(self.spec.ring_bytes)?.with_wakeup(w)?;
                let mut rings = PerfRings::open(&opts, &self.cpus)?;
                rings.install(&Fd(map_fd(&self.ebpf, "events", self.object)?), "events")?;
                rings.set_stop(stop.clone());
                Ok(InjectSource {
                    inner: Source::Perf(rings),
                    stop,
                })
            }
            (_, Some(w)) => {
                let fd = dup(map_fd(&self.ebpf, "events", self.object)?, "events")?;
                let counters = counters_handle(&self.ebpf, self.object)?;
                let cpus = self.cpus.clone();
                // The same total `record` and the ledger use: every failed output.
                let mut rb = RingBufReader::open(fd, self.spec.ring_bytes, w)?.with_lost_counter(
                    Box::new(move || {
                        counters_of(&counters, &cpus)
                            .map(|k| k.total().failed())
                            .unwrap_or(0)
                    }),
                );
                rb.set_stop(stop.clone());
                Ok(InjectSource {
                    inner: Source::Ringbuf(rb),
                    stop,
                })
            }
            (None, None) => Err(InjectError::WakeupMismatch {
                wakeup: self.spec.wakeup,
                transport: self.spec.transport,
            }),
        }
    }
}

/// dropbench's own reader of the injector's rings: the live readers, so a
/// pipeline reads them exactly as in a live run.
pub struct InjectSource {
    pub(super) inner: Source,
    stop: Arc<AtomicBool>,
}

pub(super) enum Source {
    Perf(PerfRings),
    Ringbuf(RingBufReader),
}

impl InjectSource {
    /// Set it once nothing more will be injected: the reader drains what is
    /// left, then returns [`Batch::Closed`].
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }
}

impl RecordSource for InjectSource {
    fn rings(&self) -> u32 {
        match &self.inner {
            Source::Perf(p) => RecordSource::rings(p),
            Source::Ringbuf(r) => r.rings(),
        }
    }
    fn read_batch(
        &mut self,
        max: usize,
        timeout: Duration,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<Batch, SourceError> {
        match &mut self.inner {
            Source::Perf(p) => p.read_batch(max, timeout, f),
            Source::Ringbuf(r) => r.read_batch(max, timeout, f),
        }
    }
}

impl ShardedSource for InjectSource {
    fn into_shards(self: Box<Self>) -> Vec<Box<dyn RecordSource>> {
        match self.inner {
            Source::Perf(p) => Box::new(p).into_shards(),
            Source::Ringbuf(r) => vec![Box::new(r)],
        }
    }
}

struct Fd(RawFd);
impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}
