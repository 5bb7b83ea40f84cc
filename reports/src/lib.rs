//! Reports: sweep results in, a self-contained HTML page and SVG charts out.
//!
//! The harness computes everything (zero-loss rates, percentiles, ledger
//! checks) and hands over a [`SweepReport`]; this crate only lays it out
//! (sorting for display, formatting numbers). It never computes statistics
//! and does not depend on the harness.
//!
//! - [`write_report`]: `index.html` plus the three charts as `.svg` files,
//!   each written atomically (temp file in the same directory, then rename).
//! - [`render_html`]: the page as bytes; inline CSS and SVG, no scripts, no
//!   external URLs or fonts. Every input string is HTML-escaped.
//! - [`render_svg`]: one [`Chart`] as a standalone SVG document.
//! - [`read_sweep`]: a [`SweepReport`] from its JSON form.
//!
//! Output is deterministic for a given report (no clock reads, stable order,
//! fixed width), which the golden tests in `tests/golden/` rely on. They also
//! rely on plotters' built-in text-size estimate: enabling plotters' `ttf` or
//! `ab_glyph` features anywhere in the workspace would change the layout.
//!
//! ```no_run
//! # fn main() -> Result<(), reports::ReportError> {
//! let report = reports::read_sweep(std::path::Path::new("results/sweep-report.json"))?;
//! let files = reports::write_report(std::path::Path::new("results/report"), &report)?;
//! for f in files {
//!     println!("wrote {}", f.display());
//! }
//! # Ok(())
//! # }
//! ```

mod error;
pub mod format;
mod html;
mod model;
mod modes;
mod svg;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use error::ReportError;
pub use html::{escape, render_html};
pub use model::{Comparison, ComparisonRow, Point, Series, StageCpu, SweepReport};
pub use modes::Mode;
pub use svg::{render_svg, Chart};

/// The HTML page's file name inside the report directory.
pub const INDEX_FILE: &str = "index.html";

/// Renders the report and writes `index.html` plus one SVG per [`Chart`]
/// (see [`Chart::file_name`]) into `dir`, creating it if needed. Returns the
/// paths written, `index.html` first.
///
/// Everything is rendered before anything is written, so a rendering error
/// leaves `dir` untouched. Each file is written to a temporary file in `dir`,
/// synced, then renamed over its final name: an interrupted run leaves every
/// file either as it was or complete, never half-written.
pub fn write_report(dir: &Path, report: &SweepReport) -> Result<Vec<PathBuf>, ReportError> {
    let mut files: Vec<(&str, Vec<u8>)> = vec![(INDEX_FILE, render_html(report)?)];
    for chart in Chart::ALL {
        files.push((chart.file_name(), render_svg(report, chart)?.into_bytes()));
    }
    fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        let path = dir.join(name);
        write_atomically(&path, &bytes)?;
        written.push(path);
    }
    // Make the renames themselves durable; a directory fsync failing (some
    // filesystems refuse it) doesn't make the files any less complete.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(written)
}

/// Distinguishes temporary files of concurrent writers in one process.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `.<name>.<pid>.<seq>.tmp` next to `path`, syncs it and
/// renames it to `path` (rename within one directory is atomic on POSIX).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{seq}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(source) = result {
        let _ = fs::remove_file(&tmp);
        return Err(ReportError::Write { path: tmp, source });
    }
    fs::rename(&tmp, path).map_err(|source| {
        let _ = fs::remove_file(&tmp);
        ReportError::Rename {
            from: tmp.clone(),
            to: path.to_path_buf(),
            source,
        }
    })
}

/// Reads a [`SweepReport`] from a JSON file (as the harness writes it with serde_json).
pub fn read_sweep(path: &Path) -> Result<SweepReport, ReportError> {
    let bytes = fs::read(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ReportError::Parse {
        path: path.to_path_buf(),
        source,
    })
}
