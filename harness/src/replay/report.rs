//! What a replay reports: the consumer's [`ConsumerReport`] (and the
//! built-in `noop` consumer, [`drain_noop`]), and the run's [`ReplayReport`],
//! assembled from the producer's book and the rings' counters and turned
//! into the shared results schema.

use std::time::Duration;

use hdrhistogram::Histogram;
use probes::record::{Batch, RecordRef, RecordSource};

use super::{Bound, Pacing, Produced, ReplayOptions, RingConfig};
use crate::capture::Capture;
use crate::host::monotonic_ns;
use crate::results::{
    latency_histogram, CpuTime, Latency, Lateness, ProgressSample, RingResult, RunConfig,
    RunResult, StageResult,
};

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
    /// Progress every [`SAMPLE_NS`](super::SAMPLE_NS) while the producer ran
    /// (empty when the replay was not watched, see
    /// [`run_watched`](super::run_watched)).
    pub samples: Vec<ProgressSample>,
    pub producer_cpu: CpuTime,
    /// Records written in each [`WINDOW_NS`](super::WINDOW_NS) window of
    /// actual write time from the start: how steady the offered rate was.
    pub windows: Vec<u64>,
    pub per_ring: Vec<RingResult>,
    pub consumer: ConsumerReport,
    /// The run stopped before its bound at [`ReplayOptions::stop_at_loss`].
    pub stopped_at_loss: bool,
    /// What the co-runner asked for and spun ([`ReplayOptions::co_runner`]).
    pub co_runner: Option<super::co_runner::CoRunnerReport>,
}

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
            co_runner: None,
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
            extra: crate::results::RunExtra::default(),
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
