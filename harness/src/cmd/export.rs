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

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::experiment::results::{Series, SweepResults};
use crate::gate::judge::{bracket, loss_by_rate};
use crate::gate::{load_current, Measure};

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

/// One entry of a github-action-benchmark `custom*` array.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct GabEntry {
    pub name: String,
    pub unit: String,
    pub value: f64,
    pub range: String,
}

/// The benchmark's name: the cell's key.
pub fn bench_name(s: &Series) -> String {
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

pub fn bmf(r: &SweepResults) -> Value {
    let mut out = Map::new();
    for s in r.series.iter().filter(|s| s.valid) {
        let mut measures = Map::new();
        for (name, m) in [("ndr", Measure::Ndr), ("pdr", Measure::Pdr)] {
            let b = bracket(s, m);
            if m == Measure::Pdr && s.pdr.is_none() && s.pdr_first_over.is_none() {
                continue;
            }
            measures.insert(
                format!("{name}-events-per-second"),
                json!({"value": b.lo, "lower_value": b.lo, "upper_value": top(b.lo, b.hi)}),
            );
        }
        if let Some((_, p)) = s
            .first_lossy_rate
            .and_then(|f| loss_by_rate(s).into_iter().find(|(r, _)| *r == f))
        {
            measures.insert(
                "loss-percent-at-first-failing-rate".into(),
                json!({"value": p.p * 100.0, "lower_value": p.lo * 100.0, "upper_value": p.hi * 100.0}),
            );
        }
        out.insert(bench_name(s), Value::Object(measures));
    }
    Value::Object(out)
}

pub fn github_action_benchmark(r: &SweepResults, loss: bool) -> Vec<GabEntry> {
    let mut out = Vec::new();
    for s in r.series.iter().filter(|s| s.valid) {
        if loss {
            if let Some((rate, p)) = s
                .first_lossy_rate
                .and_then(|f| loss_by_rate(s).into_iter().find(|(r, _)| *r == f))
            {
                out.push(GabEntry {
                    name: format!("{} loss at {rate:.0}/s", bench_name(s)),
                    unit: "%".into(),
                    value: p.p * 100.0,
                    range: format!("{:.4}..{:.4}", p.lo * 100.0, p.hi * 100.0),
                });
            }
            continue;
        }
        for (name, m) in [("NDR", Measure::Ndr), ("PDR", Measure::Pdr)] {
            if m == Measure::Pdr && s.pdr.is_none() && s.pdr_first_over.is_none() {
                continue;
            }
            let b = bracket(s, m);
            out.push(GabEntry {
                name: format!("{} {name}", bench_name(s)),
                unit: "events/s".into(),
                value: b.lo,
                range: format!("+{:.0}", top(b.lo, b.hi) - b.lo),
            });
        }
    }
    out
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let loaded = load_current(&args.results)?;
    let r = &loaded.results;
    let value = match args.format {
        Format::Bmf => bmf(r),
        Format::GithubActionBenchmark => serde_json::to_value(github_action_benchmark(r, false))?,
        Format::GithubActionBenchmarkLoss => {
            serde_json::to_value(github_action_benchmark(r, true))?
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
