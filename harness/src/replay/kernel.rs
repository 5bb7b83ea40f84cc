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
//! ([`run_variant`]). The kernel-side counts come from the injector's per-CPU
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

pub mod exec;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use probes::inject::{InjectCounters, InjectError, InjectSource, Injector, InjectorSpec};
use probes::pin::{PinDir, Stale};

use super::{
    event_len, kernel_order, pacing, Bound, ConsumerReport, ReplayError, ReplayOptions,
    ReplayReport, RingConfig, Schedule, WINDOW_NS,
};
use crate::capture::{monotonic_ns, Capture, StoredRecord, Transport};
use crate::classify::Classifier;
use crate::ledger::KernelCounts;
use crate::pipeline::replayed::{Consumer, ReplayedError, ReplayedRun};
use crate::pipeline::{Knobs, Variant};
use crate::results::{CpuTime, RingResult, RunResult};
use crate::sink::Sink;
pub use exec::{ExecError, ExecReport, ExecSpec, Ready};

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
    #[error(transparent)]
    Pipeline(#[from] ReplayedError),
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

    /// Marks `r` as kernel-backed, adds the injector's figures under
    /// `config.extra.kernel`, and checks the kernel's books: per CPU injected =
    /// output ok + failed; and, for dropbench's own reader, failed = the lost
    /// counts the reader saw (`lost_seen`) + the drops no reader could be told of.
    pub fn annotate(&self, r: &mut RunResult, lost_seen: u64) {
        r.kind = "kernel-replay".into();
        let extra = serde_json::json!({
            "test_runs": self.test_runs,
            "events_per_run": self.events_per_run(),
            "counters": self.counters,
            "exec": self.exec,
        });
        match &mut r.config.extra {
            serde_json::Value::Object(m) => {
                m.insert("kernel".into(), extra);
            }
            other => *other = serde_json::json!({ "kernel": extra }),
        }
        for c in &self.counters.kernel.cpus {
            if c.emitted != c.output_ok + c.failed() {
                r.problem(format!(
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
            r.problem(format!(
                "kernel failed outputs {} != lost reported to the reader {} + not reportable {}",
                k.lost, lost_seen, k.lost_unreported
            ));
        }
        if let Some(e) = &self.exec {
            if e.exited_during_run {
                r.problem(format!(
                    "the exec reader exited ({}) while events were being injected",
                    e.status
                ));
            }
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

/// What [`produce`] did.
struct Produced {
    bytes: u64,
    loops_done: u64,
    last_write_ns: u64,
    max_lateness_ns: u64,
    late_records: u64,
    /// Every write's lateness (1 ns to 1 hour, 2 significant digits).
    late_hist: hdrhistogram::Histogram<u64>,
    cpu: CpuTime,
    windows: Vec<u64>,
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
    capture_lost: u64,
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
            capture_lost: capture.summary.lost,
            samples,
            inj,
        })
    }

    /// Injects the whole run, starting 2 ms from now (so a reader thread is
    /// up before the first sample). Returns the start and what was done.
    fn inject(&mut self) -> (u64, Result<Produced, KernelError>) {
        let start_ns = monotonic_ns() + 2_000_000;
        let o = &self.opts.replay;
        let n = self.samples.len() as u64;
        let produced = Schedule::new(o.pacing, start_ns, self.first, self.last, n)
            .map_err(|e| KernelError::Replay(e.into()))
            .and_then(|schedule| produce(self, &schedule));
        (start_ns, produced)
    }
}

/// Per CPU index: (due time, emitted length) of each staged sample, in slot order.
type Staged = Vec<Vec<(u64, u32)>>;

/// Emits CPU `k`'s staged samples in one test run and books them.
fn flush(
    inj: &mut Injector,
    staged: &mut Staged,
    k: usize,
    start_ns: u64,
    p: &mut Produced,
) -> Result<(), KernelError> {
    let batch = &mut staged[k];
    if batch.is_empty() {
        return Ok(());
    }
    let at = monotonic_ns();
    inj.inject(k, batch.len())?;
    for (i, &(due, len)) in batch.iter().enumerate() {
        if inj.result(k, i) == 0 {
            p.bytes += len as u64;
        }
        let late = at.saturating_sub(due);
        p.late_hist.saturating_record(late.max(1));
        p.max_lateness_ns = p.max_lateness_ns.max(late);
        // 1 ms behind schedule counts as late, as in emulated replay.
        if late > 1_000_000 {
            p.late_records += 1;
        }
    }
    let w = (at.saturating_sub(start_ns) / WINDOW_NS) as usize;
    if w >= p.windows.len() {
        p.windows.resize(w + 1, 0);
    }
    p.windows[w] += batch.len() as u64;
    p.last_write_ns = at;
    batch.clear();
    Ok(())
}

/// The producer: stages each sample when it is due and emits each CPU's
/// batch in one test run (module docs, "Batching").
fn produce(e: &mut Engine<'_, '_>, schedule: &Schedule) -> Result<Produced, KernelError> {
    let (capture, bound, stop) = (e.capture, e.opts.replay.bound, &e.opts.stop);
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
    let mut p = Produced {
        bytes: 0,
        loops_done: 0,
        last_write_ns: start_ns,
        max_lateness_ns: 0,
        late_records: 0,
        late_hist: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000_000, 2)
            .expect("static bounds"),
        cpu: CpuTime::default(),
        windows: Vec::new(),
    };
    let mut staged: Staged = vec![Vec::with_capacity(per); ncpu];
    let flush_all = |inj: &mut Injector, staged: &mut Staged, p: &mut Produced| {
        (0..ncpu).try_for_each(|k| flush(inj, staged, k, start_ns, p))
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
            if end_ns.is_some_and(|e| due >= e) {
                break 'outer;
            }
            if due > now {
                // Nothing more is due: emit what is, then sleep until this one is.
                flush_all(inj, &mut staged, &mut p)?;
                now = monotonic_ns();
                if due > now {
                    std::thread::sleep(Duration::from_nanos(due - now));
                    now = monotonic_ns();
                }
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
                flush(inj, &mut staged, k, start_ns, &mut p)?;
            }
            index += 1;
            bytes_before += rec.orig as u128;
        }
        p.loops_done += 1;
    }
    flush_all(inj, &mut staged, &mut p)?;
    p.cpu = CpuTime::thread().since(cpu0);
    Ok(p)
}

impl Engine<'_, '_> {
    /// The run's report, with the injector's counters read now.
    fn report(
        self,
        start_ns: u64,
        p: Produced,
        consumer: ConsumerReport,
        exec: Option<ExecReport>,
        stale: Vec<Stale>,
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
            // The kernel's rings are not watched from here: their readers own them.
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
        Ok(KernelReport {
            replay: ReplayReport {
                pacing: self.opts.replay.pacing,
                bound: self.opts.replay.bound,
                capture_file: self.capture.file.clone(),
                offered: t.emitted,
                accepted: t.output_ok,
                lost: t.failed(),
                bytes: p.bytes,
                unreported_lost: counters.lost_unreportable(transport),
                capture_lost: self.capture_lost,
                loops_done: p.loops_done,
                start_ns,
                last_write_ns: p.last_write_ns,
                max_lateness_ns: p.max_lateness_ns,
                late_records: p.late_records,
                lateness: if p.late_hist.is_empty() {
                    crate::replay::Lateness::default()
                } else {
                    crate::replay::Lateness {
                        p50_ns: p.late_hist.value_at_quantile(0.5),
                        p99_ns: p.late_hist.value_at_quantile(0.99),
                        max_ns: p.late_hist.max(),
                    }
                },
                // Kernel-backed replay does not sample progress (yet): its
                // trials are not judged by the steady-state verdict.
                samples: Vec::new(),
                producer_cpu: p.cpu,
                windows: p.windows,
                per_ring,
                consumer,
                rings,
            },
            injection: Injection {
                transport,
                test_runs: self.inj.runs(),
                counters,
                exec,
                stale,
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
    let mut engine = Engine::new(capture, opts)?;
    let source = engine.inj.open_reader()?;
    let stop_reader = source.stop_handle();
    let (start_ns, produced, consumer) = std::thread::scope(|scope| {
        let handle = scope.spawn(move || consumer(source));
        let (start_ns, produced) = engine.inject();
        stop_reader.store(true, Ordering::Release);
        (start_ns, produced, handle.join())
    });
    let p = produced?;
    let consumer = consumer.map_err(|_| KernelError::ConsumerPanicked {
        variant: "kernel replay".into(),
    })?;
    engine.report(start_ns, p, consumer, None, Vec::new())
}

/// Replays `capture` through the kernel's rings into a pipeline `variant`
/// (built with `knobs`) and `sink`, exactly as [`crate::pipeline::replayed::run_replayed`]
/// does for emulated rings, with the injector's counters as the ledger's
/// kernel line.
pub fn run_variant(
    variant: &Variant,
    knobs: Knobs,
    capture: &Capture,
    opts: &KernelOptions,
    classifier: Arc<Classifier>,
    sink: Arc<dyn Sink>,
    finish_timeout: Duration,
) -> Result<(ReplayedRun, Injection), KernelError> {
    let c = Consumer::new(variant, knobs, classifier, sink);
    let k = run(capture, opts, |src| c.consume(src))?;
    let run = c.finish(k.replay, k.injection.kernel_counts(), finish_timeout)?;
    Ok((run, k.injection))
}

/// Replays `capture` through the kernel's rings pinned on bpffs for the
/// user's program (`exec`), which reads them however it likes. dropbench
/// starts it, waits for it to be ready, injects at the given pacing, lets it
/// drain, stops it, and takes the loss from the injector's counters.
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
        capture.meta.probe,
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
    let watch = match engine.rings.transport {
        Transport::Ringbuf => Some(engine.inj.ringbuf_watch()?),
        Transport::Perf => None,
    };
    let (start_ns, produced) = engine.inject();
    let p = produced?;
    let exited_during_run = reader.exited()?.is_some();
    // Let the reader catch up before stopping it (its loss is already known).
    let until = std::time::Instant::now() + exec.drain;
    while std::time::Instant::now() < until && !opts.stop.load(Ordering::Acquire) {
        if watch.as_ref().is_some_and(|w| w.backlog() == 0) || reader.exited()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = reader.stop(exec.grace)?;
    let end_ns = monotonic_ns();
    drop(watch);
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
        latency: super::latency_histogram(),
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
    engine.report(start_ns, p, consumer, Some(exec_report), stale)
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
