//! Sweep results: what `harness sweep` writes and `harness gate` reads.
//!
//! One file, `sweep.json`, schema [`SWEEP_SCHEMA`]. It holds the environment,
//! a summary of each capture, and one [`CellOutcome`] per cell of the plan
//! (variant x layout x transport x ring size x sink x capture x mode). A
//! series carries its searches' answers and every trial of them as a full run
//! result in the `dropbench.run/1` schema (docs/results-schema.md).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::results::{Environment, Mode, RunResult};

pub const SWEEP_SCHEMA: &str = "dropbench.sweep/1";

/// Identifies one configuration of the matrix; the gate matches series on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CellKey {
    pub variant: String,
    /// Capture file name (not the path: baselines move between machines).
    pub capture: String,
    pub layout: String,
    pub transport: String,
    /// Ring memory of the cell over all its rings (one ring per CPU for
    /// perf): `ring_bytes` in files written before issue 31, still read.
    #[serde(alias = "ring_bytes")]
    pub ring_total_bytes: u64,
    pub wakeup: String,
    pub sink: String,
    /// `replay` (emulated rings), `live` (real probes) or `kernel` (the injector into real rings).
    #[serde(default)]
    pub mode: Mode,
    /// The knobs set away from the variant's defaults (`workers=4`); empty
    /// for its defaults (and in files written before knobs were settable).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub knobs: String,
    /// What stood behind a `kafka` sink: `mock` (librdkafka's embedded mock
    /// cluster) or `broker` (a real one, `--brokers`); empty for other sinks
    /// and in files written before it was recorded.
    #[serde(default)]
    pub broker: String,
    /// The harness build's profile, `debug` or `release`; empty in files
    /// written before it was recorded.
    #[serde(default)]
    pub profile: String,
}

impl CellKey {
    /// `broker` for a sink and its brokers (see the field).
    pub fn broker_of(sink: &str, brokers: Option<&str>) -> String {
        match (sink, brokers) {
            ("kafka", Some(_)) => "broker".into(),
            ("kafka", None) => "mock".into(),
            _ => String::new(),
        }
    }

    /// This build's `profile`.
    pub fn this_profile() -> String {
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .into()
    }
}

impl std::fmt::Display for CellKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} [{} {} {} ring {} KiB, {}, sink {}, {}]",
            self.variant,
            self.capture,
            self.layout,
            self.transport,
            self.ring_total_bytes >> 10,
            self.wakeup,
            self.sink,
            self.mode
        )?;
        if !self.knobs.is_empty() {
            write!(f, " {{{}}}", self.knobs)?;
        }
        Ok(())
    }
}

/// One configuration's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellOutcome {
    /// Position in the plan's order (captures x ring sizes x variants), so
    /// shards and resumed runs merge back into one order.
    #[serde(default)]
    pub index: usize,
    pub key: CellKey,
    /// Highest offered rate (events/s) with nothing lost anywhere; `None` if even the lowest rate lost.
    pub zero_loss_rate: Option<f64>,
    /// Lowest rate that failed the verdict; `None` if the highest rate tried was clean.
    pub first_lossy_rate: Option<f64>,
    /// The highest rate at which every trial was clean, below every rate at
    /// which any trial lost: what `zero_loss_rate` would be if one lossy
    /// trial anywhere counted (from the same trials).
    #[serde(default)]
    pub strict_zero_loss_rate: Option<f64>,
    /// The two rates that bound `zero_loss_rate`, each with the trials that
    /// settled it (a majority of the plan's `edge_trials`).
    #[serde(default)]
    pub edges: Vec<crate::experiment::search::EdgeTally>,
    /// Times re-measuring an end turned it over and the search ran again.
    #[serde(default)]
    pub reruns: usize,
    /// The rule that judged every trial (steady-state: warm-up, window, tolerance).
    #[serde(default)]
    pub verdict_rule: String,
    /// How trials spaced their records: `capture` (bursts kept) or `uniform`.
    #[serde(default)]
    pub shape: String,
    /// The search ran out of trials before its bracket reached the resolution.
    #[serde(default)]
    pub capped: bool,
    /// The highest rate searched was clean: the true zero-loss rate is at least that.
    #[serde(default)]
    pub reached_hi: bool,
    /// Trials first run at each rate; a rate holds when most of its trials
    /// are clean (the bracket's ends are re-measured: `edges`).
    #[serde(default = "one")]
    pub trials_per_rate: usize,
    /// The offered rate the trials at the zero-loss rate actually achieved:
    /// (lowest, highest) over the trials.
    #[serde(default)]
    pub ndr_achieved: Option<(f64, f64)>,
    /// PDR threshold: the steady-state loss fraction allowed (0.001 = 0.1%).
    #[serde(default)]
    pub pdr_loss: f64,
    /// The partial-drop rate: the highest rate whose steady-state loss
    /// (lost, or the share the pipeline fell behind by) stayed within `pdr_loss`.
    #[serde(default)]
    pub pdr: Option<f64>,
    /// The lowest rate past `pdr_loss`; `None` if the highest rate tried was within.
    #[serde(default)]
    pub pdr_first_over: Option<f64>,
    /// Samples lost over offered, pooled over the trials at the PDR, with its 95% interval.
    #[serde(default)]
    pub loss_at_pdr: Option<crate::experiment::stats::Proportion>,
    /// The same at the first failing rate of the zero-loss search.
    #[serde(default)]
    pub loss_at_first_failing: Option<crate::experiment::stats::Proportion>,
    /// The minimum-ring search's answer, when the plan asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ring: Option<crate::experiment::search::MinRing>,
    /// False when any trial's ledger did not balance.
    pub valid: bool,
    pub problems: Vec<String>,
    /// Every trial of the rate searches, in order.
    pub points: Vec<RunResult>,
}

