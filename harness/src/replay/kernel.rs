//! Kernel-backed replay: a capture replayed, paced, through the kernel's own
//! rings, read by dropbench's reader or by the user's program.
//!
//! ```text
//! Capture --(this thread: Schedule, batches per CPU)--> mmapped slots
//!     --BPF_PROG_TEST_RUN on the recorded CPU--> injector (bpf_loop)
//!     --bpf_perf_event_output / bpf_ringbuf_output--> real perf event array / ring buffer
//!     --> PerfRings / RingBufReader (InjectSource) --> consumer thread      [run]
//!     --> pinned on bpffs --> the user's program (sh -c)                   [run_exec]
//! ```
//!
//! The options, pacing and ring knobs are emulated replay's ([`ReplayOptions`]),
//! and [`run`] has its shape: a capture, options and a consumer in, a
//! [`ReplayReport`] out (inside [`KernelReport`], with what only the kernel
//! knows). The consumer gets the live readers (as [`InjectSource`]), opened as
//! a live run opens them; a pipeline variant runs on it unchanged
//! (`pipeline::replayed::run_kernel`). The kernel-side counts come from the injector's per-CPU
//! counters: emitted = injected, accepted = output ok, lost = failed.
//!
//! Ring r of the capture is injected on online CPU r % CPUs, so a perf capture
//! keeps its per-CPU streams; perf rings are the online CPUs, one each.
//! Each sample's `ts_ns` is set to its due time, as in emulated replay, so
//! latency is measured from the schedule.
//!
//! # Batching
//! Every sample due by now is staged in its CPU's slots, and each CPU's batch
//! goes out in one test run (one syscall, plus an IPI when the CPU is not the
//! one this thread is on). When the next sample is not due yet, the thread
//! sleeps until it is; a sleep lasts at least the kernel's timer slack (50 µs
//! by default), so at 600 k events/s (one every 1.7 µs) a wake finds tens of
//! samples due: 600 k/s × ~35 µs ≈ 20, split over the CPUs. Measured (release
//! build, busy 2-core VM, compact capture, 2 CPUs): 9.6 events per test run
//! into perf and 14 into the ring buffer at 600 k/s, both holding the rate.
//! Samples are never emitted early; the wait shows as latency from their due
//! time. When the thread falls behind, or under `max` pacing, a batch fills
//! the CPU's slots (256 by default): 1.5 M (perf) and 2.2 M (ring buffer)
//! compact events/s at `max` in the same measurement.
//! `KernelReport::injection.events_per_run()` reports what a run achieved;
//! `cargo bench -p probes --bench inject_rate` measures the injector alone.
//!
//! # Progress
//! [`run_watched`], `pipeline::replayed::run_kernel` and [`run_exec`] sample the run's
//! progress every 10 ms, as emulated replay's producer does, after test runs
//! and while the thread sleeps; what each reader lets them observe is in
//! [`progress`]. The producer and its report are emulated replay's own types
//! (`replay::Produced`, `ReplayReport::assemble`).

pub mod exec;
pub mod progress;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use probes::inject::{
    InjectCounters, InjectError, InjectSource, Injector, InjectorSpec, RingBufWatch,
};
use probes::pin::{PinDir, Stale};

use super::{
    event_len, kernel_order, pacing, Bound, ConsumerReport, DoneCounter, Produced, ReplayError,
    ReplayOptions, ReplayReport, RingConfig, Schedule,
};
use crate::capture::{Capture, StoredRecord, Transport};
use crate::host::monotonic_ns;
use crate::ledger::KernelCounts;
use crate::results::{CpuTime, RingResult, RunResult};
pub use exec::{ExecError, ExecReport, ExecSpec, Ready};
pub use progress::{Observed, RingbufConsumption};
use progress::{Sampler, Watch};

/// What to replay into. `replay` holds the same options as emulated replay;
/// `replay.rings` may only be left unset or equal the online CPUs (perf rings
/// are the CPUs' own).
#[derive(Debug, Clone)]
pub struct KernelOptions {
    pub replay: ReplayOptions,
    /// The most events one test run emits on one CPU.
    pub slots_per_cpu: u32,
    /// Set it (Ctrl-C) to end the run early: the injection stops, the reader
    /// is stopped, the pins are removed, and the run returns
    /// [`KernelError::Interrupted`].
    pub stop: Arc<AtomicBool>,
}

