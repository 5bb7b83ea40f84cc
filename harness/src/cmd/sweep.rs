//! `harness sweep`: the main job.
//!
//! 1. Summarises each capture (samples per CPU and syscall, lost, rate over time).
//! 2. Runs the matrix (variants x ring sizes x captures, into the sink): for
//!    each configuration a ZeroLossSearch of short paced replays finds the
//!    highest rate with nothing lost anywhere.
//! 3. Writes a run folder `OUT/<UTC time>/`: `plan.toml`, `series/NNNN.json`
//!    as each series finishes, `sweep.json` (schema dropbench.sweep/1,
//!    rewritten after each series) and the HTML report `report/index.html`;
//!    points `OUT/latest` at it, and prints the table.
//!
//! `--resume DIR` runs only the series DIR has no result for, into a new
//! folder (DIR is left as it was). `--shard I/N` runs every Nth series of the
//! plan; `harness merge` puts shards back together.
//!
//! Needs only the Rust toolchain: captures are replayed (no root, no clang),
//! and with no `--brokers` the Kafka sink is librdkafka's embedded mock cluster.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::capture::Capture;
use crate::cmd::inspect::{print_info, summarize};
use crate::experiment::plan::{Plan, SweepConfig};
use crate::experiment::results::{CaptureDigest, CellKey, CellOutcome, SweepResults, SWEEP_SCHEMA};
use crate::experiment::run_folder::{
    build_id, checksum, finished_series, write_atomically, RunFolder,
};
use crate::experiment::sweep::{run_sweep, SweepObserver};
use crate::results::{Environment, RunResult};

#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// The matrix as TOML (see ci/sweep-ci.toml). Default: the built-in matrix.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Captures to replay instead of the configured ones.
    #[arg(long = "capture")]
    pub captures: Vec<PathBuf>,
    /// Variants to run instead of the configured ones (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub variants: Vec<String>,
    /// One variant to run instead of the configured ones, repeatable and
    /// taken whole (commas kept): a name, or `exec:'COMMAND'`, your own
    /// reader of the kernel's pinned rings (kernel mode only;
    /// docs/byo-reader.md). Added after --variants.
    #[arg(long = "variant")]
    pub variant: Vec<String>,
    /// How cells run instead of the configured modes (comma-separated):
    /// replay, live, kernel.
    #[arg(long, value_delimiter = ',')]
    pub modes: Vec<String>,
    /// Kafka brokers (host:port,...). Without it the sink is the embedded mock cluster.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Sink: kafka, null or file:PATH.
    #[arg(long)]
    pub sink: Option<String>,
    /// Each trial's measured window (e.g. 1s), after its warm-up.
    #[arg(long, alias = "probe")]
    pub window: Option<String>,
    /// Each trial's warm-up (e.g. 250ms), excluded from the window.
    #[arg(long)]
    pub warmup: Option<String>,
    /// How trials space records: capture (the capture's bursts, scaled) or uniform.
    #[arg(long)]
    pub shape: Option<String>,
    /// How captures are held: auto (preloaded when they fit in memory),
    /// preload, or stream (read from the file on every pass).
    #[arg(long)]
    pub load: Option<String>,
    /// The results root: each run writes a new folder in it (and `latest`).
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Re-run only the series an earlier (interrupted) run folder has no
    /// result for, with that folder's plan; writes a new folder.
    #[arg(long, conflicts_with_all = ["config", "captures", "variants", "variant", "modes", "sink", "brokers", "window", "warmup", "shape", "load"])]
    pub resume: Option<PathBuf>,
    /// Run only shard I of N (1-based): every Nth series of the plan.
    /// `harness merge` combines the shards' folders.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,
}

/// `I/N` with 1 <= I <= N.
pub fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("bad shard {s:?}; expected I/N with 1 <= I <= N, e.g. 2/3");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if i == 0 || n == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

