//! A kernel-backed trial: the same cell as a replay trial ([`super::trial`]),
//! but the capture is injected, paced, into the kernel's real rings
//! ([`crate::replay::kernel`]) and read there by one of dropbench's variants
//! (into the same sink, through the same ledger, the injector's counters as
//! its kernel line) or by the user's own program (`exec:`), and the same
//! steady-state verdict judges it.
//!
//! What the verdict sees ([`crate::replay::kernel::Observed`]):
//! - a dropbench variant: everything, as in replay (its sink's finished
//!   count, the rings' bytes from their own positions);
//! - an exec reader of a ring buffer: its consumption, from the ring's
//!   consumer position (the records it has taken out of the ring; what it
//!   does with them afterwards is its own), and the loss from the kernel
//!   counters;
//! - an exec reader of perf rings: only the kernel counters (its rings are
//!   its own mappings). Such a trial is judged on loss and the producer's
//!   pace alone, and its rule's name says so ([`KernelTrial::rule_name`]):
//!   a reader that falls behind without losing yet passes until its rings
//!   overflow. Its printed summary (docs/byo-reader.md) is its own report;
//!   dropbench does not need it.
//!
//! [`search_ndr`] finds a cell's zero-loss rate with these trials, retrying
//! a trial the producer could not offer (a busy machine), as the sweep does.
//! Needs root or CAP_BPF + CAP_PERFMON, like every kernel-backed run.

use std::sync::Arc;
use std::time::Duration;

use super::trial::{allowance_for, RateShape, TrialSetup};
use super::verdict::{judge, lateness_limit, TrialEvidence, Verdict, VerdictRule};
use crate::capture::Capture;
use crate::classify::Classifier;
use crate::experiment::search::{SearchError, SearchOutcome, ZeroLossSearch};
use crate::pipeline::replayed::ReplayedRun;
use crate::pipeline::{Knobs, Variant};
use crate::replay::kernel::{run_exec, ExecSpec, Injection, KernelError, KernelOptions, Observed};
use crate::replay::{Bound, ReplayOptions, ReplayReport, Wakeup};
use crate::results::ProducerStats;
use crate::results::{RunResult, TrialInfo};
use crate::sink::{Sink, SinkSpec};
use probes::Transport;

/// Who reads the kernel's rings.
pub enum KernelReader<'a> {
    /// One of dropbench's pipeline variants, into the trial's sink.
    Variant {
        variant: &'static Variant,
        knobs: Knobs,
        /// The sink as the variant tunes it (for the allowance).
        sink: &'a SinkSpec,
        classifier: Arc<Classifier>,
    },
    /// The user's program on the pinned rings (`exec:COMMAND`).
    Exec(ExecSpec),
}

/// What a kernel-backed trial runs: everything but the rate. Perf rings are
/// the online CPUs' own, one each.
pub struct KernelSetup<'a> {
    pub reader: KernelReader<'a>,
    pub capture: &'a Capture,
    pub transport: Transport,
    /// Data bytes of one ring (perf: per CPU).
    pub ring_bytes: u64,
    pub wakeup: Wakeup,
    pub rule: VerdictRule,
    pub shape: RateShape,
    /// Stop a trial once it has lost more than this share of what it will
    /// offer, as replay trials do ([`super::trial::stop_at_loss`]); `None`
    /// runs every trial to its end.
    pub stop_at_loss: Option<f64>,
}

impl<'a> KernelSetup<'a> {
    /// The kernel-backed twin of a replay trial's cell (its ring count aside:
    /// the kernel's perf rings are the online CPUs).
    pub fn of_trial(t: &TrialSetup<'a>) -> Self {
        KernelSetup {
            reader: KernelReader::Variant {
                variant: t.variant,
                knobs: t.knobs,
                sink: t.sink,
                classifier: t.classifier.clone(),
            },
            capture: t.capture,
            transport: t.transport,
            ring_bytes: t.ring_bytes,
            wakeup: t.wakeup,
            rule: t.rule,
            shape: t.shape,
            stop_at_loss: t.stop_at_loss,
        }
    }

