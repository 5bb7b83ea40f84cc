//! One trial: a cell's pipeline offered one rate for a warm-up and a measured
//! window, watched as it runs, and judged by the steady-state rule
//! ([`super::verdict`]).
//!
//! The replay runs for `warm-up + window`; the producer samples progress
//! every 10 ms; after it stops, the pipeline drains what is left and the
//! sink finishes, so the ledger still accounts for every sample. Loss counts
//! over the whole trial; pace and backlog over the window.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::verdict::{judge, lateness_limit, TrialEvidence, Verdict, VerdictRule};
use crate::capture::Capture;
use crate::classify::Classifier;
use crate::pipeline::replayed::{run_replayed, ReplayedError, ReplayedRun};
use crate::pipeline::{Knobs, Variant};
use crate::replay::{Bound, Pacing, ReplayOptions, StopAtLoss, Wakeup};
use crate::results::{ProducerStats, ProgressSample, RunResult};
use crate::sink::{Sink, SinkSpec};
use probes::Transport;

/// How a trial spaces its records at a mean rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RateShape {
    /// The capture's own inter-arrival times, scaled to the rate: bursts kept.
    Capture,
    /// Evenly spaced records.
    Uniform,
}

impl RateShape {
    pub fn pacing(self, rate: f64) -> Pacing {
        match self {
            RateShape::Capture => Pacing::Shape(rate),
            RateShape::Uniform => Pacing::Rate(rate),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            RateShape::Capture => "capture",
            RateShape::Uniform => "uniform",
        }
    }
}

impl std::str::FromStr for RateShape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "capture" => Ok(RateShape::Capture),
            "uniform" => Ok(RateShape::Uniform),
            _ => Err(format!(
                "unknown pacing shape {s:?}; expected capture (bursts kept) or uniform"
            )),
        }
    }
}

/// What a trial runs: everything but the rate.
pub struct TrialSetup<'a> {
    pub variant: &'static Variant,
    pub knobs: Knobs,
    pub capture: &'a Capture,
    pub transport: Transport,
    /// Data bytes of one ring.
    pub ring_bytes: u64,
    /// Perf rings (None: the capture's).
    pub rings: Option<u32>,
    pub wakeup: Wakeup,
    /// The sink as the variant tunes it (for the allowance).
    pub sink: &'a SinkSpec,
    pub classifier: Arc<Classifier>,
    pub rule: VerdictRule,
    pub shape: RateShape,
    /// Stop a trial once it has lost more than this share of what it will
    /// offer ([`stop_at_loss`]); `None` runs every trial to its end.
    pub stop_at_loss: Option<f64>,
}

/// Where a trial at `rate` judged by `rule` (as applied) may stop: once
/// its rings have lost more than `share` of everything it can offer, and
/// 250 ms into its window.
///
/// A trial offers at most `rate` × its length, plus one pass of the
/// capture's `samples` (a partial pass of a bursty capture can run ahead of
/// its mean by up to one pass). Past `share` of that, its loss over what it
/// offered is above `share` whatever the rest of the trial does: it fails
/// the zero-loss verdict and any loss threshold at or above `share`, so the
/// rest of its window would measure nothing. The 250 ms of window (25
/// progress samples) measure how fast the pipeline finished while failing,
/// which the search steps by ([`super::search::ZeroLossSearch::run_guided`]).
pub fn stop_at_loss(share: f64, rule: &VerdictRule, rate: f64, samples: u64) -> StopAtLoss {
    let length_s = rule.warmup_ns.saturating_add(rule.window_ns) as f64 / 1e9;
    let most = rate * length_s + samples as f64;
    StopAtLoss {
        lost: (share.max(0.0) * most).floor() as u64,
        after: Duration::from_nanos(
            rule.warmup_ns
                .saturating_add(rule.window_ns.min(STOP_AFTER_WINDOW_NS)),
        ),
    }
}

/// How far into its window a trial runs before it may stop at its loss limit.
const STOP_AFTER_WINDOW_NS: u64 = 250_000_000;

/// What one trial found.
pub struct Trial {
    pub rate: f64,
    /// The rule as applied (its window may be longer than the setup's: one
    /// whole pass over the capture).
    pub rule: VerdictRule,
    pub run: ReplayedRun,
    pub verdict: Verdict,
    /// The backlog the rule allowed for batching (records).
    pub allowance: u64,
}

impl Trial {
    pub fn clean(&self) -> bool {
        self.verdict.clean()
    }
    /// The trial says nothing about the pipeline: the producer could not
    /// offer the rate (a busy machine), or the window was not sampled.
    pub fn inconclusive(&self) -> bool {
        use super::verdict::VerdictKind;
        matches!(
            self.verdict.kind,
            VerdictKind::ProducerShort | VerdictKind::Unmeasured
        )
    }
    pub fn producer(&self) -> ProducerStats {
        ProducerStats {
            achieved_per_s: self.run.replay.achieved_rate(),
            lateness: self.run.replay.lateness,
        }
    }
    pub fn progress(&self) -> &[ProgressSample] {
        &self.run.replay.samples
    }
}

/// Mean bytes of a sample in `capture` (what it holds uncompressed).
pub fn mean_sample_len(capture: &Capture) -> u64 {
    capture.summary.mean_sample_len()
}