/// The bundled fixtures, found from the working directory or the source tree.
pub(crate) fn fixtures_dir() -> PathBuf {
    let here = PathBuf::from("fixtures/captures");
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/captures")
}

struct Printer;

impl SweepObserver for Printer {
    fn series_start(&mut self, key: &CellKey) {
        print!("\n{key}\n  trials:");
        let _ = std::io::stdout().flush();
    }
    fn trial_done(&mut self, key: &CellKey, rate: f64, clean: bool, r: &RunResult) {
        use crate::experiment::verdict::VerdictKind;
        let mark = match &r.verdict {
            _ if clean => "ok".to_string(),
            Some(v) if v.kind == VerdictKind::Lost && r.counts.lost > 0 => {
                // Stopped at its loss limit: the share is of what it offered until then.
                let stopped = r.trial.as_ref().is_some_and(|t| t.stopped_at_loss);
                format!(
                    "lost {:.1}%{}",
                    r.counts.lost_pct,
                    if stopped { " (stopped)" } else { "" }
                )
            }
            Some(v) if v.kind == VerdictKind::Lost => "lost downstream".into(),
            Some(v) if v.kind == VerdictKind::Behind => {
                format!("behind ({:.0}k/s finished)", v.window.done_per_s / 1e3)
            }
            Some(v) => v.kind.to_string(),
            None => "not clean".into(),
        };
        // A minimum-ring trial runs at another ring memory than the series': say which.
        let total = r.config.ring_bytes * u64::from(r.config.rings.max(1));
        let ring = if total == key.ring_total_bytes {
            String::new()
        } else {
            format!(" @{}K", total >> 10)
        };
        print!(" {:.0}k{ring} {mark};", rate / 1e3);
        let _ = std::io::stdout().flush();
    }
    fn series_done(&mut self, s: &CellOutcome) {
        println!("\n  {}", describe_series(s));
        if !s.valid {
            println!("  INVALID: {}", s.problems.join("; "));
        }
    }
}

