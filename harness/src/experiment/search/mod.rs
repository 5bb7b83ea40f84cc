//! The sweep's searches, each over a monotone trial function:
//!
//! - [`ZeroLossSearch`]: the highest rate at which a trial loses nothing (the
//!   NDR; run with a loss threshold it gives the PDR);
//! - [`MinRingSearch`]: the smallest power-of-two ring that reaches a target
//!   loss at a given rate.
//!
//! A trial is any closure `rate -> lost` (a short paced replay at that rate
//! in the benchmark and sweeps; a pure function in the tests). The search
//! assumes loss is monotone in rate: it doubles from `lo` until a trial loses
//! (or `hi` is reached), then bisects geometrically between the last clean
//! rate and the first lossy one until they are within `resolution` of each
//! other. Geometric midpoints (sqrt(a*b)) suit rates: the same number of
//! trials resolves 10 k/s and 1 M/s to the same relative precision.
//!
//! Trials needed: doubling from lo to the edge takes log2(edge/lo) trials, and
//! bisecting a factor-2 bracket to a relative width r takes
//! log2(log2(2)/log2(1+r)) = log2(1/log2(1+r)), e.g. 4 for r = 5%. From
//! lo = 10 k to an edge near 600 k that is 6 + 4 + 1 = 11 trials.
//!
//! On a shared machine one trial is not an answer: a stall of the reader
//! longer than the ring's slack loses samples at any rate (docs/tuning.md,
//! "Why the zero-loss rate of fixed4k events depends on the trial length"),
//! and one such trial ends the doubling early. [`ZeroLossSearch::run_confirmed`]
//! re-measures the two rates that bound the answer, as FD.io CSIT's MLRsearch
//! (draft-ietf-bmwg-mlrsearch) does with its goal exceed ratio of 0.5: a rate
//! holds when most of its trials hold, and the search is run again whenever
//! re-measuring turns one of the bracket's ends over.
//!
//! A failing trial also says roughly what the pipeline holds
//! ([`Answer::finished_per_s`]: its throughput, over the capture's burst
//! factor when the trial was saturated; experiment::burst).
//! [`ZeroLossSearch::run_guided`] aims by it where halving or bisecting would
//! overshoot: below the start it tries a resolution step under that rate and
//! gallops from there (down while failing, up while clean, by one step,
//! then two, four), not at half the rate and back. At low rates the
//! capture's shape stretches each trial over a whole pass, 10-19 s there,
//! so every rate tried far under the edge costs more than several failing
//! trials above it. The answer is the same kind: only the rates tried
//! change, and every rate is still judged by its own trials.

//!
//! The searches, each in its file: `zero_loss` (the NDR/PDR rate search),
//! `confirmed` (its bracket's ends re-measured, [`Tally`]) and
//! `min_ring` (the minimum ring); [`SearchError`] is theirs alike.

mod confirmed;
mod min_ring;
#[cfg(test)]
mod test_support;
mod zero_loss;

pub use confirmed::{ConfirmedOutcome, EdgeTally, Tally};
pub use min_ring::{MinRing, MinRingSearch, RingStep};
pub use zero_loss::{Answer, SearchOutcome, Step, ZeroLossSearch};

/// Why a search could not run.
#[derive(Debug, thiserror::Error)]
pub enum SearchError<E: std::error::Error + 'static> {
    #[error("search bounds lo {lo} .. hi {hi} with resolution {resolution}: need 0 < lo <= hi and resolution > 0")]
    Bounds { lo: f64, hi: f64, resolution: f64 },
    #[error("trial at {rate:.0} events/s failed: {source}")]
    Trial { rate: f64, source: E },
}
