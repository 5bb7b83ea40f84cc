//! The replay driver: a capture replayed, paced, into emulated kernel rings
//! that lose samples exactly as the kernel's would, read by a pipeline
//! through the same [`RecordSource`] interface as a live run.
//!
//! ```text
//! Capture --(producer thread: Schedule, wait_until)--> PerfWriter / RbWriter
//!      emulated ring memory --> PerfRings / RingBufReader (ReplaySource) --> consumer thread
//! ```
//! The writers are the kernel's side of each ring; the readers are the live
//! ones (`probes::ring`), over memory laid out like the kernel's mmap, woken
//! through `probes::ring::wait::EmulatedPoll` exactly when the kernel would.
//!
//! Entry point: [`run`]. The consumer is any `FnOnce(ReplaySource) ->
//! ConsumerReport`; [`drain_noop`] is the built-in one (`--variant noop`).
//! A pipeline variant gets the [`ReplaySource`], uses it as a
//! `Box<dyn RecordSource>` or splits it per ring with
//! [`probes::record::ShardedSource::into_shards`], and returns its counts,
//! latency histogram, stages and ledger in a [`ConsumerReport`].
//!
//! Each sample's event `ts_ns` (bytes 0..8) is rewritten to its due time
//! before it enters the ring, so readers take `origin_ns` from the event as
//! they do live, and latency is measured from the schedule, not from when the
//! producer managed to write (no coordinated omission). In `max` pacing the
//! due time is the moment of writing.

pub mod co_runner;
pub mod kernel;
pub mod order;
pub mod pacing;
pub mod perf;
pub mod ring_writer;
pub mod ringbuf;

mod produce;
mod report;

use std::time::Duration;

use probes::record::{Batch, RecordRef, RecordSource, ShardedSource, SourceError};

use crate::capture::{Capture, CaptureError, Transport};
use crate::host::monotonic_ns;
use crate::results::RingResult;
pub use order::kernel_order;
use order::KernelOrder;
pub use pacing::{Pacing, PacingError, Schedule};
pub use perf::PerfWriter;
use probes::ring::mem::MemError;
use probes::ring::perf::PerfRings;
use probes::ring::ringbuf::{RingBufError, RingBufReader};
pub use produce::event_len;
use produce::produce;
pub(crate) use produce::Produced;
pub use report::{drain_noop, ConsumerReport, ReplayReport};
pub use ring_writer::SampleBytes;
pub use ringbuf::RbWriter;

/// A wakeup policy, as written in capture metadata and on the command line:
/// the probes' own type, so a replay emulates exactly what a live run sets.
pub use probes::loader::Wakeup;
pub use probes::units::{parse_bytes, parse_duration};

/// How long a replay runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Pass over the capture this many times.
    Loops(u64),
    /// Loop over the capture until this much time has been scheduled.
    Duration(Duration),
}

/// Ends a run early once its rings have lost more than `lost` records, and
/// not before `after` from the first record's due time. A sweep trial whose
/// verdict that loss already decides stops there (docs/tuning.md, "Trials");
/// the `after` gives its window enough progress samples to measure how fast
/// the pipeline finished while failing. Emulated replay and kernel-backed
/// replay ([`kernel`]) both stop by [`StopAtLoss::reached`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopAtLoss {
    pub lost: u64,
    pub after: Duration,
}

impl StopAtLoss {
    /// Whether a run whose first record was due at `start_ns` and whose
    /// rings have lost `lost` so far stops at `now_ns`.
    pub(crate) fn reached(&self, start_ns: u64, lost: u64, now_ns: u64) -> bool {
        let after_ns = self.after.as_nanos().min(u64::MAX as u128) as u64;
        lost > self.lost && now_ns >= start_ns.saturating_add(after_ns)
    }
}

/// What to replay into. Unset fields default to the capture's metadata, so a
/// replay of a capture reproduces the ring it was recorded from.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOptions {
    pub pacing: Pacing,
    pub bound: Bound,
    pub transport: Option<Transport>,
    /// Data bytes per ring (a power of two, at least one 4 KiB page).
    pub ring_bytes: Option<u64>,
    /// Perf rings (emulated CPUs). Recorded ring r goes to ring r % rings.
    pub rings: Option<u32>,
    pub wakeup: Option<Wakeup>,
    /// Stop early at this much loss (none: run to the bound).
    pub stop_at_loss: Option<StopAtLoss>,
    /// Occupy the CPUs as the recorded command's tasks did ([`co_runner`]).
    pub co_runner: Option<std::sync::Arc<crate::capture::cpu_profile::CpuProfile>>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            pacing: Pacing::Original,
            bound: Bound::Loops(1),
            transport: None,
            ring_bytes: None,
            rings: None,
            wakeup: None,
            stop_at_loss: None,
            co_runner: None,
        }
    }
}