pub fn run(args: SweepArgs) -> anyhow::Result<()> {
    // A resumed run takes its plan from the earlier folder, whole.
    let mut cfg = match (&args.resume, &args.config) {
        (Some(dir), _) => SweepConfig::load(&dir.join("plan.toml"))
            .with_context(|| format!("resuming {}", dir.display()))?,
        (None, Some(p)) => SweepConfig::load(p)?,
        (None, None) => SweepConfig::default(),
    };
    if !args.captures.is_empty() {
        cfg.captures = args.captures.clone();
    }
    if !args.variants.is_empty() || !args.variant.is_empty() {
        cfg.variants = args
            .variants
            .iter()
            .chain(&args.variant)
            .cloned()
            .map(Into::into)
            .collect();
    }
    if !args.modes.is_empty() {
        cfg.modes = args.modes.clone();
    }
    if args.brokers.is_some() {
        cfg.brokers = args.brokers.clone();
    }
    if let Some(s) = &args.sink {
        cfg.sink = s.clone();
    }
    if let Some(w) = &args.window {
        cfg.window = w.clone();
    }
    if let Some(w) = &args.warmup {
        cfg.warmup = w.clone();
    }
    if let Some(x) = &args.shape {
        cfg.shape = x.clone();
    }
    if let Some(x) = &args.load {
        cfg.load = x.clone();
    }
    let fixtures = fixtures_dir();
    if cfg.captures.is_empty() {
        // The load generator's flat traffic and real programs' bursty traffic.
        cfg.captures = vec![
            fixtures.join("fixed4k-perf.pcapng"),
            fixtures.join("real-programs-perf.pcapng"),
        ];
    }
    // The one place the config is checked and parsed (the file's lines were
    // named when it was read; this names the command line's values).
    let plan = Plan::from_config(cfg, "the command line")?;

    // 1. What is in the captures (and the other bundled ones, for orientation).
    use crate::experiment::plan::Mode;
    println!(
        "dropbench sweep: replaying recorded kernel event streams ({})\n",
        if plan.modes.iter().all(|m| *m == Mode::Replay) {
            "no root needed"
        } else {
            "live and kernel cells need root or CAP_BPF + CAP_PERFMON"
        }
    );
    if cfg!(debug_assertions) {
        println!("note: this is a debug build, so the rates below are a smoke run; for real figures use\n      cargo run --release -p harness -- sweep\n");
    }
    let mut digests = Vec::new();
    let mut captures = Vec::new();
    for path in plan.captures() {
        let info = summarize(path, 5)?;
        print_info(&info);
        println!();
        let loading = plan.loading();
        let cap = Capture::open(path, loading)?;
        if cap.is_streamed() {
            println!(
                "{}: streamed from the file on every pass ({} MiB; --load {})\n",
                path.display(),
                cap.summary.file_bytes >> 20,
                loading
            );
        }
        digests.push(CaptureDigest {
            file: path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            layout: info.meta.layout.to_string(),
            transport: info.meta.transport.to_string(),
            samples: info.samples,
            lost: info.lost,
            seconds: info.span_ns as f64 / 1e9,
            per_ring: info.per_ring.iter().map(|r| (r.ring, r.samples)).collect(),
            per_syscall: info
                .per_syscall
                .iter()
                .map(|s| (s.syscall.clone(), s.enter + s.exit))
                .collect(),
            holding: cap.holding().into(),
            file_bytes: cap.summary.file_bytes,
        });
        captures.push(cap);
    }

    // 2. The matrix.
    let sink_note = plan.sink().describe();
    println!("sink: {sink_note}");
    if matches!(plan.sink(), crate::sink::SinkSpec::Kafka(k) if k.brokers.is_none()) {
        println!("      (no --brokers given: messages go to librdkafka's in-process mock cluster, labelled as such in every result;");
        println!("       its log is bounded, so the topic is not read back: delivery reports are the sink's account)");
    }
    let started_unix_s = crate::host::clock_pair().0 / 1_000_000_000;
    let (planned, skipped) = plan.cells(&captures);
    let plan_text = toml::to_string(plan.config()).context("writing the plan as TOML")?;
    let plan_hash = checksum(plan_text.as_bytes());
    // What an earlier run already finished (resume), checked against this plan.
    let mut done: Vec<CellOutcome> = Vec::new();
    if let Some(dir) = &args.resume {
        for s in finished_series(dir)? {
            match planned.get(s.index) {
                Some(p) if p.key == s.key => done.push(s),
                _ => anyhow::bail!(
                    "{}: series {} ({}) is not in this plan; resume only with the folder's own plan.toml",
                    dir.display(),
                    s.index,
                    s.key
                ),
            }
        }
        println!(
            "resuming {}: {} of {} series already done",
            dir.display(),
            done.len(),
            planned.len()
        );
    }
    let in_shard = |index: usize| {
        args.shard
            .is_none_or(|(i, n)| index % n as usize == (i - 1) as usize)
    };
    let to_run = planned
        .iter()
        .filter(|p| in_shard(p.index) && !done.iter().any(|d| d.index == p.index))
        .count();
    let suffix = match (args.shard, &args.resume) {
        (Some((i, n)), _) => Some(format!("shard-{i}-of-{n}")),
        (None, Some(_)) => Some("resumed".to_string()),
        (None, None) => None,
    };
    let done_indices: Vec<usize> = done.iter().map(|s| s.index).collect();
    let folder = RunFolder::create(&args.out, suffix.as_deref())?;
    write_atomically(&folder.plan_toml(), plan_text.as_bytes())?;
    for s in &done {
        folder.save_series(s)?;
    }
    println!("run folder {}\n", folder.dir.display());
    let mut results = SweepResults {
        schema: SWEEP_SCHEMA.into(),
        started_unix_s,
        environment: Environment::detect(),
        sink_note,
        captures: digests,
        series: done.into_iter().filter(|s| in_shard(s.index)).collect(),
        plan_hash,
        build: build_id(),
        shard: args.shard,
        planned_series: planned.len(),
        // Filled as the sweep reports them (the plan's skipped cells first).
        skipped: Vec::new(),
        peak_rss_bytes: crate::host::peak_rss_bytes(),
    };
    results.write(&folder.sweep_json())?;
    let mut observer = Saver {
        folder: &folder,
        results: &mut results,
        progress: Progress::new(to_run),
        error: None,
    };
    if !skipped.is_empty() {
        println!(
            "{} cell(s) of the plan's axes cannot run (listed under skipped)",
            skipped.len()
        );
    }
    run_sweep(
        &plan,
        &captures,
        &|p| in_shard(p.index) && !done_indices.contains(&p.index),
        &mut observer,
    )?;
    observer.progress.finish();
    if let Some(e) = observer.error.take() {
        return Err(e);
    }
    results.series.sort_by_key(|s| s.index);

    // 3. Results, report, table.
    results.peak_rss_bytes = crate::host::peak_rss_bytes();
    results.write(&folder.sweep_json())?;
    let report_dir = folder.report_dir();
    // The report reads the file just written, as `harness report` does.
    crate::export::report::write(&folder.sweep_json(), None, Some(&report_dir), false)?;
    folder.link_latest(&args.out)?;
    print_table(&results, plan.goal_rate());
    if let Some(b) = results.peak_rss_bytes {
        println!("\npeak memory (RSS) {} MiB", b >> 20);
    }
    println!("\nresults  {}", folder.sweep_json().display());
    println!(
        "report   {}",
        report_dir.join(reports::INDEX_FILE).display()
    );
    run_programs(&plan, &folder.dir)?;
    if results.series.iter().any(|s| !s.valid) {
        anyhow::bail!("some runs did not balance their ledger (marked INVALID above): their figures cannot be trusted");
    }
    Ok(())
}

