//! `harness sweep`: the main job.
//!
//! 1. Summarises each capture (samples per CPU and syscall, lost, rate over time).
//! 2. Runs the matrix (variants x ring sizes x captures, into the sink): for
//!    each configuration a ZeroLossSearch of short paced replays finds the
//!    highest rate with nothing lost anywhere.
//! 3. Writes `OUT/sweep.json` (schema dropbench.sweep/1) and the HTML report
//!    `OUT/report/index.html`, and prints the table.
//!
//! Needs only the Rust toolchain: captures are replayed (no root, no clang),
//! and with no `--brokers` the Kafka sink is librdkafka's embedded mock cluster.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::capture::Capture;
use crate::cmd::inspect::{print_info, summarize};
use crate::results::{Environment, RunResult};
use crate::sweep::{
    run_sweep, to_report, CaptureDigest, Series, SeriesKey, SweepConfig, SweepObserver,
    SweepResults, SWEEP_SCHEMA,
};

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
    /// Where results and the report go.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
}

/// The bundled fixtures, found from the working directory or the source tree.
fn fixtures_dir() -> PathBuf {
    let here = PathBuf::from("fixtures/captures");
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/captures")
}

struct Printer;

impl SweepObserver for Printer {
    fn series_start(&mut self, key: &SeriesKey) {
        print!("\n{key}\n  probes:");
        let _ = std::io::stdout().flush();
    }
    fn probe_done(&mut self, _key: &SeriesKey, rate: f64, clean: bool, r: &RunResult) {
        use crate::experiment::verdict::VerdictKind;
        let mark = match &r.verdict {
            _ if clean => "ok".to_string(),
            Some(v) if v.kind == VerdictKind::Lost && r.counts.lost > 0 => {
                format!("lost {:.1}%", r.counts.lost_pct)
            }
            Some(v) if v.kind == VerdictKind::Lost => "lost downstream".into(),
            Some(v) if v.kind == VerdictKind::Behind => {
                format!("behind ({:.0}k/s finished)", v.window.done_per_s / 1e3)
            }
            Some(v) => v.kind.to_string(),
            None => "not clean".into(),
        };
        print!(" {:.0}k {mark};", rate / 1e3);
        let _ = std::io::stdout().flush();
    }
    fn series_done(&mut self, s: &Series) {
        match (s.zero_loss_rate, s.first_lossy_rate) {
            (Some(r), Some(b)) => println!(
                "\n  holds {r:.0} events/s in steady state; fails at {b:.0} ({:.1}% bracket{})",
                100.0 * (b / r - 1.0),
                if s.capped {
                    ", cut short by the trial cap"
                } else {
                    ""
                }
            ),
            (Some(r), None) => println!(
                "\n  holds {r:.0} events/s, the highest rate searched: the real edge is higher"
            ),
            (None, _) => println!("\n  fails even at the lowest rate tried"),
        }
        if !s.valid {
            println!("  INVALID: {}", s.problems.join("; "));
        }
    }
}

pub fn run(args: SweepArgs) -> anyhow::Result<()> {
    let mut cfg = match &args.config {
        Some(p) => SweepConfig::load(p)?,
        None => SweepConfig::default(),
    };
    if !args.captures.is_empty() {
        cfg.captures = args.captures.clone();
    }
    if !args.variants.is_empty() {
        cfg.variants = args.variants.clone();
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
    cfg.check().map_err(anyhow::Error::msg)?;
    let fixtures = fixtures_dir();
    if cfg.captures.is_empty() {
        // The load generator's flat traffic and real programs' bursty traffic.
        cfg.captures = vec![
            fixtures.join("fixed4k-perf.pcapng"),
            fixtures.join("real-programs-perf.pcapng"),
        ];
    }

    // 1. What is in the captures (and the other bundled ones, for orientation).
    println!("dropbench sweep: replaying recorded kernel event streams (no root needed)\n");
    if cfg!(debug_assertions) {
        println!("note: this is a debug build, so the rates below are a smoke run; for real figures use\n      cargo run --release -p harness -- sweep\n");
    }
    let mut digests = Vec::new();
    let mut captures = Vec::new();
    for path in &cfg.captures {
        let info = summarize(path, 5)?;
        print_info(&info);
        println!();
        let cap = Capture::load(path)?;
        digests.push(CaptureDigest {
            file: path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            probe: info.meta.probe.to_string(),
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
        });
        captures.push(cap);
    }

    // 2. The matrix.
    let sink_note = crate::sink::SinkSpec::parse(&cfg.sink, cfg.brokers.clone(), None)
        .map_err(anyhow::Error::msg)?
        .describe();
    println!("sink: {sink_note}");
    if cfg.sink == "kafka" && cfg.brokers.is_none() {
        println!("      (no --brokers given: messages go to librdkafka's in-process mock cluster, labelled as such in every result;");
        println!("       its log is bounded, so the topic is not read back: delivery reports are the sink's account)");
    }
    let started_unix_s = crate::capture::clock_pair().0 / 1_000_000_000;
    let series = run_sweep(&cfg, &captures, &mut Printer)?;
    let results = SweepResults {
        schema: SWEEP_SCHEMA.into(),
        started_unix_s,
        environment: Environment::detect(),
        sink_note,
        captures: digests,
        series,
    };

    // 3. Results, report, table.
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let json = args.out.join("sweep.json");
    results.write(&json)?;
    let report_dir = args.out.join("report");
    reports::write_report(&report_dir, &to_report(&results, cfg.goal_rate))?;
    print_table(&results, cfg.goal_rate);
    println!("\nresults  {}", json.display());
    println!(
        "report   {}",
        report_dir.join(reports::INDEX_FILE).display()
    );
    if results.series.iter().any(|s| !s.valid) {
        anyhow::bail!("some runs did not balance their ledger (marked INVALID above): their figures cannot be trusted");
    }
    Ok(())
}

fn print_table(r: &SweepResults, goal: Option<f64>) {
    // Every distinct verdict rule gets a footnote number.
    let mut rules: Vec<&str> = Vec::new();
    for s in &r.series {
        if !rules.contains(&s.verdict_rule.as_str()) {
            rules.push(&s.verdict_rule);
        }
    }
    println!(
        "\n{:<18} {:<22} {:<8} {:<8} {:>5} {:<7} {:>4} {:>15} {:>8} {:>8}  goal",
        "variant",
        "capture",
        "layout",
        "transp.",
        "MiB",
        "mode",
        "rule",
        "zero-loss ev/s",
        "bracket",
        "vs seed"
    );
    for s in &r.series {
        // The seed's design on the same capture is the baseline of each ratio.
        let base = r
            .series
            .iter()
            .find(|b| b.key.variant == "seed-baseline" && b.key.capture == s.key.capture)
            .and_then(|b| b.zero_loss_rate);
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
        println!(
            "{:<18} {:<22} {:<8} {:<8} {:>5} {:<7} {:>4} {:>15} {:>8} {:>8}  {}{}",
            s.key.variant,
            capture,
            s.key.layout,
            s.key.transport,
            s.key.ring_bytes >> 20,
            s.key.mode,
            format!("[{rule}]"),
            rate,
            bracket,
            ratio,
            g,
            if s.valid { "" } else { "  INVALID" }
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        println!("[{}] {rule}", i + 1);
    }
    println!("bracket: how far above the zero-loss rate the first failing trial was (* = cut short by the trial cap)");
}
