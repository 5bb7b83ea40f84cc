//! Command-line parsing. Each subcommand's options live beside its code in `cmd/`.

use clap::{Parser, Subcommand};

use crate::cmd;

#[derive(Debug, Parser)]
#[command(
    name = "harness",
    version,
    about = "dropbench: which eBPF event pipeline holds at your rate, measured on your traffic"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the configuration matrix and find each variant's highest zero-loss rate.
    Sweep(cmd::sweep::SweepArgs),
    /// Attach the probes and capture what the kernel emits into a pcapng file (root).
    Record(cmd::record::RecordArgs),
    /// Summarise a capture: counts per ring and syscall, lost, rate over time.
    Inspect(cmd::inspect::InspectArgs),
    /// Replay a capture, paced, into emulated kernel rings (or, with --kernel, the real ones) and a pipeline.
    Replay(cmd::replay::ReplayArgs),
    /// Fail (exit 1) when a sweep's zero-loss rates regress against a baseline.
    Gate(cmd::gate::GateArgs),
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DROPBENCH_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Sweep(a) => cmd::sweep::run(a),
        Command::Record(a) => cmd::record::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Gate(a) => cmd::gate::run(a),
    }
}
