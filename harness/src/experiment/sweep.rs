//! The sweep's scheduling: for each planned series, the searches whose trials
//! are paced replays (or live cells) judged by the steady-state verdict.

use std::sync::Arc;
use std::time::Duration;

use probes::abi::Layout;

use crate::capture::{Capture, CaptureError};
use crate::classify::Classifier;
use crate::experiment::live::{run_live_trial, LiveError, LiveSetup, Traffic};
use crate::experiment::plan::{ring_split, Mode, Plan, PlanError, PlannedCell};
use crate::experiment::relayout::relayout;
use crate::experiment::results::{CellKey, CellOutcome};
use crate::experiment::search::{SearchError, Tally};
use crate::experiment::trial::{annotate, replayed_result, run_trial, TrialSetup};
use crate::experiment::verdict::{VerdictKind, VerdictRule};
use crate::pipeline::replayed::ReplayedError;
use crate::pipeline::{PipelineError, Variant};
use crate::results::RunResult;
use crate::sink::{Sink, SinkError, SinkSpec};

/// Why a sweep could not run (a trial that loses samples is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A bad sweep config (its Display names the file, the line and the key).
    #[error(transparent)]
    Config(#[from] PlanError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("{series}: {source}")]
    Trial {
        series: String,
        source: SearchError<TrialError>,
    },
}

/// Why one trial could not run (in either mode).
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    #[error(transparent)]
    Replay(#[from] ReplayedError),
    /// Boxed: a live trial's errors carry the probes' large load errors.
    #[error(transparent)]
    Live(Box<LiveError>),
    /// Boxed: the injector's load errors are large.
    #[error(transparent)]
    Kernel(Box<crate::replay::kernel::KernelError>),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

impl From<crate::replay::kernel::KernelError> for TrialError {
    fn from(e: crate::replay::kernel::KernelError) -> Self {
        TrialError::Kernel(Box::new(e))
    }
}

impl From<LiveError> for TrialError {
    fn from(e: LiveError) -> Self {
        TrialError::Live(Box::new(e))
    }
}

/// The sink a variant's trials write to, tuned for that variant. The Kafka
/// topic is read back only from a real broker: librdkafka's mock cluster keeps
/// a bounded log (past ~1 s at 160 k/s the earliest offsets are gone, "offset
/// out of range"), so a read-back there measures the mock, not the pipeline.
/// Its delivery reports still balance; the ledger lists the read-back as unchecked.
fn sink_spec(plan: &Plan, v: &Variant) -> SinkSpec {
    let mut spec = plan.sink.clone();
    if let SinkSpec::Kafka(k) = &mut spec {
        (v.tune_kafka)(k);
        k.consume_back = k.brokers.is_some();
    }
    spec
}

/// A trial's own topic on a real broker, deleted when the trial is done
/// (also when it failed): tansu keeps topics in memory, and a sweep's
/// hundreds of trials would otherwise hold every message they produced
/// (measured: 12 GB after a few sweeps). A failed delete costs only memory,
/// so it is logged, not raised.
struct TrialTopic {
    brokers: String,
    topic: String,
}

impl Drop for TrialTopic {
    fn drop(&mut self) {
        if let Err(e) =
            crate::sink::kafka::delete_topic(&self.brokers, &self.topic, Duration::from_secs(10))
        {
            tracing::warn!("could not delete the trial's topic {}: {e}", self.topic);
        }
    }
}

/// Opens `spec` for one trial. On a real broker every trial gets a fresh
/// topic: tansu's cost per produce grows with what a partition already holds,
/// so history would leak from one trial into the next.
/// Returns the sink, its description (naming that topic) and the topic's guard.
fn open_sink(spec: &SinkSpec, v: &Variant, seq: usize) -> Result<TrialSink, SinkError> {
    let mut spec = spec.clone();
    let mut guard = None;
    if let SinkSpec::Kafka(k) = &mut spec {
        if let Some(b) = &k.brokers {
            k.topic = format!("dropbench-sweep-{}-{}-{seq}", std::process::id(), v.name);
            crate::sink::kafka::create_topic(b, &k.topic, 4, Duration::from_secs(10))?;
            guard = Some(TrialTopic {
                brokers: b.clone(),
                topic: k.topic.clone(),
            });
        }
    }
    Ok(TrialSink {
        sink: spec.open()?,
        desc: spec.describe(),
        _topic: guard,
    })
}

/// One trial's sink, as [`open_sink`] made it.
struct TrialSink {
    sink: Arc<dyn Sink>,
    desc: String,
    /// Deletes the trial's topic when the trial is done.
    _topic: Option<TrialTopic>,
}

/// What the trials at one rate of a series found.
#[derive(Debug, Clone, Default, PartialEq)]
struct RateOutcome {
    rate: f64,
    /// Each trial, in order: clean, and its steady-state loss.
    marks: Vec<Mark>,
    /// Samples lost anywhere and offered, summed over the trials.
    lost: u64,
    offered: u64,
    achieved_min: f64,
    achieved_max: f64,
}

/// What one trial said, for the searches' predicates.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Mark {
    clean: bool,
    /// Seconds its window measured (stretched over a whole pass of the
    /// capture at low rates).
    seconds: f64,
    /// Lost over offered, or, for a trial that fell behind, the share of
    /// intake it did not finish; 1 when the trial was inconclusive.
    steady: f64,
    /// How fast the pipeline finished samples over the window, scaled to
    /// the trial's rate, when the trial measured the pipeline (it lost or
    /// fell behind): a failing trial's is the search's next step.
    finished_per_s: Option<f64>,
}

