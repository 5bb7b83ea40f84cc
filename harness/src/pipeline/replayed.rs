//! A pipeline variant fed by the replay driver: one paced replay of a capture
//! into emulated kernel rings, read by the variant, into a sink; then the
//! sink is finished and the whole run lands in one [`Ledger`].
//!
//! This is what the zero-loss benchmark probes with, and what `harness
//! replay`/`sweep` can call for a variant run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use probes::record::ShardedSource;

use super::cost::{stage_table, Cost, CostWatch, SinkKind, StageFigures};
use super::{Context, Input, Knobs, PipelineError, RunReport, StageCpu, Variant};
use crate::capture::Capture;
use crate::classify::Classifier;
use crate::ledger::{KernelCounts, Ledger};
use crate::replay::kernel::{self, Injection, KernelError, KernelOptions};
use crate::replay::{self, ConsumerReport, ReplayError, ReplayOptions, ReplayReport};
use crate::results::{CpuTime, StageResult};
use crate::sink::{Sink, SinkError};

/// Everything one replayed run produced.
#[derive(Debug)]
pub struct ReplayedRun {
    pub replay: ReplayReport,
    pub run: RunReport,
    pub ledger: Ledger,
    /// The process's (and the broker's) CPU, the wall time and the peak RSS
    /// from the consumer's start until the pipeline had drained.
    pub cost: Cost,
}

impl ReplayedRun {
    /// Samples lost anywhere: refused by the ring, dropped by the pipeline,
    /// failed or unresolved at the sink. Zero means a zero-loss run.
    pub fn lost_anywhere(&self) -> u64 {
        self.replay.lost
            + self.run.stages.dropped_total()
            + self.run.stages.decode_errors
            + self.ledger.sink.failed
            + self.ledger.sink.unresolved
    }

    /// The run's stages in pipeline order with their CPU, ns per event and
    /// share of the machine ([`stage_table`]).
    pub fn stage_table(&self) -> Vec<StageResult> {
        let sink = &self.ledger.sink;
        stage_table(&StageFigures {
            producer: self.replay.producer_cpu,
            offered: self.replay.offered,
            accepted: self.replay.accepted,
            lost: self.replay.lost,
            counts: self.run.stages.clone(),
            cpu: self.run.cpu,
            clocks: self.run.stage_ns,
            cost: self.cost,
            sink: SinkKind::of_label(&sink.label),
            delivered: sink.delivered,
            undelivered: sink.failed + sink.unresolved,
        })
    }
}

/// Why a replayed run failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayedError {
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Replays `capture` through the kernel's rings into a pipeline `variant`
/// (built with `knobs`) and `sink`, exactly as [`run_replayed`]
/// does for emulated rings, with the injector's counters as the ledger's
/// kernel line. Progress is sampled as there (the sink's finished count).
pub fn run_kernel(
    variant: &Variant,
    knobs: Knobs,
    capture: &Capture,
    opts: &KernelOptions,
    classifier: Arc<Classifier>,
    sink: Arc<dyn Sink>,
    finish_timeout: Duration,
) -> Result<(ReplayedRun, Injection), KernelError> {
    let c = Consumer::new(variant, knobs, classifier, sink.clone());
    let done = move || sink.progress().done;
    let k = kernel::run_watched(capture, opts, Some(&done), |src| c.consume(src))?;
    let run = c
        .finish(k.replay, k.injection.kernel_counts(), finish_timeout)
        .map_err(|e| KernelError::Reader(Box::new(e)))?;
    Ok((run, k.injection))
}

fn cpu(d: Duration) -> CpuTime {
    CpuTime {
        user_ns: d.as_nanos() as u64,
        sys_ns: 0,
    }
}

