//! The one error type of the reports crate.

use std::path::PathBuf;

use crate::svg::Chart;

/// Everything that can go wrong turning a [`crate::SweepReport`] into files.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// plotters failed while drawing a chart (into an in-memory string, so this
    /// is a layout problem, not I/O).
    #[error("drawing the {chart} chart: {message}")]
    Chart { chart: Chart, message: String },
    /// The output directory could not be created.
    #[error("creating report directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing (or syncing) a temporary file next to its final name failed.
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Moving a finished temporary file onto its final name failed.
    #[error("renaming {} to {}: {source}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
    /// A sweep report JSON file could not be read.
    #[error("reading sweep report {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A sweep report JSON file is not a valid [`crate::SweepReport`]; serde's
    /// message carries the line and column.
    #[error("parsing sweep report {}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}
