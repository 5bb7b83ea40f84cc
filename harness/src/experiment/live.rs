//! A live trial: the same cell as a replay trial, but through the real
//! kernel. The load generator issues the capture's traffic (its op mix and
//! its paths, in order) at the trial's rate; the real probes emit into real
//! rings of the cell's size, wakeup and event layout; the *same* pipeline
//! variant reads them, into the same sink, through the same ledger, with
//! the kernel's own counters as its first line; and the same steady-state
//! verdict judges it.
//!
//! Rates are events/s, as in replay: with exit events on, every op emits two
//! events (enter and exit), so the load runs at half the rate in ops/s.
//!
//! The load runs in this process (so its threads share the probe's tgid
//! filter with the pipeline's; the pipelines issue no file syscalls of their
//! own in steady state). Needs root or CAP_BPF + CAP_PERFMON; without them a
//! live trial is one clear error ([`LiveError::Privileges`]).

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use probes::abi::{Event, Kind, Layout, Syscall};
use probes::loader::{Filter, Probe, ProbeError, ProbeSpec};
use probes::Transport;

use super::trial::allowance_for;
use super::verdict::{judge, lateness_limit, TrialEvidence, Verdict, VerdictRule};
use crate::capture::Capture;
use crate::classify::Classifier;
use crate::ledger::{KernelCounts, Ledger};
use crate::pipeline::{Context, Input, Knobs, PipelineError, RunReport, Variant};
use crate::replay::{Wakeup, SAMPLE_NS};
use crate::results::{Lateness, ProducerStats, ProgressSample};
use crate::sink::{Sink, SinkError, SinkSpec};

/// Why a live trial could not run (a trial that loses samples is a result).
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("live cells: {0}; emulated replay needs neither (harness sweep, harness replay)")]
    Privileges(Box<ProbeError>),
    /// Boxed: aya's load errors are large, and they happen once, at load time.
    #[error(transparent)]
    Probe(Box<ProbeError>),
    #[error("the load generator: {0}")]
    Load(#[from] loadgen::LoadError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("{capture}: {what}")]
    Traffic { capture: String, what: String },
    #[error("the live pipeline thread panicked")]
    Panicked,
    #[error(transparent)]
    Program(#[from] super::program::ProgramError),
}

impl From<ProbeError> for LiveError {
    fn from(e: ProbeError) -> Self {
        LiveError::Probe(Box::new(e))
    }
}

/// The capture's traffic as the load generator issues it.
#[derive(Debug)]
pub struct Traffic {
    /// loadgen op mix from the capture's enter events.
    pub mix: loadgen::OpMix,
    /// The enter events' paths, in capture order, as a list file.
    pub paths_file: tempfile::NamedTempFile,
    /// Whether the capture holds exit events (the probes emit them then).
    pub exits: bool,
    /// Events per op: 2 with exit events, else 1.
    pub events_per_op: f64,
}

/// The op that reaches a syscall the probes trace.
fn op_of(s: Syscall) -> &'static str {
    match s {
        Syscall::Openat | Syscall::Openat2 => "openat",
        Syscall::Newfstatat | Syscall::Newstat => "stat",
        Syscall::Newlstat => "lstat",
        Syscall::Statx => "statx",
    }
}

