//! `harness compare`: two builds, the same cells, one job (docs/gate.md,
//! "Comparing two builds").
//!
//! On these shared hosts a figure measured on its own moves 30-50 % between
//! runs minutes apart, so a stored baseline can only catch a collapse. Here
//! the baseline build and the candidate build run the same cells in turn:
//!
//! 1. [`side`]: each build is a harness binary (given, or built from a git
//!    revision in a worktree of its own, cached by commit).
//! 2. [`cells`]: the cells come from a sweep plan; every one is replayed into
//!    emulated rings by each side's own `replay --json` ([`trial`]).
//! 3. [`schedule`]: pair by pair, cell by cell, in a random order within each
//!    pair (seeded, printed), first saturated throughput (`--max`), then loss
//!    at a fixed rate taken from the baseline's median saturated throughput
//!    in this job. Whatever the host does over a pair hits both members.
//! 4. [`callgrind`]: instruction counts per event and stage, from one
//!    deterministic pass of each side's `harness count` under callgrind.
//! 5. [`judge`]: each rule on each cell from the paired figures
//!    (`gate::paired`): pass, regression or inconclusive.

pub mod callgrind;
pub mod cells;
pub mod judge;
pub mod schedule;
pub mod side;
pub mod trial;

use serde::{Deserialize, Serialize};

pub use cells::CompareCell;
pub use judge::{Check, CompareRules};
pub use side::Side;
pub use trial::TrialFigures;

/// The results file's schema name.
pub const SCHEMA: &str = "dropbench.compare/1";

/// Input a comparison cannot run with (exit 2); each names the side, the
/// revision, the binary or the cell.
#[derive(Debug, thiserror::Error)]
pub enum CompareInputError {
    #[error("{role} {rev}: {what}")]
    Revision {
        role: String,
        rev: String,
        what: String,
    },
    #[error("{role} {path} is not dropbench's harness: {what}")]
    NotHarness {
        role: String,
        path: String,
        what: String,
    },
    #[error("cell {cell}: the {role} cannot run it: {what}")]
    Cell {
        cell: String,
        role: String,
        what: String,
    },
    #[error(
        "cell {cell}: the sides differ in {what}: baseline {baseline:?}, candidate {candidate:?}"
    )]
    Mismatch {
        cell: String,
        what: String,
        baseline: String,
        candidate: String,
    },
    #[error("{what}")]
    Options { what: String },
}

/// A comparison that ran but did not pass: exit 1 (a regression) or 3 (too
/// noisy to decide).
#[derive(Debug, thiserror::Error)]
pub enum CompareVerdict {
    #[error("compare failed: {failed} of {checks} checks regressed")]
    Regression { failed: usize, checks: usize },
    #[error("compare inconclusive: {unsure} of {checks} checks were too noisy to decide (spread printed above); nothing regressed")]
    Inconclusive { unsure: usize, checks: usize },
}

/// Per-pair figures of one cell.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// Which side ran first in this pair's saturated trials (`baseline` or `candidate`).
    pub first: String,
    pub baseline: TrialFigures,
    pub candidate: TrialFigures,
    /// The loss trials at the cell's loss rate (none when loss is not compared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_at_rate: Option<TrialFigures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_at_rate: Option<TrialFigures>,
}

/// Instruction counts per event of one cell, both sides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Instructions {
    pub events: u64,
    pub baseline: callgrind::PerEvent,
    pub candidate: callgrind::PerEvent,
}

/// One cell's comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellComparison {
    pub cell: CompareCell,
    /// Offered events/s of the loss trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_rate: Option<f64>,
    pub pairs: Vec<Pair>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<Instructions>,
    /// The final verdicts (after the confirmation, when there was one).
    pub checks: Vec<Check>,
    /// A timed check that failed is measured again with fresh pairs: these
    /// are the first measurement's pairs and checks; the cell fails only when
    /// the second measurement fails too (docs/gate.md, "Confirmation").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<FirstMeasurement>,
}

/// The measurement a confirmation repeated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirstMeasurement {
    pub pairs: Vec<Pair>,
    pub checks: Vec<Check>,
}

/// A whole comparison: what `compare.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareResults {
    pub schema: String,
    pub baseline: Side,
    pub candidate: Side,
    /// Knobs given to the candidate only (`--candidate-knob`), to calibrate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidate_knobs: Vec<String>,
    pub seed: u64,
    pub trial_ms: u64,
    pub pairs: usize,
    pub cells: Vec<CellComparison>,
    /// Wall time of the measuring (builds excluded), seconds.
    pub measure_s: f64,
    pub host: String,
}

impl CompareResults {
    pub fn checks(&self) -> impl Iterator<Item = (&CellComparison, &Check)> {
        self.cells
            .iter()
            .flat_map(|c| c.checks.iter().map(move |k| (c, k)))
    }

    /// The verdict over every check: a regression anywhere fails; otherwise
    /// an inconclusive check makes the whole inconclusive.
    pub fn verdict(&self) -> Result<(), CompareVerdict> {
        let checks = self.checks().count();
        let failed = self
            .checks()
            .filter(|(_, k)| k.verdict == judge::REGRESSION)
            .count();
        let unsure = self
            .checks()
            .filter(|(_, k)| k.verdict == judge::INCONCLUSIVE)
            .count();
        if failed > 0 {
            Err(CompareVerdict::Regression { failed, checks })
        } else if unsure > 0 {
            Err(CompareVerdict::Inconclusive { unsure, checks })
        } else {
            Ok(())
        }
    }
}
