//! `harness compare --baseline REV|PATH`: the baseline build and this one (or
//! `--candidate REV|PATH`) run the same cells in turn, pair by pair, and each
//! compare rule is judged on the paired figures. Exit 0 pass, 1 regression,
//! 2 bad input, 3 inconclusive (docs/gate.md, "Comparing two builds").

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::compare::judge::{
    change_text, figure_value, interval_text, CompareRules, INCONCLUSIVE, REGRESSION,
};
use crate::compare::schedule::{fresh_seed, CompareOptions};
use crate::compare::{cells, side, CompareInputError, CompareResults};
use crate::experiment::plan::{Plan, SweepConfig};
use crate::gate::rules::fmt_pct;
use crate::gate::RulesFile;

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The baseline: a git revision (built in a worktree under
    /// target/compare, cached by commit) or a harness binary's path.
    #[arg(long)]
    pub baseline: String,
    /// The candidate: a revision or a binary; default this build.
    #[arg(long)]
    pub candidate: Option<String>,
    /// The sweep plan whose cells are compared (same format as `sweep
    /// --config`); default the bundled fixed4k capture and the default variants.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Only these variants of the plan (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub variants: Vec<String>,
    /// A rules file: its `compare = true` rules (default: throughput and CPU
    /// 10 %, loss +0.25 points, instructions 2 %, on every cell).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Pairs of trials per cell (docs/gate.md: 20 pairs of 1 s detect about 6 %).
    #[arg(long, default_value_t = 20)]
    pub pairs: usize,
    /// Length of each trial.
    #[arg(long, value_parser = probes::units::parse_duration, default_value = "1s")]
    pub trial: Duration,
    /// Loss trials offer this fraction of the baseline's median saturated
    /// throughput (unless a loss rule names its rate). 0.3: the baseline
    /// loses nothing there on these hosts (at 0.7 both sides lost 0-20 % to
    /// host stalls; docs/gate.md).
    #[arg(long, default_value_t = 0.3)]
    pub loss_rate: f64,
    /// Events of the smaller counted pass (instructions; the other has twice as many).
    #[arg(long, default_value_t = 2000)]
    pub count_events: u64,
    /// Seed of the order within pairs (printed; default from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// A knob given to the candidate only, NAME=VALUE (repeatable): a known
    /// slowdown to calibrate against (extra_work=200ns).
    #[arg(long = "candidate-knob")]
    pub candidate_knobs: Vec<String>,
    /// Write compare.json and compare.html here (default target/compare/latest).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn bad(what: impl Into<String>) -> anyhow::Error {
    CompareInputError::Options { what: what.into() }.into()
}

pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    if args.pairs < 6 || args.pairs > 200 {
        return Err(bad(format!(
            "--pairs {}: between 6 (the fewest a 90% signed-rank interval can bound) and 200",
            args.pairs
        )));
    }
    if args.trial < Duration::from_millis(100) {
        return Err(bad("--trial: at least 100ms"));
    }
    if !(args.loss_rate > 0.0 && args.loss_rate <= 1.0) {
        return Err(bad(format!(
            "--loss-rate {}: a fraction in (0, 1]",
            args.loss_rate
        )));
    }
    for k in &args.candidate_knobs {
        if !k.contains('=') {
            return Err(bad(format!("--candidate-knob {k:?}: write NAME=VALUE")));
        }
    }
    let rules = match &args.rules {
        Some(p) => CompareRules::from_file(&RulesFile::load(p)?),
        None => CompareRules::defaults(),
    };
    let mut cfg = match &args.config {
        Some(p) => SweepConfig::load(p)?,
        None => SweepConfig::default(),
    };
    if cfg.captures.is_empty() {
        cfg.captures = vec![super::sweep::fixtures_dir().join("fixed4k-perf.pcapng")];
    }
    let plan = Plan::from_config(cfg, "the command line")?;
    let cells = cells::plan_cells(&plan, &args.variants)?;

    // The candidate first: building the baseline replaces target/<profile>/harness.
    let cache = side::cache_dir();
    let candidate = match &args.candidate {
        None => side::this_build("candidate", &cache)?,
        Some(s) => side::resolve("candidate", s, &cache)?,
    };
    let baseline = side::resolve("baseline", &args.baseline, &cache)?;
    let seed = args.seed.unwrap_or_else(fresh_seed);
    println!(
        "compare   baseline {} ({}){}",
        baseline.source,
        baseline.version,
        built(&baseline)
    );
    println!(
        "          candidate {} ({}){}{}",
        candidate.source,
        candidate.version,
        built(&candidate),
        if args.candidate_knobs.is_empty() {
            String::new()
        } else {
            format!(", knobs {}", args.candidate_knobs.join(" "))
        }
    );
    println!(
        "          {} cell(s), {} pairs of {} trials, order within each pair random (seed {seed}), rules: {}",
        cells.len(),
        args.pairs,
        probes::units::format_duration(args.trial),
        rules.origin
    );
    let out = args.out.clone().unwrap_or_else(|| cache.join("latest"));
    let opts = CompareOptions {
        baseline,
        candidate,
        candidate_knobs: args.candidate_knobs.clone(),
        cells,
        pairs: args.pairs,
        trial: args.trial,
        loss_fraction: args.loss_rate,
        count_events: args.count_events,
        rules,
        seed,
        scratch: out.join("scratch"),
    };
    let results = crate::compare::schedule::run(&opts, &mut |l| println!("{l}"))?;
    let _ = std::fs::remove_dir_all(&opts.scratch);
    print_table(&results);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let json = out.join("compare.json");
    std::fs::write(&json, serde_json::to_vec_pretty(&results)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let html = out.join("compare.html");
    std::fs::write(&html, crate::export::compare_page::render(&results))
        .with_context(|| format!("writing {}", html.display()))?;
    println!(
        "\nmeasured in {:.0} s (builds: baseline {:.0} s, candidate {:.0} s); results {}, page {}",
        results.measure_s,
        results.baseline.build_s,
        results.candidate.build_s,
        json.display(),
        html.display()
    );
    print_failures(&results, &args);
    results.verdict()?;
    println!("compare passed: {} checks", results.checks().count());
    Ok(())
}