impl KernelOptions {
    pub fn new(replay: ReplayOptions) -> Self {
        KernelOptions {
            replay,
            slots_per_cpu: probes::inject::DEFAULT_SLOTS_PER_CPU,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Why a kernel-backed replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// Boxed: aya's load errors are large, and they happen once, at load time.
    #[error(transparent)]
    Inject(Box<InjectError>),
    #[error(transparent)]
    Pin(#[from] probes::pin::PinError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The reader's side failed: a pipeline variant or its sink
    /// (`pipeline::replayed::run_kernel`).
    #[error(transparent)]
    Reader(Box<dyn std::error::Error + Send + Sync>),
    #[error("--rings {rings}: kernel-backed replay uses the kernel's own perf rings, one per online CPU ({cpus} here); leave --rings unset")]
    Rings { rings: u32, cpus: usize },
    #[error("ring size {bytes} bytes: kernel-backed rings are at most 1 GiB")]
    RingTooLarge { bytes: u64 },
    #[error("{file}: kernel-backed replay preloads its capture, and this one is streamed (too big for memory, or --load stream)")]
    Streamed { file: String },
    #[error("the {variant} consumer thread panicked")]
    ConsumerPanicked { variant: String },
    #[error(
        "interrupted: the injection stopped, the reader was stopped and the pins were removed"
    )]
    Interrupted,
}

impl From<InjectError> for KernelError {
    fn from(e: InjectError) -> Self {
        KernelError::Inject(Box::new(e))
    }
}

/// What only the kernel (and the injector) knows about a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Injection {
    pub transport: Transport,
    /// Per online CPU: injected (= seen = emitted), output ok, failed by errno,
    /// and perf drops no PERF_RECORD_LOST has reported yet.
    pub counters: InjectCounters,
    /// Test runs that emitted events (BPF_PROG_TEST_RUN syscalls).
    pub test_runs: u64,
    /// The outside reader, for `exec:` runs.
    pub exec: Option<ExecReport>,
    /// Stale pin directories of killed runs, found and removed before this one.
    #[serde(skip)]
    pub stale: Vec<Stale>,
    /// What the run's progress samples observed ([`progress`]).
    pub observed: Observed,
}

impl Injection {
    /// The ledger's kernel line.
    pub fn kernel_counts(&self) -> KernelCounts {
        let t = self.counters.kernel.total();
        KernelCounts {
            emitted: t.emitted,
            accepted: t.output_ok,
            lost: t.failed(),
            lost_unreported: self.counters.lost_unreportable(self.transport),
        }
    }

    /// Events emitted per test run.
    pub fn events_per_run(&self) -> f64 {
        self.counters.kernel.total().emitted as f64 / self.test_runs.max(1) as f64
    }

    /// The kernel's books that do not hold: per CPU injected = output ok +
    /// failed; for dropbench's own reader, failed = the lost counts the reader
    /// saw (`lost_seen`) + the drops no reader could be told of; and an exec
    /// reader must not exit while events are being injected.
    pub fn imbalances(&self, lost_seen: u64) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.counters.kernel.cpus {
            if c.emitted != c.output_ok + c.failed() {
                out.push(format!(
                    "cpu {}: injected {} != output ok {} + failed {}",
                    c.cpu,
                    c.emitted,
                    c.output_ok,
                    c.failed()
                ));
            }
        }
        let k = self.kernel_counts();
        if self.exec.is_none() && k.lost != lost_seen + k.lost_unreported {
            out.push(format!(
                "kernel failed outputs {} != lost reported to the reader {} + not reportable {}",
                k.lost, lost_seen, k.lost_unreported
            ));
        }
        if let Some(e) = self.exec.as_ref().filter(|e| e.exited_during_run) {
            out.push(format!(
                "the exec reader exited ({}) while events were being injected",
                e.status
            ));
        }
        out
    }

    /// Marks `r` as kernel-backed, adds the injector's figures under
    /// `config.extra.kernel`, and lists [`Injection::imbalances`] as its problems.
    pub fn annotate(&self, r: &mut RunResult, lost_seen: u64) {
        r.kind = crate::results::RunKind::KernelReplay;
        let extra = serde_json::json!({
            "test_runs": self.test_runs,
            "events_per_run": self.events_per_run(),
            "counters": self.counters,
            "exec": self.exec,
        });
        r.config.extra.kernel = Some(extra);
        for p in self.imbalances(lost_seen) {
            r.problem(p);
        }
    }
}

