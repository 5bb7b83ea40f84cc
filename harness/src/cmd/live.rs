//! `harness live`: one cell through the real kernel (root).
//!
//! The load generator issues a capture's traffic (its op mix and paths) at
//! the given rate in events/s, or, with `--run CMD`, a real command runs at
//! its own pace in a cgroup of its own (experiment::program); the real probes fill real rings of the given
//! size and wakeup, in the variant's event layout and transport; the variant
//! reads them into the sink; the ledger starts from the kernel's counters;
//! the steady-state verdict judges the trial, exactly as a sweep trial.
//! Without root (or CAP_BPF + CAP_PERFMON): one error line, exit 2.
//! A command that fails or ends before the warm-up and window is reported,
//! and its trial is not judged (verdict `unmeasured`, exit 1).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::capture::Capture;
use crate::experiment::live::{run_live_trial, CommandTraffic, LiveSetup, LiveTraffic, Traffic};
use crate::experiment::trial::mean_sample_len;
use crate::experiment::verdict::VerdictRule;
use crate::replay::{parse_bytes, parse_duration, Wakeup};

#[derive(Debug, clap::Args)]
pub struct LiveArgs {
    /// The pipeline variant that reads the rings.
    #[arg(long, default_value = "batched")]
    pub variant: String,
    /// The capture whose traffic (op mix, paths) the load generator issues.
    #[arg(long, default_value = "fixtures/captures/fixed4k-perf.pcapng")]
    pub capture: PathBuf,
    /// Events per second (enter + exit events when the capture has exits).
    #[arg(long, default_value_t = 50_000.0)]
    pub rate: f64,
    /// Trace this command (run with `sh -c`, its whole process tree, in a
    /// cgroup of its own) instead of the load generator: its own traffic at
    /// its own pace. --capture and --rate are not used.
    #[arg(long, conflicts_with_all = ["rate", "load_cpu", "load_threads"])]
    pub run: Option<String>,
    /// With --run: stop the command after this long (its trial is then not judged).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub time_limit: Duration,
    /// With --run: the event layout the probes emit (default: the variant's).
    #[arg(long)]
    pub layout: Option<probes::abi::Layout>,
    /// With --run: do not emit exit events.
    #[arg(long)]
    pub no_exit: bool,
    /// Ring memory of the cell: perf splits it over the CPUs (a power of two each).
    #[arg(long, default_value = "32MiB", value_parser = parse_bytes)]
    pub ring_bytes: u64,
    /// Wakeup policy (default: events:64 for perf, no-wakeup:1ms for the ring buffer).
    #[arg(long)]
    pub wakeup: Option<Wakeup>,
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    pub warmup: Duration,
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub window: Duration,
    /// Sink: null, file:PATH or kafka.
    #[arg(long, default_value = "null")]
    pub sink: String,
    #[arg(long)]
    pub brokers: Option<String>,
    /// Kafka topic (must exist on a real broker).
    #[arg(long)]
    pub topic: Option<String>,
    /// Pin the load generator's threads to this CPU.
    #[arg(long)]
    pub load_cpu: Option<usize>,
    /// The load generator's threads: one issues ~220 k ops/s traced here, so
    /// faster live cells need two (docs/tuning.md, "What bounds a live cell").
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub load_threads: u16,
    /// Write the result (schema dropbench.run/1, kind live) here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(args: LiveArgs) -> anyhow::Result<()> {
    let variant = crate::pipeline::variant(&args.variant)?;
    probes::loader::check_privileges()
        .map_err(|e| crate::experiment::live::LiveError::Privileges(Box::new(e)))?;
    let layout = args.layout.unwrap_or(variant.layout);
    if !variant.supports(layout, variant.transport) {
        anyhow::bail!(
            "variant {} cannot read {layout} events from {}",
            variant.name,
            variant.transport
        );
    }
    // Live cells only read the capture's op mix and paths: one streamed pass.
    let generated = match &args.run {
        Some(_) => None,
        None => {
            let capture = Capture::open(&args.capture, crate::capture::Loading::Stream)?;
            let traffic = Traffic::of(&capture)?;
            Some((mean_sample_len(&capture), capture.file.clone(), traffic))
        }
    };
    let command = args.run.as_ref().map(|c| CommandTraffic {
        command: c.clone(),
        exits: !args.no_exit,
        time_limit: args.time_limit,
        profile: true,
    });
    let (traffic, mean_len, source) = match (&generated, &command) {
        (Some((len, file, t)), _) => (LiveTraffic::Generated(t), *len, file.clone()),
        (None, Some(c)) => (
            LiveTraffic::Command(c),
            // A 48-byte path: what the recorded walks of /usr average.
            probes::abi::event_size(layout, probes::abi::Kind::Enter, 48) as u64,
            format!("`{}`", c.command),
        ),
        (None, None) => unreachable!("either --run or a capture"),
    };
    let cpus = probes::loader::online_cpus()?.len().max(1) as u64;
    let ring_bytes = match variant.transport {
        probes::Transport::Perf => {
            let per = (args.ring_bytes / cpus).max(4096);
            1u64 << (63 - per.leading_zeros())
        }
        probes::Transport::Ringbuf => 1u64 << (63 - args.ring_bytes.max(4096).leading_zeros()),
    };
    let wakeup = args.wakeup.unwrap_or(match variant.transport {
        probes::Transport::Perf => Wakeup::Events(64),
        probes::Transport::Ringbuf => Wakeup::NoWakeupPoll(Duration::from_millis(1)),
    });
    let mut spec =
        crate::sink::SinkSpec::parse(&args.sink, args.brokers.clone(), args.topic.clone())
            .map_err(anyhow::Error::msg)?;
    if let crate::sink::SinkSpec::Kafka(k) = &mut spec {
        (variant.tune_kafka)(k);
    }
    let desc = spec.describe();
    let rule = VerdictRule {
        warmup_ns: args.warmup.as_nanos() as u64,
        window_ns: args.window.as_nanos() as u64,
        ..VerdictRule::default()
    };
    let setup = LiveSetup {
        variant,
        knobs: (variant.knobs)(),
        traffic,
        mean_sample_len: mean_len,
        layout,
        transport: variant.transport,
        ring_bytes,
        wakeup,
        sink: &spec,
        classifier: Arc::new(crate::classify::Classifier::default_rules()),
        rule,
        load_cpu: args.load_cpu,
        load_threads: args.load_threads.into(),
        run_time_stats: true,
    };
    let pace = match traffic {
        LiveTraffic::Generated(_) => format!("{:.0} events/s of {source}'s traffic", args.rate),
        LiveTraffic::Command(_) => format!("the traffic of {source}, at its own pace"),
    };
    println!(
        "live      {} ({} {}), {} ring(s) of {} bytes, wakeup {}, {pace}",
        variant.name,
        layout,
        variant.transport,
        if variant.transport == probes::Transport::Perf {
            cpus
        } else {
            1
        },
        ring_bytes,
        wakeup,
    );
    println!("sink      {desc}");
    let trial = run_live_trial(&setup, args.rate, spec.open()?)?;
    let k = trial.kernel.total();
    println!(
        "kernel    emitted {}  in the rings {}  lost {} (ENOSPC {}, EAGAIN {}, other {})",
        k.emitted,
        k.output_ok,
        k.failed(),
        k.fail_nospc,
        k.fail_again,
        k.fail_other + k.fail_noent
    );
    print!("{}", trial.ledger.render());
    if let Some(b) = trial.ledger.banner() {
        eprint!("{b}");
    }
    let p = trial.producer();
    match &trial.command {
        Some(c) => println!(
            "command   `{}` {} after {:.2} s; {:.0} events/s traced",
            c.command,
            match (c.exit_code, c.timed_out) {
                (_, true) => "stopped at the time limit".to_string(),
                (Some(code), _) => format!("exited {code}"),
                (None, _) => "killed by a signal".to_string(),
            },
            c.ran_ns as f64 / 1e9,
            p.achieved_per_s
        ),
        None => println!(
            "load      {:.0} events/s achieved, lateness p50 {:.1} us p99 {:.1} us max {:.1} ms",
            p.achieved_per_s,
            p.lateness.p50_ns as f64 / 1e3,
            p.lateness.p99_ns as f64 / 1e3,
            p.lateness.max_ns as f64 / 1e6
        ),
    }
    if let Some(c) = trial.cpu_split() {
        // ns of CPU per event emitted, and % of the machine's CPU over the trial.
        let (events, wall) = (
            k.emitted.max(1) as f64,
            trial.duration_ns.max(1) as f64 * cpus as f64,
        );
        let part = |ns: u64| {
            format!(
                "{:.0} ns/event ({:.0}%)",
                ns as f64 / events,
                ns as f64 * 100.0 / wall
            )
        };
        println!(
            "cpu       probes' programs {} in {} runs; {} {} (syscalls, programs included); pipeline reader {}, workers {}",
            part(c.programs.run_ns),
            c.programs.runs,
            match traffic {
                LiveTraffic::Generated(_) => "load threads",
                LiveTraffic::Command(_) => "the command's tasks",
            },
            part(c.load_ns),
            part(c.reader_ns),
            part(c.workers_ns),
        );
    }
    println!("verdict   {}: {}", trial.verdict.kind, trial.verdict.reason);
    println!("rule      {}", rule.describe());
    let result = trial.to_run_result(&setup, &source, &desc);
    if let Some(path) = &args.json {
        result
            .write(path)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("results   {}", path.display());
    }
    if !trial.ledger.is_balanced() {
        anyhow::bail!("the ledger does not balance against the kernel counters (see above)");
    }
    if let Some(why) = trial
        .command
        .as_ref()
        .and_then(|c| c.unjudged_reason(rule.warmup_ns + rule.window_ns))
    {
        anyhow::bail!("the trial was not judged: {why}");
    }
    Ok(())
}
