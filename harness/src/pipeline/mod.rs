//! Userspace pipelines: read -> decode -> classify -> serialize -> sink.
//!
//! A variant is one file in this folder plus one line in [`VARIANTS`]; the CLI,
//! sweeps and reports list variants from there. Every variant reads through
//! [`RecordSource`] (live kernel rings and replayed rings alike), counts every
//! stage into [`StageCounts`], and hands messages to a shared [`Sink`].
//!
//! | variant | reader | hand-off | per-event allocation |
//! |---|---|---|---|
//! | `seed-baseline` | 1 thread, one record per read, copied into a fresh `Vec` | bounded channel of records to N workers; each publishes one message and waits for it | yes (record, path string, message) |
//! | `batched` | 1 thread, drains up to `batch_size` per wakeup into pooled buffers | bounded channel of batches to N workers; async publish | no |
//! | `zero-copy-sharded` | 1 thread per ring, decodes in place | classifies in the reader thread, rings in parallel | no |
//! | `compact` | as `zero-copy-sharded`, on the compact event layout | | no |
//! | `tuned` | as `compact`, with a path cache per reader and 64 events a Kafka message | | no |
//! | `ringbuf` | 1 reader on the shared BPF ring buffer, decodes in place, copies only header + path | pooled small batches to N workers | no |

mod batched;
mod batches;
pub mod clocks;
pub mod cost;
pub mod count;
pub mod memory;
pub mod replayed;
mod ringbuf;

mod seed_baseline;
pub mod stage;
mod zero_copy;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use probes::abi::Layout;
use probes::record::{Batch, RecordRef, RecordSource, SourceError};

use self::clocks::{Lap, StageClocks};
use crate::classify::{Classifier, Scratch};
use crate::ledger::StageCounts;
use crate::sink::Sink;

/// Which kernel-to-user transport a variant is built for (the capture's and
/// replay's transport type).
pub use crate::capture::Transport;

/// A variant's tunables. Which ones a variant uses is in its file's docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Knobs {
    /// Classifier/publisher threads (variants with a hand-off).
    pub workers: usize,
    /// Capacity of the reader -> worker channel, in items (records or batches).
    pub channel_depth: usize,
    /// Records drained per read call / per batch.
    pub batch_size: usize,
    /// How long a reader waits on an idle ring before checking for stop.
    pub read_timeout: Duration,
    /// Wait for each message's delivery before the next (`seed-baseline`
    /// only: the seed's synchronous publisher).
    pub sync_publish: bool,
    /// Extra CPU work per event, spun in the thread that classifies it
    /// (variants built on the shared event processor). Zero by default; it
    /// makes a variant slower on purpose, to check that the verdicts and the
    /// gate notice (a regression made through a knob, not by editing numbers).
    pub extra_work: Duration,
    /// Bytes of paths each classifying thread may remember with their rule
    /// (0: no cache; every path runs the full rule set). Real traffic repeats
    /// paths heavily, so a hit replaces the prefix, glob and regex passes by
    /// one hash of the full path (docs/tuning.md, "Path cache").
    pub path_cache: usize,
    /// Events packed into one Kafka message (1: one message per event, the
    /// version-1 value; more: batch values, docs/kafka-message-format.md).
    /// librdkafka's cost is per message, so this divides it.
    pub message_events: usize,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            // One per core on the 2-core reference machine.
            workers: 2,
            channel_depth: 64,
            batch_size: 256,
            // Short enough that a stop request is seen within 10 ms.
            read_timeout: Duration::from_millis(10),
            sync_publish: false,
            extra_work: Duration::ZERO,
            // Off: the cache is a remedy of its own, switched on per variant.
            path_cache: 0,
            // Off: one message per event, as the seed's publisher sends them.
            message_events: 1,
        }
    }
}

/// Where a pipeline reads from: one source, or one per ring when the source
/// can be split ([`probes::record::ShardedSource::into_shards`]).
pub enum Input {
    Single(Box<dyn RecordSource>),
    Shards(Vec<Box<dyn RecordSource>>),
}

impl Input {
    /// One source; shards are merged round-robin.
    pub fn into_single(self) -> Box<dyn RecordSource> {
        match self {
            Input::Single(s) => s,
            Input::Shards(mut v) if v.len() == 1 => v.pop().expect("one shard"),
            Input::Shards(v) => Box::new(MergedSource::new(v)),
        }
    }

