//! Results turned into what other tools read, one exporter per shape, as
//! hyperfine keeps its exporters: each takes computed results and computes
//! no statistics of its own (the brackets and loss intervals are the gate's).
//!
//! - [`Bmf`]: Bencher Metric Format.
//! - [`GithubActionBenchmark`]: github-action-benchmark's custom inputs.
//! - [`report::ReportModel`]: the HTML report's model, for `reports`.
//! - [`compare_page`]: the comparison page of `harness compare`.

mod bmf;
pub mod compare_page;
pub mod fidelity_page;
mod gab;
pub mod report;

pub use bmf::Bmf;
pub use gab::{GabEntry, GithubActionBenchmark};

use crate::experiment::results::{CellOutcome, SweepResults};

/// One output shape of a results file.
pub trait Exporter {
    /// What the shape is in memory (JSON, entries, a report model).
    type Output;
    fn export(&self, results: &SweepResults) -> Self::Output;
}

/// The benchmark's name: the cell's key.
pub fn bench_name(s: &CellOutcome) -> String {
    s.key.to_string()
}

/// The finite top of a bracket: its first failing rate, or the rate that held.
fn top(lo: f64, hi: f64) -> f64 {
    if hi.is_finite() {
        hi
    } else {
        lo
    }
}
