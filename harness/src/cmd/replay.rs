//! `harness replay CAPTURE`: replay a capture, paced, into emulated kernel
//! rings read by a pipeline variant, and report what was lost and how late.
//! With `--kernel`, into the kernel's real rings instead (`replay::kernel`),
//! read by dropbench's reader, a pipeline variant, or the user's own program
//! (`--variant exec:'COMMAND'`, docs/byo-reader.md).
//!
//! Unset ring options default to the capture's metadata (transport, ring
//! size, ring count, wakeup), so a plain replay reproduces the recording setup.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::capture::{Capture, Transport};
use crate::pipeline::Variant;
use crate::replay::kernel::{self, ExecSpec, Injection, KernelOptions, Ready};
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
    /// With --kernel also `exec:'COMMAND'`: your own reader, started with
    /// `sh -c` on the rings pinned on bpffs (docs/byo-reader.md).
    #[arg(long, default_value = "noop")]
    pub variant: String,
    /// Replay through the kernel's real rings: a BPF injector run with
    /// BPF_PROG_TEST_RUN on each sample's recorded CPU (root or CAP_BPF +
    /// CAP_PERFMON). Without it, the rings are emulated (no privileges needed).
    #[arg(long)]
    pub kernel: bool,
    /// exec: readers: how dropbench learns the reader is ready. `auto` (the file
    /// $DROPBENCH_READY_FILE appears or, for perf, every CPU's slot of the pinned
    /// perf event array holds the reader's perf event), `file`, or `after:DURATION`.
    #[arg(long, default_value = "auto")]
    pub exec_ready: Ready,
    /// exec: readers: how long to wait for the ready signal.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub exec_timeout: Duration,
    /// exec: readers: time given to the reader to catch up after the last
    /// injection before it is stopped (SIGTERM, then SIGKILL 2 s later).
    #[arg(long, value_parser = parse_duration, default_value = "500ms")]
    pub exec_drain: Duration,
    /// exec: readers: where bpffs is mounted (mounted there if it is an empty directory).
    #[arg(long, default_value = probes::pin::DEFAULT_BPFFS)]
    pub bpffs: PathBuf,
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
    /// How the capture is held: auto (preloaded when it fits in memory),
    /// preload, or stream (read from the file on every pass; --kernel preloads).
    #[arg(long, default_value = "auto")]
    pub load: crate::capture::Loading,
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
    /// Occupy the CPUs as the recorded command's tasks did (a capture of
    /// `harness record --run` holds their CPU profile): `on`, `off`, or `auto`
    /// (on when the capture has a profile and replays at its own timing or
    /// --speed). Emulated rings only. Off by default: measured against live
    /// runs it did not bring replay closer (docs/fidelity.md).
    #[arg(long, default_value = "off")]
    pub co_runner: CoRunnerMode,
    /// A pipeline variant's knob away from its default, NAME=VALUE
    /// (repeatable; the sweep config's names: workers=4, extra_work=2us).
    #[arg(long = "knob")]
    pub knobs: Vec<String>,
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
            stop_at_loss: None,
            pacing,
            bound,
            transport: self.transport,
            ring_bytes: self.ring_bytes,
            rings: self.rings,
            wakeup: self.wakeup,
            co_runner: None,
        }
    }
}

/// Whether replay runs the co-runner (`--co-runner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CoRunnerMode {
    Auto,
    On,
    Off,
}

