//! [`ProbeError`]: everything loading, attaching and reading the probes can fail with.

use std::path::PathBuf;

use crate::perf::PerfError;
use crate::ringbuf::RingBufError;

use super::spec::{Transport, Wakeup};

/// Errors from loading and attaching the probes.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("recording needs root or CAP_BPF + CAP_PERFMON (effective capabilities: {caps:#x}); run as root, e.g. with sudo")]
    Privileges { caps: u64 },
    #[error("tracefs is not mounted at {path} and mounting it failed: {source}")]
    Tracefs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tracepoint {category}/{name} does not exist on this kernel (looked in {path})")]
    MissingTracepoint {
        category: &'static str,
        name: String,
        path: PathBuf,
    },
    #[error("loading BPF object {object}: {source}")]
    Load {
        object: &'static str,
        source: aya::EbpfError,
    },
    #[error("program {program} is missing from {object}")]
    MissingProgram {
        program: String,
        object: &'static str,
    },
    #[error("attaching {program} to {category}/{tracepoint}: {source}")]
    Attach {
        program: String,
        category: &'static str,
        tracepoint: String,
        source: aya::programs::ProgramError,
    },
    #[error("detaching {program}: {source}")]
    Detach {
        program: String,
        source: aya::programs::ProgramError,
    },
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
    #[error("map {map} is missing or of the wrong type in {object}")]
    MissingMap {
        map: &'static str,
        object: &'static str,
    },
    #[error("wakeup policy {wakeup} does not fit transport {transport}")]
    WakeupMismatch {
        wakeup: Wakeup,
        transport: Transport,
    },
    #[error("cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("listing CPUs ({what}): {source}")]
    Cpus {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(
        "turning on the kernel's BPF run-time statistics (BPF_ENABLE_STATS, Linux 5.8+): {source}"
    )]
    RunTimeStats { source: std::io::Error },
    #[error("reading program {program}'s info: {source}")]
    ProgramInfo {
        program: String,
        source: aya::programs::ProgramError,
    },
    #[error(transparent)]
    Perf(#[from] PerfError),
    #[error(transparent)]
    RingBuf(#[from] RingBufError),
}