fn built(s: &side::Side) -> String {
    match (&s.commit, s.build_s > 0.0) {
        (Some(c), true) => format!(", commit {c:.12}, built in {:.0} s", s.build_s),
        (Some(c), false) => format!(", commit {c:.12}, cached"),
        _ => String::new(),
    }
}

fn print_table(r: &CompareResults) {
    for c in &r.cells {
        println!("\n{}", c.cell.label());
        if let Some(rate) = c.loss_rate {
            println!("  loss trials at {:.1} k events/s", rate / 1e3);
        }
        println!(
            "  {:<13} {:>14} {:>14} {:>9} {:>20} {:>7} {:>6} {:>6}  verdict",
            "figure", "baseline", "candidate", "change", "interval", "spread", "floor", "pairs"
        );
        for k in &c.checks {
            let interval = interval_text(k);
            let change = change_text(&k.figure, k.change);
            println!(
                "  {:<13} {:>14} {:>14} {:>9} {:>20} {:>7} {:>6} {:>6}  {}",
                k.figure,
                figure_value(&k.figure, k.baseline),
                figure_value(&k.figure, k.candidate),
                change,
                interval,
                if k.figure == "instructions" {
                    "-".into()
                } else {
                    format!("{:.3}", k.spread)
                },
                k.detectable.map_or("-".into(), |d| format!(
                    "{}%",
                    fmt_pct((d * 1000.0).round() / 1000.0)
                )),
                k.pairs,
                k.verdict
            );
        }
        if let Some(i) = &c.instructions {
            let stages: Vec<String> = i
                .baseline
                .stages
                .iter()
                .map(|(s, b)| {
                    let c = i.candidate.stages.get(s).copied().unwrap_or(0.0);
                    format!("{s} {b:.0} -> {c:.0}")
                })
                .collect();
            println!("  instructions per event by stage: {}", stages.join(", "));
        }
    }
}

fn print_failures(r: &CompareResults, args: &CompareArgs) {
    for (c, k) in r.checks() {
        if k.verdict != REGRESSION && k.verdict != INCONCLUSIVE {
            continue;
        }
        let word = if k.verdict == REGRESSION {
            "FAILED"
        } else {
            "UNDECIDED"
        };
        eprintln!(
            "{word} {} on {}: baseline {}, candidate {}, change {} in {} over {} pair(s), spread {:.3}",
            k.rule_text,
            c.cell.label(),
            figure_value(&k.figure, k.baseline),
            figure_value(&k.figure, k.candidate),
            change_text(&k.figure, k.change),
            interval_text(k),
            k.pairs,
            k.spread
        );
        let mut cmd = format!(
            "  reproduce: cargo run --release -p harness -- compare --baseline {} --variants {} --pairs {}",
            r.baseline.commit.as_deref().unwrap_or(&r.baseline.source),
            c.cell.variant,
            r.pairs
        );
        if let Some(p) = &args.config {
            cmd.push_str(&format!(" --config {}", p.display()));
        }
        if let Some(p) = &args.rules {
            cmd.push_str(&format!(" --rules {}", p.display()));
        }
        for k in &r.candidate_knobs {
            cmd.push_str(&format!(" --candidate-knob {k}"));
        }
        cmd.push_str(&format!(" --seed {}", r.seed));
        eprintln!("{cmd}");
    }
}