impl RateOutcome {
    /// Adds one trial, judged by `rule`; `burst` is the capture's burst
    /// factor in the trial's ring (experiment::burst).
    fn add(
        &mut self,
        r: &RunResult,
        clean: bool,
        inconclusive: bool,
        rule: &VerdictRule,
        burst: f64,
    ) {
        let window_s = rule.window_ns as f64 / 1e9;
        let lost = r.counts.lost + r.ledger.as_ref().map_or(0, |l| l.sink.failed);
        self.lost += lost;
        self.offered += r.counts.offered;
        let steady = if clean {
            // Held its rate: no steady-state loss (a fitted rate a hair
            // below intake, inside the rule's tolerance, is not a loss).
            0.0
        } else if inconclusive {
            // Unknown: never within a loss threshold.
            1.0
        } else {
            let mut s = lost as f64 / r.counts.offered.max(1) as f64;
            if let Some(v) = &r.verdict {
                let fell_behind =
                    matches!(v.kind, VerdictKind::Behind | VerdictKind::BacklogGrowing);
                if fell_behind && v.window.intake_per_s > 0.0 {
                    s = s.max(1.0 - v.window.done_per_s / v.window.intake_per_s);
                }
            }
            s
        };
        let span = r.verdict.as_ref().map_or(0, |v| v.window.span_ns) as f64 / 1e9;
        let seconds = match &r.trial {
            // Stopped at its loss limit: the whole window would have failed.
            Some(t) if t.stopped_at_loss => t.window_ns as f64 / 1e9,
            // An unmeasured window counts as the plan's.
            _ if span == 0.0 => window_s,
            _ => span,
        };
        // The rate the trial's throughput says the pipeline holds (the
        // search's next step; docs/tuning.md, "Stepping by the measured
        // throughput"):
        // - saturated (it finished less than its window offered, by more
        //   than the rule's tolerance; full rings take no more than it
        //   finishes): the throughput over the capture's burst
        //   factor, the multiple of its mean rate the bursts need;
        // - otherwise (it kept up on average and lost in a burst): what it
        //   finished as a share of what the window offered, at the trial's
        //   rate (a window shorter than a pass offers the capture's local
        //   rate, not the trial's).
        let rate = self.rate;
        let tolerance = rule.tolerance;
        let finished_per_s = r
            .verdict
            .as_ref()
            .filter(|v| {
                matches!(
                    v.kind,
                    VerdictKind::Lost | VerdictKind::Behind | VerdictKind::BacklogGrowing
                ) && v.window.points >= 3
                    && v.window.span_ns > 0
                    && v.window.offered > 0
            })
            .map(|v| {
                let w = &v.window;
                let offered_per_s = w.offered as f64 / (w.span_ns as f64 / 1e9);
                if w.done_per_s < offered_per_s * (1.0 - tolerance) {
                    w.done_per_s / burst.max(1.0)
                } else {
                    rate * (w.done_per_s / offered_per_s).min(1.0)
                }
            });
        self.marks.push(Mark {
            clean,
            seconds,
            steady,
            finished_per_s,
        });
        let a = r.rates.offered_per_s;
        self.achieved_min = if self.marks.len() == 1 {
            a
        } else {
            self.achieved_min.min(a)
        };
        self.achieved_max = self.achieved_max.max(a);
    }
    /// The trials that were clean (the NDR's predicate).
    fn clean(&self) -> Tally {
        self.tally(|m| m.clean)
    }
    /// The trials whose steady-state loss stayed within `loss` (the PDR's and
    /// the minimum ring's predicate).
    fn within(&self, loss: f64) -> Tally {
        self.tally(|m| m.clean || m.steady <= loss)
    }
    fn tally(&self, pass: impl Fn(&Mark) -> bool) -> Tally {
        let mut t = Tally::default();
        for m in &self.marks {
            match (pass(m), m.finished_per_s) {
                (false, Some(f)) => t.add_failed(m.seconds, f),
                (passed, _) => t.add(passed, m.seconds),
            }
        }
        t
    }
}