    /// The reader's name: the variant's, or `exec:COMMAND`.
    pub fn reader_name(&self) -> String {
        match &self.reader {
            KernelReader::Variant { variant, .. } => variant.name.to_string(),
            KernelReader::Exec(e) => format!("exec:{}", e.command),
        }
    }
}

/// What read the rings in one trial (boxed: both are large, and the first
/// twice the second).
pub enum KernelRun {
    /// A dropbench variant: its pipeline's run and ledger.
    Variant(Box<ReplayedRun>),
    /// An exec reader: only the injection's side is known.
    Exec(Box<ReplayReport>),
}

impl KernelRun {
    pub fn replay(&self) -> &ReplayReport {
        match self {
            KernelRun::Variant(r) => &r.replay,
            KernelRun::Exec(r) => r,
        }
    }
}

/// What one kernel-backed trial found.
pub struct KernelTrial {
    pub rate: f64,
    /// The rule as applied (its window may cover one whole pass over the capture).
    pub rule: VerdictRule,
    pub run: KernelRun,
    pub injection: Injection,
    pub verdict: Verdict,
    /// The backlog the rule allowed for batching (records).
    pub allowance: u64,
    pub shape: RateShape,
}

impl KernelTrial {
    pub fn clean(&self) -> bool {
        self.verdict.clean()
    }

    /// See [`Verdict::inconclusive`].
    pub fn inconclusive(&self) -> bool {
        self.verdict.inconclusive()
    }

    /// Samples lost anywhere: refused by the kernel's rings, and for a
    /// dropbench variant also dropped by the pipeline or failed at the sink.
    pub fn lost(&self) -> u64 {
        match &self.run {
            KernelRun::Variant(r) => r.lost_anywhere(),
            KernelRun::Exec(_) => self.injection.kernel_counts().lost,
        }
    }

    /// Lost % of what was injected (the rings' refusals only).
    pub fn lost_pct(&self) -> f64 {
        let k = self.injection.kernel_counts();
        100.0 * k.lost as f64 / k.emitted.max(1) as f64
    }

    pub fn producer(&self) -> ProducerStats {
        let r = self.run.replay();
        ProducerStats {
            achieved_per_s: r.achieved_rate(),
            lateness: r.lateness,
        }
    }

    /// The rule, in words, with what it could observe of the reader.
    pub fn rule_name(&self) -> String {
        let base = self.rule.describe();
        match self.injection.observed {
            Observed::Loss => format!(
                "{base}; exec reader of perf rings: its consumption is not observable, judged on loss and the kernel counters only"
            ),
            _ if self.injection.exec.is_some() => format!(
                "{base}; exec reader: consumption = records behind the ring buffer's consumer position"
            ),
            _ => base,
        }
    }

    /// The trial in the shared results schema: `kind` `kernel-replay`, the
    /// injector's counters under `config.extra.kernel`, and the trial fields
    /// with `trial.mode` = `kernel`.
    pub fn to_run_result(&self, capture: &Capture, sink_desc: &str) -> RunResult {
        let mut r = self.run.replay().to_run_result();
        r.config.layout = capture.meta.layout.to_string();
        r.config.extra = crate::results::RunExtra::sink(sink_desc);
        if let KernelRun::Variant(run) = &self.run {
            r.stages = run.stage_table();
            r.peak_rss_bytes = run.cost.peak_rss_bytes;
            for i in run.ledger.check() {
                r.problem(format!("ledger: {}: {}", i.check, i.detail));
            }
            r.ledger = Some(run.ledger.clone());
        }
        self.injection
            .annotate(&mut r, self.run.replay().consumer.lost_seen);
        r.verdict = Some(self.verdict.clone());
        r.trial = Some(TrialInfo {
            mode: crate::results::Mode::Kernel,
            rule: self.rule_name(),
            warmup_ns: self.rule.warmup_ns,
            window_ns: self.rule.window_ns,
            shape: self.shape.name().into(),
            allowance: self.allowance,
            producer: self.producer(),
            stopped_at_loss: self.run.replay().stopped_at_loss,
        });
        r.progress = self.run.replay().samples.clone();
        r
    }
}

