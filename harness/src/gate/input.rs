//! Results files as the gate, the report and the export read them: a run
//! folder (`results/<UTC>/`, or the `latest` link) or a `sweep.json`.

use std::path::{Path, PathBuf};

use crate::experiment::results::SweepResults;

/// Results read from disk, with the file they came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub results: SweepResults,
    /// The `sweep.json` read.
    pub file: PathBuf,
}

impl Loaded {
    /// The plan that ran (`plan.toml` beside `sweep.json` in a run folder), if kept.
    pub fn plan(&self) -> Option<PathBuf> {
        let p = self.file.parent()?.join("plan.toml");
        p.is_file().then_some(p)
    }
}

/// Why results could not be read, in one line naming the path.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {what}")]
pub struct ResultsInputError {
    pub path: String,
    pub what: String,
}

/// Reads `path`: a run folder holding `sweep.json`, or a sweep.json itself.
pub fn load_results(path: &Path) -> Result<Loaded, ResultsInputError> {
    let err = |what: String| ResultsInputError {
        path: path.display().to_string(),
        what,
    };
    let file = if path.is_dir() {
        let f = path.join("sweep.json");
        if !f.is_file() {
            return Err(err(
                "a folder without sweep.json (expected a run folder such as results/latest)".into(),
            ));
        }
        f
    } else if path.exists() {
        path.to_path_buf()
    } else {
        return Err(err("no such file or folder".into()));
    };
    let results = SweepResults::read(&file).map_err(|e| ResultsInputError {
        path: file.display().to_string(),
        what: match e {
            crate::experiment::results::SweepFileError::Io { source, .. } => source.to_string(),
            crate::experiment::results::SweepFileError::Parse { source, .. } => {
                format!("not a sweep results file: {source}")
            }
            crate::experiment::results::SweepFileError::Schema { found, .. } => format!(
                "schema {found:?}, expected {:?}",
                crate::experiment::results::SWEEP_SCHEMA
            ),
        },
    })?;
    Ok(Loaded { results, file })
}

/// The build profile the results were made with: from the series keys, or
/// (files written before keys carried it) the build id's second word.
pub fn profile_of(r: &SweepResults) -> Option<String> {
    r.series
        .iter()
        .map(|s| s.key.profile.clone())
        .find(|p| !p.is_empty())
        .or_else(|| {
            r.build
                .split_whitespace()
                .nth(1)
                .filter(|p| *p == "debug" || *p == "release")
                .map(str::to_string)
        })
}

/// Combines repeated runs of the same plan into one set of results for the
/// gate: each cell keeps every trial of every repeat (loss is pooled over
/// them) and the most favourable of its NDR and PDR brackets, so a rule on a
/// rate fails only when it fails in every repeat. A cell that did not balance
/// in any repeat stays invalid.
pub fn combine_repeats(first: &SweepResults, repeats: &[SweepResults]) -> SweepResults {
    let top = |x: Option<f64>| x.unwrap_or(f64::INFINITY);
    let mut out = first.clone();
    for r in repeats {
        for s in &mut out.series {
            let Some(o) = r.series.iter().find(|o| o.key == s.key) else {
                continue;
            };
            s.points.extend(o.points.iter().cloned());
            if !o.valid {
                s.valid = false;
                s.problems.extend(o.problems.iter().cloned());
            }
            if top(o.first_lossy_rate) > top(s.first_lossy_rate)
                || (o.first_lossy_rate == s.first_lossy_rate && o.zero_loss_rate > s.zero_loss_rate)
            {
                s.zero_loss_rate = o.zero_loss_rate;
                s.first_lossy_rate = o.first_lossy_rate;
            }
            if top(o.pdr_first_over) > top(s.pdr_first_over)
                || (o.pdr_first_over == s.pdr_first_over && o.pdr > s.pdr)
            {
                s.pdr = o.pdr;
                s.pdr_first_over = o.pdr_first_over;
            }
        }
    }
    out
}

/// [`load_results`] for the results under judgement: errors are bad input.
pub fn load_current(path: &Path) -> Result<Loaded, super::GateInputError> {
    load_results(path).map_err(|e| super::GateInputError::Results {
        path: e.path,
        what: e.what,
    })
}

/// [`load_results`] for a baseline: errors are bad input naming the baseline.
pub fn load_baseline(path: &Path) -> Result<Loaded, super::GateInputError> {
    load_results(path).map_err(|e| super::GateInputError::Baseline {
        path: e.path,
        what: e.what,
    })
}