/// A kernel-backed replay's report: emulated replay's, plus the kernel's.
#[derive(Debug, Clone)]
pub struct KernelReport {
    pub replay: ReplayReport,
    pub injection: Injection,
}

impl KernelReport {
    /// The run in the shared results schema (`kind` = `kernel-replay`).
    pub fn to_run_result(&self) -> RunResult {
        let mut r = self.replay.to_run_result();
        self.injection
            .annotate(&mut r, self.replay.consumer.lost_seen);
        r
    }
}

/// The ring setup for `capture`: emulated replay's resolution, with the perf
/// rings set to the online CPUs.
pub fn resolve(
    opts: &ReplayOptions,
    capture: &Capture,
    cpus: usize,
) -> Result<RingConfig, KernelError> {
    let mut rings = opts.resolve(&capture.meta)?;
    if rings.ring_bytes > 1 << 30 {
        return Err(KernelError::RingTooLarge {
            bytes: rings.ring_bytes,
        });
    }
    if rings.transport == Transport::Perf {
        if let Some(r) = opts.rings.filter(|&r| r as usize != cpus) {
            return Err(KernelError::Rings { rings: r, cpus });
        }
        rings.rings = cpus as u32;
    }
    Ok(rings)
}

/// A capture ready to inject, with its injector loaded: what every entry
/// point does first.
struct Engine<'c, 'o> {
    capture: &'c Capture,
    opts: &'o KernelOptions,
    rings: RingConfig,
    samples: Vec<&'c StoredRecord>,
    /// Emitted length of each sample, same order.
    lens: Vec<u32>,
    first: u64,
    last: u64,
    inj: Injector,
}

impl<'c, 'o> Engine<'c, 'o> {
    /// Resolves the rings, orders the samples, and loads the injector.
    fn new(capture: &'c Capture, opts: &'o KernelOptions) -> Result<Self, KernelError> {
        let cpus = probes::loader::online_cpus()
            .map_err(InjectError::from)?
            .len();
        let rings = resolve(&opts.replay, capture, cpus)?;
        if capture.is_streamed() {
            return Err(KernelError::Streamed {
                file: capture.file.clone(),
            });
        }
        let samples = kernel_order(capture);
        if samples.is_empty() {
            return Err(ReplayError::EmptyCapture {
                file: capture.file.clone(),
            }
            .into());
        }
        if let Bound::Loops(0) = opts.replay.bound {
            return Err(ReplayError::Option {
                what: "--loops must be at least 1".into(),
            }
            .into());
        }
        let lens = samples
            .iter()
            .map(|r| event_len(capture.trimmed(r), r.orig as usize) as u32)
            .collect();
        let mut spec = InjectorSpec::new(rings.transport, rings.ring_bytes as usize, rings.wakeup);
        spec.slots_per_cpu = opts.slots_per_cpu;
        let inj = Injector::load(&spec)?;
        Ok(Engine {
            capture,
            opts,
            rings,
            lens,
            first: samples.iter().map(|r| r.origin_ns).min().unwrap_or(0),
            last: samples.iter().map(|r| r.origin_ns).max().unwrap_or(0),
            samples,
            inj,
        })
    }

    /// Injects the whole run, starting 2 ms from now (so a reader thread is
    /// up before the first sample), sampling progress as `watch` says.
    /// Returns what was done, and what the samples observed.
    fn inject(&mut self, watch: Watch<'_>) -> (Result<Produced, KernelError>, Observed) {
        let start_ns = monotonic_ns() + 2_000_000;
        let o = &self.opts.replay;
        let n = self.samples.len() as u64;
        let mut sampler = Sampler::new(watch, start_ns);
        let produced = Schedule::new(o.pacing, start_ns, self.first, self.last, n)
            .map_err(|e| KernelError::Replay(e.into()))
            .and_then(|schedule| produce(self, &schedule, &mut sampler));
        (produced, sampler.observed())
    }
}

/// Per CPU index: (due time, emitted length) of each staged sample, in slot order.
type Staged = Vec<Vec<(u64, u32)>>;

/// Emits CPU `k`'s staged samples in one test run and books them.
fn flush(
    inj: &mut Injector,
    staged: &mut Staged,
    k: usize,
    p: &mut Produced,
    sampler: &mut Sampler<'_>,
) -> Result<(), KernelError> {
    let batch = &mut staged[k];
    if batch.is_empty() {
        return Ok(());
    }
    let at = monotonic_ns();
    inj.inject(k, batch.len())?;
    for (i, &(due, len)) in batch.iter().enumerate() {
        let ok = inj.result(k, i) == 0;
        if ok {
            p.bytes += len as u64;
        }
        sampler.output(len, ok);
        p.late(due, at);
    }
    p.wrote(at, batch.len() as u64);
    batch.clear();
    Ok(())
}

