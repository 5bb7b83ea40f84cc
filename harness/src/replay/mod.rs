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

pub mod area;
pub mod kernel;
pub mod order;
pub mod pacing;
pub mod perf;
pub mod ringbuf;

use std::time::Duration;

use hdrhistogram::Histogram;
use probes::record::{Batch, RecordRef, RecordSource, ShardedSource, SourceError};

use crate::capture::{Capture, CaptureError, Transport};
use crate::host::monotonic_ns;
use crate::results::{
    latency_histogram, CpuTime, Latency, Lateness, ProgressSample, RingResult, RunConfig,
    RunResult, StageResult,
};
pub use area::SampleBytes;
pub use order::kernel_order;
use order::{KernelOrder, Step};
pub use pacing::{Pacing, PacingError, Schedule};
pub use perf::PerfWriter;
use probes::ring::mem::MemError;
use probes::ring::perf::PerfRings;
use probes::ring::ringbuf::{RingBufError, RingBufReader};
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
            None if transport == meta.transport => {
                meta.wakeup
                    .parse::<Wakeup>()
                    .map_err(|e| ReplayError::Option {
                        what: format!("the capture's wakeup policy: {e}"),
                    })?
            }
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
        use area::RingCounters as C;
        let one = |ring: u32, size: u64, c: &area::RingCounters| RingResult {
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

/// What a consumer (pipeline variant) reports back.
#[derive(Debug, Clone)]
pub struct ConsumerReport {
    pub variant: String,
    /// Samples read.
    pub read: u64,
    /// Sum of in-band lost counts seen.
    pub lost_seen: u64,
    pub bytes: u64,
    /// Origin-to-consumer latency, ns.
    pub latency: Histogram<u64>,
    /// The consumer's stages (reader, decode, ...), with CPU time.
    pub stages: Vec<StageResult>,
    /// CLOCK_MONOTONIC when the consumer finished.
    pub end_ns: u64,
    pub ledger: Option<crate::ledger::Ledger>,
    pub problems: Vec<String>,
}

/// The built-in `noop` consumer: drains the source in batches, recording
/// each sample's latency and counting what it saw. Nothing else.
pub fn drain_noop(mut src: impl RecordSource) -> ConsumerReport {
    let cpu0 = CpuTime::thread();
    let mut latency = latency_histogram();
    let (mut read, mut lost_seen, mut bytes) = (0u64, 0u64, 0u64);
    let mut problems = Vec::new();
    loop {
        let r = src.read_batch(4096, Duration::from_millis(100), &mut |r| match r {
            RecordRef::Sample {
                origin_ns, data, ..
            } => {
                let now = monotonic_ns();
                latency.saturating_record(now.saturating_sub(origin_ns).max(1));
                read += 1;
                bytes += data.len() as u64;
            }
            RecordRef::Lost { count, .. } => lost_seen += count,
        });
        match r {
            Ok(Batch::Closed) => break,
            Ok(_) => {}
            Err(e) => {
                problems.push(format!("reader: {e}"));
                break;
            }
        }
    }
    ConsumerReport {
        variant: "noop".into(),
        read,
        lost_seen,
        bytes,
        latency,
        stages: vec![StageResult {
            name: "reader".into(),
            records_in: read,
            records_out: read,
            dropped: 0,
            cpu: CpuTime::thread().since(cpu0),
            ..Default::default()
        }],
        end_ns: monotonic_ns(),
        ledger: None,
        problems,
    }
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct ReplayReport {
    pub rings: RingConfig,
    pub pacing: Pacing,
    pub bound: Bound,
    pub capture_file: String,
    /// Samples offered to the rings (every loop).
    pub offered: u64,
    pub accepted: u64,
    pub lost: u64,
    /// Sample bytes accepted.
    pub bytes: u64,
    /// Drops still waiting for a PERF_RECORD_LOST when the run ended (perf only).
    pub unreported_lost: u64,
    /// Lost markers recorded in the capture itself (not replayed).
    pub capture_lost: u64,
    pub loops_done: u64,
    /// Due time of the first record.
    pub start_ns: u64,
    /// When the last record was written.
    pub last_write_ns: u64,
    /// Worst lateness of a write behind its due time.
    pub max_lateness_ns: u64,
    /// Records written more than 1 ms after they were due.
    pub late_records: u64,
    /// Lateness percentiles of every write.
    pub lateness: Lateness,
    /// Progress every [`SAMPLE_NS`] while the producer ran (empty when the
    /// replay was not watched, see [`run_watched`]).
    pub samples: Vec<ProgressSample>,
    pub producer_cpu: CpuTime,
    /// Records written in each [`WINDOW_NS`] window of actual write time
    /// from the start: how steady the offered rate was.
    pub windows: Vec<u64>,
    pub per_ring: Vec<RingResult>,
    pub consumer: ConsumerReport,
    /// The run stopped before its bound at [`ReplayOptions::stop_at_loss`].
    pub stopped_at_loss: bool,
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

impl ReplayReport {
    /// The report of a run whose producer booked `p` and whose rings ended
    /// with `per_ring`: offered, accepted and lost are the rings' sums.
    pub(crate) fn assemble(
        rings: RingConfig,
        opts: &ReplayOptions,
        capture: &Capture,
        p: Produced,
        per_ring: Vec<RingResult>,
        unreported_lost: u64,
        consumer: ConsumerReport,
    ) -> ReplayReport {
        let lateness = p.lateness();
        ReplayReport {
            rings,
            pacing: opts.pacing,
            bound: opts.bound,
            capture_file: capture.file.clone(),
            offered: per_ring.iter().map(|r| r.offered).sum(),
            accepted: per_ring.iter().map(|r| r.accepted).sum(),
            lost: per_ring.iter().map(|r| r.lost).sum(),
            bytes: p.bytes,
            unreported_lost,
            capture_lost: capture.summary.lost,
            loops_done: p.loops_done,
            start_ns: p.start_ns,
            last_write_ns: p.last_write_ns,
            max_lateness_ns: p.max_lateness_ns,
            late_records: p.late_records,
            lateness,
            samples: p.samples,
            producer_cpu: p.cpu,
            windows: p.windows,
            per_ring,
            consumer,
            stopped_at_loss: p.stopped_at_loss,
        }
    }

    /// Achieved offer rate: records after the first / time from first due to
    /// last write (the first record is at t = 0).
    pub fn achieved_rate(&self) -> f64 {
        let span = self.last_write_ns.saturating_sub(self.start_ns);
        if span == 0 || self.offered < 2 {
            return 0.0;
        }
        (self.offered - 1) as f64 * 1e9 / span as f64
    }

    /// The run in the shared results schema.
    pub fn to_run_result(&self) -> RunResult {
        let cfg = RunConfig {
            capture: Some(self.capture_file.clone()),
            layout: String::new(),
            transport: self.rings.transport.to_string(),
            ring_bytes: self.rings.ring_bytes,
            rings: self.rings.rings,
            wakeup: self.rings.wakeup.to_string(),
            pacing: self.pacing.describe(),
            target_rate: self.pacing.target_rate(),
            loops: match self.bound {
                Bound::Loops(n) => Some(n),
                _ => None,
            },
            duration_ns: match self.bound {
                Bound::Duration(d) => Some(d.as_nanos() as u64),
                _ => None,
            },
            extra: serde_json::Value::Null,
        };
        let mut r = RunResult::new(crate::results::RunKind::Replay, &self.consumer.variant, cfg);
        let c = &self.consumer;
        let end = c.end_ns.max(self.last_write_ns);
        r.duration_ns = end.saturating_sub(self.start_ns);
        r.counts.offered = self.offered;
        r.counts.accepted = self.accepted;
        r.counts.lost = self.lost;
        r.counts.set_lost_pct();
        r.counts.read = c.read;
        r.counts.lost_seen = c.lost_seen;
        r.counts.bytes = self.bytes;
        r.rates.offered_per_s = self.achieved_rate();
        let secs = r.duration_ns as f64 / 1e9;
        if secs > 0.0 {
            r.rates.read_per_s = c.read as f64 / secs;
            r.rates.bytes_per_s = self.bytes as f64 / secs;
        }
        r.latency = Latency::from_histogram(&c.latency);
        r.stages.push(StageResult {
            name: "producer".into(),
            records_in: self.offered,
            records_out: self.accepted,
            dropped: self.lost,
            cpu: self.producer_cpu,
            ..Default::default()
        });
        r.stages.extend(c.stages.iter().cloned());
        r.rings = self.per_ring.clone();
        r.ledger = c.ledger.clone();
        if self.offered != self.accepted + self.lost {
            r.problem(format!(
                "producer counts do not add up: offered {} != accepted {} + lost {}",
                self.offered, self.accepted, self.lost
            ));
        }
        if c.variant == "noop" && c.read != self.accepted {
            r.problem(format!(
                "the reader saw {} of {} accepted samples",
                c.read, self.accepted
            ));
        }
        if let Some(target) = self.pacing.target_rate() {
            let got = self.achieved_rate();
            // The pacing contract is ±1% of the target rate.
            if self.offered > 100 && (got - target).abs() > target * 0.01 {
                r.problem(format!(
                    "pacing missed its target: {got:.0}/s achieved for {target:.0}/s (the producer fell behind)"
                ));
            }
        }
        for p in &c.problems {
            r.problem(p.clone());
        }
        r
    }
}

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
    let (mut writers, source) = build_rings(&rings)?;
    let mut order = KernelOrder::new(capture);

    std::thread::scope(|scope| {
        let handle = scope.spawn(move || consumer(source));
        // Start 2 ms from now so the consumer thread is up before the first record.
        let start_ns = monotonic_ns() + 2_000_000;
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
        Ok(ReplayReport::assemble(
            rings,
            opts,
            capture,
            p,
            writers.ring_results(),
            unreported_lost,
            consumer,
        ))
    })
}

/// A stored sample's length as the probe emitted it, which is what it takes
/// in any ring: its event header says how long it is
/// ([`probes::abi::event_size`]). A perf capture also stores the `raw_size`
/// padding (a 4144-byte fixed4k event is stored as 4148 bytes), which is
/// perf's, not the event's: replayed into perf it comes back, into the ring
/// buffer it must not. A sample whose header does not decode, or claims more
/// than was stored, keeps its stored length.
pub fn event_len(prefix: &[u8], stored: usize) -> usize {
    use probes::abi::{event_size, EventHeader, Kind, Layout, HEADER_LEN};
    if stored < HEADER_LEN {
        return stored;
    }
    // The capture drops trailing zeros: put back those of the header.
    let mut header = [0u8; HEADER_LEN];
    let n = prefix.len().min(HEADER_LEN);
    header[..n].copy_from_slice(&prefix[..n]);
    EventHeader::read(&header)
        .ok()
        .and_then(|h| {
            let layout = Layout::from_u8(h.layout)?;
            Some(event_size(
                layout,
                Kind::from_u8(h.kind)?,
                h.path_len as usize,
            ))
        })
        .filter(|&len| len <= stored)
        .unwrap_or(stored)
}

/// What a producer did, booked as it goes: emulated replay's producer and
/// the kernel engine's ([`kernel`]) fill the same book, and
/// [`ReplayReport::assemble`] turns it into their common report.
pub(crate) struct Produced {
    start_ns: u64,
    pub bytes: u64,
    pub loops_done: u64,
    pub last_write_ns: u64,
    pub max_lateness_ns: u64,
    pub late_records: u64,
    /// Every write's lateness: 1 ns to 1 hour at 2 significant digits, so
    /// percentiles are within 1%.
    late_hist: Histogram<u64>,
    pub samples: Vec<ProgressSample>,
    pub cpu: CpuTime,
    pub windows: Vec<u64>,
    /// Reading a streamed capture failed: the run stopped there.
    pub error: Option<CaptureError>,
    /// The run stopped at its loss limit ([`StopAtLoss`]).
    pub stopped_at_loss: bool,
}

impl Produced {
    pub(crate) fn new(start_ns: u64) -> Self {
        Produced {
            start_ns,
            bytes: 0,
            loops_done: 0,
            last_write_ns: start_ns,
            max_lateness_ns: 0,
            late_records: 0,
            late_hist: Histogram::new_with_bounds(1, 3_600_000_000_000, 2).expect("static bounds"),
            samples: Vec::new(),
            cpu: CpuTime::default(),
            windows: Vec::new(),
            error: None,
            stopped_at_loss: false,
        }
    }

    /// Books one record due at `due` and written at `at`.
    #[inline]
    pub(crate) fn late(&mut self, due: u64, at: u64) {
        let late = at.saturating_sub(due);
        self.late_hist.saturating_record(late.max(1));
        self.max_lateness_ns = self.max_lateness_ns.max(late);
        // 1 ms behind schedule counts as late.
        if late > 1_000_000 {
            self.late_records += 1;
        }
    }

    /// Books `n` records written at `at` into their [`WINDOW_NS`] window.
    #[inline]
    pub(crate) fn wrote(&mut self, at: u64, n: u64) {
        let w = (at.saturating_sub(self.start_ns) / WINDOW_NS) as usize;
        if w >= self.windows.len() {
            self.windows.resize(w + 1, 0);
        }
        self.windows[w] += n;
        self.last_write_ns = at;
    }

    pub(crate) fn lateness(&self) -> Lateness {
        if self.late_hist.is_empty() {
            return Lateness::default();
        }
        Lateness {
            p50_ns: self.late_hist.value_at_quantile(0.5),
            p99_ns: self.late_hist.value_at_quantile(0.99),
            max_ns: self.late_hist.max(),
        }
    }
}

/// The producer loop: for each record in recorded order (which keeps the
/// per-CPU streams interleaved as recorded), wait for its due time, stamp it
/// and output it into its ring.
fn produce(
    order: &mut KernelOrder<'_>,
    schedule: &Schedule,
    bound: Bound,
    stop: Option<StopAtLoss>,
    writers: &mut RingWriters,
    done: Option<DoneCounter<'_>>,
) -> Produced {
    let cpu0 = CpuTime::thread();
    pacing::tight_timer_slack();
    let mut p = Produced::new(schedule.start_ns());
    let mut next_sample = schedule.start_ns();
    let mut accepted = 0u64;
    let max = schedule.is_max();
    // `d` after the first record's due time, saturating.
    let after_start = |d: Duration| {
        schedule
            .start_ns()
            .saturating_add(d.as_nanos().min(u64::MAX as u128) as u64)
    };
    let end_ns = match bound {
        Bound::Duration(d) => Some(after_start(d)),
        Bound::Loops(_) => None,
    };
    let loops = match bound {
        Bound::Loops(n) => n,
        Bound::Duration(_) => u64::MAX,
    };
    if max {
        pacing::wait_until(schedule.start_ns());
    }
    let mut index = 0u64;
    let mut bytes_before: u128 = 0;
    // Waits until `until`, sleeping, and samples progress every SAMPLE_NS on
    // the way, so quiet stretches of a bursty capture are sampled too.
    let mut wait_sampling = |until: u64,
                             index: u64,
                             accepted: u64,
                             writers: &RingWriters,
                             progress: &mut Vec<ProgressSample>|
     -> u64 {
        loop {
            let now = monotonic_ns();
            if let Some(done) = done {
                if now >= next_sample {
                    progress.push(ProgressSample {
                        t_ns: now.saturating_sub(schedule.start_ns()),
                        offered: index,
                        accepted,
                        done: done(),
                        ring_bytes: writers.used_bytes(),
                    });
                    next_sample = now + SAMPLE_NS;
                }
            }
            if now >= until {
                return now;
            }
            let wake = if done.is_some() {
                until.min(next_sample)
            } else {
                until
            };
            std::thread::sleep(Duration::from_nanos(wake.saturating_sub(now).max(1)));
        }
    };
    'outer: for loop_index in 0..loops {
        loop {
            let rec = match order.next_step() {
                Ok(Step::Sample(s)) => s,
                Ok(Step::PassEnd) => break,
                Err(e) => {
                    p.error = Some(e);
                    break 'outer;
                }
            };
            let (due, now) = if max {
                let now = monotonic_ns();
                (now, now)
            } else {
                let due = schedule.due(index, loop_index, rec.origin_ns, bytes_before);
                if let Some(e) = end_ns.filter(|&e| due >= e) {
                    // The run ends in a gap: sample the rest of it, then stop.
                    wait_sampling(e, index, accepted, writers, &mut p.samples);
                    break 'outer;
                }
                (
                    due,
                    wait_sampling(due, index, accepted, writers, &mut p.samples),
                )
            };
            if max && end_ns.is_some_and(|e| now >= e) {
                break 'outer;
            }
            p.late(due, now);
            let s = SampleBytes {
                prefix: rec.prefix,
                len: event_len(rec.prefix, rec.orig as usize),
                ts: Some(due),
            };
            let took = writers.output(rec.ring, &s);
            if took {
                p.bytes += s.len as u64;
                accepted += 1;
            }
            index += 1;
            bytes_before += rec.orig as u128;
            p.wrote(now, 1);
            // Checked on a drop only: a run that keeps up never pays for it.
            if let (false, Some(stop)) = (took, stop) {
                if stop.reached(schedule.start_ns(), index - accepted, now) {
                    p.stopped_at_loss = true;
                    break 'outer;
                }
            }
        }
        p.loops_done += 1;
    }
    if let Some(done) = done {
        p.samples.push(ProgressSample {
            t_ns: p.last_write_ns.saturating_sub(schedule.start_ns()),
            offered: index,
            accepted,
            done: done(),
            ring_bytes: writers.used_bytes(),
        });
    }
    p.cpu = CpuTime::thread().since(cpu0);
    p
}
