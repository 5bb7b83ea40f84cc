//! The cells a comparison runs: a sweep plan's (`--config`, the same file
//! format as `harness sweep`), each replayed into emulated rings with its
//! capture, variant, knobs, ring and sink. Kernel and live cells need root
//! and a kernel that both sides would share unevenly: a comparison refuses
//! them.

use std::path::PathBuf;

use super::CompareInputError;
use crate::capture::{Capture, Loading};
use crate::experiment::plan::{Mode, Plan};
use crate::experiment::results::CellKey;

/// One cell, as both sides run it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CompareCell {
    pub key: CellKey,
    pub capture: PathBuf,
    pub variant: String,
    /// Knobs away from the variant's defaults, `NAME=VALUE`.
    pub knobs: Vec<String>,
    pub transport: String,
    /// Bytes of one ring.
    pub ring_bytes: u64,
    /// Perf rings; none for the ring buffer.
    pub rings: Option<u32>,
    pub wakeup: String,
    /// The sink as `replay --sink` takes it.
    pub sink: String,
    pub brokers: Option<String>,
}

impl CompareCell {
    /// A short name for tables: the variant with its knobs, and the ring.
    pub fn label(&self) -> String {
        let knobs = if self.key.knobs.is_empty() {
            String::new()
        } else {
            format!(" [{}]", self.key.knobs)
        };
        format!(
            "{}{} {} {} {}",
            self.variant,
            knobs,
            self.key.capture,
            self.key.transport,
            probes::units::format_bytes(self.key.ring_total_bytes)
        )
    }
}

/// The plan's cells, restricted to `variants` when given.
pub fn plan_cells(plan: &Plan, variants: &[String]) -> Result<Vec<CompareCell>, CompareInputError> {
    let mut captures = Vec::new();
    for p in plan.captures() {
        captures.push(
            Capture::open(p, Loading::Auto).map_err(|e| CompareInputError::Options {
                what: e.to_string(),
            })?,
        );
    }
    let (cells, _skipped) = plan.cells(&captures);
    for v in variants {
        if !cells.iter().any(|c| &c.key.variant == v) {
            return Err(CompareInputError::Options {
                what: format!("--variants: {v} is not a variant of the plan"),
            });
        }
    }
    let mut out = Vec::new();
    for c in cells {
        if !variants.is_empty() && !variants.contains(&c.key.variant) {
            continue;
        }
        if c.mode != Mode::Replay || c.exec.is_some() {
            return Err(CompareInputError::Cell {
                cell: c.key.to_string(),
                role: "both".into(),
                what: "compare runs emulated replay cells only (modes = [\"replay\"], no exec readers)".into(),
            });
        }
        let defaults = (c.variant.knobs)();
        out.push(CompareCell {
            capture: plan.captures()[c.capture].clone(),
            variant: c.variant.name.to_string(),
            knobs: c.knobs.diff_from(&defaults),
            transport: c.transport.to_string(),
            ring_bytes: c.ring_bytes,
            rings: c.rings,
            wakeup: c.wakeup.to_string(),
            sink: plan.config().sink.clone(),
            brokers: plan.config().brokers.clone(),
            key: c.key,
        });
    }
    if out.is_empty() {
        return Err(CompareInputError::Options {
            what: "the plan has no cells to compare".into(),
        });
    }
    Ok(out)
}
