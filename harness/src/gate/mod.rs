//! The gate: judges results files against a rules file (and a baseline),
//! reading nothing but those files.
//!
//! - [`input`]: results as a run folder or a `sweep.json`, and the checks
//!   that a baseline is comparable (same sink kind, layout, build profile).
//! - [`rules`]: the rules file (`ci/gates.toml`), parsed once into [`Rule`]s.
//! - [`judge`]: each rule against each cell it selects, from the cell's
//!   intervals (loss as a proportion with its 95% interval; NDR and PDR as
//!   the search's bracket), into [`Outcome`]s.
//!
//! A rule fails only when its interval is clearly past the threshold;
//! docs/gate.md gives the statistics and the exit codes.

pub mod input;
pub mod judge;
pub mod paired;
pub mod rules;

pub use input::{combine_repeats, load_baseline, load_current, load_results, profile_of, Loaded};
pub use judge::{judge, Outcome, Status};
pub use rules::{Measure, PairedFigure, Rule, RuleKind, RulesFile, Selector};

/// Input the gate cannot judge (exit 2): each names the file, rule or cell.
#[derive(Debug, thiserror::Error)]
pub enum GateInputError {
    #[error("results {path}: {what}")]
    Results { path: String, what: String },
    #[error("baseline {path}: {what}")]
    Baseline { path: String, what: String },
    #[error("rules {path}: {what}")]
    Rules { path: String, what: String },
    #[error("rules {path}: rule {rule} ({text}) names a cell that does not exist in {results}")]
    NoSuchCell {
        path: String,
        rule: usize,
        text: String,
        results: String,
    },
    #[error(
        "baseline {path}: {what} differs: baseline {baseline:?}, results {current:?} (cell {cell})"
    )]
    Incomparable {
        path: String,
        what: &'static str,
        baseline: String,
        current: String,
        cell: String,
    },
    #[error("rules {path}: rule {rule} compares against a baseline; pass --baseline FILE")]
    NeedsBaseline { path: String, rule: usize },
}