/// The rule as a trial at `rate` applies it: with the capture's shape, the
/// window covers at least one whole pass over the capture (only then is the
/// offered mean the trial's rate).
fn applied_rule(setup: &KernelSetup<'_>, rate: f64) -> VerdictRule {
    let mut rule = setup.rule;
    if setup.shape == RateShape::Capture {
        let n = setup.capture.samples() as f64;
        let pass_ns = ((n - 1.0).max(0.0) / rate.max(1e-9) * 1e9) as u64;
        rule.window_ns = rule.window_ns.max(pass_ns);
    }
    rule
}

/// Runs one kernel-backed trial of `setup` at `rate` events/s. A dropbench
/// variant writes into `sink`; an exec reader is its own sink (`sink` is
/// not used).
pub fn run_kernel_trial(
    setup: &KernelSetup<'_>,
    rate: f64,
    sink: Arc<dyn Sink>,
) -> Result<KernelTrial, KernelError> {
    let rule = applied_rule(setup, rate);
    let length = Duration::from_nanos(rule.warmup_ns.saturating_add(rule.window_ns));
    let opts = KernelOptions::new(ReplayOptions {
        stop_at_loss: setup.stop_at_loss.map(|share| {
            super::trial::stop_at_loss(share, &rule, rate, setup.capture.samples() as u64)
        }),
        pacing: setup.shape.pacing(rate),
        bound: Bound::Duration(length),
        transport: Some(setup.transport),
        ring_bytes: Some(setup.ring_bytes),
        rings: None,
        wakeup: Some(setup.wakeup),
        co_runner: None,
    });
    let (run, injection) = match &setup.reader {
        KernelReader::Variant {
            variant,
            knobs,
            classifier,
            ..
        } => {
            let (run, injection) = crate::pipeline::replayed::run_kernel(
                variant,
                *knobs,
                setup.capture,
                &opts,
                classifier.clone(),
                sink,
                Duration::from_secs(60),
            )?;
            (KernelRun::Variant(Box::new(run)), injection)
        }
        KernelReader::Exec(spec) => {
            let k = run_exec(setup.capture, &opts, spec)?;
            (KernelRun::Exec(Box::new(k.replay)), k.injection)
        }
    };
    let replay = run.replay();
    let rings = replay.rings.rings;
    // Bytes of one record in the ring: perf adds its 8-byte record header and
    // the 4-byte size plus alignment (~16 in all); the ring buffer its 8-byte header.
    let record_len = setup.capture.summary.mean_sample_len()
        + match setup.transport {
            Transport::Perf => 16,
            Transport::Ringbuf => 8,
        };
    let (knobs, sink_spec) = match &setup.reader {
        KernelReader::Variant { knobs, sink, .. } => (*knobs, *sink),
        // An outside reader's batching is unknown: a dropbench variant's
        // defaults stand in (the allowance is at least 4096 records anyway).
        KernelReader::Exec(_) => (Knobs::default(), &SinkSpec::Null),
    };
    let allowance = allowance_for(setup.wakeup, rings, record_len, &knobs, sink_spec, rate);
    // How long the rings take to fill from empty at this rate.
    let capacity = setup.ring_bytes * rings as u64 / record_len.max(1);
    let fill_ns = (capacity as f64 / rate.max(1.0) * 1e9) as u64;
    let mut imbalances: Vec<String> = injection.imbalances(replay.consumer.lost_seen);
    if let KernelRun::Variant(r) = &run {
        imbalances.extend(
            r.ledger
                .check()
                .into_iter()
                .map(|i| format!("{}: {}", i.check, i.detail)),
        );
    }
    let lost = match &run {
        KernelRun::Variant(r) => r.lost_anywhere(),
        KernelRun::Exec(_) => injection.kernel_counts().lost,
    };
    let mut verdict = judge(
        &rule,
        &TrialEvidence {
            samples: &replay.samples,
            lost,
            imbalances,
            lateness_p99_ns: replay.lateness.p99_ns,
            lateness_limit_ns: lateness_limit(&rule, fill_ns),
            allowance,
        },
    );
    if injection.observed == Observed::Loss && verdict.clean() {
        verdict.reason = format!(
            "nothing lost at {:.0}/s taken; the exec reader's perf rings are its own, so its pace is not observed",
            verdict.window.intake_per_s
        );
    }
    Ok(KernelTrial {
        rate,
        rule,
        run,
        injection,
        verdict,
        allowance,
        shape: setup.shape,
    })
}

