//! The results schema shared by every run (`dropbench.run/1`).
//!
//! Replay, live runs and every sweep point write one [`RunResult`]; reports and
//! gates read nothing else. The schema is documented field by field in
//! `docs/results-schema.md`. Adding an optional field keeps the version;
//! renaming or removing one bumps it.

use serde::{Deserialize, Serialize};

mod command;
mod progress;
mod verdict;

pub use command::CommandOutcome;
pub use progress::{latency_histogram, Lateness, ProducerStats, ProgressSample};
pub use verdict::{Verdict, VerdictKind, WindowStats};

/// The schema id written into every result.
pub const SCHEMA: &str = "dropbench.run/1";

/// How a cell runs: the reports crate's type, so a results file, the
/// harness and the report share one vocabulary (`replay`, `kernel`, `live`).
pub use reports::Mode;

/// What kind of run wrote a result: `replay` (emulated rings),
/// `kernel-replay` (the capture injected into the kernel's rings), `live`,
/// `sweep` (a trial of a sweep's search) or `stages` (`harness stages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    Replay,
    KernelReplay,
    Live,
    Sweep,
    Stages,
}

/// One run's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Always [`SCHEMA`].
    pub schema: String,
    pub kind: RunKind,
    /// The pipeline variant that consumed the records (`noop` for the built-in drain).
    pub variant: String,
    /// Wall clock at the start of the run (ns since the Unix epoch).
    pub started_unix_ns: u64,
    /// Length of the run, first scheduled record to the consumer's end (ns).
    pub duration_ns: u64,
    pub config: RunConfig,
    pub counts: Counts,
    pub rates: Rates,
    /// Latency from each record's origin (its scheduled time in replay, its
    /// kernel timestamp live) to the consumer; `None` if nothing was read.
    pub latency: Option<Latency>,
    /// Each pipeline stage's counts and CPU time.
    pub stages: Vec<StageResult>,
    /// Per-ring counts and high-water marks.
    pub rings: Vec<RingResult>,
    pub environment: Environment,
    /// False if anything makes the figures untrustworthy (see `problems`).
    pub valid: bool,
    pub problems: Vec<String>,
    /// The pipeline's ledger (counts that must add up), owned by the ledger
    /// module; its JSON shape is the one results have always had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<crate::ledger::Ledger>,
    /// A sweep trial's steady-state verdict (absent for a plain replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// How the trial was run and judged (absent for a plain replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<TrialInfo>,
    /// The run's progress every 10 ms while the producer ran: intake,
    /// finished, ring bytes (the report's occupancy over time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub progress: Vec<ProgressSample>,
    /// The process's peak resident memory over the run (`VmHWM` after a
    /// reset at its start); absent when the reset was refused or not tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
}

/// How a sweep trial was run and judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialInfo {
    /// How the trial ran: emulated rings, the kernel's rings, or live.
    pub mode: Mode,
    /// The verdict rule, in words.
    pub rule: String,
    pub warmup_ns: u64,
    pub window_ns: u64,
    /// `capture` (the capture's inter-arrival times scaled) or `uniform`.
    pub shape: String,
    /// Records of backlog growth the rule allowed for batching.
    pub allowance: u64,
    pub producer: ProducerStats,
    /// The trial stopped early: its rings had lost more than its loss limit
    /// allows, so its verdict was decided (docs/tuning.md, "Trials").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped_at_loss: bool,
}

impl RunResult {
    pub fn new(kind: RunKind, variant: &str, config: RunConfig) -> Self {
        RunResult {
            schema: SCHEMA.to_string(),
            kind,
            variant: variant.to_string(),
            started_unix_ns: crate::host::clock_pair().0,
            duration_ns: 0,
            config,
            counts: Counts::default(),
            rates: Rates::default(),
            latency: None,
            stages: Vec::new(),
            rings: Vec::new(),
            environment: Environment::detect(),
            valid: true,
            problems: Vec::new(),
            ledger: None,
            verdict: None,
            trial: None,
            progress: Vec::new(),
            peak_rss_bytes: None,
        }
    }

    /// Records a problem and marks the run invalid.
    pub fn problem(&mut self, what: impl Into<String>) {
        self.valid = false;
        self.problems.push(what.into());
    }

