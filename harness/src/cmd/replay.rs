//! `harness replay CAPTURE`: replay a capture, paced, into emulated kernel
//! rings read by a pipeline variant, and report what was lost and how late.
//!
//! Unset ring options default to the capture's metadata (transport, ring
//! size, ring count, wakeup), so a plain replay reproduces the recording setup.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::capture::{Capture, Transport};
use crate::replay::{
    self, drain_noop, parse_bytes, parse_duration, Bound, Pacing, ReplayOptions, Wakeup,
};
use crate::results::RunResult;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The capture (pcapng) to replay.
    pub capture: PathBuf,
    /// Pipeline variant reading the rings: `noop` (drain and measure only) or
    /// one of the pipeline variants (seed-baseline, batched, ...), which run
    /// with default knobs, the built-in classifier rules and the null sink.
    #[arg(long, default_value = "noop")]
    pub variant: String,
    /// How long a pipeline variant's sink may take to finish after the replay.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub sink_timeout: Duration,
    /// Fixed rate in records/s.
    #[arg(long, group = "pace")]
    pub rate: Option<f64>,
    /// The recorded timing, this many times faster.
    #[arg(long, group = "pace")]
    pub speed: Option<f64>,
    /// Fixed sample bytes per second, in MB/s (10^6 bytes).
    #[arg(long, group = "pace")]
    pub mbps: Option<f64>,
    /// As fast as possible.
    #[arg(long, group = "pace")]
    pub max: bool,
    /// Pass over the capture N times (default 1).
    #[arg(long, conflicts_with = "duration")]
    pub loops: Option<u64>,
    /// Loop over the capture for this long (e.g. 10s, 500ms).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Data bytes per ring, a power of two >= 4096 (e.g. 8MiB). Default: the capture's.
    #[arg(long, value_parser = parse_bytes)]
    pub ring_bytes: Option<u64>,
    /// Number of perf rings (emulated CPUs). Default: the capture's.
    #[arg(long)]
    pub rings: Option<u32>,
    /// perf or ringbuf. Default: the capture's.
    #[arg(long)]
    pub transport: Option<Transport>,
    /// events:N, watermark:BYTES, adaptive, no-wakeup/poll:1ms or forced. Default: the capture's.
    #[arg(long)]
    pub wakeup: Option<Wakeup>,
    /// Write the run's results (schema dropbench.run/1) here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Sink for a pipeline variant: null, file:PATH or kafka.
    #[arg(long, default_value = "null")]
    pub sink: String,
    /// Kafka brokers for `--sink kafka`; without them, the embedded mock cluster.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Kafka topic for `--sink kafka` (it must exist on a real broker).
    #[arg(long)]
    pub topic: Option<String>,
}

impl ReplayArgs {
    pub fn options(&self) -> ReplayOptions {
        let pacing = if let Some(r) = self.rate {
            Pacing::Rate(r)
        } else if let Some(x) = self.speed {
            Pacing::Speed(x)
        } else if let Some(m) = self.mbps {
            Pacing::Mbps(m)
        } else if self.max {
            Pacing::Max
        } else {
            Pacing::Original
        };
        let bound = match (self.duration, self.loops) {
            (Some(d), _) => Bound::Duration(d),
            (None, n) => Bound::Loops(n.unwrap_or(1)),
        };
        ReplayOptions {
            pacing,
            bound,
            transport: self.transport,
            ring_bytes: self.ring_bytes,
            rings: self.rings,
            wakeup: self.wakeup,
        }
    }
}

pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    // Check the variant before loading anything.
    let pipeline_variant = match args.variant.as_str() {
        "noop" => None,
        name => Some(
            crate::pipeline::variant(name)
                .map_err(|e| anyhow::anyhow!("{e} (or noop, the built-in drain)"))?,
        ),
    };
    let capture = Capture::load(&args.capture)?;
    if let Some((off, what)) = &capture.truncated {
        eprintln!(
            "warning: {} was cut short at byte {off} ({what}); replaying what precedes it",
            capture.file
        );
    }
    let opts = args.options();
    let (report, result) = match pipeline_variant {
        None => {
            let report = replay::run(&capture, &opts, drain_noop)?;
            let mut result = report.to_run_result();
            result.config.probe = capture.meta.probe.to_string();
            (report, result)
        }
        Some(v) => {
            let mut spec =
                crate::sink::SinkSpec::parse(&args.sink, args.brokers.clone(), args.topic.clone())
                    .map_err(anyhow::Error::msg)?;
            if let crate::sink::SinkSpec::Kafka(k) = &mut spec {
                (v.tune_kafka)(k);
            }
            let describe = spec.describe();
            println!("sink      {describe}");
            let sink = spec.open()?;
            let classifier = Arc::new(crate::classify::Classifier::default_rules());
            let r = crate::pipeline::replayed::run_replayed(
                v,
                (v.knobs)(),
                &capture,
                &opts,
                classifier,
                sink,
                args.sink_timeout,
            )?;
            let result = crate::sweep::replayed_result(&r, &capture, &describe);
            (r.replay, result)
        }
    };
    print_result(&result, &report);
    if let Some(path) = &args.json {
        result
            .write(path)
            .with_context(|| format!("writing results to {}", path.display()))?;
        println!("results   {}", path.display());
    }
    Ok(())
}

fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2} G", v / 1e9),
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e3 => format!("{:.1} k", v / 1e3),
        v => format!("{v:.0} "),
    }
}

fn ns(v: u64) -> String {
    match v {
        v if v >= 1_000_000_000 => format!("{:.2} s", v as f64 / 1e9),
        v if v >= 1_000_000 => format!("{:.2} ms", v as f64 / 1e6),
        v if v >= 1_000 => format!("{:.1} us", v as f64 / 1e3),
        v => format!("{v} ns"),
    }
}

fn print_result(r: &RunResult, rep: &replay::ReplayReport) {
    let c = &r.config;
    println!(
        "replay    {} -> {} {} ring(s) x {} bytes, wakeup {}, variant {}",
        rep.capture_file, c.transport, c.rings, c.ring_bytes, c.wakeup, r.variant
    );
    println!(
        "pacing    {} ({} loop(s) done){}",
        c.pacing,
        rep.loops_done,
        c.target_rate
            .map(|t| format!(", target {}/s", si(t)))
            .unwrap_or_default()
    );
    println!(
        "offered   {:>12}   achieved {}/s, worst lateness {}, {} record(s) >1 ms late",
        r.counts.offered,
        si(r.rates.offered_per_s),
        ns(rep.max_lateness_ns),
        rep.late_records
    );
    println!("accepted  {:>12}", r.counts.accepted);
    println!(
        "lost      {:>12}   {:.3}%   (in-band seen by reader: {}, not yet reported: {})",
        r.counts.lost, r.counts.lost_pct, r.counts.lost_seen, rep.unreported_lost
    );
    println!(
        "read      {:>12}   {}/s, {}B/s",
        r.counts.read,
        si(r.rates.read_per_s),
        si(r.rates.bytes_per_s)
    );
    match &r.latency {
        Some(l) => println!(
            "latency   p50 {}  p99 {}  p99.9 {}  max {}  (from scheduled time)",
            ns(l.p50_ns),
            ns(l.p99_ns),
            ns(l.p999_ns),
            ns(l.max_ns)
        ),
        None => println!("latency   (nothing read)"),
    }
    for ring in &r.rings {
        println!(
            "ring {:<4} high-water {} of {} bytes ({:.1}%), offered {}, lost {}",
            ring.ring,
            ring.high_water_bytes,
            ring.size_bytes,
            100.0 * ring.high_water_bytes as f64 / ring.size_bytes.max(1) as f64,
            ring.offered,
            ring.lost
        );
    }
    for s in &r.stages {
        println!(
            "cpu       {:<10} user {}  sys {}",
            s.name,
            ns(s.cpu.user_ns),
            ns(s.cpu.sys_ns)
        );
    }
    if !r.valid {
        for p in &r.problems {
            println!("PROBLEM   {p}");
        }
    }
}