/// What a capture holds, as printed before the sweep runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureDigest {
    pub file: String,
    /// The event layout (`probe` in files written before issue 31, still read).
    #[serde(alias = "probe")]
    pub layout: String,
    pub transport: String,
    pub samples: u64,
    pub lost: u64,
    pub seconds: f64,
    pub per_ring: Vec<(u32, u64)>,
    pub per_syscall: Vec<(String, u64)>,
    /// How the sweep held it: "preloaded" or "streamed" (see `load`).
    #[serde(default)]
    pub holding: String,
    /// Its file's size.
    #[serde(default)]
    pub file_bytes: u64,
}

/// The whole sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepResults {
    pub schema: String,
    pub started_unix_s: u64,
    pub environment: Environment,
    /// What stood in for the broker, in words (e.g. the embedded mock cluster).
    pub sink_note: String,
    pub captures: Vec<CaptureDigest>,
    pub series: Vec<CellOutcome>,
    /// Checksum of the plan that ran (`plan.toml` in the run folder): shards
    /// and resumed runs merge only with their own plan.
    #[serde(default)]
    pub plan_hash: String,
    /// Identity of the harness build that ran it (version, profile, checksum
    /// of the executable): merge refuses to mix builds.
    #[serde(default)]
    pub build: String,
    /// `[I, N]` for shard I of N (`harness sweep --shard I/N`); absent for a whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<(u32, u32)>,
    /// How many series the whole plan has (a partial run holds fewer).
    #[serde(default)]
    pub planned_series: usize,
    /// Planned series that could not run here, each with the reason (e.g.
    /// live cells without the privileges to load BPF).
    #[serde(default)]
    pub skipped: Vec<SkippedCell>,
    /// The sweep process's peak resident memory (`VmHWM`) when it wrote this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
}

/// A planned series that did not run, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedCell {
    pub key: CellKey,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepFileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a sweep results file: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: schema {found:?}, expected {SWEEP_SCHEMA:?}")]
    Schema { path: String, found: String },
}

impl SweepResults {
    pub fn read(path: &Path) -> Result<SweepResults, SweepFileError> {
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| SweepFileError::Io {
            path: p.clone(),
            source,
        })?;
        Self::from_json(&bytes, &p)
    }

    /// Parses sweep results held in memory; `origin` names them in errors.
    pub fn from_json(bytes: &[u8], origin: &str) -> Result<SweepResults, SweepFileError> {
        let r: SweepResults =
            serde_json::from_slice(bytes).map_err(|source| SweepFileError::Parse {
                path: origin.to_string(),
                source,
            })?;
        if r.schema != SWEEP_SCHEMA {
            return Err(SweepFileError::Schema {
                path: origin.to_string(),
                found: r.schema,
            });
        }
        Ok(r)
    }

    /// Writes atomically (temp file + rename), so an interrupted run or a full
    /// disk never leaves half a file where a good one was.
    pub fn write(&self, path: &Path) -> Result<(), SweepFileError> {
        let io = |source| SweepFileError::Io {
            path: path.display().to_string(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| io(e.into()))?;
        crate::results::write_atomically(path, &bytes).map_err(io)
    }
}

fn one() -> usize {
    1
}

/// Results to test with (the gate's tests use them too).
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub(crate) fn key(v: &str) -> CellKey {
        CellKey {
            variant: v.into(),
            capture: "c.pcapng".into(),
            layout: "fixed4k".into(),
            transport: "perf".into(),
            ring_total_bytes: 1 << 20,
            wakeup: "events:1".into(),
            sink: "null".into(),
            mode: Mode::Replay,
            knobs: String::new(),
            broker: String::new(),
            profile: "debug".into(),
        }
    }
    pub(crate) fn series(v: &str, rate: Option<f64>, valid: bool) -> CellOutcome {
        CellOutcome {
            index: 0,
            key: key(v),
            zero_loss_rate: rate,
            first_lossy_rate: None,
            strict_zero_loss_rate: rate,
            edges: Vec::new(),
            reruns: 0,
            verdict_rule: String::new(),
            shape: String::new(),
            capped: false,
            reached_hi: false,
            trials_per_rate: 1,
            ndr_achieved: None,
            pdr_loss: 0.001,
            pdr: None,
            pdr_first_over: None,
            loss_at_pdr: None,
            loss_at_first_failing: None,
            min_ring: None,
            valid,
            problems: if valid { vec![] } else { vec!["ledger".into()] },
            points: vec![],
        }
    }
    pub(crate) fn results(s: Vec<CellOutcome>) -> SweepResults {
        SweepResults {
            schema: SWEEP_SCHEMA.into(),
            started_unix_s: 0,
            environment: Environment::detect(),
            sink_note: String::new(),
            captures: vec![],
            series: s,
            plan_hash: String::new(),
            build: String::new(),
            shard: None,
            planned_series: 0,
            skipped: vec![],
            peak_rss_bytes: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn results_round_trip_and_reject_other_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        let r = results(vec![series("a", Some(1.0), true)]);
        r.write(&p).unwrap();
        assert_eq!(SweepResults::read(&p).unwrap(), r);
        let mut other = r.clone();
        other.schema = "dropbench.run/1".into();
        std::fs::write(&p, serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(matches!(
            SweepResults::read(&p),
            Err(SweepFileError::Schema { .. })
        ));
        std::fs::write(&p, b"{not json").unwrap();
        assert!(matches!(
            SweepResults::read(&p),
            Err(SweepFileError::Parse { .. })
        ));
    }
}