/// The plan's `programs`: each traced live and replayed over repeats
/// (`harness fidelity`), into `fidelity-NAME.{json,html,txt}` in the run
/// folder; without privileges they are skipped with the reason.
fn run_programs(plan: &crate::experiment::plan::Plan, dir: &std::path::Path) -> anyhow::Result<()> {
    let runs = crate::experiment::fidelity::FidelityPlan::of_sweep(plan, dir);
    if runs.is_empty() {
        return Ok(());
    }
    if let Err(e) = probes::loader::check_privileges() {
        println!("\nprograms skipped ({} of them): {e}", runs.len());
        return Ok(());
    }
    for (name, fp) in runs {
        println!(
            "\nprogram {name}: `{}`, {} cell(s) x {} repeat(s), live against replay",
            fp.command,
            fp.cells.len(),
            fp.repeats
        );
        let r = crate::experiment::fidelity::run(&fp, |line| println!("  {line}"))?;
        let _ = std::fs::remove_dir(&fp.scratch);
        let text = super::fidelity::tables(&r);
        print!("{text}");
        write_atomically(
            &dir.join(format!("fidelity-{name}.json")),
            &serde_json::to_vec_pretty(&r)?,
        )?;
        write_atomically(
            &dir.join(format!("fidelity-{name}.html")),
            crate::export::fidelity_page::render(&r).as_bytes(),
        )?;
        write_atomically(&dir.join(format!("fidelity-{name}.txt")), text.as_bytes())?;
        println!(
            "fidelity {}",
            dir.join(format!("fidelity-{name}.html")).display()
        );
    }
    Ok(())
}

/// Progress on a terminal: a bar over the series with an ETA; elsewhere
/// (CI logs, pipes) plain lines, one per trial and series.
enum Progress {
    Bar(indicatif::ProgressBar),
    Lines(Printer),
}