    /// One source per ring (a single source stays one shard).
    pub fn into_shards(self) -> Vec<Box<dyn RecordSource>> {
        match self {
            Input::Single(s) => vec![s],
            Input::Shards(v) => v,
        }
    }
}

/// Reads several shards as one source, round-robin.
pub struct MergedSource {
    shards: Vec<Box<dyn RecordSource>>,
    closed: Vec<bool>,
    next: usize,
}

impl MergedSource {
    pub fn new(shards: Vec<Box<dyn RecordSource>>) -> Self {
        let closed = vec![false; shards.len()];
        MergedSource {
            shards,
            closed,
            next: 0,
        }
    }
}

impl RecordSource for MergedSource {
    fn rings(&self) -> u32 {
        self.shards.iter().map(|s| s.rings()).sum()
    }

    fn read_batch(
        &mut self,
        max: usize,
        timeout: Duration,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<Batch, SourceError> {
        let n = self.shards.len();
        let deadline = Instant::now() + timeout;
        loop {
            let mut got = 0;
            for _ in 0..n {
                let i = self.next;
                self.next = (self.next + 1) % n;
                if self.closed[i] || got >= max {
                    continue;
                }
                match self.shards[i].read_batch(max - got, Duration::ZERO, f)? {
                    Batch::Records(k) => got += k,
                    Batch::Closed => self.closed[i] = true,
                    Batch::Idle => {}
                }
            }
            if got > 0 {
                return Ok(Batch::Records(got));
            }
            if self.closed.iter().all(|&c| c) {
                return Ok(Batch::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Batch::Idle);
            }
            // Block briefly on one open shard instead of spinning.
            let i = (0..n)
                .map(|k| (self.next + k) % n)
                .find(|&i| !self.closed[i])
                .expect("an open shard");
            let wait = (deadline - now).min(Duration::from_millis(1));
            match self.shards[i].read_batch(max, wait, f)? {
                Batch::Records(k) => return Ok(Batch::Records(k)),
                Batch::Closed => self.closed[i] = true,
                Batch::Idle => {}
            }
        }
    }
}

/// What every variant shares at run time.
#[derive(Clone)]
pub struct Context {
    pub classifier: Arc<Classifier>,
    pub sink: Arc<dyn Sink>,
    /// Set to ask a running pipeline to stop (live runs); replayed sources end
    /// by themselves with [`Batch::Closed`].
    pub stop: Arc<AtomicBool>,
}

impl Context {
    pub fn new(classifier: Arc<Classifier>, sink: Arc<dyn Sink>) -> Self {
        Context {
            classifier,
            sink,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// CPU time by role, from each thread's CLOCK_THREAD_CPUTIME_ID.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StageCpu {
    /// Reader threads (for inline variants this includes decode, classify,
    /// serialize and enqueue).
    pub reader: Duration,
    /// Worker threads (decode, classify, serialize, enqueue/publish).
    pub workers: Duration,
}

/// What a pipeline run reports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunReport {
    pub variant: String,
    pub stages: StageCounts,
    pub wall: Duration,
    pub cpu: StageCpu,
    /// Decode, classify, serialize and send, timed for 1 event in
    /// [`clocks::SAMPLE_EVERY`] on whichever threads processed events.
    pub stage_ns: StageClocks,
    /// Origin-to-produced latency of every produced event, ns: from the
    /// record's `origin_ns` (kernel timestamp live, due time in replay) to
    /// the moment the sink accepted its message.
    #[serde(skip)]
    pub latency: Option<Histogram<u64>>,
}

/// Adds `h` into `into` (creating it on first use).
pub(crate) fn merge_latency(into: &mut Option<Histogram<u64>>, h: &Histogram<u64>) {
    match into {
        Some(a) => {
            // Same bounds everywhere (replay::latency_histogram), so add cannot fail.
            let _ = a.add(h);
        }
        None => *into = Some(h.clone()),
    }
}

/// Why a pipeline run failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("variant {variant}: reading: {source}")]
    Source {
        variant: &'static str,
        source: SourceError,
    },
    #[error("variant {variant}: {thread} thread panicked")]
    Panicked {
        variant: &'static str,
        thread: &'static str,
    },
    #[error("unknown pipeline variant {name:?}; expected one of: {known}")]
    UnknownVariant { name: String, known: String },
    #[error("variant {variant}: knob {knob} = {value} is invalid: {why}")]
    Knob {
        variant: &'static str,
        knob: &'static str,
        value: usize,
        why: &'static str,
    },
}

/// A pipeline design. Built from [`Knobs`] by its [`Variant`] entry.
pub trait Pipeline: Send + Sync {
    fn name(&self) -> &'static str;
    /// Runs until the input is closed (or `ctx.stop` is set), then returns
    /// the counts. The sink is not finished: the caller does that.
    fn run(&self, input: Input, ctx: &Context) -> Result<RunReport, PipelineError>;
}

/// One registry entry: what the CLI, sweeps and reports know about a variant.
pub struct Variant {
    pub name: &'static str,
    pub summary: &'static str,
    /// The event layout the variant runs on unless a plan asks for another.
    pub layout: Layout,
    /// The transport the variant runs on unless a plan asks for another.
    pub transport: Transport,
    /// Every layout the variant can read (its default among them).
    pub layouts: &'static [Layout],
    /// Every transport the variant can read (its default among them).
    pub transports: &'static [Transport],
    /// Whether it wants one [`RecordSource`] per ring ([`Input::Shards`]).
    pub sharded: bool,
    /// Whether a sweep whose plan names no variants runs it (docs/tuning.md,
    /// "What each remedy buys", says why one is left out).
    pub in_default_sweep: bool,
    /// Default knobs.
    pub knobs: fn() -> Knobs,
    pub build: fn(Knobs) -> Box<dyn Pipeline>,
    /// Adjusts the Kafka producer settings the variant's design implies
    /// (e.g. the seed's synchronous producer sends at once: linger 0).
    pub tune_kafka: fn(&mut crate::sink::KafkaConfig),
}

impl std::fmt::Debug for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Variant").field("name", &self.name).finish()
    }
}