impl Traffic {
    /// Reads the op mix and paths of `capture`'s enter events.
    pub fn of(capture: &Capture) -> Result<Traffic, LiveError> {
        let err = |what: String| LiveError::Traffic {
            capture: capture.file.clone(),
            what,
        };
        let mut counts: std::collections::BTreeMap<&'static str, f64> = Default::default();
        let mut file = tempfile::NamedTempFile::new().map_err(|e| err(e.to_string()))?;
        let mut buf = std::io::BufWriter::new(file.as_file_mut());
        let (mut enters, mut exits) = (0u64, 0u64);
        let mut io_error = None;
        let read = capture.for_each(|e| {
            let probes::record::RecordRef::Sample { data, .. } = e.rec else {
                return;
            };
            let Ok(ev) = Event::decode(data) else { return };
            match ev.kind() {
                Some(Kind::Exit) => exits += 1,
                Some(Kind::Enter) if !ev.path.is_empty() && !ev.path.contains(&b'\n') => {
                    enters += 1;
                    if let Some(s) = ev.syscall() {
                        *counts.entry(op_of(s)).or_default() += 1.0;
                    }
                    if let Err(e) = buf.write_all(ev.path).and_then(|()| buf.write_all(b"\n")) {
                        io_error.get_or_insert(e);
                    }
                }
                _ => {}
            }
        });
        read.map_err(|e| err(e.to_string()))?;
        if let Some(e) = io_error {
            return Err(err(format!("writing its paths: {e}")));
        }
        buf.flush().map_err(|e| err(e.to_string()))?;
        drop(buf);
        if enters == 0 {
            return Err(err(
                "holds no enter events with a path to replay live".into()
            ));
        }
        let with_exits = exits > 0;
        // Shares rounded to thousandths (loadgen counts weights in thousandths,
        // so its op cycle stays at most ~1000 slots); a rare op keeps 0.001.
        let total: f64 = counts.values().sum();
        let mix = counts
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    ((v / total * 1000.0).round() / 1000.0).max(0.001),
                )
            })
            .collect();
        Ok(Traffic {
            mix: loadgen::OpMix(mix),
            paths_file: file,
            exits: with_exits,
            events_per_op: if with_exits { 2.0 } else { 1.0 },
        })
    }
}

/// A real command as a live cell's traffic: it runs at its own pace, in a
/// cgroup of its own ([`super::program`]), and the trial lasts as long as it does.
#[derive(Debug, Clone)]
pub struct CommandTraffic {
    /// Run with `sh -c`.
    pub command: String,
    /// Emit exit events too (as the reference recording does).
    pub exits: bool,
    /// The command is stopped (and its trial not judged) after this long.
    pub time_limit: Duration,
    /// Sample its tasks' CPU use per CPU ([`super::program::CpuSampler`]).
    pub profile: bool,
}

/// Where a live cell's traffic comes from.
#[derive(Clone, Copy)]
pub enum LiveTraffic<'a> {
    /// The load generator issues a capture's op mix and paths at the trial's rate.
    Generated(&'a Traffic),
    /// A real command, at its own pace (the trial's rate is ignored).
    Command(&'a CommandTraffic),
}

impl LiveTraffic<'_> {
    /// Events each op emits: 2 with exit events.
    pub fn events_per_op(&self) -> f64 {
        match self {
            LiveTraffic::Generated(t) => t.events_per_op,
            LiveTraffic::Command(c) => 1.0 + f64::from(u8::from(c.exits)),
        }
    }
}

/// What a live trial runs: everything but the rate.
pub struct LiveSetup<'a> {
    pub variant: &'static Variant,
    pub knobs: Knobs,
    pub traffic: LiveTraffic<'a>,
    /// For the allowance and the lateness limit: the capture's mean sample size.
    pub mean_sample_len: u64,
    pub layout: Layout,
    pub transport: Transport,
    /// Data bytes of one ring (perf: per CPU).
    pub ring_bytes: u64,
    pub wakeup: Wakeup,
    pub sink: &'a SinkSpec,
    pub classifier: Arc<Classifier>,
    pub rule: VerdictRule,
    /// Pin the load's threads to this CPU (the pipeline's threads float).
    pub load_cpu: Option<usize>,
    /// The load generator's threads (1..=64). One thread issues ~220 k ops/s
    /// traced on this kind of machine, so faster live cells need two
    /// (docs/tuning.md, "What bounds a live cell").
    pub load_threads: usize,
    /// Turn on the kernel's BPF run-time statistics for the trial, so the
    /// result has the probes' own CPU ([`LiveTrial::programs`]). They time
    /// every BPF program run (tens of ns each), so searches leave them off.
    pub run_time_stats: bool,
}