impl Progress {
    fn new(series: usize) -> Progress {
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() {
            let bar = indicatif::ProgressBar::new(series as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} series, ETA {eta}  {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            Progress::Bar(bar)
        } else {
            Progress::Lines(Printer)
        }
    }
    fn finish(&self) {
        if let Progress::Bar(b) = self {
            b.finish_and_clear();
        }
    }
}

/// Saves each series into the run folder as it finishes (and the whole
/// sweep.json so far), and shows progress.
struct Saver<'a> {
    folder: &'a RunFolder,
    results: &'a mut SweepResults,
    progress: Progress,
    error: Option<anyhow::Error>,
}

impl SweepObserver for Saver<'_> {
    fn series_skipped(&mut self, key: &CellKey, reason: &str) {
        let line = format!("\n{key}\n  skipped: {reason}");
        match &self.progress {
            Progress::Bar(b) => b.println(line),
            Progress::Lines(_) => println!("{line}"),
        }
        self.results
            .skipped
            .push(crate::experiment::results::SkippedCell {
                key: key.clone(),
                reason: reason.to_string(),
            });
    }
    fn series_start(&mut self, key: &CellKey) {
        match &mut self.progress {
            Progress::Bar(b) => b.set_message(key.to_string()),
            Progress::Lines(p) => p.series_start(key),
        }
    }
    fn trial_done(&mut self, key: &CellKey, rate: f64, clean: bool, r: &RunResult) {
        match &mut self.progress {
            Progress::Bar(b) => b.set_message(format!(
                "{} {}: {:.0}k/s {}",
                key.variant,
                key.capture,
                rate / 1e3,
                if clean { "ok" } else { "fails" }
            )),
            Progress::Lines(p) => p.trial_done(key, rate, clean, r),
        }
    }
    fn series_done(&mut self, s: &CellOutcome) {
        match &mut self.progress {
            Progress::Bar(b) => {
                b.println(format!(
                    "{}: {}",
                    s.key,
                    s.zero_loss_rate
                        .map_or("fails at the lowest rate".into(), |r| format!(
                            "holds {r:.0} events/s"
                        ))
                ));
                b.inc(1);
            }
            Progress::Lines(p) => p.series_done(s),
        }
        self.results.series.push(s.clone());
        self.results.series.sort_by_key(|s| s.index);
        self.results.peak_rss_bytes = crate::host::peak_rss_bytes();
        let saved = self
            .folder
            .save_series(s)
            .map_err(anyhow::Error::from)
            .and_then(|()| {
                self.results
                    .write(&self.folder.sweep_json())
                    .map_err(anyhow::Error::from)
            });
        if let Err(e) = saved {
            self.error.get_or_insert(e);
        }
    }
}