/// Every variant. Add one file and one line here.
pub static VARIANTS: &[Variant] = &[
    seed_baseline::VARIANT,
    batched::VARIANT,
    zero_copy::VARIANT_SHARDED,
    zero_copy::VARIANT_COMPACT,
    zero_copy::VARIANT_TUNED,
    ringbuf::VARIANT,
];

impl Variant {
    /// Whether the variant can read `layout` records from a `transport`.
    pub fn supports(&self, layout: Layout, transport: Transport) -> bool {
        self.layouts.contains(&layout) && self.transports.contains(&transport)
    }
}

/// Looks a variant up by name.
pub fn variant(name: &str) -> Result<&'static Variant, PipelineError> {
    VARIANTS
        .iter()
        .find(|v| v.name == name)
        .ok_or_else(|| PipelineError::UnknownVariant {
            name: name.to_owned(),
            known: VARIANTS
                .iter()
                .map(|v| v.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl Variant {
    /// The variant's knobs with each `NAME=VALUE` of `sets` applied in turn
    /// and the result checked ([`Knobs::set`], [`Knobs::check`]).
    pub fn knobs_with(&self, sets: &[String]) -> Result<Knobs, String> {
        let mut k = (self.knobs)();
        for s in sets {
            let (name, value) = s
                .split_once('=')
                .ok_or_else(|| format!("knob {s:?}: write NAME=VALUE, e.g. workers=4"))?;
            k.set(name, value)?;
        }
        k.check(self.name).map_err(|e| e.to_string())?;
        Ok(k)
    }
}

impl Knobs {
    /// Sets the knob `name` from its text (`workers=4`, `extra_work=2us`,
    /// `path_cache=1MiB`), as `replay --knob` and `compare` pass them. The
    /// names and units are the sweep config's (docs/sweep-config.md).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let count = |v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("{name}={v}: not a whole number"))
        };
        let value = value.trim();
        match name.trim() {
            "workers" => self.workers = count(value)?,
            "channel_depth" => self.channel_depth = count(value)?,
            "batch_size" => self.batch_size = count(value)?,
            "message_events" => self.message_events = count(value)?,
            "read_timeout" => {
                self.read_timeout = probes::units::parse_duration(value)
                    .map_err(|e| format!("read_timeout={value}: {e}"))?
            }
            "extra_work" => {
                self.extra_work = probes::units::parse_duration(value)
                    .map_err(|e| format!("extra_work={value}: {e}"))?
            }
            "sync_publish" => {
                self.sync_publish = value
                    .parse()
                    .map_err(|_| format!("sync_publish={value}: true or false"))?
            }
            "path_cache" => {
                let bytes = probes::units::parse_bytes(value)
                    .map_err(|e| format!("path_cache={value}: {e}"))?;
                self.path_cache =
                    usize::try_from(bytes).map_err(|_| format!("path_cache={value}: too large"))?
            }
            other => {
                return Err(format!(
                    "unknown knob {other:?}; knobs: workers, channel_depth, batch_size, read_timeout, sync_publish, extra_work, path_cache, message_events"
                ))
            }
        }
        Ok(())
    }

    /// `NAME=VALUE` for each knob that differs from `defaults`, in a fixed
    /// order: what `replay --knob` needs to rebuild these knobs.
    pub fn diff_from(&self, defaults: &Knobs) -> Vec<String> {
        let d = probes::units::format_duration;
        let b = |x: usize| probes::units::format_bytes(x as u64);
        let mut out = Vec::new();
        let mut push = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{name}={b}"));
            }
        };
        push(
            "workers",
            defaults.workers.to_string(),
            self.workers.to_string(),
        );
        push(
            "channel_depth",
            defaults.channel_depth.to_string(),
            self.channel_depth.to_string(),
        );
        push(
            "batch_size",
            defaults.batch_size.to_string(),
            self.batch_size.to_string(),
        );
        push(
            "read_timeout",
            d(defaults.read_timeout),
            d(self.read_timeout),
        );
        push(
            "sync_publish",
            defaults.sync_publish.to_string(),
            self.sync_publish.to_string(),
        );
        push("extra_work", d(defaults.extra_work), d(self.extra_work));
        push("path_cache", b(defaults.path_cache), b(self.path_cache));
        push(
            "message_events",
            defaults.message_events.to_string(),
            self.message_events.to_string(),
        );
        out
    }

    /// Checks the knobs a variant would be built with, naming the bad one.
    pub fn check(&self, variant: &'static str) -> Result<(), PipelineError> {
        check_knobs(variant, self)
    }
}

