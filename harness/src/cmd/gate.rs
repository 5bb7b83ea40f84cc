//! `harness gate`: fail CI when a sweep's zero-loss rates regress against a baseline.
//!
//! ```text
//! harness gate --results results/sweep.json --baseline ci/baselines/default.json --max-drop 25%
//! harness gate --results results/sweep.json --baseline ci/baselines/default.json --update
//! ```
//! Exit 0 when every baseline series holds; exit 1 (one error line after the
//! table) on any regression, invalid ledger or missing series.

use std::path::PathBuf;

use anyhow::Context;

use crate::sweep::{judge, SweepResults, Verdict};

#[derive(Debug, clap::Args)]
pub struct GateArgs {
    /// The sweep results to check (`harness sweep` writes results/sweep.json).
    #[arg(long, default_value = "results/sweep.json")]
    pub results: PathBuf,
    /// The baseline: an earlier sweep's results file.
    #[arg(long)]
    pub baseline: PathBuf,
    /// Largest allowed fall of a zero-loss rate, e.g. 10% or 0.1. Replay-based
    /// rates on shared 2-core VMs move by about 10% run to run; allow for it.
    #[arg(long, default_value = "25%", value_parser = parse_fraction)]
    pub max_drop: f64,
    /// Write the results as the new baseline instead of checking.
    #[arg(long)]
    pub update: bool,
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let v = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => s.trim().parse::<f64>(),
    }
    .map_err(|_| format!("{s:?} is not a fraction (e.g. 10% or 0.1)"))?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s:?} must be in [0%, 100%)"))
    }
}

pub fn run(args: GateArgs) -> anyhow::Result<()> {
    let current = SweepResults::read(&args.results)?;
    if args.update {
        if let Some(dir) = args.baseline.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        current.write(&args.baseline)?;
        println!(
            "baseline {} updated from {} ({} series)",
            args.baseline.display(),
            args.results.display(),
            current.series.len()
        );
        return Ok(());
    }
    let baseline = SweepResults::read(&args.baseline)?;
    let verdicts = judge(&baseline, &current, args.max_drop);
    println!(
        "gate: {} against {} (max drop {:.0}%)",
        args.results.display(),
        args.baseline.display(),
        args.max_drop * 100.0
    );
    let rate = |r: Option<f64>| r.map_or("none".to_string(), |r| format!("{:.0}/s", r));
    let mut failed = 0;
    for (key, v) in &verdicts {
        let (mark, what) = match v {
            Verdict::Holds { ratio } => ("ok  ", format!("{:+.1}%", (ratio - 1.0) * 100.0)),
            Verdict::Improved { ratio } => (
                "ok+ ",
                if ratio.is_finite() {
                    format!("{:+.1}% (consider --update)", (ratio - 1.0) * 100.0)
                } else {
                    "now has a zero-loss rate".into()
                },
            ),
            Verdict::Regressed { baseline, current } => (
                "FAIL",
                format!("zero-loss rate {} -> {}", rate(*baseline), rate(*current)),
            ),
            Verdict::Invalid { problems } => {
                ("FAIL", format!("invalid run: {}", problems.join("; ")))
            }
            Verdict::Missing => ("FAIL", "missing from the results".into()),
            Verdict::New => ("new ", "not in the baseline".into()),
        };
        if v.fails() {
            failed += 1;
        }
        println!("  {mark} {key}: {what}");
    }
    if failed > 0 {
        anyhow::bail!(
            "gate failed: {failed} of {} series regressed, were invalid or missing",
            verdicts.len()
        );
    }
    println!("gate passed: {} series hold", verdicts.len());
    Ok(())
}
