//! `harness export`: results files in the shapes benchmark trackers ingest.
//!
//! ```text
//! harness export results/latest --format bmf > bmf.json
//! harness export results/latest --format github-action-benchmark --out gab.json
//! ```
//! - `bmf`, Bencher Metric Format:
//!   `{"<benchmark>": {"<measure>": {"value", "lower_value", "upper_value"}}}`.
//! - `github-action-benchmark`: the `customBiggerIsBetter` input, an array of
//!   `{name, unit, value, range}` (rates, bigger is better). Loss, where
//!   smaller is better, goes to a second file for `customSmallerIsBetter`
//!   with `--format github-action-benchmark-loss`.
//!
//! One benchmark per cell, named by its key. Each rate's bounds are the
//! search's bracket: the rate that held and the first that failed.

use std::path::PathBuf;

use crate::export::{Bmf, Exporter, GithubActionBenchmark};
use crate::gate::load_current;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Bencher Metric Format.
    Bmf,
    /// github-action-benchmark, `customBiggerIsBetter` (NDR and PDR, events/s).
    GithubActionBenchmark,
    /// github-action-benchmark, `customSmallerIsBetter` (loss % at the first failing rate).
    GithubActionBenchmarkLoss,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The results: a run folder (e.g. results/latest) or its sweep.json.
    pub results: PathBuf,
    #[arg(long, value_enum)]
    pub format: Format,
    /// Write here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let loaded = load_current(&args.results)?;
    let r = &loaded.results;
    let value = match args.format {
        Format::Bmf => Bmf.export(r),
        Format::GithubActionBenchmark => {
            serde_json::to_value(GithubActionBenchmark { loss: false }.export(r))?
        }
        Format::GithubActionBenchmarkLoss => {
            serde_json::to_value(GithubActionBenchmark { loss: true }.export(r))?
        }
    };
    let text = serde_json::to_string_pretty(&value)? + "\n";
    match args.out {
        Some(p) => crate::results::write_atomically(&p, text.as_bytes())
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", p.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}