fn check_knobs(variant: &'static str, k: &Knobs) -> Result<(), PipelineError> {
    let bad = |knob, value, why| {
        Err(PipelineError::Knob {
            variant,
            knob,
            value,
            why,
        })
    };
    if k.workers == 0 {
        return bad("workers", 0, "needs at least one worker");
    }
    if k.batch_size == 0 {
        return bad("batch_size", 0, "needs at least one record per read");
    }
    if k.channel_depth == 0 {
        return bad(
            "channel_depth",
            0,
            "a zero-depth channel would deadlock the pool",
        );
    }
    if k.message_events == 0 || k.message_events > batches::MAX_MESSAGE_EVENTS {
        return bad(
            "message_events",
            k.message_events,
            "must be 1..=65535 (1: one message per event)",
        );
    }
    Ok(())
}

/// CPU time this thread has used.
pub(crate) fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Decode -> classify -> serialize -> send for one event, with no allocation
/// (the scratch and the value buffer are reused). Shared by every variant
/// except `seed-baseline`, which keeps the seed's allocations on purpose.
pub(crate) struct EventProcessor {
    classifier: Arc<Classifier>,
    scratch: Scratch,
    value: Vec<u8>,
    pub counts: StageCounts,
    pub latency: Histogram<u64>,
    pub clocks: StageClocks,
    extra_work: Duration,
    /// Open batch messages (`message_events` > 1), else `None`.
    batches: Option<batches::MessageBatches>,
}

impl EventProcessor {
    /// A processor that also spins `knobs.extra_work` per event and keeps a
    /// path cache of `knobs.path_cache` bytes.
    pub fn with_knobs(classifier: Arc<Classifier>, knobs: &Knobs) -> Self {
        let mut p = Self::new(classifier);
        p.extra_work = knobs.extra_work;
        p.scratch = p.classifier.scratch_with_cache(knobs.path_cache);
        p.batches =
            (knobs.message_events > 1).then(|| batches::MessageBatches::new(knobs.message_events));
        p
    }

    pub fn new(classifier: Arc<Classifier>) -> Self {
        let scratch = classifier.scratch();
        EventProcessor {
            classifier,
            scratch,
            // Largest value: 46-byte header + a 4095-byte path.
            value: Vec::with_capacity(4096 + 64),
            counts: StageCounts::default(),
            latency: crate::results::latency_histogram(),
            clocks: StageClocks::default(),
            extra_work: Duration::ZERO,
            batches: None,
        }
    }

