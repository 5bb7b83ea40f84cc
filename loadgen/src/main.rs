//! `loadgen`: paced openat/stat load from the command line.
//!
//! ```text
//! cargo run -p loadgen -- --rate 200000 --duration 5s --mix openat=1,stat=1 --threads 1 --cpus 0 --json -
//! ```
//! Prints the achieved rate every second on stderr, a summary at the end (stdout, or stderr when the
//! JSON goes to stdout), and the [`loadgen::LoadReport`] as JSON with `--json FILE` or `--json -`.
//! Bad input gets one `loadgen: error: ...` line naming the bad value and exit code 2; a failure during
//! the run exits 1.

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use loadgen::{CorpusSpec, Load, LoadConfig, PathSource, Rate, RunEnd};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

/// Paced openat/stat load at controlled, repeatable rates.
///
/// Numbers are taken as text and checked by loadgen itself, so a bad one gets a message naming it.
#[derive(Parser, Debug)]
#[command(name = "loadgen", version, allow_negative_numbers = true)]
struct Cli {
    /// Target rate over all threads in ops/s (200000, 200k, 1.5M), or `max` for no pacing.
    #[arg(long, allow_hyphen_values = true)]
    rate: String,
    /// Run length: 5s, 500ms, 2m, or plain seconds.
    #[arg(long, allow_hyphen_values = true)]
    duration: Option<String>,
    /// Run length as a total op count (an openat+close counts once).
    #[arg(long)]
    ops: Option<String>,
    /// Worker threads.
    #[arg(long, default_value = "1")]
    threads: String,
    /// CPUs to pin the workers to, worker i on the (i mod n)-th: 0,1.
    #[arg(long)]
    cpus: Option<String>,
    /// Op mix as OP=WEIGHT pairs; ops: openat (then close), stat, lstat, fstatat, statx.
    #[arg(long, default_value = "openat=1,stat=1")]
    mix: String,
    /// Ops per wake-up (paced), or ops between stop checks (max, at least 64).
    #[arg(long, default_value = "8")]
    burst: String,
    /// Nice value of the worker threads (-20..=19; below 0 needs root): -20 holds the rate on a busy machine.
    #[arg(long, allow_hyphen_values = true)]
    nice: Option<String>,
    /// Read paths from this file (one per line) instead of generating a corpus.
    #[arg(long, value_name = "FILE")]
    paths: Option<PathBuf>,
    /// Paths in the generated corpus.
    #[arg(long, default_value = "4096")]
    corpus_paths: String,
    /// Share of generated paths that are missing (ENOENT), 0..=1.
    #[arg(long, default_value = "0.1")]
    missing: String,
    /// Share of generated paths within 256 bytes of PATH_MAX, 0..=1.
    #[arg(long, default_value = "0.01")]
    long_share: String,
    /// Seed of the generated corpus.
    #[arg(long, default_value = "1")]
    seed: String,
    /// Directory to create the generated corpus in (default: /dev/shm if writable, else the temp dir).
    #[arg(long, value_name = "DIR")]
    corpus_dir: Option<PathBuf>,
    /// Write the report as JSON to FILE, or to stdout with `-`.
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// No per-second rate lines.
    #[arg(long)]
    quiet: bool,
}

fn number<T: FromStr>(flag: &str, text: &str, what: &str) -> Result<T> {
    text.trim()
        .parse()
        .map_err(|_| anyhow!("--{flag}: '{text}' is not {what}"))
}