/// What one live trial found.
pub struct LiveTrial {
    pub rate: f64,
    pub verdict: Verdict,
    pub ledger: Ledger,
    pub run: RunReport,
    pub kernel: probes::counters::KernelCounters,
    /// The load generator's report (generated traffic).
    pub load: Option<loadgen::LoadReport>,
    /// How the command ended (a command's traffic).
    pub command: Option<super::program::CommandOutcome>,
    /// What the command's tasks used of each CPU, when the setup asked.
    pub cpu_profile: Option<crate::capture::cpu_profile::CpuProfile>,
    pub progress: Vec<ProgressSample>,
    pub allowance: u64,
    pub rings: u32,
    pub duration_ns: u64,
    /// Events each op emits (the traffic's: 2 with exit events).
    pub events_per_op: f64,
    /// The probes' programs over the trial, when the setup asked for run-time statistics.
    pub programs: Option<probes::loader::ProgramRunTime>,
}

/// Where a live trial's CPU went (`harness live` prints it): the probes'
/// programs (in the traced threads, from the kernel's run-time statistics),
/// the load threads' own clocks (their syscalls, the programs included), and
/// the pipeline's threads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveCpu {
    pub programs: probes::loader::ProgramRunTime,
    pub load_ns: u64,
    pub reader_ns: u64,
    pub workers_ns: u64,
}

impl LiveCpu {
    /// The kernel as the producer: the probes' programs.
    fn producer_stage(&self, emitted: u64) -> crate::results::StageResult {
        crate::results::StageResult {
            name: crate::pipeline::cost::PRODUCER.into(),
            records_in: self.programs.runs,
            records_out: emitted,
            cpu: crate::results::CpuTime {
                user_ns: 0,
                sys_ns: self.programs.run_ns,
            },
            note: Some(
                "the probes' BPF programs in the traced threads (kernel run-time statistics; runs include other processes' filtered syscalls)".into(),
            ),
            ..Default::default()
        }
    }
}

impl LiveTrial {
    /// The trial's CPU by role, when it ran with run-time statistics.
    pub fn cpu_split(&self) -> Option<LiveCpu> {
        Some(LiveCpu {
            programs: self.programs?,
            load_ns: match (&self.load, &self.cpu_profile) {
                (Some(l), _) => l.threads.iter().map(|t| t.cpu_ns).sum(),
                (None, Some(p)) => p.total_per_cpu().iter().sum(),
                (None, None) => 0,
            },
            reader_ns: self.run.cpu.reader.as_nanos() as u64,
            workers_ns: self.run.cpu.workers.as_nanos() as u64,
        })
    }

    pub fn clean(&self) -> bool {
        self.verdict.clean()
    }
    pub fn producer(&self) -> ProducerStats {
        let Some(load) = &self.load else {
            // A command has no schedule to be late for: its own pace is the rate.
            return ProducerStats {
                achieved_per_s: self.kernel.total().emitted as f64
                    / (self.duration_ns.max(1) as f64 / 1e9),
                lateness: Lateness::default(),
            };
        };
        let l = load.lateness_ns.as_ref();
        ProducerStats {
            achieved_per_s: load.achieved_ops_per_sec * self.events_per_op,
            lateness: Lateness {
                p50_ns: l.map_or(0, |l| l.p50),
                p99_ns: l.map_or(0, |l| l.p99),
                max_ns: l.map_or(0, |l| l.max),
            },
        }
    }
}

/// What drives a live trial's traffic while it runs.
enum Driver {
    Load(loadgen::Load),
    Command {
        command: super::program::TracedCommand,
        cgroup: Arc<super::program::Cgroup>,
        sampler: Option<super::program::CpuSampler>,
        time_limit: Duration,
    },
}

/// How the driver ended: the load's report or the command's outcome and profile.
type DriverEnd = (
    Option<loadgen::LoadReport>,
    Option<super::program::CommandOutcome>,
    Option<crate::capture::cpu_profile::CpuProfile>,
);

