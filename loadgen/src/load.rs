//! A running load: [`Load`] starts the workers, exposes their identity, and joins them into a
//! [`LoadReport`].

use crate::config::{LoadConfig, Rate, RunEnd};
use crate::corpus::{Corpus, CorpusSummary};
use crate::error::LoadError;
use crate::ops::Tally;
use crate::pacer::{
    now_ns, worker_main, GateState, Pacing, Shared, WorkerOutcome, WorkerPlan, LATENESS_MAX_NS,
};
use crate::schedule::{thread_slot_count, Schedule};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long after the end of a timed paced run a worker that is still behind schedule may go on
/// issuing the slots due before the end. Past it the rest are dropped and reported as
/// [`LoadReport::slots_missed`], so a run that cannot keep up still ends on time. 10 ms is 0.2% of a
/// 5 s run and covers a scheduler hiccup on the last burst.
pub const PACED_END_GRACE: Duration = Duration::from_millis(10);

/// A load run in progress.
///
/// ```no_run
/// use loadgen::{Load, LoadConfig, Rate, RunEnd};
/// use std::time::Duration;
/// let cfg = LoadConfig::new(Rate::PerSecond(100_000.0), RunEnd::Duration(Duration::from_secs(5)));
/// let load = Load::start(cfg)?;
/// println!("pid {} tids {:?}", load.pid(), load.tids()); // for a BPF tgid/tid filter
/// let report = load.join()?;
/// println!("{report}");
/// # Ok::<(), loadgen::LoadError>(())
/// ```
pub struct Load {
    config: LoadConfig,
    pid: i32,
    tids: Vec<i32>,
    cpus: Vec<Option<usize>>,
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<WorkerOutcome>>,
    corpus: Arc<Corpus>,
    schedule: Option<Schedule>,
    start_ns: Option<u64>,
}

/// Stops a run from elsewhere (a signal handler thread, a timeout), like [`Load::stop`].
#[derive(Clone)]
pub struct StopHandle(Arc<Shared>);

impl StopHandle {
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

/// Ops done so far, for live rate printing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Ops issued by all workers (published once per burst, so up to `threads * burst` behind).
    pub ops: u64,
    /// Time since the start; zero before [`Load::release`].
    pub elapsed: Duration,
}

impl Load {
    /// Validates `config`, builds the corpus, spawns the workers and starts the run at once.
    /// Returns as soon as every worker has reported its tid (well under a millisecond after the
    /// corpus is built); the run goes on in the background until [`Load::join`].
    pub fn start(config: LoadConfig) -> Result<Load, LoadError> {
        let mut load = Load::spawn(config)?;
        load.release();
        Ok(load)
    }

    /// Like [`Load::start`], but the workers wait at a gate, tids known, until [`Load::release`]:
    /// for attaching probes filtered to [`Load::tids`] before the first op. Slot 0 is due at release.
    pub fn spawn(config: LoadConfig) -> Result<Load, LoadError> {
        config.validate()?;
        let cycle: Arc<[crate::ops::OpKind]> = config.mix.cycle()?.into();
        let corpus = Arc::new(Corpus::load(&config.paths)?);
        let threads = config.threads;
        let schedule = match config.rate {
            Rate::PerSecond(r) => Some(Schedule::from_rate(r)?),
            Rate::Max => None,
        };
        // Own op budgets: an op count is split by the slot interleave (thread t owns t, t+T, ...);
        // a paced run bounded by time owns the slots due before its end; max mode by time: unbounded.
        let (total, deadline_ns) = match (config.end, schedule) {
            (RunEnd::Ops(n), _) => (Some(n), None),
            (RunEnd::Duration(d), Some(s)) => (
                Some(s.slots_before(d.as_nanos())),
                Some(d.as_nanos() + PACED_END_GRACE.as_nanos()),
            ),
            (RunEnd::Duration(d), None) => (None, Some(d.as_nanos())),
        };
        let shared = Arc::new(Shared::new(threads));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut handles = Vec::with_capacity(threads);
        let mut cpus = Vec::with_capacity(threads);
        for index in 0..threads {
            let cpu = config.cpus.as_ref().map(|c| c[index % c.len()]);
            cpus.push(cpu);
            let plan = WorkerPlan {
                index,
                threads,
                cpu,
                cycle: cycle.clone(),
                corpus: corpus.clone(),
                pacing: schedule.map_or(Pacing::Max, Pacing::Paced),
                burst: config.burst,
                nice: config.nice,
                own_ops: total.map_or(u64::MAX, |n| {
                    thread_slot_count(index as u64, threads as u64, n)
                }),
                deadline_ns,
            };
            let (sh, tx) = (shared.clone(), ready_tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("loadgen-{index}"))
                .spawn(move || worker_main(plan, sh, tx));
            match spawned {
                Ok(h) => handles.push(h),
                Err(source) => {
                    abort(&shared, handles);
                    return Err(LoadError::Spawn {
                        thread: index,
                        source,
                    });
                }
            }
        }
        drop(ready_tx);
        let mut tids = vec![0; threads];
        let mut failure = None;
        for _ in 0..threads {
            match ready_rx.recv() {
                Ok((i, Ok(tid))) => tids[i] = tid,
                Ok((i, Err(reason))) => {
                    failure.get_or_insert(LoadError::WorkerSetup { thread: i, reason });
                }
                Err(_) => {
                    let i = tids.iter().position(|&t| t == 0).unwrap_or(0);
                    failure.get_or_insert(LoadError::WorkerPanicked { thread: i });
                    break;
                }
            }
        }
        if let Some(err) = failure {
            abort(&shared, handles);
            return Err(err);
        }
        Ok(Load {
            config,
            // SAFETY: getpid has no preconditions.
            pid: unsafe { libc::getpid() },
            tids,
            cpus,
            shared,
            handles,
            corpus,
            schedule,
            start_ns: None,
        })
    }