/// The series' answers in words: the zero-loss rate with its interval (the
/// bracket between it and the first failing rate), the trials per rate and
/// the rate they really offered, and the partial-drop rate with its loss.
pub fn describe_series(s: &CellOutcome) -> String {
    let pct = |p: &crate::experiment::stats::Proportion| {
        format!(
            "{:.3}% [{:.3}%, {:.3}%] ({})",
            p.p * 100.0,
            p.lo * 100.0,
            p.hi * 100.0,
            p.method
        )
    };
    let mut out = match (s.zero_loss_rate, s.first_lossy_rate) {
        (Some(r), Some(b)) => format!(
            "zero-loss (NDR) {r:.0} events/s, interval [{r:.0}, {b:.0}) (+{:.1}%{})",
            100.0 * (b / r - 1.0),
            if s.capped {
                ", cut short by the trial cap"
            } else {
                ""
            }
        ),
        (Some(r), None) if s.capped => {
            format!("zero-loss (NDR) >= {r:.0} events/s: every rate tried held, and the trial cap ended the search")
        }
        (Some(r), None) => {
            format!("zero-loss (NDR) >= {r:.0} events/s: the highest rate searched held")
        }
        (None, _) => "no zero-loss rate: fails even at the lowest rate tried".into(),
    };
    if let Some((lo, hi)) = s.ndr_achieved {
        out.push_str(&format!(
            "; {} trial(s) per rate offered {lo:.0}..{hi:.0}/s there",
            s.trials_per_rate
        ));
    }
    if !s.edges.is_empty() {
        let ends: Vec<String> = s
            .edges
            .iter()
            .map(|e| {
                format!(
                    "{} of {} clean at {:.0}/s",
                    e.tally.passed,
                    e.tally.total(),
                    e.rate
                )
            })
            .collect();
        out.push_str(&format!("\n  re-measured at the edge: {}", ends.join(", ")));
        if s.reruns > 0 {
            out.push_str(&format!(
                " (the search ran again {} time(s) when an end turned over)",
                s.reruns
            ));
        }
    }
    match s.strict_zero_loss_rate {
        Some(x) if Some(x) != s.zero_loss_rate => out.push_str(&format!(
            "\n  every trial clean up to {x:.0} events/s (the NDR if one lossy trial counted)"
        )),
        _ => {}
    }
    match (s.pdr, s.pdr_first_over) {
        (Some(p), Some(o)) => out.push_str(&format!(
            "\n  partial-drop (PDR, loss <= {}%) {p:.0} events/s, interval [{p:.0}, {o:.0})",
            s.pdr_loss * 100.0
        )),
        (Some(p), None) => out.push_str(&format!(
            "\n  partial-drop (PDR, loss <= {}%) >= {p:.0} events/s",
            s.pdr_loss * 100.0
        )),
        (None, _) => {}
    }
    if let Some(l) = &s.loss_at_pdr {
        out.push_str(&format!("; lost there {}", pct(l)));
    }
    if let (Some(b), Some(l)) = (s.first_lossy_rate, &s.loss_at_first_failing) {
        out.push_str(&format!("\n  at {b:.0}/s (first failing): lost {}", pct(l)));
    }
    if let Some(m) = &s.min_ring {
        out.push_str(&format!("\n  {}", describe_min_ring(m)));
    }
    out
}

/// The minimum-ring search's answer with its bracket, in words.
pub fn describe_min_ring(m: &crate::experiment::search::MinRing) -> String {
    let kib = |b: u64| format!("{} KiB", b >> 10);
    let at = format!("at {:.0}/s, loss <= {}%", m.rate, m.loss * 100.0);
    match (m.ring_bytes, m.failing_below) {
        (Some(r), Some(b)) => format!(
            "minimum ring {at}: {}, bracket ({}, {}]",
            kib(r),
            kib(b),
            kib(r)
        ),
        (Some(r), None) => format!(
            "minimum ring {at}: <= {} (the smallest size tried held)",
            kib(r)
        ),
        (None, _) => format!(
            "minimum ring {at}: none up to {} (the largest size tried lost more)",
            m.steps.first().map_or("?".into(), |s| kib(s.ring_bytes))
        ),
    }
}

