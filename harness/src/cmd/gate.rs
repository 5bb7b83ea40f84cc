//! `harness gate`: judge a sweep's results files against a rules file and a baseline.
//!
//! ```text
//! harness gate results/latest --rules ci/gates.toml --baseline ci/baseline/sweep.json
//! harness gate results/latest --baseline old/sweep.json --max-drop 25%   # no rules file
//! harness gate results/latest --baseline ci/baseline/sweep.json --update
//! ```
//! Prints a table of every rule and cell; each failure again with its
//! numbers and the command that reproduces it. Exit 0 when nothing fails, 1
//! when a rule fails, 2 on bad input (docs/gate.md).

use std::path::PathBuf;

use anyhow::Context;

use crate::gate::{judge, load_baseline, load_current, GateInputError, RulesFile, Status};

#[derive(Debug, clap::Args)]
pub struct GateArgs {
    /// The results to check: a run folder (e.g. results/latest) or its sweep.json.
    #[arg(value_name = "RESULTS", conflicts_with = "results")]
    pub positional: Option<PathBuf>,
    /// The same as RESULTS.
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// The rules file (e.g. ci/gates.toml; format in docs/gate.md). Without
    /// it, every cell's NDR is compared to the baseline's (--max-drop).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// The baseline: an earlier sweep's results (run folder or sweep.json).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Without --rules: the largest allowed fall of a cell's NDR, e.g. 25% or
    /// 0.25, judged on the search's brackets (docs/gate.md).
    #[arg(long, default_value = "25%", value_parser = parse_fraction)]
    pub max_drop: f64,
    /// A repeat of the same plan (e.g. the failing variants swept again):
    /// trials are pooled and each cell keeps its most favourable bracket, so
    /// a rule fails only when it fails in every repeat. May be given again.
    #[arg(long = "also", value_name = "RESULTS")]
    pub also: Vec<PathBuf>,
    /// Write the results as the new baseline instead of checking.
    #[arg(long, requires = "baseline")]
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
    let path = args
        .positional
        .or(args.results)
        .unwrap_or_else(|| PathBuf::from("results/latest"));
    let current = load_current(&path)?;
    if args.update {
        let target = args
            .baseline
            .expect("clap requires --baseline with --update");
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        current.results.write(&target)?;
        println!(
            "baseline {} updated from {} ({} series)",
            target.display(),
            current.file.display(),
            current.results.series.len()
        );
        return Ok(());
    }
    let rules = match &args.rules {
        Some(r) => RulesFile::load(r)?,
        None => RulesFile::default_regression(args.max_drop),
    };
    let baseline = match &args.baseline {
        Some(b) => Some(load_baseline(b)?),
        None => None,
    };
    let mut repeats = Vec::new();
    for a in &args.also {
        let r = load_current(a)?;
        if r.results.plan_hash != current.results.plan_hash {
            return Err(GateInputError::Results {
                path: r.file.display().to_string(),
                what: format!(
                    "--also needs a repeat of the same plan (plan {:?}, results {:?})",
                    r.results.plan_hash, current.results.plan_hash
                ),
            }
            .into());
        }
        repeats.push(r.results);
    }
    let combined = crate::gate::combine_repeats(&current.results, &repeats);
    let cur_name = current.file.display().to_string();
    let base_name = baseline.as_ref().map(|b| b.file.display().to_string());
    let outcomes = judge(
        &rules,
        &combined,
        &cur_name,
        baseline
            .as_ref()
            .zip(base_name.as_deref())
            .map(|(b, n)| (&b.results, n)),
    )?;

    println!(
        "gate: {cur_name}{} by {}{}",
        if repeats.is_empty() {
            String::new()
        } else {
            format!(" with {} repeat(s)", repeats.len())
        },
        rules.path,
        base_name
            .as_deref()
            .map_or(String::new(), |b| format!(" against {b}"))
    );
    println!("  {:<5} rule  {:<44} numbers", "", "cell");
    for o in &outcomes {
        println!(
            "  {:<5} {:>4}  {:<44} {}",
            o.status.mark(),
            o.rule,
            cell_name(&o.cell),
            o.numbers
        );
    }
    let failed: Vec<_> = outcomes.iter().filter(|o| o.status.fails()).collect();
    if failed.is_empty() {
        let unclear = outcomes
            .iter()
            .filter(|o| o.status == Status::Unclear)
            .count();
        println!(
            "gate passed: {} checks of {} rules{}",
            outcomes.len(),
            rules.gate_rules(),
            if unclear > 0 {
                format!(" ({unclear} within noise of their threshold, marked pass?)")
            } else {
                String::new()
            }
        );
        return Ok(());
    }
    let profile = if cfg!(debug_assertions) {
        ""
    } else {
        " --release"
    };
    for o in &failed {
        eprintln!("\nFAILED rule {} ({}): {}", o.rule, o.rule_text, o.cell);
        eprintln!("  {}", o.numbers);
        let plan = current
            .plan()
            .map_or("PLAN.toml".to_string(), |p| p.display().to_string());
        // An exec: reader's series name is not a command line (a table entry
        // goes by its name): its plan is swept whole.
        let only = if o
            .cell
            .variant
            .starts_with(crate::experiment::plan::ExecReader::PREFIX)
        {
            String::new()
        } else {
            format!(" --variants {}", o.cell.variant)
        };
        eprintln!(
            "  reproduce: cargo run{profile} -p harness -- sweep --config {plan}{only} --out /tmp/dropbench-repro && cargo run{profile} -p harness -- gate /tmp/dropbench-repro/latest{}{}",
            args.rules
                .as_ref()
                .map_or(String::new(), |r| format!(" --rules {}", r.display())),
            base_name
                .as_deref()
                .map_or(String::new(), |b| format!(" --baseline {b}"))
        );
    }
    anyhow::bail!(
        "gate failed: {} of {} checks failed (rules file {})",
        failed.len(),
        outcomes.len(),
        rules.path
    )
}

/// A cell in the table's width: variant, capture, ring, mode.
fn cell_name(k: &crate::experiment::results::CellKey) -> String {
    format!(
        "{} {} {}K {}",
        k.variant,
        k.capture.trim_end_matches(".pcapng"),
        k.ring_total_bytes >> 10,
        k.mode
    )
}