impl Driver {
    /// Spawns the load (held until [`Driver::release`]) or makes the
    /// command's cgroup (the command starts at release).
    fn prepare(
        setup: &LiveSetup<'_>,
        rate: f64,
        length: Duration,
    ) -> Result<(Driver, Filter, bool), LiveError> {
        match setup.traffic {
            LiveTraffic::Generated(t) => {
                let mut cfg = loadgen::LoadConfig::new(
                    loadgen::Rate::PerSecond(rate / t.events_per_op),
                    loadgen::RunEnd::Duration(length),
                );
                cfg.mix = t.mix.clone();
                cfg.paths = loadgen::PathSource::ListFile(t.paths_file.path().to_path_buf());
                cfg.threads = setup.load_threads;
                cfg.cpus = setup.load_cpu.map(|c| vec![c]);
                let load = loadgen::Load::spawn(cfg)?;
                let filter = Filter::Tgids(vec![load.pid() as u32]);
                Ok((Driver::Load(load), filter, t.exits))
            }
            LiveTraffic::Command(c) => {
                let cgroup = Arc::new(super::program::Cgroup::create()?);
                let filter = Filter::Cgroup(cgroup.path().to_path_buf());
                // Not started yet: a placeholder replaced at release.
                Ok((
                    Driver::Command {
                        command: super::program::TracedCommand::pending(&c.command),
                        cgroup,
                        sampler: None,
                        time_limit: c.time_limit,
                    },
                    filter,
                    c.exits,
                ))
            }
        }
    }

    fn release(&mut self, setup: &LiveSetup<'_>) -> Result<(), LiveError> {
        match self {
            Driver::Load(l) => l.release(),
            Driver::Command {
                command,
                cgroup,
                sampler,
                ..
            } => {
                if let LiveTraffic::Command(c) = setup.traffic {
                    if c.profile {
                        let cpus = probes::loader::online_cpus()?.len().max(1);
                        *sampler = Some(super::program::CpuSampler::start(
                            cgroup.clone(),
                            cpus,
                            crate::capture::cpu_profile::DEFAULT_BUCKET_NS,
                        ));
                    }
                }
                command.start(cgroup)?;
            }
        }
        Ok(())
    }

    /// Whether the traffic is still coming at `elapsed` into a trial of `length`.
    fn running(&mut self, elapsed: Duration, length: Duration) -> bool {
        match self {
            Driver::Load(_) => elapsed < length,
            Driver::Command {
                command,
                time_limit,
                ..
            } => elapsed < *time_limit && command.running(),
        }
    }

    fn finish(self) -> Result<DriverEnd, LiveError> {
        match self {
            Driver::Load(l) => {
                l.stop();
                Ok((Some(l.join()?), None, None))
            }
            Driver::Command {
                command,
                cgroup,
                sampler,
                time_limit,
            } => {
                let outcome = command.wait(time_limit)?;
                let profile = sampler.map(super::program::CpuSampler::finish);
                drop(cgroup);
                Ok((None, Some(outcome), profile))
            }
        }
    }
}