impl CoRunnerMode {
    /// `opts` with the co-runner set as `self` says for `capture`.
    pub fn apply(
        self,
        capture: &Capture,
        kernel: bool,
        mut opts: ReplayOptions,
    ) -> anyhow::Result<ReplayOptions> {
        let timed = matches!(opts.pacing, Pacing::Original | Pacing::Speed(_));
        opts.co_runner = match (self, &capture.cpu_profile) {
            (CoRunnerMode::Off, _) => None,
            (CoRunnerMode::On, None) => anyhow::bail!(
                "--co-runner on: {} holds no CPU profile (record it with harness record --run)",
                capture.file
            ),
            (CoRunnerMode::On, Some(_)) if kernel => {
                anyhow::bail!("--co-runner on: the co-runner runs with emulated rings only")
            }
            (CoRunnerMode::On, Some(p)) => Some(Arc::new(p.clone())),
            (CoRunnerMode::Auto, Some(p)) if timed && !kernel => Some(Arc::new(p.clone())),
            (CoRunnerMode::Auto, _) => None,
        };
        Ok(opts)
    }
}

/// Who reads the rings.
enum Reader {
    Noop,
    Variant(&'static Variant),
    /// `exec:COMMAND` (kernel-backed only).
    Exec(String),
}

impl Reader {
    fn parse(args: &ReplayArgs) -> anyhow::Result<Reader> {
        if let Some(cmd) = args.variant.strip_prefix("exec:") {
            if !args.kernel {
                anyhow::bail!("--variant exec:... needs --kernel: an outside program can only read the kernel's real rings");
            }
            if cmd.trim().is_empty() {
                anyhow::bail!("--variant exec: needs a command, e.g. exec:'./reader'");
            }
            return Ok(Reader::Exec(cmd.to_string()));
        }
        if !args.knobs.is_empty() && args.variant == "noop" {
            anyhow::bail!("--knob sets a pipeline variant's knobs; the noop reader has none");
        }
        match args.variant.as_str() {
            "noop" => Ok(Reader::Noop),
            name => Ok(Reader::Variant(crate::pipeline::variant(name).map_err(
                |e| {
                    anyhow::anyhow!(
                        "{e} (or noop, the built-in drain, or with --kernel exec:'COMMAND')"
                    )
                },
            )?)),
        }
    }
}

/// Opens the sink a pipeline variant writes to, and says which it is.
fn open_sink(
    args: &ReplayArgs,
    v: &Variant,
) -> anyhow::Result<(Arc<dyn crate::sink::Sink>, String)> {
    let mut spec =
        crate::sink::SinkSpec::parse(&args.sink, args.brokers.clone(), args.topic.clone())
            .map_err(anyhow::Error::msg)?;
    if let crate::sink::SinkSpec::Kafka(k) = &mut spec {
        (v.tune_kafka)(k);
    }
    let describe = spec.describe();
    println!("sink      {describe}");
    Ok((spec.open()?, describe))
}

pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    // Check the variant before loading anything.
    let reader = Reader::parse(&args)?;
    let loading = if args.kernel {
        crate::capture::Loading::Preload
    } else {
        args.load
    };
    let capture = Capture::open(&args.capture, loading)?;
    if let Some((off, what)) = &capture.truncated {
        eprintln!(
            "warning: {} was cut short at byte {off} ({what}); replaying what precedes it",
            capture.file
        );
    }
    if args.kernel {
        return run_kernel(&args, &capture, reader);
    }
    let opts = args.co_runner.apply(&capture, false, args.options())?;
    if opts.co_runner.is_some() {
        println!("co-runner on: the CPUs are taken as the recorded command's tasks took them");
    }
    let (report, result) = match reader {
        Reader::Noop => {
            let report = replay::run(&capture, &opts, drain_noop)?;
            let mut result = report.to_run_result();
            result.config.layout = capture.meta.layout.to_string();
            (report, result)
        }
        Reader::Variant(v) => {
            let (sink, describe) = open_sink(&args, v)?;
            let classifier = Arc::new(crate::classify::Classifier::default_rules());
            let r = crate::pipeline::replayed::run_replayed(
                v,
                v.knobs_with(&args.knobs).map_err(anyhow::Error::msg)?,
                &capture,
                &opts,
                classifier,
                sink,
                args.sink_timeout,
            )?;
            let result = crate::experiment::trial::replayed_result(&r, &capture, &describe);
            (r.replay, result)
        }
        Reader::Exec(_) => unreachable!("Reader::parse refuses exec: without --kernel"),
    };
    print_result(&result, &report);
    write_json(&args, &result)
}

