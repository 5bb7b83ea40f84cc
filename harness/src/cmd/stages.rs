//! `harness stages`: where each variant's time goes at one rate.
//!
//! One trial per variant at `--rate` (the sweep's cells and trial runner:
//! each variant on its own layout and transport, the capture relaid out for
//! compact variants, 32 MiB of ring), then one table: rows are variants,
//! columns the stages (producer, reader, hand-off, decode, classify,
//! serialize, sink client, broker) in ns per event and % of the machine's
//! CPU, with the peak RSS and the trial's verdict. The same run results go to
//! `OUT/<UTC time>-stages/stages.json`. How each stage is measured:
//! docs/tuning.md, "Where the time goes".

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::capture::Capture;
use crate::experiment::plan::{Plan, SweepConfig};
use crate::experiment::run_folder::RunFolder;
use crate::experiment::sweep::{CellRunner, Relaid};
use crate::pipeline::cost::STAGE_ORDER;
use crate::results::RunResult;

/// The schema id of `stages.json`.
pub const STAGES_SCHEMA: &str = "dropbench.stages/1";

#[derive(Debug, clap::Args)]
pub struct StagesArgs {
    /// Events/s offered to every variant: a number with an optional k or M
    /// suffix (300k, 1.5M).
    #[arg(long)]
    pub rate: String,
    /// A variant to run (repeatable). Default: every variant (or the
    /// `--config` plan's).
    #[arg(long = "variant")]
    pub variants: Vec<String>,
    /// A sweep plan (TOML) whose `variants` entries, knobs included, are the
    /// rows: e.g. a variant beside itself with one knob changed.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The capture to replay. Default: the bundled fixed4k capture.
    #[arg(long)]
    pub capture: Option<PathBuf>,
    /// Kafka brokers (host:port,...). Without it, and without --sink, the
    /// sink is librdkafka's embedded mock cluster.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Sink: kafka, null or file:PATH.
    #[arg(long)]
    pub sink: Option<String>,
    /// Each trial's measured window in seconds (after a 250 ms warm-up).
    #[arg(long, default_value = "4")]
    pub seconds: String,
    /// The results root: the run writes a new folder in it.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
}

/// A command-line value `harness stages` cannot use (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("--{option} {value:?}: {what}")]
pub struct StagesInputError {
    pub option: &'static str,
    pub value: String,
    pub what: String,
}

/// `stages.json`: the trials' run results, one per variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagesResults {
    /// Always [`STAGES_SCHEMA`].
    pub schema: String,
    /// The rate every variant was offered (events/s).
    pub rate: f64,
    /// The sink, as a user reads it (names the mock cluster as such).
    pub sink: String,
    pub runs: Vec<RunResult>,
}

/// `--rate`: events/s, positive and finite.
pub fn parse_rate(text: &str) -> Result<f64, StagesInputError> {
    let bad = |what: &str| StagesInputError {
        option: "rate",
        value: text.to_string(),
        what: what.to_string(),
    };
    match text.parse::<loadgen::Rate>() {
        Ok(loadgen::Rate::PerSecond(r)) if r.is_finite() && r > 0.0 => Ok(r),
        Ok(loadgen::Rate::PerSecond(_)) => Err(bad("must be a positive rate in events/s")),
        Ok(loadgen::Rate::Max) => Err(bad(
            "a trial needs a rate to hold: give events/s, e.g. 300k",
        )),
        Err(_) => Err(bad(
            "expected events/s: a number with an optional k or M suffix, e.g. 300k",
        )),
    }
}

/// `--seconds`: a positive number of seconds, at least the verdict's 100 ms.
pub fn parse_seconds(text: &str) -> Result<f64, StagesInputError> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.1 => Ok(s),
        _ => Err(StagesInputError {
            option: "seconds",
            value: text.to_string(),
            what: "expected seconds, at least 0.1 (the verdict fits progress sampled every 10 ms)"
                .into(),
        }),
    }
}

