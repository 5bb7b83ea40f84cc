//! What a run records as it goes, as results files hold it: progress
//! samples, the producer's lateness and achieved rate, and the latency
//! histogram's bounds. The replay driver and trials compute them.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The run's progress at one moment, taken by the producer as it goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressSample {
    /// Since the first record was due.
    pub t_ns: u64,
    /// Samples offered to the rings so far.
    pub offered: u64,
    /// Samples the rings took so far.
    pub accepted: u64,
    /// Samples the pipeline has finished with (its sink knows their fate):
    /// `accepted - done` is everything in the rings, the pipeline's queues
    /// and the sink's queue.
    pub done: u64,
    /// Bytes waiting in the rings (written, not yet consumed).
    pub ring_bytes: u64,
}

/// How far behind its schedule the producer wrote, over every record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lateness {
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

/// The producer's side of a trial, for results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProducerStats {
    /// Records/s actually offered over the whole trial.
    pub achieved_per_s: f64,
    pub lateness: Lateness,
}

/// A latency histogram from 1 ns to 1 hour at 3 significant digits (0.1%).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("static bounds are valid")
}