fn write_json(args: &ReplayArgs, result: &RunResult) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        result
            .write(path)
            .with_context(|| format!("writing results to {}", path.display()))?;
        println!("results   {}", path.display());
    }
    Ok(())
}

/// `--kernel`: the same capture and options, through the kernel's real rings.
fn run_kernel(args: &ReplayArgs, capture: &Capture, reader: Reader) -> anyhow::Result<()> {
    let opts = KernelOptions::new(args.co_runner.apply(capture, true, args.options())?);
    {
        // Ctrl-C (or SIGTERM) ends the run early; the engine then stops the
        // reader and removes the pins before returning.
        let stop = opts.stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Release));
    }
    let (report, mut result, injection) = match reader {
        Reader::Noop => {
            let k = kernel::run(capture, &opts, drain_noop)?;
            (k.replay.clone(), k.to_run_result(), k.injection)
        }
        Reader::Variant(v) => {
            let (sink, describe) = open_sink(args, v)?;
            let classifier = Arc::new(crate::classify::Classifier::default_rules());
            let (r, injection) = crate::pipeline::replayed::run_kernel(
                v,
                v.knobs_with(&args.knobs).map_err(anyhow::Error::msg)?,
                capture,
                &opts,
                classifier,
                sink,
                args.sink_timeout,
            )?;
            let mut result = crate::experiment::trial::replayed_result(&r, capture, &describe);
            injection.annotate(&mut result, r.replay.consumer.lost_seen);
            (r.replay, result, injection)
        }
        Reader::Exec(command) => {
            let spec = ExecSpec {
                ready: args.exec_ready,
                ready_timeout: args.exec_timeout,
                drain: args.exec_drain,
                bpffs: args.bpffs.clone(),
                ..ExecSpec::new(command)
            };
            let k = kernel::run_exec(capture, &opts, &spec)?;
            (k.replay.clone(), k.to_run_result(), k.injection)
        }
    };
    result.config.layout = capture.meta.layout.to_string();
    print_result(&result, &report);
    print_kernel(&injection);
    write_json(args, &result)
}

/// What only a kernel-backed run has: the injector's per-CPU books and the reader.
fn print_kernel(k: &Injection) {
    for s in &k.stale {
        println!("pins      {s}");
    }
    println!(
        "injector  {} test run(s), {:.1} events per run (BPF_PROG_TEST_RUN on the recorded CPU)",
        k.test_runs,
        k.events_per_run()
    );
    for (c, pending) in k.counters.kernel.cpus.iter().zip(&k.counters.lost_pending) {
        println!(
            "kernel    cpu {:<3} injected {} ok {} failed {} (nospc {} noent {} again {} other {}), not yet reported {}",
            c.cpu, c.emitted, c.output_ok, c.failed(), c.fail_nospc, c.fail_noent, c.fail_again, c.fail_other, pending
        );
    }
    if let Some(e) = &k.exec {
        println!(
            "reader    exec:{}  ready after {}, ended {}{}; pins {} (removed)",
            e.command,
            ns(e.ready_after_ns),
            e.status,
            if e.exited_during_run {
                ", EXITED DURING THE RUN"
            } else {
                ""
            },
            e.pins.display()
        );
    }
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
    if r.variant.starts_with("exec:") {
        println!(
            "read      (by the exec reader: dropbench sees only what the kernel took and refused)"
        );
    } else {
        println!(
            "read      {:>12}   {}/s, {}B/s",
            r.counts.read,
            si(r.rates.read_per_s),
            si(r.rates.bytes_per_s)
        );
    }
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
    // A kernel-backed run's rings belong to their reader: no high-water mark (print_kernel has them).
    for ring in r
        .rings
        .iter()
        .filter(|_| r.kind != crate::results::RunKind::KernelReplay)
    {
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