/// How often a trial the producer could not offer is run before it counts
/// as failing.
const INCONCLUSIVE_TRIES: usize = 3;

/// Progress lines as the sweep runs.
pub trait SweepObserver {
    fn series_start(&mut self, _key: &CellKey) {}
    fn trial_done(&mut self, _key: &CellKey, _rate: f64, _clean: bool, _result: &RunResult) {}
    fn series_done(&mut self, _series: &CellOutcome) {}
    /// A planned series that cannot run here, and why.
    fn series_skipped(&mut self, _key: &CellKey, _reason: &str) {}
}

/// Every series the plan makes with `captures`, and the cells of its axes
/// that a variant cannot run (with the reason).
pub fn plan_series(plan: &Plan, captures: &[Capture]) -> Vec<PlannedCell> {
    plan.cells(captures).0
}

/// Runs the plan: for each planned series that `select` accepts, the rate
/// searches (NDR, PDR) and, when asked, the minimum-ring search, whose trials
/// are paced replays (or live cells) into the variant and the sink, each
/// judged by the steady-state verdict. Cells the plan cannot run are
/// reported to `observer` as skipped.
pub fn run_sweep(
    plan: &Plan,
    captures: &[Capture],
    select: &dyn Fn(&PlannedCell) -> bool,
    observer: &mut dyn SweepObserver,
) -> Result<Vec<CellOutcome>, SweepError> {
    let classifier = Arc::new(Classifier::default_rules());
    let (cells, skipped) = plan.cells(captures);
    for s in &skipped {
        observer.series_skipped(&s.key, &s.reason);
    }
    let mut out = Vec::new();
    let mut seq = 0usize;
    let mut relaid = Relaid::new()?;
    for cell in cells {
        if !select(&cell) {
            continue;
        }
        let capture = &captures[cell.capture];
        let cap = relaid.of(captures, &cell)?;
        if cell.mode != Mode::Replay {
            if let Err(e) = probes::loader::check_privileges() {
                observer.series_skipped(
                    &cell.key,
                    &format!(
                        "{} cells need root or CAP_BPF + CAP_PERFMON: {e}",
                        cell.mode.name()
                    ),
                );
                continue;
            }
        }
        observer.series_start(&cell.key);
        let runner = CellRunner::new(plan, &cell, capture, cap, classifier.clone())?;
        let series = runner.run(&mut seq, observer)?;
        observer.series_done(&series);
        out.push(series);
    }
    Ok(out)
}

