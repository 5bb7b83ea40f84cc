//! `harness merge DIR...`: puts the run folders of a sharded sweep (or any
//! partial runs of one plan) back together into one `sweep.json` and report.
//!
//! It refuses, with one line, to mix different plans (`plan_hash`) or builds
//! (`build`), and to take the same series twice. CellOutcome missing from every
//! folder are listed; the merged result says how many the plan has.

use std::path::PathBuf;

use anyhow::Context;

use crate::experiment::results::SweepResults;
use crate::experiment::run_folder::RunFolder;
use crate::export::report::to_report;

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Run folders (or their sweep.json files) to merge.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// The results root the merged run folder goes into (and `latest`).
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// The goal rate the report marks (events/s).
    #[arg(long, default_value_t = 600_000.0)]
    pub goal_rate: f64,
}

/// Merges partial results of one plan and one build.
pub fn merge(parts: Vec<(String, SweepResults)>) -> anyhow::Result<SweepResults> {
    let mut iter = parts.into_iter();
    let (first_name, mut merged) = iter.next().context("nothing to merge")?;
    for (name, part) in iter {
        if part.plan_hash != merged.plan_hash {
            anyhow::bail!(
                "{name} ran plan {} but {first_name} ran plan {}: merge only shards of one plan",
                part.plan_hash,
                merged.plan_hash
            );
        }
        if part.build != merged.build {
            anyhow::bail!(
                "{name} was run by build {:?} but {first_name} by {:?}: merge only shards of one build",
                part.build,
                merged.build
            );
        }
        for s in part.series {
            if let Some(dup) = merged.series.iter().find(|m| m.index == s.index) {
                anyhow::bail!(
                    "{name} and an earlier folder both hold series {} ({})",
                    s.index,
                    dup.key
                );
            }
            merged.series.push(s);
        }
        for k in part.skipped {
            if !merged.skipped.contains(&k) {
                merged.skipped.push(k);
            }
        }
        for c in part.captures {
            if !merged.captures.iter().any(|m| m.file == c.file) {
                merged.captures.push(c);
            }
        }
        merged.started_unix_s = merged.started_unix_s.min(part.started_unix_s);
    }
    merged.series.sort_by_key(|s| s.index);
    merged.shard = None;
    Ok(merged)
}

pub fn run(args: MergeArgs) -> anyhow::Result<()> {
    let mut parts = Vec::new();
    for d in &args.dirs {
        let file = if d.is_dir() {
            d.join("sweep.json")
        } else {
            d.clone()
        };
        parts.push((d.display().to_string(), SweepResults::read(&file)?));
    }
    let plan_from = args.dirs[0].join("plan.toml");
    let merged = merge(parts)?;
    let missing: Vec<usize> = (0..merged.planned_series)
        .filter(|i| !merged.series.iter().any(|s| s.index == *i))
        .collect();
    let folder = RunFolder::create(&args.out, Some("merged"))?;
    if plan_from.is_file() {
        std::fs::copy(&plan_from, folder.plan_toml())
            .with_context(|| format!("copying {}", plan_from.display()))?;
    }
    for s in &merged.series {
        folder.save_series(s)?;
    }
    merged.write(&folder.sweep_json())?;
    reports::write_report(
        &folder.report_dir(),
        &to_report(&merged, Some(args.goal_rate)),
    )?;
    folder.link_latest(&args.out)?;
    println!(
        "merged {} folder(s): {} of {} series",
        args.dirs.len(),
        merged.series.len(),
        merged.planned_series
    );
    if !missing.is_empty() {
        println!("missing series (no folder holds them): {missing:?}");
    }
    println!("results  {}", folder.sweep_json().display());
    Ok(())
}