/// Runs one live trial of `setup` at `rate` events/s into `sink` (a
/// command's traffic comes at its own pace: `rate` is ignored).
pub fn run_live_trial(
    setup: &LiveSetup<'_>,
    rate: f64,
    sink: Arc<dyn Sink>,
) -> Result<LiveTrial, LiveError> {
    probes::loader::check_privileges().map_err(|e| LiveError::Privileges(Box::new(e)))?;
    let rule = setup.rule;
    let length = Duration::from_nanos(rule.warmup_ns + rule.window_ns);
    let (mut driver, filter, exits) = Driver::prepare(setup, rate, length)?;
    // Before the probe loads, so its programs are timed from their first run.
    let stats = match setup.run_time_stats {
        true => Some(probes::loader::RunTimeStats::enable()?),
        false => None,
    };
    let mut spec = ProbeSpec::new(setup.layout, setup.transport);
    spec.ring_bytes = setup.ring_bytes as usize;
    spec.wakeup = setup.wakeup;
    spec.filter = filter;
    spec.emit_exit = exits;
    let mut probe = Probe::load(&spec)?;
    let rings = match setup.transport {
        Transport::Perf => probe.cpus().len() as u32,
        Transport::Ringbuf => 1,
    };
    let input = if setup.variant.sharded {
        Input::Shards(probe.take_shards().unwrap_or_default())
    } else {
        Input::Single(
            probe
                .take_source()
                .ok_or(LiveError::from(ProbeError::MissingMap {
                    map: "events",
                    object: "(source already taken)",
                }))?,
        )
    };
    let pipeline = (setup.variant.build)(setup.knobs);
    let mut ctx = Context::new(setup.classifier.clone(), sink.clone());
    // The reader closes once stopped and drained (Probe::stop_handle), not on
    // the pipeline's own stop flag, so everything in the rings is read.
    ctx.stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = probe.stop_handle();

    let (run, progress, kernel, ended, duration_ns) = std::thread::scope(|s| {
        let worker = s.spawn(|| pipeline.run(input, &ctx));
        let released = driver.release(setup);
        let start = Instant::now();
        let mut progress = Vec::new();
        let mut next = start;
        while released.is_ok() && driver.running(start.elapsed(), length) {
            if let Ok(k) = probe.counters() {
                let k = k.total();
                progress.push(ProgressSample {
                    t_ns: start.elapsed().as_nanos() as u64,
                    offered: k.emitted,
                    accepted: k.output_ok,
                    done: sink.progress().done,
                    ring_bytes: 0,
                });
            }
            next += Duration::from_nanos(SAMPLE_NS);
            // A command is checked every millisecond, so its end ends the trial promptly.
            let nap = match setup.traffic {
                LiveTraffic::Generated(_) => next.saturating_duration_since(Instant::now()),
                LiveTraffic::Command(_) => Duration::from_millis(1),
            };
            std::thread::sleep(nap);
            while matches!(setup.traffic, LiveTraffic::Command(_)) && Instant::now() < next {
                if !driver.running(start.elapsed(), length) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let duration_ns = start.elapsed().as_nanos() as u64;
        let programs = stats
            .as_ref()
            .map(|_| probe.program_run_time().map_err(LiveError::from));
        let detached = probe.detach();
        stop.store(true, std::sync::atomic::Ordering::Release);
        let ended = released.and_then(|()| driver.finish());
        let run = worker.join().map_err(|_| LiveError::Panicked);
        let kernel = probe.counters();
        (
            run,
            progress,
            kernel,
            ended.map(|e| (e, detached, programs)),
            duration_ns,
        )
    });
    let run = run??;
    let ((load_report, command, cpu_profile), detached, programs) = ended?;
    detached?;
    let programs = programs.transpose()?;
    drop(stats);
    let kernel = kernel?;
    let sink_report = sink.finish(Duration::from_secs(60))?;
    let k = kernel.total();
    let failed = k.failed();
    let ledger = Ledger {
        kernel: Some(KernelCounts {
            emitted: k.emitted,
            accepted: k.output_ok,
            lost: failed,
            // Perf reports a loss in-band only once there is room for its
            // record; what no PERF_RECORD_LOST reported by the end is counted here.
            lost_unreported: failed.saturating_sub(run.stages.lost_reported),
        }),
        stages: run.stages.clone(),
        sink: sink_report,
    };
    // A command's rate is what it reached.
    let rate = match setup.traffic {
        LiveTraffic::Generated(_) => rate,
        LiveTraffic::Command(_) => k.emitted as f64 / (duration_ns.max(1) as f64 / 1e9),
    };
    let mean_rec = setup.mean_sample_len
        + match setup.transport {
            Transport::Perf => 16,
            Transport::Ringbuf => 8,
        };
    let allowance = allowance_for(
        setup.wakeup,
        rings,
        mean_rec,
        &setup.knobs,
        setup.sink,
        rate,
    );
    let capacity = setup.ring_bytes * rings as u64 / mean_rec.max(1);
    let fill_ns = (capacity as f64 / rate.max(1.0) * 1e9) as u64;
    let lost = failed
        + run.stages.dropped_total()
        + run.stages.decode_errors
        + ledger.sink.failed
        + ledger.sink.unresolved;
    let imbalances = ledger
        .check()
        .into_iter()
        .map(|i| format!("{}: {}", i.check, i.detail))
        .collect();
    let mut verdict = judge(
        &rule,
        &TrialEvidence {
            samples: &progress,
            lost,
            imbalances,
            lateness_p99_ns: load_report
                .as_ref()
                .and_then(|l| l.lateness_ns.as_ref())
                .map_or(0, |l| l.p99),
            lateness_limit_ns: lateness_limit(&rule, fill_ns),
            allowance,
        },
    );
    if let Some(why) = command
        .as_ref()
        .and_then(|c| c.unjudged_reason(rule.warmup_ns + rule.window_ns))
    {
        verdict.kind = crate::results::VerdictKind::Unmeasured;
        verdict.reason = format!("not judged: {why}");
    }
    Ok(LiveTrial {
        rate,
        verdict,
        ledger,
        run,
        kernel,
        load: load_report,
        command,
        cpu_profile,
        progress,
        allowance,
        rings,
        duration_ns,
        events_per_op: setup.traffic.events_per_op(),
        programs,
    })
}

impl LiveTrial {
    /// The trial in the shared results schema (`kind` = `live`).
    pub fn to_run_result(
        &self,
        setup: &LiveSetup<'_>,
        capture: &str,
        sink_desc: &str,
    ) -> crate::results::RunResult {
        use crate::results::{Counts, Latency, RunConfig, RunResult, TrialInfo};
        let k = self.kernel.total();
        let cfg = RunConfig {
            capture: Some(capture.to_string()),
            layout: setup.layout.to_string(),
            transport: setup.transport.to_string(),
            ring_bytes: setup.ring_bytes,
            rings: self.rings,
            wakeup: setup.wakeup.to_string(),
            pacing: format!("live:{}", self.rate),
            target_rate: Some(self.rate),
            loops: None,
            duration_ns: Some(self.duration_ns),
            extra: crate::results::RunExtra {
                load_mix: match setup.traffic {
                    LiveTraffic::Generated(t) => Some(t.mix.clone()),
                    LiveTraffic::Command(_) => None,
                },
                events_per_op: Some(setup.traffic.events_per_op()),
                command: self.command.clone(),
                ..crate::results::RunExtra::sink(sink_desc)
            },
        };
        let mut r = RunResult::new(crate::results::RunKind::Live, setup.variant.name, cfg);
        r.duration_ns = self.duration_ns;
        let mut counts = Counts {
            offered: k.emitted,
            accepted: k.output_ok,
            lost: k.failed(),
            read: self.run.stages.read,
            lost_seen: self.run.stages.lost_reported,
            ..Default::default()
        };
        counts.set_lost_pct();
        r.counts = counts;
        let secs = self.duration_ns as f64 / 1e9;
        if secs > 0.0 {
            r.rates.offered_per_s = k.emitted as f64 / secs;
            r.rates.read_per_s = self.run.stages.read as f64 / secs;
        }
        r.latency = self.run.latency.as_ref().and_then(Latency::from_histogram);
        r.stages =
            crate::pipeline::replayed::consumer_report(setup.variant.name, Some(&self.run)).stages;
        if let Some(c) = self.cpu_split() {
            r.stages.insert(0, c.producer_stage(k.emitted));
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        crate::pipeline::cost::set_rates(
            &mut r.stages,
            self.run.stages.read,
            self.duration_ns,
            cpus,
        );
        r.ledger = Some(self.ledger.clone());
        for i in self.ledger.check() {
            r.problem(format!("ledger: {}: {}", i.check, i.detail));
        }
        r.verdict = Some(self.verdict.clone());
        r.trial = Some(TrialInfo {
            mode: crate::results::Mode::Live,
            rule: setup.rule.describe(),
            warmup_ns: setup.rule.warmup_ns,
            window_ns: setup.rule.window_ns,
            shape: match setup.traffic {
                LiveTraffic::Generated(_) => "load generator (paced, bursts of 8 ops)".into(),
                LiveTraffic::Command(c) => format!("the command `{}`, at its own pace", c.command),
            },
            allowance: self.allowance,
            producer: self.producer(),
            stopped_at_loss: false,
        });
        r.progress = self.progress.clone();
        r
    }
}