/// Replays `capture` with `opts` into `variant` (built with `knobs`) and
/// `sink`, finishes the sink within `finish_timeout`, and balances the ledger.
pub fn run_replayed(
    variant: &Variant,
    knobs: Knobs,
    capture: &Capture,
    opts: &ReplayOptions,
    classifier: Arc<Classifier>,
    sink: Arc<dyn Sink>,
    finish_timeout: Duration,
) -> Result<ReplayedRun, ReplayedError> {
    let c = Consumer::new(variant, knobs, classifier, sink.clone());
    // The producer samples what the sink has finished with, for the trial's
    // steady-state verdict.
    let done = move || sink.progress().done;
    let replay = replay::run_watched(capture, opts, Some(&done), |src| c.consume(src))?;
    let kernel = KernelCounts {
        emitted: replay.offered,
        accepted: replay.accepted,
        lost: replay.lost,
        lost_unreported: replay.unreported_lost,
    };
    c.finish(replay, kernel, finish_timeout)
}

/// A variant ready to consume one run's source, whichever rings feed it
/// (emulated here, the kernel's in `replay::kernel`).
pub struct Consumer<'v> {
    variant: &'v Variant,
    pipeline: Box<dyn super::Pipeline>,
    ctx: Context,
    sink: Arc<dyn Sink>,
    slot: Mutex<Option<Result<RunReport, PipelineError>>>,
    watch: CostWatch,
}

impl<'v> Consumer<'v> {
    pub fn new(
        variant: &'v Variant,
        knobs: Knobs,
        classifier: Arc<Classifier>,
        sink: Arc<dyn Sink>,
    ) -> Self {
        Consumer {
            variant,
            pipeline: (variant.build)(knobs),
            ctx: Context::new(classifier, sink.clone()),
            sink,
            slot: Mutex::new(None),
            // Last, so building the pipeline is not in the run's cost.
            watch: CostWatch::start(),
        }
    }

    /// Runs the pipeline on `src` (split per ring if the variant is sharded)
    /// until it closes, keeping the pipeline's report for [`Consumer::finish`].
    pub fn consume(&self, src: impl ShardedSource + 'static) -> ConsumerReport {
        let input = if self.variant.sharded {
            Input::Shards(Box::new(src).into_shards())
        } else {
            Input::Single(Box::new(src))
        };
        let r = self.pipeline.run(input, &self.ctx);
        let report = consumer_report(self.variant.name, r.as_ref().ok());
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        report
    }

    /// Finishes the sink within `finish_timeout` and puts the run in one ledger
    /// with the rings' `kernel` counts.
    pub fn finish(
        self,
        replay: ReplayReport,
        kernel: KernelCounts,
        finish_timeout: Duration,
    ) -> Result<ReplayedRun, ReplayedError> {
        let run = self
            .slot
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .expect("the consumer ran")?;
        // Before the sink's final flush and read-back: those check the run,
        // they are not the pipeline's cost.
        let cost = self.watch.stop();
        let sink_report = self.sink.finish(finish_timeout)?;
        let ledger = Ledger {
            kernel: Some(kernel),
            stages: run.stages.clone(),
            sink: sink_report,
        };
        Ok(ReplayedRun {
            replay,
            run,
            ledger,
            cost,
        })
    }
}

/// The replay driver's view of a pipeline run.
pub fn consumer_report(variant: &str, run: Option<&RunReport>) -> ConsumerReport {
    let (stages, read, lost_seen, problems) = match run {
        Some(r) => {
            let s = &r.stages;
            let StageCpu { reader, workers } = r.cpu;
            (
                vec![
                    StageResult {
                        name: "reader".into(),
                        records_in: s.read,
                        records_out: s.read,
                        dropped: 0,
                        cpu: cpu(reader),
                        ..Default::default()
                    },
                    StageResult {
                        name: "classify+publish".into(),
                        records_in: s.decoded + s.decode_errors,
                        records_out: s.produced,
                        dropped: s.dropped_total() + s.decode_errors,
                        cpu: cpu(workers),
                        ..Default::default()
                    },
                ],
                s.read,
                s.lost_reported,
                vec![],
            )
        }
        None => (vec![], 0, 0, vec!["the pipeline failed".to_string()]),
    };
    ConsumerReport {
        variant: variant.to_owned(),
        read,
        lost_seen,
        bytes: 0,
        latency: run
            .and_then(|r| r.latency.clone())
            .unwrap_or_else(crate::results::latency_histogram),
        stages,
        end_ns: crate::host::monotonic_ns(),
        ledger: None,
        problems,
    }
}