    /// Opens the gate: the run starts now (slot 0 is due now). Does nothing the second time.
    pub fn release(&mut self) {
        if self.start_ns.is_none() {
            let start = now_ns();
            self.start_ns = Some(start);
            self.shared.set_gate(GateState::Open { start_ns: start });
        }
    }

    /// The process id (the BPF tgid of every worker).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The kernel thread ids of the workers (gettid), in worker order.
    pub fn tids(&self) -> &[i32] {
        &self.tids
    }

    /// The config the run was started with.
    pub fn config(&self) -> &LoadConfig {
        &self.config
    }

    /// The paths the workers walk.
    pub fn corpus(&self) -> &Corpus {
        &self.corpus
    }

    /// Asks every worker to stop after its current burst (max mode: within `max(burst, 64)` ops;
    /// sleeping paced workers within 10 ms).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }

    /// A clonable handle that stops this run.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.shared.clone())
    }

    /// True once every worker has returned.
    pub fn is_finished(&self) -> bool {
        self.handles.iter().all(|h| h.is_finished())
    }

    /// Ops issued so far and time since the start.
    pub fn progress(&self) -> Progress {
        let ops = self
            .shared
            .done
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .sum();
        let elapsed = self.start_ns.map_or(Duration::ZERO, |s| {
            Duration::from_nanos(now_ns().saturating_sub(s))
        });
        Progress { ops, elapsed }
    }

    /// Waits for the run to end (releasing it first if [`Load::spawn`] left it gated) and reports.
    pub fn join(mut self) -> Result<LoadReport, LoadError> {
        self.release();
        let start_ns = self.start_ns.unwrap_or_else(now_ns);
        let mut tally = Tally::default();
        let mut lateness = Histogram::<u64>::new_with_bounds(1, LATENESS_MAX_NS, 3)
            .expect("static bounds are valid");
        let mut end_ns = start_ns;
        let mut missed = 0;
        let mut threads = Vec::new();
        let mut panicked = None;
        for (index, handle) in std::mem::take(&mut self.handles).into_iter().enumerate() {
            match handle.join() {
                Ok(out) => {
                    tally.merge(&out.tally);
                    // Same bounds on both sides, so adding cannot fail.
                    let _ = lateness.add(&out.lateness);
                    if out.ran {
                        end_ns = end_ns.max(out.end_ns);
                    }
                    missed += out.missed;
                    threads.push(ThreadReport {
                        index,
                        tid: self.tids[index],
                        cpu: self.cpus[index],
                        ops: out.tally.ops,
                        cpu_ns: out.cpu_ns,
                    });
                }
                Err(_) => {
                    panicked.get_or_insert(index);
                }
            }
        }
        if let Some(thread) = panicked {
            return Err(LoadError::WorkerPanicked { thread });
        }
        // At least 1 ns, so a run that did nothing still has a finite rate.
        let elapsed_ns = end_ns.saturating_sub(start_ns).max(1);
        let elapsed_secs = elapsed_ns as f64 / 1e9;
        let scheduled = match (self.schedule, self.config.end) {
            (Some(s), RunEnd::Duration(d)) => Some(s.slots_before(d.as_nanos())),
            (Some(_), RunEnd::Ops(n)) => Some(n),
            (None, _) => None,
        };
        let lateness_ns = (self.schedule.is_some() && !lateness.is_empty()).then(|| Lateness {
            samples: lateness.len(),
            p50: lateness.value_at_quantile(0.50),
            p90: lateness.value_at_quantile(0.90),
            p99: lateness.value_at_quantile(0.99),
            p999: lateness.value_at_quantile(0.999),
            max: lateness.max(),
            mean: lateness.mean(),
        });
        Ok(LoadReport {
            pid: self.pid,
            tids: self.tids.clone(),
            target: self.config.rate,
            target_ops_per_sec: self.schedule.map(|s| s.rate()),
            achieved_ops_per_sec: tally.ops as f64 / elapsed_secs,
            elapsed_ns,
            elapsed_secs,
            ops: tally.ops,
            slots_scheduled: scheduled,
            slots_missed: missed,
            stopped_early: self.shared.stop.load(Ordering::Relaxed),
            syscalls: tally.calls_by_name(),
            errors: tally.errors_by_errno(),
            errors_by_syscall: tally.errors_by_syscall(),
            lateness_ns,
            threads,
            corpus: self.corpus.summary(),
            config: self.config.clone(),
        })
    }
}

