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
    /// One trial per variant at a rate: CPU per stage (ns per event, % CPU) and peak memory.
    Stages(cmd::stages::StagesArgs),
    /// Attach the probes and capture what the kernel emits into a pcapng file (root).
    Record(cmd::record::RecordArgs),
    /// Summarise a capture: counts per ring and syscall, lost, rate over time.
    Inspect(cmd::inspect::InspectArgs),
    /// Replay a capture, paced, into emulated kernel rings (or, with --kernel, the real ones) and a pipeline.
    Replay(cmd::replay::ReplayArgs),
    /// Run one cell through the real kernel: load generator, probes, rings, variant (root).
    Live(cmd::live::LiveArgs),
    /// How well replay predicts a real command's loss: live and replay runs of it in turn, over repeats (root).
    Fidelity(cmd::fidelity::FidelityArgs),
    /// Judge results by a rules file and a baseline: exit 0 pass, 1 a rule failed, 2 bad input.
    Gate(cmd::gate::GateArgs),
    /// Render the HTML report from results files (a run folder or sweep.json), optionally against a baseline.
    Report(cmd::report::ReportArgs),
    /// Write results as Bencher Metric Format or github-action-benchmark JSON.
    Export(cmd::export::ExportArgs),
    /// Compare two builds on the same cells, in turn, in one job: exit 0 pass, 1 regression, 2 bad input, 3 inconclusive.
    Compare(cmd::compare::CompareArgs),
    /// Count one deterministic pass of a variant over a capture (run under callgrind by compare).
    Count(cmd::count::CountArgs),
    /// Combine the run folders of a sharded sweep into one sweep.json and report.
    Merge(cmd::merge::MergeArgs),
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
        Command::Stages(a) => cmd::stages::run(a),
        Command::Record(a) => cmd::record::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Live(a) => cmd::live::run(a),
        Command::Fidelity(a) => cmd::fidelity::run(a),
        Command::Gate(a) => cmd::gate::run(a),
        Command::Merge(a) => cmd::merge::run(a),
        Command::Compare(a) => cmd::compare::run(a),
        Command::Count(a) => cmd::count::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Export(a) => cmd::export::run(a),
    }
}

/// The process exit code for an error: 2 for bad input the user can fix by
/// editing a config or the command line (a bad sweep config: its key and line
/// are named; a live cell without the privileges it needs), 3 for a comparison too noisy to decide, 1 for everything else
/// (a run that failed, a gate or a comparison that failed).
pub fn exit_code(err: &anyhow::Error) -> i32 {
    let bad_input = err.chain().any(|e| {
        matches!(
            e.downcast_ref::<crate::experiment::sweep::SweepError>(),
            Some(crate::experiment::sweep::SweepError::Config { .. })
        ) || e.downcast_ref::<crate::gate::GateInputError>().is_some()
            || e.downcast_ref::<crate::cmd::stages::StagesInputError>()
                .is_some()
            || e.downcast_ref::<crate::gate::input::ResultsInputError>()
                .is_some()
            || e.downcast_ref::<crate::experiment::plan::PlanError>()
                .is_some()
            || e.downcast_ref::<crate::compare::CompareInputError>()
                .is_some()
            || matches!(
                e.downcast_ref::<crate::experiment::fidelity::FidelityError>(),
                Some(
                    crate::experiment::fidelity::FidelityError::Plan(_)
                        | crate::experiment::fidelity::FidelityError::Live {
                            source: crate::experiment::live::LiveError::Privileges(_),
                            ..
                        }
                )
            )
            || matches!(
                e.downcast_ref::<crate::experiment::live::LiveError>(),
                Some(
                    crate::experiment::live::LiveError::Privileges(_)
                        | crate::experiment::live::LiveError::Program(
                            crate::experiment::program::ProgramError::Empty
                        )
                )
            )
    });
    let inconclusive = err.chain().any(|e| {
        matches!(
            e.downcast_ref::<crate::compare::CompareVerdict>(),
            Some(crate::compare::CompareVerdict::Inconclusive { .. })
        )
    });
    if bad_input {
        2
    } else if inconclusive {
        3
    } else {
        1
    }
}