/// Tries a trial whose producer could not offer the rate gets before it
/// counts as failing: as the sweep's.
pub const INCONCLUSIVE_TRIES: usize = 3;

/// A kernel-backed zero-loss search's outcome, with every trial it ran.
pub struct KernelSearch {
    pub outcome: SearchOutcome,
    pub trials: Vec<KernelTrial>,
}

/// Searches the highest rate at which `setup` holds (every trial clean, by
/// the steady-state verdict). `sink` opens a fresh sink for each trial.
pub fn search_ndr(
    setup: &KernelSetup<'_>,
    search: &ZeroLossSearch,
    mut sink: impl FnMut() -> Arc<dyn Sink>,
) -> Result<KernelSearch, SearchError<KernelError>> {
    let mut trials = Vec::new();
    let outcome = search.run(|rate| {
        let mut tries = 0;
        loop {
            tries += 1;
            let t = run_kernel_trial(setup, rate, sink())?;
            let (clean, again) = (t.clean(), t.inconclusive() && tries < INCONCLUSIVE_TRIES);
            trials.push(t);
            if !again {
                return Ok(u64::from(!clean));
            }
        }
    })?;
    Ok(KernelSearch { outcome, trials })
}

/// The registry-shaped entry an `exec:` cell of a sweep plan carries where a
/// dropbench cell carries its variant: an outside program reads any layout
/// from either transport (it is told which in its environment), has no
/// knobs, and has no sink of dropbench's. It is not in the registry, and its
/// pipeline cannot be built in this process: an exec cell's trials run the
/// program on the pinned rings ([`KernelReader::Exec`]); a plan never gives
/// one a replay or live cell.
pub static EXEC_READER: Variant = Variant {
    name: "exec",
    summary: "an outside program reading the kernel's pinned rings",
    layout: probes::abi::Layout::Fixed4k,
    transport: Transport::Perf,
    layouts: probes::abi::Layout::ALL,
    transports: &[Transport::Perf, Transport::Ringbuf],
    sharded: false,
    in_default_sweep: false,
    knobs: Knobs::default,
    build: |_| Box::new(OutOfProcess),
    tune_kafka: |_| {},
};

/// [`EXEC_READER`]'s pipeline: refuses to run, naming why.
struct OutOfProcess;

impl crate::pipeline::Pipeline for OutOfProcess {
    fn name(&self) -> &'static str {
        EXEC_READER.name
    }
    fn run(
        &self,
        _input: crate::pipeline::Input,
        _ctx: &crate::pipeline::Context,
    ) -> Result<crate::pipeline::RunReport, crate::pipeline::PipelineError> {
        Err(crate::pipeline::PipelineError::Source {
            variant: EXEC_READER.name,
            source: probes::record::SourceError::Wait {
                ring: 0,
                source: std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "an exec: reader runs in its own process on the kernel's pinned rings (kernel mode only)",
                ),
            },
        })
    }
}