/// The ring setup a replay actually uses.
#[derive(Debug, Clone, PartialEq)]
pub struct RingConfig {
    pub transport: Transport,
    pub ring_bytes: u64,
    pub rings: u32,
    pub wakeup: Wakeup,
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("{file}: the capture holds no samples to replay")]
    EmptyCapture { file: String },
    #[error("ring size {bytes} bytes: must be a power of two and at least 4096 (one page)")]
    RingSize { bytes: u64 },
    #[error("wakeup policy {wakeup} is for the {wants} transport, not {transport}")]
    WakeupTransport {
        wakeup: Wakeup,
        wants: Transport,
        transport: Transport,
    },
    #[error("{what}")]
    Option { what: String },
    #[error(transparent)]
    Pacing(#[from] PacingError),
    #[error("the {variant} consumer thread panicked")]
    ConsumerPanicked { variant: String },
    #[error("emulated perf rings: {0}")]
    PerfRings(#[from] MemError),
    #[error("emulated ring buffer: {0}")]
    RingBuf(#[from] RingBufError),
}

impl ReplayOptions {
    /// Fills unset options from the capture's metadata and checks them.
    pub fn resolve(&self, meta: &crate::capture::CaptureMeta) -> Result<RingConfig, ReplayError> {
        let transport = self
            .transport
            .or_else(|| self.wakeup.map(|w| w.transport()))
            .unwrap_or(meta.transport);
        let ring_bytes = self.ring_bytes.unwrap_or(meta.ring_bytes);
        if !ring_bytes.is_power_of_two() || ring_bytes < 4096 {
            return Err(ReplayError::RingSize { bytes: ring_bytes });
        }
        let rings = match transport {
            Transport::Ringbuf => 1,
            Transport::Perf => self.rings.unwrap_or(if meta.transport == Transport::Perf {
                meta.rings
            } else {
                1
            }),
        };
        if rings == 0 || rings > 4096 {
            return Err(ReplayError::Option {
                what: format!("ring count {rings} out of range 1..=4096"),
            });
        }
        let wakeup = match self.wakeup {
            Some(w) => w,
            None if transport == meta.transport => meta.wakeup,
            None => Wakeup::default_for(transport),
        };
        if wakeup.transport() != transport {
            return Err(ReplayError::WakeupTransport {
                wakeup,
                wants: wakeup.transport(),
                transport,
            });
        }
        Ok(RingConfig {
            transport,
            ring_bytes,
            rings,
            wakeup,
        })
    }
}

/// The consumer-facing side of the emulated rings: a [`RecordSource`] (and
/// [`ShardedSource`]) a pipeline reads exactly as it reads a live ring.
pub enum ReplaySource {
    Perf(PerfRings),
    Ringbuf(RingBufReader),
}

impl RecordSource for ReplaySource {
    fn rings(&self) -> u32 {
        match self {
            ReplaySource::Perf(p) => RecordSource::rings(p),
            ReplaySource::Ringbuf(r) => r.rings(),
        }
    }
    fn read_batch(
        &mut self,
        max: usize,
        timeout: Duration,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<Batch, SourceError> {
        match self {
            ReplaySource::Perf(p) => p.read_batch(max, timeout, f),
            ReplaySource::Ringbuf(r) => r.read_batch(max, timeout, f),
        }
    }
}

impl ShardedSource for ReplaySource {
    fn into_shards(self: Box<Self>) -> Vec<Box<dyn RecordSource>> {
        match *self {
            ReplaySource::Perf(p) => Box::new(p).into_shards(),
            ReplaySource::Ringbuf(r) => Box::new(r).into_shards(),
        }
    }
}

/// The producer side of the emulated rings.
pub enum RingWriters {
    Perf(Vec<PerfWriter>),
    Ringbuf(RbWriter),
}

impl RingWriters {
    /// Writes one sample into ring `ring` (mod the ring count). False = dropped.
    #[inline]
    pub fn output(&mut self, ring: u32, s: &SampleBytes<'_>) -> bool {
        match self {
            RingWriters::Perf(w) => {
                let n = w.len();
                w[ring as usize % n].output(s)
            }
            RingWriters::Ringbuf(w) => w.output(s),
        }
    }

    /// Bytes written into the rings and not yet consumed, over all rings.
    pub fn used_bytes(&self) -> u64 {
        match self {
            RingWriters::Perf(w) => w.iter().map(|w| w.used()).sum(),
            RingWriters::Ringbuf(w) => w.used(),
        }
    }

    pub fn close(&mut self) {
        match self {
            RingWriters::Perf(w) => w.iter_mut().for_each(|w| w.close()),
            RingWriters::Ringbuf(w) => w.close(),
        }
    }

    /// Per-ring figures so far.
    pub fn ring_results(&self) -> Vec<RingResult> {
        use ring_writer::RingCounters as C;
        let one = |ring: u32, size: u64, c: &ring_writer::RingCounters| RingResult {
            ring,
            size_bytes: size,
            offered: C::get(&c.offered),
            accepted: C::get(&c.accepted),
            lost: C::get(&c.lost),
            high_water_bytes: C::get(&c.high_water),
            wakeups: C::get(&c.wakeups),
        };
        match self {
            RingWriters::Perf(ws) => ws
                .iter()
                .map(|w| one(w.ring(), w.size(), w.counters()))
                .collect(),
            RingWriters::Ringbuf(w) => vec![one(0, w.size(), w.counters())],
        }
    }
}

/// Builds the emulated rings for `cfg`.
pub fn build_rings(cfg: &RingConfig) -> Result<(RingWriters, ReplaySource), ReplayError> {
    Ok(match cfg.transport {
        Transport::Perf => {
            let (ws, source) = perf::perf_rings(cfg.rings, cfg.ring_bytes, cfg.wakeup)?;
            (RingWriters::Perf(ws), ReplaySource::Perf(source))
        }
        Transport::Ringbuf => {
            let (w, r) = ringbuf::ring_buffer(cfg.ring_bytes, cfg.wakeup)?;
            (RingWriters::Ringbuf(w), ReplaySource::Ringbuf(r))
        }
    })
}

/// Width of the windows in [`ReplayReport::windows`]: 10 ms.
pub const WINDOW_NS: u64 = 10_000_000;

/// How often the producer samples the run's progress: every 10 ms of real
/// time, so a 1 s measured window holds ~100 points for the steady-state
/// verdict's fit, and reading a few counters costs nothing at that pace.
pub const SAMPLE_NS: u64 = 10_000_000;

/// Reads how many samples the pipeline has finished with (e.g. the sink's
/// delivered + failed); called by the producer every [`SAMPLE_NS`].
pub type DoneCounter<'a> = &'a (dyn Fn() -> u64 + Sync);

/// Replays `capture` with `opts` into emulated rings read by `consumer`.
///
/// The consumer runs on its own thread and gets the [`ReplaySource`]; the
/// producer runs on the calling thread. When the schedule is done, the rings
/// are closed; the consumer drains what is left, sees `Batch::Closed`, and
/// returns its report.
pub fn run<C>(
    capture: &Capture,
    opts: &ReplayOptions,
    consumer: C,
) -> Result<ReplayReport, ReplayError>
where
    C: FnOnce(ReplaySource) -> ConsumerReport + Send,
{
    run_watched(capture, opts, None, consumer)
}

/// [`run`], and every [`SAMPLE_NS`] the producer also records the run's
/// progress ([`ReplayReport::samples`]): what it offered, what the rings
/// took and hold, and what `done` says the pipeline has finished with.
pub fn run_watched<C>(
    capture: &Capture,
    opts: &ReplayOptions,
    done: Option<DoneCounter<'_>>,
    consumer: C,
) -> Result<ReplayReport, ReplayError>
where
    C: FnOnce(ReplaySource) -> ConsumerReport + Send,
{
    let rings = opts.resolve(&capture.meta)?;
    if capture.summary.samples == 0 {
        return Err(ReplayError::EmptyCapture {
            file: capture.file.clone(),
        });
    }
    if let Bound::Loops(0) = opts.bound {
        return Err(ReplayError::Option {
            what: "--loops must be at least 1".into(),
        });
    }
    let (first, last) = (capture.summary.first_ns, capture.summary.last_ns);
    // The co-runner follows the recorded clock: it needs the recorded timing.
    let co_runner_speed = match (&opts.co_runner, opts.pacing) {
        (None, _) | (_, Pacing::Original) => 1.0,
        (Some(_), Pacing::Speed(x)) => x,
        (Some(_), other) => {
            return Err(ReplayError::Option {
                what: format!(
                    "the co-runner follows the capture's recorded timing; pacing {} has none (use the capture's own pace or --speed)",
                    other.describe()
                ),
            })
        }
    };
    let (mut writers, source) = build_rings(&rings)?;
    let mut order = KernelOrder::new(capture);

    std::thread::scope(|scope| {
        let handle = scope.spawn(move || consumer(source));
        // Start 2 ms from now so the consumer thread is up before the first record.
        let start_ns = monotonic_ns() + 2_000_000;
        let co_runner = opts
            .co_runner
            .as_ref()
            .map(|p| co_runner::CoRunner::start(p, start_ns, first, co_runner_speed));
        let produced = Schedule::new(opts.pacing, start_ns, first, last, capture.summary.samples)
            .map(|schedule| {
                produce(
                    &mut order,
                    &schedule,
                    opts.bound,
                    opts.stop_at_loss,
                    &mut writers,
                    done,
                )
            });
        writers.close();
        let co_runner = co_runner.map(co_runner::CoRunner::finish);
        let consumer = handle.join();
        let mut p = produced?;
        if let Some(e) = p.error.take() {
            return Err(e.into());
        }
        let consumer = consumer.map_err(|_| ReplayError::ConsumerPanicked {
            variant: "replay".into(),
        })?;
        let unreported_lost = match &writers {
            RingWriters::Perf(ws) => ws.iter().map(|w| w.pending_lost()).sum(),
            RingWriters::Ringbuf(_) => 0,
        };
        let mut report = ReplayReport::assemble(
            rings,
            opts,
            capture,
            p,
            writers.ring_results(),
            unreported_lost,
            consumer,
        );
        report.co_runner = co_runner;
        Ok(report)
    })
}