pub fn run(args: StagesArgs) -> anyhow::Result<()> {
    // Every value parsed and checked here, before anything runs.
    let rate = parse_rate(&args.rate)?;
    let seconds = parse_seconds(&args.seconds)?;
    let capture = args
        .capture
        .clone()
        .unwrap_or_else(|| crate::cmd::sweep::fixtures_dir().join("fixed4k-perf.pcapng"));
    let variants = match (&args.config, args.variants.is_empty()) {
        (Some(p), true) => SweepConfig::load(p)?.variants,
        _ => args.variants.iter().cloned().map(Into::into).collect(),
    };
    let mut cfg = SweepConfig {
        captures: vec![capture],
        variants,
        brokers: args.brokers.clone(),
        window: format!("{}ms", (seconds * 1e3).round() as u64),
        ..SweepConfig::default()
    };
    if let Some(s) = &args.sink {
        cfg.sink = s.clone();
    }
    let plan = Plan::from_config(cfg, "the command line")?;

    println!(
        "dropbench stages: each variant at {rate:.0} events/s, {seconds} s measured after a {} ms warm-up",
        plan.rule.warmup_ns / 1_000_000
    );
    if cfg!(debug_assertions) {
        println!("note: this is a debug build, so the costs below are a smoke run; for real figures use\n      cargo run --release -p harness -- stages ...");
    }
    let sink_note = plan.sink().describe();
    println!("sink: {sink_note}\n");
    let captures = plan
        .captures()
        .iter()
        .map(|p| Capture::open(p, plan.loading()))
        .collect::<Result<Vec<_>, _>>()?;
    let (cells, skipped) = plan.cells(&captures);
    for s in &skipped {
        println!("skipped  {}: {}", s.key, s.reason);
    }
    let classifier = Arc::new(crate::classify::Classifier::default_rules());
    let mut relaid = Relaid::new()?;
    let mut seq = 0usize;
    let mut runs = Vec::new();
    for cell in &cells {
        let cap = relaid.of(&captures, cell)?;
        let runner = CellRunner::new(
            &plan,
            cell,
            &captures[cell.capture],
            cap,
            classifier.clone(),
        )?;
        let (mut result, _, _) = runner
            .trial(runner.own_ring(), rate, &mut seq)
            .map_err(|e| anyhow::anyhow!("{}: {e}", cell.key))?;
        result.kind = crate::results::RunKind::Stages;
        // The row's knobs away from the variant's defaults (a plan may list
        // one variant twice with a knob changed).
        if !cell.key.knobs.is_empty() {
            result.config.extra.knobs = Some(cell.key.knobs.clone());
        }
        println!("{}: {}", cell.key, verdict_of(&result));
        runs.push(result);
    }

    let folder = RunFolder::create(&args.out, Some("stages"))?;
    // A stages run has no series: only the sweep's folders use that subfolder.
    let _ = std::fs::remove_dir(folder.dir.join("series"));
    let results = StagesResults {
        schema: STAGES_SCHEMA.into(),
        rate,
        sink: sink_note,
        runs,
    };
    let path = folder.dir.join("stages.json");
    let json = serde_json::to_vec_pretty(&results)?;
    crate::experiment::run_folder::write_atomically(&path, &json)?;
    println!();
    print!("{}", table(&results.runs));
    println!("\nresults  {}", path.display());
    if results.runs.iter().any(|r| !r.valid) {
        anyhow::bail!("some runs did not balance their ledger (see problems in stages.json): their figures cannot be trusted");
    }
    Ok(())
}

/// `clean`, or the verdict that says why not.
fn verdict_of(r: &RunResult) -> String {
    match &r.verdict {
        Some(v) if v.clean() => "clean".into(),
        Some(v) => v.kind.to_string(),
        None => "not judged".into(),
    }
}