/// The captures relaid out into the layouts cells ask for, each made once
/// (in a temporary folder that lives as long as this).
pub(crate) struct Relaid {
    tmp: tempfile::TempDir,
    made: Vec<(usize, Layout, Capture)>,
}

impl Relaid {
    pub(crate) fn new() -> Result<Relaid, SweepError> {
        let tmp = tempfile::tempdir().map_err(|e| {
            SweepError::Capture(CaptureError::Io {
                file: "temp dir".into(),
                op: "create",
                source: e,
            })
        })?;
        Ok(Relaid {
            tmp,
            made: Vec::new(),
        })
    }

    /// The cell's capture in the cell's layout: the capture itself, or its
    /// relaid copy (made on first use).
    pub(crate) fn of<'a>(
        &'a mut self,
        captures: &'a [Capture],
        cell: &PlannedCell,
    ) -> Result<&'a Capture, SweepError> {
        let capture = &captures[cell.capture];
        if cell.layout == capture.meta.layout {
            return Ok(capture);
        }
        let at = |(c, l, _): &(usize, Layout, Capture)| *c == cell.capture && *l == cell.layout;
        if !self.made.iter().any(at) {
            let r = relayout(capture, cell.layout, self.tmp.path())?;
            self.made.push((cell.capture, cell.layout, r));
        }
        Ok(self.made.iter().find(|m| at(m)).map_or(capture, |m| &m.2))
    }
}

/// One series as it runs: its cell, its capture (relaid out if the cell's
/// layout is not the capture's) and its sink.
pub(crate) struct CellRunner<'a> {
    plan: &'a Plan,
    cell: &'a PlannedCell,
    /// The capture as recorded (live traffic comes from it).
    capture: &'a Capture,
    /// The capture in the cell's layout.
    cap: &'a Capture,
    spec: SinkSpec,
    classifier: Arc<Classifier>,
    traffic: Option<Traffic>,
    /// The capture's burst factor in the cell's own ring, worked out once
    /// (experiment::burst: about 15 model runs of two passes each), not once
    /// per rate measured.
    own_burst: f64,
}

/// A ring memory: the cell's own, or another (the minimum-ring search).
#[derive(Clone, Copy, PartialEq)]
pub(crate) struct Ring {
    /// Data bytes of one ring.
    bytes: u64,
    rings: Option<u32>,
}

impl<'a> CellRunner<'a> {
    /// The runner of `cell`: `capture` as recorded (live traffic comes from
    /// it) and `cap`, the same in the cell's layout.
    pub(crate) fn new(
        plan: &'a Plan,
        cell: &'a PlannedCell,
        capture: &'a Capture,
        cap: &'a Capture,
        classifier: Arc<Classifier>,
    ) -> Result<CellRunner<'a>, SweepError> {
        let mut runner = CellRunner {
            plan,
            cell,
            capture,
            cap,
            // An exec reader is its own sink: its trials open none of dropbench's.
            spec: match cell.exec {
                Some(_) => SinkSpec::Null,
                None => sink_spec(plan, cell.variant),
            },
            classifier,
            traffic: match cell.mode {
                Mode::Live => Some(Traffic::of(capture).map_err(|e| SweepError::Trial {
                    series: cell.key.to_string(),
                    source: SearchError::Trial {
                        rate: 0.0,
                        source: TrialError::from(e),
                    },
                })?),
                Mode::Replay | Mode::Kernel => None,
            },
            own_burst: 1.0,
        };
        runner.own_burst = runner.burst_factor(runner.own_ring());
        Ok(runner)
    }

    /// The burst factor of the cell's capture in `ring`: each ring's bytes
    /// over the mean record (the sample and the ring's 8-byte header).
    pub(crate) fn burst_factor(&self, ring: Ring) -> f64 {
        let record = crate::experiment::trial::mean_sample_len(self.cap) + 8;
        crate::experiment::burst::of_capture(self.cap, ring.rings, ring.bytes / record)
    }

    /// The cell's own ring memory.
    pub(crate) fn own_ring(&self) -> Ring {
        Ring {
            bytes: self.cell.ring_bytes,
            rings: self.cell.rings,
        }
    }
}