/// Records a keeping-up pipeline's backlog may move by in one step at `rate`
/// (see the verdict's docs): the wakeup policy's batch, the sink's linger and
/// one produce round trip, and the workers' batches in flight. At least 4096.
/// `record_len`: bytes of one record in the ring.
pub fn allowance_for(
    wakeup: Wakeup,
    rings: u32,
    record_len: u64,
    knobs: &Knobs,
    sink: &SinkSpec,
    rate: f64,
) -> u64 {
    let wakeup = match wakeup {
        Wakeup::Events(n) => n as u64 * rings as u64,
        Wakeup::Watermark(b) => b / record_len.max(1) * rings as u64,
        Wakeup::NoWakeupPoll(p) => (rate * p.as_secs_f64()) as u64,
        Wakeup::Adaptive | Wakeup::Forced => 0,
    };
    // linger + ~5 ms for the produce request and its delivery reports.
    let sink = match sink {
        SinkSpec::Kafka(k) => (rate * (k.linger_ms as f64 + 5.0) / 1e3) as u64,
        _ => 0,
    };
    let batches = (knobs.batch_size * knobs.workers.max(1)) as u64;
    (wakeup + sink + batches).max(4096)
}

/// [`allowance_for`] a replay trial: perf records are the sample + 16 bytes.
pub fn allowance(setup: &TrialSetup<'_>, rings: u32, rate: f64) -> u64 {
    allowance_for(
        setup.wakeup,
        rings,
        mean_sample_len(setup.capture) + 16,
        &setup.knobs,
        setup.sink,
        rate,
    )
}

/// Runs one trial of `setup` at `rate` into `sink`.
pub fn run_trial(
    setup: &TrialSetup<'_>,
    rate: f64,
    sink: Arc<dyn Sink>,
) -> Result<Trial, ReplayedError> {
    // With the capture's shape, the window covers at least one whole pass over
    // the capture: only then is the offered mean the trial's rate (a bursty
    // capture's first second can be far busier or quieter than its mean).
    let mut rule = setup.rule;
    if setup.shape == RateShape::Capture {
        let n = setup.capture.samples() as f64;
        let pass_ns = ((n - 1.0).max(0.0) / rate.max(1e-9) * 1e9) as u64;
        rule.window_ns = rule.window_ns.max(pass_ns);
    }
    let rule = &rule;
    let length = Duration::from_nanos(rule.warmup_ns.saturating_add(rule.window_ns));
    let opts = ReplayOptions {
        pacing: setup.shape.pacing(rate),
        bound: Bound::Duration(length),
        transport: Some(setup.transport),
        ring_bytes: Some(setup.ring_bytes),
        rings: setup.rings,
        wakeup: Some(setup.wakeup),
        stop_at_loss: setup
            .stop_at_loss
            .map(|share| stop_at_loss(share, rule, rate, setup.capture.samples() as u64)),
        co_runner: None,
    };
    let run = run_replayed(
        setup.variant,
        setup.knobs,
        setup.capture,
        &opts,
        setup.classifier.clone(),
        sink,
        Duration::from_secs(60),
    )?;
    let rings = run.replay.rings.rings;
    let allowance = allowance(setup, rings, rate);
    // How long the rings take to fill from empty at this rate.
    let rec = match setup.transport {
        Transport::Perf => mean_sample_len(setup.capture) + 16,
        Transport::Ringbuf => mean_sample_len(setup.capture) + 8,
    };
    let capacity = setup.ring_bytes * rings as u64 / rec;
    let fill_ns = (capacity as f64 / rate.max(1.0) * 1e9) as u64;
    let imbalances = run
        .ledger
        .check()
        .into_iter()
        .map(|i| format!("{}: {}", i.check, i.detail))
        .collect();
    let verdict = judge(
        rule,
        &TrialEvidence {
            samples: &run.replay.samples,
            lost: run.lost_anywhere(),
            imbalances,
            lateness_p99_ns: run.replay.lateness.p99_ns,
            lateness_limit_ns: lateness_limit(rule, fill_ns),
            allowance,
        },
    );
    Ok(Trial {
        rate,
        rule: *rule,
        run,
        verdict,
        allowance,
    })
}

/// Fills a run result's trial fields from `trial`.
pub fn annotate(result: &mut RunResult, trial: &Trial, rule: &VerdictRule, shape: RateShape) {
    result.verdict = Some(trial.verdict.clone());
    result.trial = Some(crate::results::TrialInfo {
        mode: crate::results::Mode::Replay,
        rule: rule.describe(),
        warmup_ns: trial.rule.warmup_ns,
        window_ns: trial.rule.window_ns,
        shape: shape.name().into(),
        allowance: trial.allowance,
        producer: trial.producer(),
        stopped_at_loss: trial.run.replay.stopped_at_loss,
    });
    result.progress = trial.progress().to_vec();
}

/// A replayed pipeline run in the shared results schema, with its ledger
/// checked: any imbalance is a problem that marks the result invalid.
pub fn replayed_result(r: &ReplayedRun, capture: &Capture, sink: &str) -> RunResult {
    let mut result = r.replay.to_run_result();
    result.config.layout = capture.meta.layout.to_string();
    result.config.extra = crate::results::RunExtra::sink(sink);
    result.stages = r.stage_table();
    result.peak_rss_bytes = r.cost.peak_rss_bytes;
    for imbalance in r.ledger.check() {
        result.problem(format!("ledger: {}: {}", imbalance.check, imbalance.detail));
    }
    result.ledger = Some(r.ledger.clone());
    result
}