/// The table: rows are runs, columns the stages any run has (in pipeline
/// order), each `ns/event (share %)`, then the peak RSS and the verdict.
pub fn table(runs: &[RunResult]) -> String {
    use std::fmt::Write as _;
    // The table's stages in pipeline order, then any other a run has.
    let present = |n: &str| runs.iter().any(|r| r.stages.iter().any(|s| s.name == n));
    let mut names: Vec<&str> = STAGE_ORDER.iter().copied().filter(|n| present(n)).collect();
    for s in runs.iter().flat_map(|r| &r.stages) {
        if !names.contains(&s.name.as_str()) {
            names.push(&s.name);
        }
    }
    const W: usize = 15;
    let mut out = String::new();
    let label = |r: &RunResult| match r.config.extra.knobs.as_deref() {
        Some(k) => format!("{} {{{k}}}", r.variant),
        None => r.variant.clone(),
    };
    let lw = runs
        .iter()
        .map(|r| label(r).len())
        .max()
        .unwrap_or(0)
        .max(18);
    let _ = write!(out, "{:<lw$}", "variant");
    for n in &names {
        let _ = write!(out, " {n:>W$}");
    }
    let _ = writeln!(out, " {:>9} {:>8}  verdict", "total", "RSS MiB");
    for r in runs {
        let _ = write!(out, "{:<lw$}", label(r));
        let mut total = 0.0;
        for n in &names {
            match r.stages.iter().find(|s| s.name == *n) {
                Some(s) => {
                    total += s.ns_per_event;
                    let cell = format!("{:.0} ({:.1}%)", s.ns_per_event, s.cpu_share * 100.0);
                    let _ = write!(out, " {cell:>W$}");
                }
                None => {
                    let _ = write!(out, " {:>W$}", "-");
                }
            }
        }
        let rss = r
            .peak_rss_bytes
            .map_or("-".to_string(), |b| (b >> 20).to_string());
        let _ = writeln!(out, " {total:>9.0} {rss:>8}  {}", verdict_of(r));
    }
    let _ = writeln!(
        out,
        "each stage: CPU ns per event read (share of all CPUs over the trial); docs/tuning.md, \"Where the time goes\""
    );
    let mut notes: Vec<(String, String)> = Vec::new();
    for s in runs.iter().flat_map(|r| &r.stages) {
        if let Some(n) = &s.note {
            if !notes.iter().any(|(a, b)| a == &s.name && b == n) {
                notes.push((s.name.clone(), n.clone()));
            }
        }
    }
    for (name, note) in notes {
        let _ = writeln!(out, "  {name}: {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{CpuTime, RunConfig, StageResult};

    #[test]
    fn rates_parse_with_suffixes_and_bad_ones_name_the_option() {
        assert_eq!(parse_rate("300k").unwrap(), 300_000.0);
        assert_eq!(parse_rate("1.5M").unwrap(), 1_500_000.0);
        assert_eq!(parse_rate("20000").unwrap(), 20_000.0);
        for bad in ["fast", "0", "-5k", "max", "", "inf"] {
            let e = parse_rate(bad).unwrap_err().to_string();
            assert!(e.starts_with("--rate "), "{bad}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        assert_eq!(parse_seconds("4").unwrap(), 4.0);
        assert!(parse_seconds("0.05").is_err());
        assert!(parse_seconds("4s").is_err());
    }

    fn run(variant: &str, stages: &[(&str, f64)]) -> RunResult {
        let mut r = RunResult::new(
            crate::results::RunKind::Stages,
            variant,
            RunConfig::default(),
        );
        r.stages = stages
            .iter()
            .map(|(n, ns)| StageResult {
                name: n.to_string(),
                cpu: CpuTime::default(),
                ns_per_event: *ns,
                cpu_share: ns / 1e4,
                ..Default::default()
            })
            .collect();
        r.peak_rss_bytes = Some(64 << 20);
        r
    }

    #[test]
    fn the_table_has_every_stage_in_pipeline_order_and_dashes_where_a_run_has_none() {
        let a = run(
            "compact",
            &[("producer", 1400.0), ("reader", 900.0), ("decode", 6.0)],
        );
        let b = run(
            "batched",
            &[
                ("producer", 1500.0),
                ("reader", 800.0),
                ("hand-off", 120.0),
                ("decode", 7.0),
            ],
        );
        let t = table(&[a, b]);
        let lines: Vec<&str> = t.lines().collect();
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            [
                "variant", "producer", "reader", "hand-off", "decode", "total", "RSS", "MiB",
                "verdict"
            ]
        );
        assert!(
            lines[1].starts_with("compact") && lines[1].contains(" - "),
            "{t}"
        );
        assert!(lines[1].contains("1400 (14.0%)"), "{t}");
        // 1500 + 800 + 120 + 7.
        assert!(lines[2].contains("2427") && lines[2].contains("64"), "{t}");
    }
}