impl CellRunner<'_> {
    /// One trial of the cell at `rate` with `ring`, in the cell's mode, into
    /// a sink opened for it: its result, whether it was clean, and whether it
    /// was inconclusive (the producer could not offer the rate).
    pub(crate) fn trial(
        &self,
        ring: Ring,
        rate: f64,
        seq: &mut usize,
    ) -> Result<(RunResult, bool, bool), TrialError> {
        let (plan, cell) = (self.plan, self.cell);
        let setup = TrialSetup {
            variant: cell.variant,
            knobs: cell.knobs,
            capture: self.cap,
            transport: cell.transport,
            ring_bytes: ring.bytes,
            rings: ring.rings,
            wakeup: cell.wakeup,
            sink: &self.spec,
            classifier: self.classifier.clone(),
            rule: plan.rule,
            shape: plan.shape,
            // A trial past the smallest loss any of its searches allows is
            // decided: stop it there (trial::stop_at_loss).
            stop_at_loss: Some(
                plan.min_ring
                    .as_ref()
                    .map_or(plan.pdr_loss, |m| m.loss.min(plan.pdr_loss)),
            ),
        };
        let live_setup = self.traffic.as_ref().map(|t| LiveSetup {
            variant: cell.variant,
            knobs: cell.knobs,
            traffic: crate::experiment::live::LiveTraffic::Generated(t),
            mean_sample_len: crate::experiment::trial::mean_sample_len(self.cap),
            layout: cell.layout,
            transport: cell.transport,
            ring_bytes: ring.bytes,
            wakeup: cell.wakeup,
            sink: &self.spec,
            classifier: self.classifier.clone(),
            rule: plan.rule,
            load_cpu: None,
            load_threads: plan.live_load_threads,
            run_time_stats: false,
        });
        *seq += 1;
        // `_topic` lives to the end of the trial, then deletes its topic.
        let TrialSink { sink, desc, _topic } = open_sink(&self.spec, cell.variant, *seq)?;
        Ok(match &live_setup {
            None if cell.mode == Mode::Kernel => {
                use crate::experiment::kernel::{KernelReader, KernelSetup};
                let mut ks = KernelSetup::of_trial(&setup);
                if let Some(x) = &cell.exec {
                    ks.reader = KernelReader::Exec(x.spec());
                }
                let t = crate::experiment::kernel::run_kernel_trial(&ks, rate, sink)?;
                let mut result = t.to_run_result(self.cap, &desc);
                result.kind = crate::results::RunKind::Sweep;
                // The series' name for it (`exec:<name>`, not its command).
                result.variant = cell.key.variant.clone();
                (result, t.clean(), t.inconclusive())
            }
            Some(ls) => {
                let t = run_live_trial(ls, rate, sink)?;
                let unsure = matches!(
                    t.verdict.kind,
                    VerdictKind::ProducerShort | VerdictKind::Unmeasured
                );
                (
                    t.to_run_result(ls, &self.capture.file, &desc),
                    t.clean(),
                    unsure,
                )
            }
            None => {
                let trial = run_trial(&setup, rate, sink)?;
                let mut result = replayed_result(&trial.run, self.cap, &desc);
                result.kind = crate::results::RunKind::Sweep;
                annotate(&mut result, &trial, &plan.rule, plan.shape);
                (result, trial.clean(), trial.inconclusive())
            }
        })
    }

    /// `count` more trials at `m.rate` with `ring`, added to `m`, each run
    /// again while inconclusive, up to INCONCLUSIVE_TRIES times. Every result
    /// goes to `points`; rates no try could offer to `inconclusive`.
    #[allow(clippy::too_many_arguments)]
    fn measure(
        &self,
        m: &mut RateOutcome,
        count: usize,
        ring: Ring,
        seq: &mut usize,
        observer: &mut dyn SweepObserver,
        points: &mut Vec<RunResult>,
        inconclusive: &mut Vec<f64>,
    ) -> Result<(), TrialError> {
        let (plan, cell) = (self.plan, self.cell);
        let rate = m.rate;
        let burst = if ring == self.own_ring() {
            self.own_burst
        } else {
            self.burst_factor(ring)
        };
        for _ in 0..count {
            // A trial the producer could not offer (a busy machine) says
            // nothing about the pipeline: run it again, up to
            // INCONCLUSIVE_TRIES times, then count it as failing (the series
            // says so).
            let mut tries = 0;
            loop {
                tries += 1;
                let (result, clean, unsure) = self.trial(ring, rate, seq)?;
                let again = unsure && tries < INCONCLUSIVE_TRIES;
                observer.trial_done(&cell.key, rate, clean, &result);
                if !again {
                    if unsure && !inconclusive.contains(&rate) {
                        inconclusive.push(rate);
                    }
                    m.add(&result, clean, unsure, &plan.rule, burst);
                    points.push(result);
                    break;
                }
                points.push(result);
            }
        }
        Ok(())
    }

    fn run(
        &self,
        seq: &mut usize,
        observer: &mut dyn SweepObserver,
    ) -> Result<CellOutcome, SweepError> {
        let (plan, cell) = (self.plan, self.cell);
        let trial_error = |source| SweepError::Trial {
            series: cell.key.to_string(),
            source,
        };
        let own = self.own_ring();
        let mut points: Vec<RunResult> = Vec::new();
        let mut inconclusive: Vec<f64> = Vec::new();
        // Every rate measured so far at the cell's ring: both rate searches
        // share its trials. A rate's first visit runs the plan's `trials`;
        // re-measuring an end of a bracket adds one at a time.
        let mut measured: Vec<RateOutcome> = Vec::new();
        let mut at = |rate: f64,
                      at_least: usize,
                      observer: &mut dyn SweepObserver,
                      seq: &mut usize|
         -> Result<RateOutcome, TrialError> {
            let i = match measured.iter().position(|m| m.rate == rate) {
                Some(i) => i,
                None => {
                    measured.push(RateOutcome {
                        rate,
                        ..Default::default()
                    });
                    measured.len() - 1
                }
            };
            let m = &mut measured[i];
            let have = m.marks.len();
            let want = if have == 0 {
                at_least.max(plan.trials)
            } else {
                at_least
            };
            if want > have {
                self.measure(
                    m,
                    want - have,
                    own,
                    seq,
                    observer,
                    &mut points,
                    &mut inconclusive,
                )?;
            }
            Ok(measured[i].clone())
        };
        // The measured seconds that settle an end: edge_trials windows.
        let goal_s = plan.edge_trials.max(plan.trials) as f64 * plan.rule.window_ns as f64 / 1e9;
        let ndr = plan
            .search
            .run_confirmed(goal_s, |rate, n| {
                at(rate, n, observer, seq).map(|m| m.clean())
            })
            .map_err(trial_error)?;
        // PDR: the highest rate whose steady-state loss stays within
        // pdr_loss in most trials (the trials already run are reused).
        let pdr = plan
            .search
            .run_confirmed(goal_s, |rate, n| {
                at(rate, n, observer, seq).map(|m| m.within(plan.pdr_loss))
            })
            .map_err(trial_error)?;
        let outcome = &ndr.outcome;
        // The minimum ring: its trials are kept apart from `points` (they
        // ran at other ring sizes); their ledger problems still count. A
        // size's loss is its trials' median steady-state loss (0 when most
        // were clean), so one stalled trial does not double the ring.
        let mut ring_points: Vec<RunResult> = Vec::new();
        let min_ring = match &plan.min_ring {
            None => None,
            Some(search) => Some(
                search
                    .run(|total| {
                        let (bytes, rings) = ring_split(cell.transport, self.capture, total);
                        let mut m = RateOutcome {
                            rate: search.rate,
                            ..Default::default()
                        };
                        self.measure(
                            &mut m,
                            plan.trials,
                            Ring { bytes, rings },
                            seq,
                            observer,
                            &mut ring_points,
                            &mut inconclusive,
                        )
                        .map(|()| median_loss(&m))
                    })
                    .map_err(trial_error)?,
            ),
        };
        let loss_at = |rate: Option<f64>| {
            rate.and_then(|r| measured.iter().find(|m| m.rate == r))
                .map(|m| crate::experiment::stats::loss_interval(m.lost, m.offered))
        };
        let spread = |rate: Option<f64>| {
            rate.and_then(|r| measured.iter().find(|m| m.rate == r))
                .map(|m| (m.achieved_min, m.achieved_max))
        };
        // Only an unbalanced ledger invalidates a series; a trial whose replay
        // fell behind its rate is simply not clean (kept in that point's problems).
        let mut problems: Vec<String> = points
            .iter()
            .chain(&ring_points)
            .flat_map(|p| {
                p.problems
                    .iter()
                    .filter(|x| x.starts_with("ledger:"))
                    .map(move |x| format!("at {:.0}/s: {x}", p.config.target_rate.unwrap_or(0.0)))
            })
            .collect();
        let mut warnings: Vec<String> = inconclusive
            .iter()
            .map(|r| format!("at {r:.0}/s: every try was inconclusive (the producer could not offer the rate: a busy machine); counted as failing"))
            .collect();
        let valid = problems.is_empty();
        problems.append(&mut warnings);
        Ok(CellOutcome {
            index: cell.index,
            key: cell.key.clone(),
            zero_loss_rate: outcome.zero_loss_rate,
            first_lossy_rate: outcome.first_lossy_rate,
            strict_zero_loss_rate: strict_zero_loss_rate(&measured),
            edges: ndr.edges.clone(),
            reruns: ndr.reruns,
            verdict_rule: plan.rule.describe(),
            shape: plan.shape.name().into(),
            capped: outcome.capped,
            reached_hi: outcome.reached_hi,
            trials_per_rate: plan.trials,
            ndr_achieved: spread(outcome.zero_loss_rate),
            pdr_loss: plan.pdr_loss,
            pdr: pdr.outcome.zero_loss_rate,
            pdr_first_over: pdr.outcome.first_lossy_rate,
            loss_at_pdr: loss_at(pdr.outcome.zero_loss_rate),
            loss_at_first_failing: loss_at(outcome.first_lossy_rate),
            min_ring,
            valid,
            problems,
            points,
        })
    }
}

/// The median of the trials' steady-state losses (clean trials count 0).
fn median_loss(m: &RateOutcome) -> f64 {
    let mut l: Vec<f64> = m
        .marks
        .iter()
        .map(|k| if k.clean { 0.0 } else { k.steady })
        .collect();
    l.sort_by(f64::total_cmp);
    l.get(l.len() / 2).copied().unwrap_or(1.0)
}

/// The highest rate measured at which every trial was clean, below every
/// rate at which any trial lost: the NDR if a single lossy trial anywhere
/// counted (the trials the confirmed search ran, no new ones).
fn strict_zero_loss_rate(measured: &[RateOutcome]) -> Option<f64> {
    let first_loss = measured
        .iter()
        .filter(|m| m.clean().failed > 0)
        .map(|m| m.rate)
        .fold(f64::INFINITY, f64::min);
    measured
        .iter()
        .filter(|m| m.rate < first_loss && m.clean().failed == 0 && !m.marks.is_empty())
        .map(|m| m.rate)
        .fold(None, |a: Option<f64>, r| Some(a.map_or(r, |a| a.max(r))))
}