/// The producer: stages each sample when it is due and emits each CPU's
/// batch in one test run (module docs, "Batching"); samples progress every
/// [`super::SAMPLE_NS`] when `sampler` watches (after test runs, and while it sleeps).
fn produce(
    e: &mut Engine<'_, '_>,
    schedule: &Schedule,
    sampler: &mut Sampler<'_>,
) -> Result<Produced, KernelError> {
    let (capture, bound, stop) = (e.capture, e.opts.replay.bound, &e.opts.stop);
    let loss_stop = e.opts.replay.stop_at_loss;
    let (samples, lens, inj) = (&e.samples, &e.lens, &mut e.inj);
    let cpu0 = CpuTime::thread();
    let ncpu = inj.cpus().len();
    let per = inj.slots_per_cpu();
    let start_ns = schedule.start_ns();
    let max = schedule.is_max();
    let end_ns = match bound {
        Bound::Duration(d) => {
            Some(start_ns.saturating_add(d.as_nanos().min(u64::MAX as u128) as u64))
        }
        Bound::Loops(_) => None,
    };
    let loops = match bound {
        Bound::Loops(n) => n,
        Bound::Duration(_) => u64::MAX,
    };
    let mut p = Produced::new(start_ns);
    let mut staged: Staged = vec![Vec::with_capacity(per); ncpu];
    let flush_all =
        |inj: &mut Injector, staged: &mut Staged, p: &mut Produced, sampler: &mut Sampler<'_>| {
            (0..ncpu).try_for_each(|k| flush(inj, staged, k, p, sampler))
        };
    // Whether the rings' refusals so far decide the trial (checked after
    // each test run, where they can change).
    let decided = |sampler: &Sampler<'_>, now: u64| {
        loss_stop.is_some_and(|s| s.reached(start_ns, sampler.refused(), now))
    };
    // Sleeps until `until`, sampling on the way (a quiet stretch of a bursty
    // capture is sampled too). Returns the time it woke.
    let sleep_sampling = |until: u64, p: &mut Produced, sampler: &mut Sampler<'_>| loop {
        let now = monotonic_ns();
        sampler.maybe(now, &mut p.samples);
        if now >= until || stop.load(Ordering::Relaxed) {
            return now;
        }
        let wake = until.min(sampler.next());
        std::thread::sleep(Duration::from_nanos(wake.saturating_sub(now).max(1)));
    };
    pacing::wait_until(start_ns);
    let mut now = monotonic_ns();
    let mut index = 0u64;
    let mut bytes_before: u128 = 0;
    'outer: for loop_index in 0..loops {
        for (rec, &len) in samples.iter().zip(lens) {
            if stop.load(Ordering::Relaxed) {
                return Err(KernelError::Interrupted);
            }
            let due = if max {
                now = monotonic_ns();
                now
            } else {
                schedule.due(index, loop_index, rec.origin_ns, bytes_before)
            };
            if let Some(e) = end_ns.filter(|&e| due >= e) {
                // The run ends in a gap: emit what is staged, sample the rest
                // of the gap, then stop.
                flush_all(inj, &mut staged, &mut p, sampler)?;
                if !max {
                    sleep_sampling(e, &mut p, sampler);
                }
                break 'outer;
            }
            if due > now {
                // Nothing more is due: emit what is, then sleep until this one is.
                flush_all(inj, &mut staged, &mut p, sampler)?;
                if decided(sampler, monotonic_ns()) {
                    p.stopped_at_loss = true;
                    break 'outer;
                }
                now = sleep_sampling(due, &mut p, sampler);
            }
            let k = rec.ring as usize % ncpu;
            let prefix = capture.trimmed(rec);
            inj.stage(
                k,
                staged[k].len(),
                &due.to_le_bytes(),
                prefix.get(8..).unwrap_or(&[]),
                len as usize,
            )?;
            staged[k].push((due, len));
            if staged[k].len() == per {
                flush(inj, &mut staged, k, &mut p, sampler)?;
                let at = monotonic_ns();
                sampler.maybe(at, &mut p.samples);
                if decided(sampler, at) {
                    p.stopped_at_loss = true;
                    break 'outer;
                }
            }
            index += 1;
            bytes_before += rec.orig as u128;
        }
        p.loops_done += 1;
    }
    flush_all(inj, &mut staged, &mut p, sampler)?;
    // The final counts, sampled now: after any sample taken in a closing gap.
    sampler.sample(monotonic_ns(), &mut p.samples);
    p.cpu = CpuTime::thread().since(cpu0);
    Ok(p)
}