    /// Writes the result as pretty JSON, atomically ([`write_atomically`]).
    pub fn write(&self, path: &std::path::Path) -> Result<(), ResultsError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| ResultsError::Encode {
            path: path.display().to_string(),
            source: e,
        })?;
        write_atomically(path, &json).map_err(|source| ResultsError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Reads a result, checking its schema id.
    pub fn read(path: &std::path::Path) -> Result<RunResult, ResultsError> {
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ResultsError::Io {
            path: p.clone(),
            source,
        })?;
        Self::from_json(&bytes, &p)
    }

    /// Parses a result held in memory, checking its schema id; `origin` names
    /// it in errors.
    pub fn from_json(bytes: &[u8], origin: &str) -> Result<RunResult, ResultsError> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|source| ResultsError::Decode {
                path: origin.to_string(),
                source,
            })?;
        let schema = v.get("schema").and_then(|s| s.as_str()).unwrap_or("");
        if schema != SCHEMA {
            return Err(ResultsError::Schema {
                path: origin.to_string(),
                found: schema.to_string(),
            });
        }
        serde_json::from_value(v).map_err(|source| ResultsError::Decode {
            path: origin.to_string(),
            source,
        })
    }
}

/// Writes `bytes` to `path` whole or not at all: into a temporary file in the
/// same directory, synced, then renamed over `path` (a rename within one
/// directory is atomic). If anything fails (a full disk), the temporary file
/// is removed and whatever was at `path` before is left as it was.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    // On an error, `persist` hands the temporary file back and dropping it removes it.
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Errors reading or writing results.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: cannot encode results: {source}")]
    Encode {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: not valid results JSON: {source}")]
    Decode {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: schema {found:?}, this build reads {SCHEMA:?}")]
    Schema { path: String, found: String },
}

/// What was run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Capture replayed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<String>,
    /// The event layout, `fixed4k` or `compact` (`probe` in files written
    /// before issue 31, still read).
    #[serde(alias = "probe")]
    pub layout: String,
    /// `perf` or `ringbuf`.
    pub transport: String,
    /// Data bytes per ring.
    pub ring_bytes: u64,
    pub rings: u32,
    /// Wakeup policy, e.g. `events:1`, `watermark:4194304`, `adaptive`.
    pub wakeup: String,
    /// Pacing, e.g. `original`, `speed:2`, `rate:500000`, `mbps:800`, `max`.
    pub pacing: String,
    /// Target rate in records/s, when the pacing fixes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<f64>,
    /// Loops over the capture, or `None` when bounded by a duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loops: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ns: Option<u64>,
    /// What else the run was given: its sink, rules, load, knobs, and a
    /// kernel-backed run's injector figures.
    #[serde(default, skip_serializing_if = "RunExtra::is_empty")]
    pub extra: RunExtra,
}

/// A run's settings beyond the common ones, each present only when it
/// applies. The fields are in alphabetical order, the order in which the
/// untyped object this replaced was written, so files keep their bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunExtra {
    /// A live cell's load: events each operation emits (1, or 2 with exits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_per_op: Option<f64>,
    /// A kernel-backed run's injector figures: `test_runs`,
    /// `events_per_run`, `counters` (per CPU) and `exec` (an outside
    /// reader's outcome), as `replay::kernel::Injection::annotate` writes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<serde_json::Value>,
    /// `harness stages`: the knobs set away from the variant's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knobs: Option<String>,
    /// A live cell's mix of operations (the share of each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_mix: Option<loadgen::OpMix>,
    /// The classifier's rules (`default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<String>,
    /// The sink, described (`null (discards messages)`, `kafka (mock)`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
    /// A live cell of a real command: how the command ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandOutcome>,
}

impl RunExtra {
    /// Nothing set: the field is left out of the file.
    pub fn is_empty(&self) -> bool {
        *self == RunExtra::default()
    }

    /// The sink and the classifier's default rules, as every trial records them.
    pub fn sink(sink: impl Into<String>) -> RunExtra {
        RunExtra {
            sink: Some(sink.into()),
            rules: Some("default".into()),
            ..RunExtra::default()
        }
    }
}