fn config_from(cli: &Cli) -> Result<LoadConfig> {
    let rate: Rate = cli.rate.parse()?;
    let end = match (&cli.duration, &cli.ops) {
        (Some(_), Some(_)) => bail!("give either --duration or --ops, not both"),
        (None, None) => {
            bail!("the run needs an end: give --duration (e.g. 5s) or --ops (e.g. 1000000)")
        }
        (Some(d), None) => RunEnd::Duration(parse_duration(d)?),
        (None, Some(n)) => RunEnd::Ops(number("ops", n, "a whole number of ops")?),
    };
    let mut cfg = LoadConfig::new(rate, end);
    cfg.threads = number("threads", &cli.threads, "a whole number of threads")?;
    cfg.burst = number("burst", &cli.burst, "a whole number of ops")?;
    cfg.mix = cli.mix.parse()?;
    if let Some(n) = &cli.nice {
        cfg.nice = Some(number("nice", n, "a whole nice value (-20..=19)")?);
    }
    if let Some(list) = &cli.cpus {
        let cpus = list
            .split(',')
            .map(|c| number::<usize>("cpus", c, "a CPU number"))
            .collect::<Result<Vec<_>>>()?;
        cfg.cpus = Some(cpus);
    }
    cfg.paths = match &cli.paths {
        Some(file) => PathSource::ListFile(file.clone()),
        None => PathSource::Generated(CorpusSpec {
            paths: number("corpus-paths", &cli.corpus_paths, "a whole number of paths")?,
            missing_share: number("missing", &cli.missing, "a share between 0 and 1")?,
            long_share: number("long-share", &cli.long_share, "a share between 0 and 1")?,
            seed: number("seed", &cli.seed, "a whole number")?,
            parent_dir: cli.corpus_dir.clone(),
        }),
    };
    Ok(cfg)
}

fn parse_duration(text: &str) -> Result<Duration> {
    if let Ok(secs) = text.trim().parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| {
            anyhow!("--duration: '{text}' is not a duration >= 0 (e.g. 5s, 500ms, 2m)")
        });
    }
    humantime::parse_duration(text.trim())
        .map_err(|e| anyhow!("--duration: '{text}' is not a duration (e.g. 5s, 500ms, 2m): {e}"))
}

/// Prints the rate of each second on stderr until the run ends (polled every 20 ms, so each line
/// covers 1 s give or take 20 ms; the rate divides by the exact interval).
fn watch(load: &Load, quiet: bool) {
    let (mut last_t, mut last_ops) = (Duration::ZERO, 0u64);
    let mut next_mark = Duration::from_secs(1);
    while !load.is_finished() {
        std::thread::sleep(Duration::from_millis(20));
        let p = load.progress();
        if p.elapsed >= next_mark {
            if !quiet {
                let rate = (p.ops - last_ops) as f64 / (p.elapsed - last_t).as_secs_f64();
                eprintln!(
                    "{:>7.2} s  {:>11.0} ops/s  {:>12} ops",
                    p.elapsed.as_secs_f64(),
                    rate,
                    p.ops
                );
            }
            (last_t, last_ops) = (p.elapsed, p.ops);
            while next_mark <= p.elapsed {
                next_mark += Duration::from_secs(1);
            }
        }
    }
}

fn run(cli: Cli, json_file: Option<std::fs::File>) -> Result<()> {
    let load = Load::start(config_from(&cli)?)
        .map_err(|e| anyhow!(e))
        .context("cannot start the load")?;
    let stopper = load.stop_handle();
    // A second Ctrl-C after the first still ends the run: the handler only sets the stop flag.
    if let Err(e) = ctrlc::set_handler(move || stopper.stop()) {
        eprintln!("loadgen: warning: no Ctrl-C handler: {e}");
    }
    watch(&load, cli.quiet);
    let report = load.join().context("the run failed")?;
    let json = serde_json::to_string_pretty(&report)?;
    match cli.json.as_deref() {
        Some("-") => {
            eprintln!("{report}");
            println!("{json}");
        }
        Some(file) => {
            let mut out = json_file.context("JSON file not opened")?;
            out.write_all((json + "\n").as_bytes())
                .with_context(|| format!("cannot write the JSON report to {file}"))?;
            println!("{report}");
        }
        None => println!("{report}"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help / --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message spans lines (the error, the missing args, usage); keep it on one.
            let text = e.to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let message = message.join(" ");
            eprintln!(
                "loadgen: error: {} (see --help)",
                message.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    // Bad input (exit 2) is everything caught before a worker runs: parsing and validation.
    if let Err(e) = config_from(&cli).and_then(|c| c.validate().map_err(|e| anyhow!(e))) {
        eprintln!("loadgen: error: {e:#}");
        return ExitCode::from(2);
    }
    // The JSON file is created before the run, so an unwritable path costs no run.
    let json_file = match cli.json.as_deref() {
        Some(file) if file != "-" => match std::fs::File::create(file) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("loadgen: error: --json: cannot create {file}: {e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    match run(cli, json_file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            let _ = std::io::stderr().flush();
            ExitCode::from(1)
        }
    }
}