impl Drop for Load {
    /// A dropped, unjoined load is stopped and its workers joined, so no thread outlives the corpus.
    fn drop(&mut self) {
        if !self.handles.is_empty() {
            self.stop();
            abort(&self.shared, std::mem::take(&mut self.handles));
        }
    }
}

/// Stops workers that may still sit at the gate, and joins them.
fn abort(shared: &Shared, handles: Vec<JoinHandle<WorkerOutcome>>) {
    shared.stop.store(true, Ordering::Relaxed);
    shared.set_gate(GateState::Abort);
    for h in handles {
        let _ = h.join();
    }
}

/// How late ops ran against their slots, in ns (paced runs only). An op that ran before its slot
/// (later ops of a burst) counts as 0.
#[derive(Clone, Debug, Serialize)]
pub struct Lateness {
    pub samples: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// One worker's identity and share.
#[derive(Clone, Debug, Serialize)]
pub struct ThreadReport {
    pub index: usize,
    pub tid: i32,
    pub cpu: Option<usize>,
    pub ops: u64,
    /// CPU time the thread used while it ran (user + system: the syscalls
    /// and, when they are traced, the BPF programs they run), in ns.
    pub cpu_ns: u64,
}

/// What a run did. Serialized as the JSON the harness reads.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    pub pid: i32,
    pub tids: Vec<i32>,
    /// The configured rate (`{"per_second": r}` or `"max"`).
    pub target: Rate,
    /// The paced rate after rounding to 0.001 ops/s; `None` in max mode.
    pub target_ops_per_sec: Option<f64>,
    /// `ops / elapsed_secs`.
    pub achieved_ops_per_sec: f64,
    /// From the start to the return of the last op of any worker.
    pub elapsed_ns: u64,
    pub elapsed_secs: f64,
    /// Ops issued; an `openat` and its `close` count as one.
    pub ops: u64,
    /// Slots on the schedule (paced runs).
    pub slots_scheduled: Option<u64>,
    /// Slots not issued because a worker was still behind schedule [`PACED_END_GRACE`] after the
    /// end of a timed run.
    pub slots_missed: u64,
    /// Whether [`Load::stop`] ended the run.
    pub stopped_early: bool,
    /// Calls per syscall: openat, close, stat, lstat, fstatat, statx.
    pub syscalls: BTreeMap<String, u64>,
    /// Failed calls by errno name (`ENOENT`).
    pub errors: BTreeMap<String, u64>,
    /// Failed calls by syscall, then errno name.
    pub errors_by_syscall: BTreeMap<String, BTreeMap<String, u64>>,
    /// Schedule lateness; `None` in max mode.
    pub lateness_ns: Option<Lateness>,
    pub threads: Vec<ThreadReport>,
    pub corpus: CorpusSummary,
    pub config: LoadConfig,
}

impl std::fmt::Display for LoadReport {
    /// The human summary the binary prints at the end.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = match self.target_ops_per_sec {
            Some(t) => format!("{t:.0} ops/s"),
            None => "max".to_string(),
        };
        writeln!(f, "target    {target}")?;
        write!(
            f,
            "achieved  {:.0} ops/s ({} ops in {:.3} s",
            self.achieved_ops_per_sec, self.ops, self.elapsed_secs
        )?;
        if let Some(t) = self.target_ops_per_sec {
            write!(
                f,
                ", {:+.3}% vs target",
                (self.achieved_ops_per_sec / t - 1.0) * 100.0
            )?;
        }
        writeln!(f, ")")?;
        if self.slots_missed > 0 {
            writeln!(
                f,
                "missed    {} slots (behind schedule when the time ran out)",
                self.slots_missed
            )?;
        }
        if self.stopped_early {
            writeln!(f, "stopped   early, on request")?;
        }
        let calls: Vec<String> = self
            .syscalls
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(f, "syscalls  {}", calls.join(" "))?;
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(
            f,
            "errors    {}",
            if errors.is_empty() {
                "none".to_string()
            } else {
                errors.join(" ")
            }
        )?;
        if let Some(l) = &self.lateness_ns {
            writeln!(
                f,
                "lateness  p50 {} ns, p99 {} ns, max {} ns ({} samples)",
                l.p50, l.p99, l.max, l.samples
            )?;
        }
        let tids: Vec<String> = self
            .threads
            .iter()
            .map(|t| match t.cpu {
                Some(c) => format!("{}@cpu{c}", t.tid),
                None => t.tid.to_string(),
            })
            .collect();
        writeln!(f, "pid       {} tids {}", self.pid, tids.join(" "))?;
        write!(
            f,
            "corpus    {} paths ({} missing, {} near PATH_MAX, longest {} B), {}",
            self.corpus.paths,
            self.corpus.missing,
            self.corpus.long,
            self.corpus.max_path_len,
            self.corpus.source
        )
    }
}