impl Engine<'_, '_> {
    /// The run's report, with the injector's counters read now.
    fn report(
        self,
        p: Produced,
        consumer: ConsumerReport,
        exec: Option<ExecReport>,
        stale: Vec<Stale>,
        observed: Observed,
    ) -> Result<KernelReport, KernelError> {
        let counters = self.inj.counters()?;
        let rings = self.rings;
        let t = counters.kernel.total();
        let ring = |ring: u32, c: &probes::counters::CpuCounters| RingResult {
            ring,
            size_bytes: rings.ring_bytes,
            offered: c.emitted,
            accepted: c.output_ok,
            lost: c.failed(),
            // The kernel's rings' high water and wakeups are their readers' to see.
            high_water_bytes: 0,
            wakeups: 0,
        };
        let per_ring = match rings.transport {
            Transport::Perf => counters
                .kernel
                .cpus
                .iter()
                .map(|c| ring(c.cpu, c))
                .collect(),
            Transport::Ringbuf => vec![ring(0, &t)],
        };
        let transport = rings.transport;
        let unreported_lost = counters.lost_unreportable(transport);
        Ok(KernelReport {
            replay: ReplayReport::assemble(
                rings,
                &self.opts.replay,
                self.capture,
                p,
                per_ring,
                unreported_lost,
                consumer,
            ),
            injection: Injection {
                transport,
                test_runs: self.inj.runs(),
                counters,
                exec,
                stale,
                observed,
            },
        })
    }
}

/// Replays `capture` with `opts` through the kernel's rings, read by
/// `consumer` on its own thread through dropbench's own reader (the live
/// [`probes::perf::PerfRings`] or [`probes::ringbuf::RingBufReader`]). When
/// the schedule is done the reader is told to stop; it drains what is left
/// and returns `Batch::Closed`.
pub fn run<C>(
    capture: &Capture,
    opts: &KernelOptions,
    consumer: C,
) -> Result<KernelReport, KernelError>
where
    C: FnOnce(InjectSource) -> ConsumerReport + Send,
{
    run_watched(capture, opts, None, consumer)
}

/// [`run`], and every [`super::SAMPLE_NS`] the producer also records the run's
/// progress ([`ReplayReport::samples`], see [`progress`]): what it injected,
/// what the rings took and hold, and what `done` says the consumer has
/// finished with.
pub fn run_watched<C>(
    capture: &Capture,
    opts: &KernelOptions,
    done: Option<DoneCounter<'_>>,
    consumer: C,
) -> Result<KernelReport, KernelError>
where
    C: FnOnce(InjectSource) -> ConsumerReport + Send,
{
    let mut engine = Engine::new(capture, opts)?;
    let source = engine.inj.open_reader()?;
    let watch = match done {
        Some(done) => Watch::Pipeline {
            done,
            rings: engine.inj.ring_watch(Some(&source))?,
        },
        None => Watch::Off,
    };
    let stop_reader = source.stop_handle();
    let (produced, observed, consumer) = std::thread::scope(|scope| {
        let handle = scope.spawn(move || consumer(source));
        let (produced, observed) = engine.inject(watch);
        stop_reader.store(true, Ordering::Release);
        (produced, observed, handle.join())
    });
    let p = produced?;
    let consumer = consumer.map_err(|_| KernelError::ConsumerPanicked {
        variant: "kernel replay".into(),
    })?;
    engine.report(p, consumer, None, Vec::new(), observed)
}