/// Record counts. `offered = accepted + lost`; `read` counts samples the consumer saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Samples the producer tried to put into the rings.
    pub offered: u64,
    /// Samples that fit and were written.
    pub accepted: u64,
    /// Samples dropped because the ring was full.
    pub lost: u64,
    /// `100 * lost / offered` (0 when nothing was offered).
    pub lost_pct: f64,
    /// Samples the consumer read.
    pub read: u64,
    /// Sum of the lost counts the consumer saw in-band (PERF_RECORD_LOST, or
    /// the ring buffer's drop counter).
    pub lost_seen: u64,
    /// Sample bytes accepted into the rings.
    pub bytes: u64,
}

impl Counts {
    pub fn set_lost_pct(&mut self) {
        self.lost_pct = if self.offered == 0 {
            0.0
        } else {
            100.0 * self.lost as f64 / self.offered as f64
        };
    }
}

/// Rates over the run's duration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Records/s the producer offered (achieved, not target).
    pub offered_per_s: f64,
    /// Records/s the consumer read.
    pub read_per_s: f64,
    /// Bytes/s accepted into the rings.
    pub bytes_per_s: f64,
}

/// Latency percentiles in ns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
}

impl Latency {
    pub fn from_histogram(h: &hdrhistogram::Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        Some(Latency {
            count: h.len(),
            p50_ns: h.value_at_quantile(0.50),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
            mean_ns: h.mean(),
        })
    }
}

/// One pipeline stage (producer, reader, decode, classify, sink...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageResult {
    pub name: String,
    pub records_in: u64,
    pub records_out: u64,
    pub dropped: u64,
    /// CPU time of the stage: its threads' clocks, or, for a stage that
    /// shares threads with others, its estimate (the total in `user_ns`).
    pub cpu: CpuTime,
    /// CPU ns per event read (0 in results older than the stage table).
    #[serde(default)]
    pub ns_per_event: f64,
    /// Share of the machine: CPU ns / (wall ns x online CPUs) over the run.
    #[serde(default)]
    pub cpu_share: f64,
    /// How the stage was measured, when it is not simply its threads' clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// CPU time in ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTime {
    pub user_ns: u64,
    pub sys_ns: u64,
}

impl CpuTime {
    /// CPU time of the calling thread so far.
    pub fn thread() -> CpuTime {
        Self::rusage(libc::RUSAGE_THREAD)
    }
    /// CPU time of the whole process so far.
    pub fn process() -> CpuTime {
        Self::rusage(libc::RUSAGE_SELF)
    }
    fn rusage(who: libc::c_int) -> CpuTime {
        // SAFETY: ru is a valid out-pointer; zeroed is a valid rusage.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut ru) };
        let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
        CpuTime {
            user_ns: ns(ru.ru_utime),
            sys_ns: ns(ru.ru_stime),
        }
    }
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user_ns: self.user_ns.saturating_sub(earlier.user_ns),
            sys_ns: self.sys_ns.saturating_sub(earlier.sys_ns),
        }
    }
    pub fn total_ns(self) -> u64 {
        self.user_ns + self.sys_ns
    }
}

/// One ring's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RingResult {
    pub ring: u32,
    pub size_bytes: u64,
    pub offered: u64,
    pub accepted: u64,
    pub lost: u64,
    /// Most bytes ever waiting in the ring (written, not yet consumed).
    pub high_water_bytes: u64,
    /// Wakeups the producer signalled.
    pub wakeups: u64,
}

/// The machine a run ran on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub kernel: String,
    pub cpus: u32,
    pub cpu_model: String,
    pub hostname: String,
    /// dropbench's version.
    pub version: String,
}

impl Environment {
    pub fn detect() -> Environment {
        let (kernel, hostname) = crate::host::uname();
        Environment {
            kernel,
            cpus: crate::host::cpus(),
            cpu_model: crate::host::cpu_model(),
            hostname,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_schema() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        let mut r = RunResult::new(RunKind::Replay, "noop", RunConfig::default());
        r.counts.offered = 10;
        r.counts.lost = 1;
        r.counts.set_lost_pct();
        r.problem("pacing fell behind");
        r.write(&p).unwrap();
        let back = RunResult::read(&p).unwrap();
        assert_eq!(back, r);
        assert!((back.counts.lost_pct - 10.0).abs() < 1e-9);
        assert!(!back.valid);

        std::fs::write(&p, br#"{"schema":"dropbench.run/0"}"#).unwrap();
        let e = RunResult::read(&p).unwrap_err().to_string();
        assert!(e.contains("dropbench.run/0"), "{e}");
    }
}
