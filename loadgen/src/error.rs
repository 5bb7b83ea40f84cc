//! The one error type of the load generator.

use std::path::PathBuf;

/// Everything that can go wrong when configuring, starting or joining a load run.
///
/// Each variant carries the bad value (rate, op name, CPU, path, line) so the message alone tells the
/// user what to fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("rate {rate} is not a positive number of ops/s (use a value > 0, or `max`)")]
    RateNotPositive { rate: f64 },
    #[error("rate {rate} ops/s is below the schedule's resolution of 0.001 ops/s")]
    RateTooLow { rate: f64 },
    #[error("rate {rate} ops/s is above the limit of {limit} ops/s")]
    RateTooHigh { rate: f64, limit: f64 },
    #[error(
        "cannot parse rate '{text}': expected a number of ops/s (e.g. 200000, 200k, 1.5M) or `max`"
    )]
    RateSyntax { text: String },
    #[error("unknown op '{name}' in the op mix (known ops: openat, stat, lstat, fstatat, statx)")]
    UnknownOp { name: String },
    #[error("weight '{weight}' of op '{op}' in the op mix is not a finite number >= 0")]
    BadWeight { op: String, weight: String },
    #[error("cannot parse op mix entry '{entry}': expected OP=WEIGHT, e.g. openat=1,stat=1")]
    MixSyntax { entry: String },
    #[error("op mix is empty or all its weights are 0: at least one op needs a weight > 0")]
    EmptyMix,
    #[error("op mix weight {weight} of '{op}' is too fine: weights are counted in thousandths and the mix's cycle would exceed {limit} slots")]
    MixTooFine { op: String, weight: f64, limit: u64 },
    #[error("thread count {threads} is out of range (1..={limit})")]
    BadThreads { threads: usize, limit: usize },
    #[error("burst size {burst} is out of range (1..={limit})")]
    BadBurst { burst: usize, limit: usize },
    #[error("nice value {nice} is out of range (-20..=19)")]
    BadNice { nice: i32 },
    #[error("the run has no end: give a duration > 0 or an op count > 0 (got {what})")]
    NoEnd { what: String },
    #[error("CPU {cpu} does not exist or is not available to this process (available CPUs: {available})")]
    NoSuchCpu { cpu: usize, available: String },
    #[error("the CPU pinning list is empty: give at least one CPU")]
    EmptyCpuList,
    #[error("cannot read the CPUs this process may run on: {source}")]
    Affinity { source: std::io::Error },
    #[error("cannot pin worker thread {thread} to CPU {cpu}: {source}")]
    Pin {
        thread: usize,
        cpu: usize,
        source: std::io::Error,
    },
    #[error("missing-file share {share} is not in 0..=1")]
    BadMissingShare { share: f64 },
    #[error("long-path share {share} is not in 0..=1")]
    BadLongShare { share: f64 },
    #[error("generated corpus size {paths} is out of range (1..={limit} paths)")]
    BadCorpusSize { paths: usize, limit: usize },
    #[error("corpus file {path}: {source}")]
    CorpusFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corpus file {path} holds no paths (one path per line; empty lines are skipped)")]
    EmptyCorpus { path: PathBuf },
    #[error("corpus file {path}, line {line}: path is {len} bytes, longer than PATH_MAX-1 = 4095")]
    PathTooLong {
        path: PathBuf,
        line: usize,
        len: usize,
    },
    #[error("corpus file {path}, line {line}: path contains a NUL byte")]
    PathHasNul { path: PathBuf, line: usize },
    #[error("corpus directory {path}: {source}")]
    CorpusDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot spawn worker thread {thread}: {source}")]
    Spawn {
        thread: usize,
        source: std::io::Error,
    },
    #[error("worker thread {thread} failed before the run started: {reason}")]
    WorkerSetup { thread: usize, reason: String },
    #[error("worker thread {thread} panicked")]
    WorkerPanicked { thread: usize },
}