/// Replays `capture` through the kernel's rings pinned on bpffs for the
/// user's program (`exec`), which reads them however it likes. dropbench
/// starts it, waits for it to be ready, injects at the given pacing (sampling
/// progress: [`progress`]), lets it drain, stops it, and takes the loss from
/// the injector's counters.
pub fn run_exec(
    capture: &Capture,
    opts: &KernelOptions,
    exec: &ExecSpec,
) -> Result<KernelReport, KernelError> {
    let mut engine = Engine::new(capture, opts)?;
    let (mut pins_dir, stale) = PinDir::create(&exec.bpffs)?;
    let pins = engine.inj.pin(&mut pins_dir)?;
    let ready_dir = exec::ExecReader::ready_dir()?;
    let env = exec::environment(
        &pins,
        &engine.rings,
        capture.meta.layout,
        engine.inj.cpus(),
        &ready_dir.path().join("ready"),
    );
    let mut reader = exec::ExecReader::spawn(&exec.command, &env, ready_dir)?;
    let inj = &engine.inj;
    let mut slots_filled = || inj.perf_slots_filled().is_ok_and(|v| v.iter().all(|&f| f));
    let perf = engine.rings.transport == Transport::Perf;
    let ready_after = reader
        .wait_ready(
            exec.ready,
            exec.ready_timeout,
            &opts.stop,
            if perf { Some(&mut slots_filled) } else { None },
        )?
        .ok_or(KernelError::Interrupted)?;
    let ring: Option<RingBufWatch> = match engine.rings.transport {
        Transport::Ringbuf => Some(engine.inj.ringbuf_watch()?),
        Transport::Perf => None,
    };
    let watch = match &ring {
        Some(ring) => Watch::ExecRingbuf {
            ring,
            consumed: RingbufConsumption::new(ring.producer_pos()),
        },
        None => Watch::ExecPerf,
    };
    let (produced, observed) = engine.inject(watch);
    let p = produced?;
    let exited_during_run = reader.exited()?.is_some();
    // Let the reader catch up before stopping it (its loss is already known).
    let until = std::time::Instant::now() + exec.drain;
    while std::time::Instant::now() < until && !opts.stop.load(Ordering::Acquire) {
        if ring.as_ref().is_some_and(|w| w.backlog() == 0) || reader.exited()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = reader.stop(exec.grace)?;
    let end_ns = monotonic_ns();
    drop(ring);
    pins_dir.remove()?;
    if opts.stop.load(Ordering::Acquire) {
        return Err(KernelError::Interrupted);
    }
    // An outside reader's reads are its own: dropbench counts none of them.
    let consumer = ConsumerReport {
        variant: format!("exec:{}", exec.command),
        read: 0,
        lost_seen: 0,
        bytes: 0,
        latency: crate::results::latency_histogram(),
        stages: Vec::new(),
        end_ns,
        ledger: None,
        problems: Vec::new(),
    };
    let exec_report = ExecReport {
        command: exec.command.clone(),
        status,
        exited_during_run,
        ready_after_ns: ready_after.as_nanos() as u64,
        pins: pins.dir,
    };
    engine.report(p, consumer, Some(exec_report), stale, observed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use probes::abi::{encode_event, EventHeader, Kind, Layout, Syscall, FIXED4K_LEN, HEADER_LEN};

    #[test]
    fn emitted_length_is_the_events_own_not_the_padded_stored_one() {
        let h = EventHeader {
            ts_ns: 5,
            syscall: Syscall::Openat as u8,
            kind: Kind::Enter as u8,
            ..Default::default()
        };
        let mut buf = Vec::new();
        for (layout, path, want) in [
            (Layout::Fixed4k, &b"/a"[..], FIXED4K_LEN),
            (Layout::Compact, &b"/etc/passwd"[..], 64),
        ] {
            encode_event(layout, &h, path, &mut buf);
            assert_eq!(buf.len(), want);
            // perf stores round_up(len + 4, 8) - 4 bytes: 4 more here.
            let stored = ((want + 4 + 7) & !7) - 4;
            assert_eq!(stored, want + 4);
            let trimmed = &buf[..crate::capture::trimmed_len(&buf)];
            assert_eq!(event_len(trimmed, stored), want, "{layout}");
            assert_eq!(
                event_len(trimmed, want),
                want,
                "{layout} from a ring buffer capture"
            );
        }
        // An exit event: header only, and its trailing zeros reach into the header.
        let exit = EventHeader {
            kind: Kind::Exit as u8,
            ..h
        };
        encode_event(Layout::Compact, &exit, b"", &mut buf);
        let trimmed = &buf[..crate::capture::trimmed_len(&buf)];
        assert!(trimmed.len() < HEADER_LEN);
        assert_eq!(event_len(trimmed, 52), HEADER_LEN);
        // Not an event: emitted as stored.
        assert_eq!(event_len(&[0xff; 10], 60), 60);
        assert_eq!(event_len(&[1, 2], 20), 20);
    }
}