    #[inline]
    pub fn process(&mut self, data: &[u8], origin_ns: u64, sink: &dyn Sink) {
        let mut sw = self.clocks.start();
        let ev = match stage::decode(data) {
            Ok(ev) => ev,
            Err(_) => {
                self.counts.decode_errors += 1;
                return;
            }
        };
        self.counts.decoded += 1;
        let decode = sw.split();
        // The extra work stands for a slower classifier: it is timed, and
        // counted, as classify.
        let classification =
            stage::classify(&self.classifier, &ev, &mut self.scratch, self.extra_work);
        self.counts.classified += 1;
        let classify = sw.split();
        let (serialize, send, sent) = match &mut self.batches {
            // Batched: the event joins its lane's message; a full lane is
            // sent now (counted there), the rest when the drain ends (`flush`).
            Some(b) => {
                let full = stage::serialize_batched(b, &ev, &classification, origin_ns);
                let serialize = sw.split();
                if let Some(lane) = full {
                    b.send(lane, sink, &mut self.counts, &mut self.latency);
                }
                (serialize, sw.split(), None)
            }
            None => {
                let key = stage::serialize(&ev, &classification, &mut self.value);
                let serialize = sw.split();
                let sent = sink.send(&key, &self.value);
                (serialize, sw.split(), Some(sent))
            }
        };
        sw.finish(
            &mut self.clocks,
            Lap {
                decode,
                classify,
                serialize,
                send,
            },
            self.extra_work.as_nanos() as u64,
        );
        match sent {
            Some(Ok(())) => {
                self.counts.produced += 1;
                record_latency(&mut self.latency, origin_ns);
            }
            Some(Err(r)) => self.counts.drop_one(r),
            None => {}
        }
    }

    /// Sends every open batch message: call it when a drain ends and when
    /// the run does. Nothing to do without `message_events`.
    #[inline]
    pub fn flush(&mut self, sink: &dyn Sink) {
        if let Some(b) = &mut self.batches {
            b.send_all(sink, &mut self.counts, &mut self.latency);
        }
    }
}

/// Records now - `origin_ns` (at least 1 ns; a vDSO clock read, ~20 ns).
#[inline]
pub(crate) fn record_latency(h: &mut Histogram<u64>, origin_ns: u64) {
    let now = crate::host::monotonic_ns();
    h.saturating_record(now.saturating_sub(origin_ns).max(1));
}

/// Counts a lost marker.
#[inline]
pub(crate) fn count_lost(counts: &mut StageCounts, count: u64) {
    counts.lost_markers += 1;
    counts.lost_reported += count;
}

/// Joins a thread, turning a panic into an error.
pub(crate) fn join<T>(
    variant: &'static str,
    thread: &'static str,
    h: std::thread::ScopedJoinHandle<'_, T>,
) -> Result<T, PipelineError> {
    h.join()
        .map_err(|_| PipelineError::Panicked { variant, thread })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_supports_its_own_layout_and_transport() {
        for v in VARIANTS {
            assert!(v.supports(v.layout, v.transport), "{}", v.name);
            assert!((v.knobs)().check(v.name).is_ok(), "{}", v.name);
        }
        // The compact-only variants say so.
        assert!(!variant("compact")
            .unwrap()
            .supports(Layout::Fixed4k, Transport::Perf));
        assert!(!variant("ringbuf")
            .unwrap()
            .supports(Layout::Compact, Transport::Perf));
    }

    #[test]
    fn tuned_is_compact_with_a_path_cache_and_batch_messages_and_both_are_off_elsewhere() {
        let (compact, tuned) = (variant("compact").unwrap(), variant("tuned").unwrap());
        assert_eq!(
            (tuned.layout, tuned.transport),
            (compact.layout, compact.transport)
        );
        assert_eq!(
            (tuned.knobs)(),
            Knobs {
                path_cache: 4 << 20,
                message_events: 64,
                ..(compact.knobs)()
            }
        );
        for v in VARIANTS.iter().filter(|v| v.name != "tuned") {
            assert_eq!((v.knobs)().path_cache, 0, "{}", v.name);
            assert_eq!((v.knobs)().message_events, 1, "{}", v.name);
        }
        // The default sweep leaves out only zero-copy-sharded.
        let left_out: Vec<_> = VARIANTS.iter().filter(|v| !v.in_default_sweep).collect();
        assert_eq!(left_out.len(), 1);
        assert_eq!(left_out[0].name, "zero-copy-sharded");
    }
}