fn print_table(r: &SweepResults, goal: Option<f64>) {
    let with_min_ring = r.series.iter().any(|s| s.min_ring.is_some());
    // Every distinct verdict rule gets a footnote number.
    let mut rules: Vec<&str> = Vec::new();
    for s in &r.series {
        if !rules.contains(&s.verdict_rule.as_str()) {
            rules.push(&s.verdict_rule);
        }
    }
    println!(
        "\n{:<18} {:<22} {:<8} {:<8} {:>5} {:<7} {:>4} {:>15} {:>8} {:>7} {:>10} {:>8}{}  goal",
        "variant",
        "capture",
        "layout",
        "transp.",
        "MiB",
        "mode",
        "rule",
        "zero-loss ev/s",
        "bracket",
        "edge",
        "PDR ev/s",
        "vs seed",
        if with_min_ring {
            format!(" {:>10}", "min ring")
        } else {
            String::new()
        }
    );
    for s in &r.series {
        // The seed's design on the same capture is the baseline of each ratio.
        let base =
            crate::export::report::baseline_of(r, &s.key).and_then(|b| r.series[b].zero_loss_rate);
        let rate = match (s.zero_loss_rate, s.reached_hi) {
            (Some(x), true) => format!(">={x:.0}"),
            (Some(x), false) => format!("{x:.0}"),
            (None, _) => "none".into(),
        };
        let bracket = match (s.zero_loss_rate, s.first_lossy_rate) {
            (Some(a), Some(b)) => format!(
                "+{:.1}%{}",
                100.0 * (b / a - 1.0),
                if s.capped { "*" } else { "" }
            ),
            _ => "-".into(),
        };
        // Clean trials of those run at the NDR, then at the first failing rate.
        let edge = s
            .edges
            .iter()
            .map(|e| format!("{}/{}", e.tally.passed, e.tally.total()))
            .collect::<Vec<_>>()
            .join(" ");
        let edge = if edge.is_empty() { "-".into() } else { edge };
        let ratio = match (s.zero_loss_rate, base) {
            (Some(x), Some(b)) if b > 0.0 => format!("{:.1}x", x / b),
            _ => "-".into(),
        };
        let g = match (s.zero_loss_rate, goal) {
            (Some(x), Some(g)) if x >= g => "meets",
            (_, Some(_)) => "below",
            _ => "",
        };
        let rule = rules
            .iter()
            .position(|x| *x == s.verdict_rule)
            .map_or(0, |i| i + 1);
        let capture: String = s.key.capture.chars().take(22).collect();
        let pdr = s.pdr.map_or("none".to_string(), |p| format!("{p:.0}"));
        // KiB, "<=" when the smallest size held, ">" past the largest.
        let min_ring = match &s.min_ring {
            Some(m) => match (m.ring_bytes, m.at_lo) {
                (Some(b), false) => format!(" {:>10}", format!("{}K", b >> 10)),
                (Some(b), true) => format!(" {:>10}", format!("<={}K", b >> 10)),
                (None, _) => format!(" {:>10}", "none"),
            },
            None if with_min_ring => format!(" {:>10}", "-"),
            None => String::new(),
        };
        println!(
            "{:<18} {:<22} {:<8} {:<8} {:>5} {:<7} {:>4} {:>15} {:>8} {:>7} {:>10} {:>8}{}  {}{}",
            // A variant with knobs of its own is marked; they are listed below.
            if s.key.knobs.is_empty() {
                s.key.variant.clone()
            } else {
                format!("{}*", s.key.variant)
            },
            capture,
            s.key.layout,
            s.key.transport,
            s.key.ring_total_bytes >> 20,
            s.key.mode,
            format!("[{rule}]"),
            rate,
            bracket,
            edge,
            pdr,
            ratio,
            min_ring,
            g,
            if s.valid { "" } else { "  INVALID" }
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        println!("[{}] {rule}", i + 1);
    }
    println!("bracket: how far above the zero-loss rate the first failing trial was (* = cut short by the trial cap)");
    println!("edge: clean trials of those run at the zero-loss rate, then at the first failing rate; a rate holds when most are clean (docs/tuning.md, \"Re-measuring at the edge\")");
    if let Some(s) = r.series.first() {
        println!(
            "PDR: the highest rate whose steady-state loss stayed within {}%; {} trial(s) per rate",
            s.pdr_loss * 100.0,
            s.trials_per_rate
        );
    }
    let mut tuned: Vec<(&str, &str)> = Vec::new();
    for s in r.series.iter().filter(|s| !s.key.knobs.is_empty()) {
        if !tuned.contains(&(&s.key.variant, &s.key.knobs)) {
            tuned.push((&s.key.variant, &s.key.knobs));
        }
    }
    for (variant, knobs) in tuned {
        println!("{variant}*: knobs {knobs} (the rest its defaults)");
    }
    if with_min_ring {
        println!("min ring: the smallest power-of-two ring memory that held the minimum-ring search's rate (its bracket is in sweep.json and above)");
    }
    for s in &r.skipped {
        println!("skipped  {}: {}", s.key, s.reason);
    }
}
