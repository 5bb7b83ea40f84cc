//! Sweep results: what `harness sweep` writes and `harness gate` reads.
//!
//! One file, `sweep.json`, schema [`SWEEP_SCHEMA`]. It holds the environment,
//! a summary of each capture, and one [`Series`] per configuration of the
//! matrix (variant x ring size x sink x capture). A series carries its
//! zero-loss rate and every probe of the search as a full run result in the
//! `dropbench.run/1` schema (docs/results-schema.md).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::results::{Environment, RunResult};

pub const SWEEP_SCHEMA: &str = "dropbench.sweep/1";

/// Identifies one configuration of the matrix; the gate matches series on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    pub variant: String,
    /// Capture file name (not the path: baselines move between machines).
    pub capture: String,
    pub layout: String,
    pub transport: String,
    pub ring_bytes: u64,
    pub wakeup: String,
    pub sink: String,
    /// `replay` (emulated rings). Live and kernel-backed cells come later.
    #[serde(default = "replay_mode")]
    pub mode: String,
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

fn replay_mode() -> String {
    "replay".into()
}

impl std::fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} [{} {} {} ring {} KiB, {}, sink {}, {}]",
            self.variant,
            self.capture,
            self.layout,
            self.transport,
            self.ring_bytes >> 10,
            self.wakeup,
            self.sink,
            self.mode
        )
    }
}

/// One configuration's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Position in the plan's order (captures x ring sizes x variants), so
    /// shards and resumed runs merge back into one order.
    #[serde(default)]
    pub index: usize,
    pub key: SeriesKey,
    /// Highest offered rate (events/s) with nothing lost anywhere; `None` if even the lowest rate lost.
    pub zero_loss_rate: Option<f64>,
    /// Lowest rate that failed the verdict; `None` if the highest rate tried was clean.
    pub first_lossy_rate: Option<f64>,
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
    /// Trials run at each rate; a rate holds only if every one is clean.
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
    /// False when any probe's ledger did not balance.
    pub valid: bool,
    pub problems: Vec<String>,
    /// Every probe of the search, in order.
    pub points: Vec<RunResult>,
}

/// What a capture holds, as printed before the sweep runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureDigest {
    pub file: String,
    pub probe: String,
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
    pub series: Vec<Series>,
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
    pub skipped: Vec<SkippedSeries>,
    /// The sweep process's peak resident memory (`VmHWM`) when it wrote this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
}

/// A planned series that did not run, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedSeries {
    pub key: SeriesKey,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: &str) -> SeriesKey {
        SeriesKey {
            variant: v.into(),
            capture: "c.pcapng".into(),
            layout: "fixed4k".into(),
            transport: "perf".into(),
            ring_bytes: 1 << 20,
            wakeup: "events:1".into(),
            sink: "null".into(),
            mode: "replay".into(),
            broker: String::new(),
            profile: "debug".into(),
        }
    }
    fn series(v: &str, rate: Option<f64>, valid: bool) -> Series {
        Series {
            index: 0,
            key: key(v),
            zero_loss_rate: rate,
            first_lossy_rate: None,
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
            valid,
            problems: if valid { vec![] } else { vec!["ledger".into()] },
            points: vec![],
        }
    }
    fn results(s: Vec<Series>) -> SweepResults {
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

    #[test]
    fn config_text_is_checked_and_names_its_origin() {
        let cfg = parse_config_str("probe = \"100ms\"\ngoal_rate = 1e5\n", "t.toml").unwrap();
        assert_eq!(cfg.goal_rate, Some(100_000.0));
        assert_eq!(
            parse_config_str("", "t.toml").unwrap(),
            SweepConfig::default()
        );
        // A goal rate that is no rate (nan was accepted: the fuzz round trip found it).
        for g in ["nan", "inf", "-inf", "0.0", "-5.0"] {
            let e = parse_config_str(&format!("goal_rate = {g}\n"), "t.toml")
                .unwrap_err()
                .to_string();
            // TOML spells nan and inf; a goal rate must be a rate (the
            // sweep_config fuzz target's round trip found nan accepted).
            assert!(
                e.starts_with("sweep config t.toml: line 1: goal_rate"),
                "{g}: {e}"
            );
        }
        let e = parse_config_str("lo = 0.0\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.toml") && e.contains("lo: 0"), "{e}");
        let e = parse_config_str("nonsense = 1\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.toml") && e.contains("nonsense"), "{e}");
    }

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

// ---------------------------------------------------------------------------
// The scheduler: runs the matrix.
// ---------------------------------------------------------------------------

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use probes::abi::Layout;

use crate::capture::{Capture, CaptureError, CaptureWriter, Loading};
use crate::classify::Classifier;
use crate::experiment::live::{run_live_trial, LiveError, LiveSetup, Traffic};
use crate::experiment::trial::{annotate, run_trial, RateShape, TrialSetup};
use crate::experiment::verdict::{VerdictKind, VerdictRule};
use crate::pipeline::replayed::{ReplayedError, ReplayedRun};
use crate::pipeline::search::{SearchError, ZeroLossSearch};
use crate::pipeline::{PipelineError, Variant};
use crate::replay::Wakeup;
use crate::sink::{Sink, SinkError, SinkSpec};
use probes::Transport;

/// The matrix, as `harness sweep --config FILE` reads it (TOML). Every field
/// has a default, so an empty file (or none) is the default sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweepConfig {
    /// Captures to replay. Default: the bundled fixed4k captures (the seed's
    /// layout): the load generator's flat traffic and real programs' bursts.
    pub captures: Vec<PathBuf>,
    /// Variant names. Default: every registered variant.
    pub variants: Vec<String>,
    /// Ring memory per configuration, e.g. `["32MiB", "4MiB"]`. The perf
    /// transport splits it over its per-CPU rings (power-of-two each); the
    /// ring buffer gets it whole. 32 MiB is the closest power of two under
    /// the seed's 35 MB buffer.
    pub ring_bytes: Vec<String>,
    /// Wakeup policies for each transport.
    pub perf_wakeup: String,
    pub ringbuf_wakeup: String,
    /// `kafka` (default), `null` or `file:PATH`.
    pub sink: String,
    /// Kafka brokers; none means librdkafka's embedded mock cluster.
    pub brokers: Option<String>,
    /// Each trial's measured window, e.g. `1s` (`probe` is the old name).
    #[serde(alias = "probe")]
    pub window: String,
    /// Each trial's warm-up before the window, e.g. `250ms`.
    pub warmup: String,
    /// The steady-state rule's tolerance: consumption may fall short of
    /// intake, and the backlog grow, by this fraction of the window's offer.
    pub tolerance: f64,
    /// `capture` (replay the capture's inter-arrival times scaled to each
    /// rate: its bursts kept) or `uniform` (evenly spaced).
    pub shape: String,
    /// Trials at each rate; a rate holds only if every one is clean.
    pub trials: usize,
    /// The partial-drop rate's threshold: the steady-state loss fraction
    /// allowed (0.001 = 0.1%).
    pub pdr_loss: f64,
    /// How each cell runs: `replay` (emulated rings, no root) and/or `live`
    /// (the load generator issues the capture's traffic through the real
    /// probes and rings; root). Live cells are skipped, with the reason, when
    /// this process may not load BPF.
    pub modes: Vec<String>,
    /// ZeroLossSearch bounds (events/s) and precision.
    pub lo: f64,
    pub hi: f64,
    pub resolution: f64,
    pub max_probes: usize,
    /// The rate the report marks as the goal (the seed's 600 k ops/s).
    pub goal_rate: Option<f64>,
    /// How captures are held: `auto` (preloaded when the file fits in half
    /// of the memory left, streamed from the file otherwise), `preload` or
    /// `stream` (docs/tuning.md, "Big captures").
    pub load: String,
    /// Extra CPU time every variant spends per event (`pipeline::Knobs::extra_work`),
    /// e.g. `20us`. Zero by default: it exists to make a variant slower on
    /// purpose, so the gate's regression test slows a variant through a knob.
    pub extra_work: String,
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            captures: Vec::new(),
            variants: Vec::new(),
            ring_bytes: vec!["32MiB".into()],
            // perf: a wakeup per 64 samples; ringbuf: no wakeups, 1 ms poll
            // (the best ring-buffer setting measured: docs/tuning.md, "Wakeup policy").
            perf_wakeup: "events:64".into(),
            ringbuf_wakeup: "no-wakeup:1ms".into(),
            sink: "kafka".into(),
            brokers: None,
            // docs/tuning.md, "Trials": long enough for ~100 progress samples
            // and many wakeups; short enough for the default sweep's budget.
            window: "1s".into(),
            warmup: "250ms".into(),
            tolerance: 0.02,
            shape: "capture".into(),
            modes: vec!["replay".into()],
            // One trial per rate keeps the default sweep under 3 minutes;
            // repeatability comes from the steady-state window instead.
            trials: 1,
            pdr_loss: 0.001,
            // Start at 40 k/s (about the seed's design's edge; the search
            // halves below it when that fails): doubling reaches 1.28 M/s in 6
            // trials, and a 10% bracket takes about 3 more, ~9 trials x 1.25 s
            // per series. (With the capture's shape a trial covers one whole
            // pass: 2.3 s at 20 k/s for the 47 k-sample real-programs capture.)
            lo: 40_000.0,
            hi: 2_000_000.0,
            resolution: 0.10,
            max_probes: 14,
            goal_rate: Some(600_000.0),
            load: "auto".into(),
            extra_work: "0s".into(),
        }
    }
}

/// Why a sweep could not run (a probe that loses samples is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("sweep config {path}: {what}")]
    Config { path: String, what: String },
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("{series}: {source}")]
    Probe {
        series: String,
        source: SearchError<TrialError>,
    },
}

/// Why one trial could not run (in either mode).
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    #[error(transparent)]
    Replay(#[from] ReplayedError),
    /// Boxed: a live trial's errors carry the probes' large load errors.
    #[error(transparent)]
    Live(Box<LiveError>),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

impl From<LiveError> for TrialError {
    fn from(e: LiveError) -> Self {
        TrialError::Live(Box::new(e))
    }
}

impl SweepConfig {
    pub fn load(path: &Path) -> Result<SweepConfig, SweepError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SweepError::Config {
            path: p.clone(),
            what: e.to_string(),
        })?;
        parse_config_str(&text, &p)
    }

    /// Checks every value, naming the bad one: `key: what is wrong`.
    pub fn check(&self) -> Result<(), String> {
        self.check_keyed()
            .map_err(|(key, what)| format!("{key}: {what}"))
    }

    /// Checks every value; on the first bad one, its key and what is wrong.
    pub fn check_keyed(&self) -> Result<(), (&'static str, String)> {
        for c in &self.captures {
            if !c.is_file() {
                return Err(("captures", format!("{} is not a file", c.display())));
            }
        }
        for r in &self.ring_bytes {
            let b = probes::units::parse_bytes(r).map_err(|e| ("ring_bytes", e))?;
            if b < 8192 {
                return Err(("ring_bytes", format!("{r:?}: at least 8 KiB")));
            }
        }
        for v in &self.variants {
            crate::pipeline::variant(v).map_err(|e| ("variants", e.to_string()))?;
        }
        let policy = |key, text: &str, want: Transport| match text.parse::<Wakeup>() {
            Ok(w) if w.transport() == want => Ok(()),
            Ok(_) => Err((key, format!("{text:?} is not a {want} policy"))),
            Err(e) => Err((key, e)),
        };
        policy("perf_wakeup", &self.perf_wakeup, Transport::Perf)?;
        policy("ringbuf_wakeup", &self.ringbuf_wakeup, Transport::Ringbuf)?;
        SinkSpec::parse(&self.sink, self.brokers.clone(), None).map_err(|e| ("sink", e))?;
        self.rule().map_err(|e| {
            let key = ["window", "warmup", "tolerance"]
                .into_iter()
                .find(|k| e.starts_with(k))
                .unwrap_or("window");
            (key, e)
        })?;
        self.shape
            .parse::<crate::experiment::trial::RateShape>()
            .map_err(|e| ("shape", e))?;
        self.load.parse::<Loading>().map_err(|e| ("load", e))?;
        self.extra_work().map_err(|e| ("extra_work", e))?;
        if self.modes.is_empty() {
            return Err(("modes", "needs at least one of replay, live".into()));
        }
        for m in &self.modes {
            if m != "replay" && m != "live" {
                return Err((
                    "modes",
                    format!("unknown mode {m:?}; expected replay or live"),
                ));
            }
        }
        let rate = |key, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err((key, format!("{v}: must be a positive rate in events/s")))
            }
        };
        rate("lo", self.lo)?;
        rate("hi", self.hi)?;
        if self.lo > self.hi {
            return Err(("hi", format!("{} is below lo {}", self.hi, self.lo)));
        }
        if !(self.resolution > 0.0 && self.resolution.is_finite()) {
            return Err((
                "resolution",
                format!("{}: must be a positive fraction, e.g. 0.1", self.resolution),
            ));
        }
        if self.max_probes == 0 {
            return Err(("max_probes", "must be at least 1".into()));
        }
        if self.trials == 0 || self.trials > 100 {
            return Err(("trials", format!("{}: must be 1..=100", self.trials)));
        }
        if !(self.pdr_loss > 0.0 && self.pdr_loss < 1.0) {
            return Err((
                "pdr_loss",
                format!(
                    "{}: must be a fraction in (0, 1), e.g. 0.001 for 0.1%",
                    self.pdr_loss
                ),
            ));
        }
        if let Some(g) = self.goal_rate {
            rate("goal_rate", g)?;
        }
        Ok(())
    }

    /// The `extra_work` knob as a duration.
    pub fn extra_work(&self) -> Result<Duration, String> {
        probes::units::parse_duration(&self.extra_work)
    }

    /// The steady-state verdict rule these settings give.
    pub fn rule(&self) -> Result<VerdictRule, String> {
        let window =
            probes::units::parse_duration(&self.window).map_err(|e| format!("window: {e}"))?;
        let warmup =
            probes::units::parse_duration(&self.warmup).map_err(|e| format!("warmup: {e}"))?;
        if window < Duration::from_millis(100) {
            return Err(format!(
                "window {:?}: at least 100ms (the verdict fits progress sampled every 10 ms)",
                self.window
            ));
        }
        if !(self.tolerance > 0.0 && self.tolerance < 0.5) {
            return Err(format!(
                "tolerance {}: must be a fraction in (0, 0.5), e.g. 0.02",
                self.tolerance
            ));
        }
        Ok(VerdictRule {
            warmup_ns: warmup.as_nanos() as u64,
            window_ns: window.as_nanos() as u64,
            tolerance: self.tolerance,
            ..VerdictRule::default()
        })
    }

    fn variants(&self) -> Result<Vec<&'static Variant>, SweepError> {
        if self.variants.is_empty() {
            return Ok(crate::pipeline::VARIANTS.iter().collect());
        }
        Ok(self
            .variants
            .iter()
            .map(|v| crate::pipeline::variant(v))
            .collect::<Result<_, _>>()?)
    }
}

/// The 1-based line of `key = ...` in a TOML text, if it is there.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// Parses and checks a sweep config; every error names the file (`origin`),
/// the line and the key, in one line.
pub fn parse_config_str(text: &str, origin: &str) -> Result<SweepConfig, SweepError> {
    let err = |what: String| SweepError::Config {
        path: origin.to_string(),
        what,
    };
    let cfg: SweepConfig = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        // toml's message may span lines ("invalid array\nexpected `]`"): one line.
        let msg = e.message().trim().replace('\n', "; ");
        err(match line {
            Some(l) => format!("line {l}: {msg}"),
            None => msg,
        })
    })?;
    cfg.check_keyed().map_err(|(key, what)| {
        err(match line_of(text, key) {
            Some(l) => format!("line {l}: {key}: {what}"),
            None => format!("{key}: {what}"),
        })
    })?;
    Ok(cfg)
}

/// The same events in another layout, as that probe would have emitted them
/// (compact <-> fixed4k), written next to `dir` and loaded back.
pub fn relayout(src: &Capture, layout: Layout, dir: &Path) -> Result<Capture, CaptureError> {
    use probes::abi::{encode_event, Event};
    use probes::record::RecordRef;
    let path = dir.join(format!(
        "{}-as-{}.pcapng",
        Path::new(&src.file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("capture"),
        layout.name()
    ));
    let mut meta = src.meta.clone();
    meta.probe = layout;
    let mut w = CaptureWriter::create(&path, &meta)?;
    let mut buf = Vec::new();
    let mut err = None;
    let read = src.for_each(|e| {
        if err.is_some() {
            return;
        }
        let r = match e.rec {
            RecordRef::Sample {
                ring,
                origin_ns,
                data,
            } => match Event::decode(data) {
                Ok(ev) => {
                    encode_event(layout, &ev.header, ev.path, &mut buf);
                    w.write(RecordRef::Sample {
                        ring,
                        origin_ns,
                        data: &buf,
                    })
                }
                Err(_) => w.write(e.rec),
            },
            lost => w.write(lost),
        };
        if let Err(x) = r {
            err = Some(x);
        }
    });
    read?;
    if let Some(e) = err {
        return Err(e);
    }
    w.finish(&[])?;
    // Held as its source is: a streamed capture's relayout is streamed too.
    Capture::open(
        &path,
        if src.is_streamed() {
            Loading::Stream
        } else {
            Loading::Auto
        },
    )
}

/// A replayed pipeline run in the shared results schema, with its ledger
/// checked: any imbalance is a problem that marks the result invalid.
pub fn replayed_result(r: &ReplayedRun, capture: &Capture, sink: &str) -> RunResult {
    let mut result = r.replay.to_run_result();
    result.config.probe = capture.meta.probe.to_string();
    result.config.extra = serde_json::json!({ "sink": sink, "rules": "default" });
    for imbalance in r.ledger.check() {
        result.problem(format!("ledger: {}: {}", imbalance.check, imbalance.detail));
    }
    result.ledger = serde_json::to_value(&r.ledger).ok();
    result
}

/// The sink a variant's probes write to, tuned for that variant. The Kafka
/// topic is read back only from a real broker: librdkafka's mock cluster keeps
/// a bounded log (past ~1 s at 160 k/s the earliest offsets are gone, "offset
/// out of range"), so a read-back there measures the mock, not the pipeline.
/// Its delivery reports still balance; the ledger lists the read-back as unchecked.
fn sink_spec(cfg: &SweepConfig, v: &Variant) -> Result<SinkSpec, SweepError> {
    let mut spec = SinkSpec::parse(&cfg.sink, cfg.brokers.clone(), None).map_err(|what| {
        SweepError::Config {
            path: "sink".into(),
            what,
        }
    })?;
    if let SinkSpec::Kafka(k) = &mut spec {
        (v.tune_kafka)(k);
        k.consume_back = k.brokers.is_some();
    }
    Ok(spec)
}

/// Opens `spec` for one probe. On a real broker every probe gets a fresh
/// topic: tansu's cost per produce grows with what a partition already holds,
/// so history would leak from one probe into the next.
/// Returns the sink and its description (naming that topic).
fn open_sink(
    spec: &SinkSpec,
    v: &Variant,
    seq: usize,
) -> Result<(Arc<dyn Sink>, String), SinkError> {
    let mut spec = spec.clone();
    if let SinkSpec::Kafka(k) = &mut spec {
        if let Some(b) = &k.brokers {
            k.topic = format!("dropbench-sweep-{}-{}-{seq}", std::process::id(), v.name);
            crate::sink::kafka::create_topic(b, &k.topic, 4, Duration::from_secs(10))?;
        }
    }
    Ok((spec.open()?, spec.describe()))
}

/// Ring options for a variant with `total` bytes of ring memory.
fn ring_options(
    cfg: &SweepConfig,
    v: &Variant,
    capture: &Capture,
    total: u64,
) -> Result<(u64, Option<u32>, Wakeup), String> {
    Ok(match v.transport {
        Transport::Perf => {
            let rings = if capture.meta.transport == Transport::Perf {
                capture.meta.rings.max(1)
            } else {
                1
            };
            // Largest power of two that fits total / rings.
            let per = (total / rings as u64).max(4096);
            let per = 1u64 << (63 - per.leading_zeros());
            (per, Some(rings), cfg.perf_wakeup.parse()?)
        }
        Transport::Ringbuf => (
            1u64 << (63 - total.max(4096).leading_zeros()),
            None,
            cfg.ringbuf_wakeup.parse()?,
        ),
    })
}

fn one() -> usize {
    1
}

/// What the trials at one rate of a series found.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct RateOutcome {
    rate: f64,
    trials: usize,
    clean: usize,
    /// Samples lost anywhere and offered, summed over the trials.
    lost: u64,
    offered: u64,
    /// The worst steady-state loss of a trial: lost over offered, or, for a
    /// trial that fell behind, the share of intake it did not finish.
    worst_steady: f64,
    achieved_min: f64,
    achieved_max: f64,
}

impl RateOutcome {
    fn add(&mut self, r: &RunResult, clean: bool, inconclusive: bool) {
        self.trials += 1;
        self.clean += usize::from(clean);
        let lost = r.counts.lost
            + r.ledger
                .as_ref()
                .map_or(0, |l| l["sink"]["failed"].as_u64().unwrap_or(0));
        self.lost += lost;
        self.offered += r.counts.offered;
        let steady = if clean {
            // Held its rate: no steady-state loss (a fitted rate a hair
            // below intake, inside the rule's tolerance, is not a loss).
            0.0
        } else if inconclusive {
            // Unknown: never within a loss threshold.
            1.0
        } else {
            let mut s = lost as f64 / r.counts.offered.max(1) as f64;
            if let Some(v) = &r.verdict {
                let fell_behind =
                    matches!(v.kind, VerdictKind::Behind | VerdictKind::BacklogGrowing);
                if fell_behind && v.window.intake_per_s > 0.0 {
                    s = s.max(1.0 - v.window.done_per_s / v.window.intake_per_s);
                }
            }
            s
        };
        self.worst_steady = self.worst_steady.max(steady);
        let a = r.rates.offered_per_s;
        self.achieved_min = if self.trials == 1 {
            a
        } else {
            self.achieved_min.min(a)
        };
        self.achieved_max = self.achieved_max.max(a);
    }
    fn all_clean(&self) -> bool {
        self.trials > 0 && self.clean == self.trials
    }
    fn steady_loss(&self) -> f64 {
        self.worst_steady
    }
}

/// How often a trial the producer could not offer is run before it counts
/// as failing.
const INCONCLUSIVE_TRIES: usize = 3;

/// Progress lines as the sweep runs.
pub trait SweepObserver {
    fn series_start(&mut self, _key: &SeriesKey) {}
    fn probe_done(&mut self, _key: &SeriesKey, _rate: f64, _clean: bool, _result: &RunResult) {}
    fn series_done(&mut self, _series: &Series) {}
    /// A planned series that cannot run here, and why.
    fn series_skipped(&mut self, _key: &SeriesKey, _reason: &str) {}
}

/// One series of the plan, before it runs.
#[derive(Debug, Clone)]
pub struct PlannedSeries {
    /// Position in the plan's order.
    pub index: usize,
    pub key: SeriesKey,
    capture: usize,
    variant: &'static Variant,
    ring_bytes: u64,
    rings: Option<u32>,
    wakeup: Wakeup,
}

/// Every series the config and captures make, in order: captures x ring
/// sizes x variants.
pub fn plan_series(
    cfg: &SweepConfig,
    captures: &[Capture],
) -> Result<Vec<PlannedSeries>, SweepError> {
    let variants = cfg.variants()?;
    let mut out = Vec::new();
    for (ci, capture) in captures.iter().enumerate() {
        for ring in &cfg.ring_bytes {
            let total = probes::units::parse_bytes(ring).map_err(|what| SweepError::Config {
                path: "ring_bytes".into(),
                what,
            })?;
            for v in &variants {
                let (ring_bytes, rings, wakeup) =
                    ring_options(cfg, v, capture, total).map_err(|what| SweepError::Config {
                        path: "wakeup".into(),
                        what,
                    })?;
                for mode in &cfg.modes {
                    let key = SeriesKey {
                        variant: v.name.to_string(),
                        capture: Path::new(&capture.file)
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        layout: v.layout.to_string(),
                        transport: v.transport.to_string(),
                        ring_bytes: ring_bytes * rings.unwrap_or(1) as u64,
                        wakeup: wakeup.to_string(),
                        sink: cfg.sink.clone(),
                        mode: mode.clone(),
                        broker: match (cfg.sink.as_str(), &cfg.brokers) {
                            ("kafka", Some(_)) => "broker".into(),
                            ("kafka", None) => "mock".into(),
                            _ => String::new(),
                        },
                        profile: if cfg!(debug_assertions) {
                            "debug"
                        } else {
                            "release"
                        }
                        .into(),
                    };
                    out.push(PlannedSeries {
                        index: out.len(),
                        key,
                        capture: ci,
                        variant: v,
                        ring_bytes,
                        rings,
                        wakeup,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Runs the matrix: for each planned series that `select` accepts, a search
/// whose trials are paced replays into the variant and the sink, each judged
/// by the steady-state verdict.
pub fn run_sweep(
    cfg: &SweepConfig,
    captures: &[Capture],
    select: &dyn Fn(&PlannedSeries) -> bool,
    observer: &mut dyn SweepObserver,
) -> Result<Vec<Series>, SweepError> {
    let classifier = Arc::new(Classifier::default_rules());
    let config_error = |what: String| SweepError::Config {
        path: "sweep config".into(),
        what,
    };
    let rule = cfg.rule().map_err(config_error)?;
    let extra_work = cfg.extra_work().map_err(config_error)?;
    let knobs = |v: &Variant| crate::pipeline::Knobs {
        extra_work,
        ..(v.knobs)()
    };
    let shape: RateShape = cfg.shape.parse().map_err(config_error)?;
    let search = ZeroLossSearch {
        lo: cfg.lo,
        hi: cfg.hi,
        resolution: cfg.resolution,
        max_probes: cfg.max_probes,
    };
    let tmp = tempfile::tempdir().map_err(|e| {
        SweepError::Capture(CaptureError::Io {
            file: "temp dir".into(),
            op: "create",
            source: e,
        })
    })?;
    let mut out = Vec::new();
    let mut seq = 0usize;
    let mut relaid: Vec<(usize, Layout, Capture)> = Vec::new();
    for planned in plan_series(cfg, captures)? {
        if !select(&planned) {
            continue;
        }
        let PlannedSeries {
            index,
            key,
            capture: ci,
            variant: v,
            ring_bytes,
            rings,
            wakeup,
        } = planned;
        let capture = &captures[ci];
        {
            {
                let cap = if v.layout == capture.meta.probe {
                    capture
                } else {
                    if !relaid.iter().any(|(c, l, _)| *c == ci && *l == v.layout) {
                        let r = relayout(capture, v.layout, tmp.path())?;
                        relaid.push((ci, v.layout, r));
                    }
                    &relaid
                        .iter()
                        .find(|(c, l, _)| *c == ci && *l == v.layout)
                        .expect("just added")
                        .2
                };
                let spec = sink_spec(cfg, v)?;
                let live = key.mode == "live";
                if live {
                    if let Err(e) = probes::loader::check_privileges() {
                        observer.series_skipped(
                            &key,
                            &format!("live cells need root or CAP_BPF + CAP_PERFMON: {e}"),
                        );
                        continue;
                    }
                }
                observer.series_start(&key);
                let setup = TrialSetup {
                    variant: v,
                    knobs: knobs(v),
                    capture: cap,
                    transport: v.transport,
                    ring_bytes,
                    rings,
                    wakeup,
                    sink: &spec,
                    classifier: classifier.clone(),
                    rule,
                    shape,
                };
                let traffic = if live {
                    Some(Traffic::of(capture).map_err(|e| SweepError::Probe {
                        series: key.to_string(),
                        source: SearchError::Probe {
                            rate: 0.0,
                            source: TrialError::from(e),
                        },
                    })?)
                } else {
                    None
                };
                let live_setup = traffic.as_ref().map(|t| LiveSetup {
                    variant: v,
                    knobs: knobs(v),
                    traffic: t,
                    mean_sample_len: crate::experiment::trial::mean_sample_len(cap),
                    layout: v.layout,
                    transport: v.transport,
                    ring_bytes,
                    wakeup,
                    sink: &spec,
                    classifier: classifier.clone(),
                    rule,
                    load_cpu: None,
                });
                let mut points: Vec<RunResult> = Vec::new();
                let mut inconclusive: Vec<f64> = Vec::new();
                // Every rate measured so far: both searches share it.
                let mut measured: Vec<RateOutcome> = Vec::new();
                let mut measure = |rate: f64| -> Result<RateOutcome, TrialError> {
                    if let Some(m) = measured.iter().find(|m| m.rate == rate) {
                        return Ok(*m);
                    }
                    let mut m = RateOutcome {
                        rate,
                        ..Default::default()
                    };
                    for _ in 0..cfg.trials {
                        // A trial the producer could not offer (a busy
                        // machine) says nothing about the pipeline: run it
                        // again, up to INCONCLUSIVE_TRIES times, then count it
                        // as failing (the series says so).
                        let mut tries = 0;
                        loop {
                            tries += 1;
                            seq += 1;
                            let (sink, desc) = open_sink(&spec, v, seq)?;
                            let (result, clean, unsure) = match &live_setup {
                                Some(ls) => {
                                    let t = run_live_trial(ls, rate, sink)?;
                                    let unsure = matches!(
                                        t.verdict.kind,
                                        VerdictKind::ProducerShort | VerdictKind::Unmeasured
                                    );
                                    (t.to_run_result(ls, &capture.file, &desc), t.clean(), unsure)
                                }
                                None => {
                                    let trial = run_trial(&setup, rate, sink)?;
                                    let mut result = replayed_result(&trial.run, cap, &desc);
                                    result.kind = "sweep".into();
                                    annotate(&mut result, &trial, &rule, shape);
                                    (result, trial.clean(), trial.inconclusive())
                                }
                            };
                            let again = unsure && tries < INCONCLUSIVE_TRIES;
                            observer.probe_done(&key, rate, clean, &result);
                            if !again {
                                if unsure && !inconclusive.contains(&rate) {
                                    inconclusive.push(rate);
                                }
                                m.add(&result, clean, unsure);
                                points.push(result);
                                break;
                            }
                            points.push(result);
                        }
                    }
                    measured.push(m);
                    Ok(m)
                };
                let probe_error = |source| SweepError::Probe {
                    series: key.to_string(),
                    source,
                };
                let outcome = search
                    .run(|rate| measure(rate).map(|m| u64::from(!m.all_clean())))
                    .map_err(probe_error)?;
                // PDR: the highest rate whose steady-state loss stays within
                // pdr_loss (the trials already run are reused).
                let pdr = search
                    .run(|rate| {
                        measure(rate).map(|m| {
                            u64::from(m.steady_loss() > cfg.pdr_loss || m.steady_loss().is_nan())
                        })
                    })
                    .map_err(probe_error)?;
                let loss_at = |rate: Option<f64>| {
                    rate.and_then(|r| measured.iter().find(|m| m.rate == r))
                        .map(|m| crate::experiment::stats::loss_interval(m.lost, m.offered))
                };
                let spread = |rate: Option<f64>| {
                    rate.and_then(|r| measured.iter().find(|m| m.rate == r))
                        .map(|m| (m.achieved_min, m.achieved_max))
                };
                // Only an unbalanced ledger invalidates a series; a probe whose replay
                // fell behind its rate is simply not clean (kept in that point's problems).
                let mut problems: Vec<String> = points
                    .iter()
                    .flat_map(|p| {
                        p.problems
                            .iter()
                            .filter(|x| x.starts_with("ledger:"))
                            .map(move |x| {
                                format!("at {:.0}/s: {x}", p.config.target_rate.unwrap_or(0.0))
                            })
                    })
                    .collect();
                let mut warnings: Vec<String> = inconclusive
                    .iter()
                    .map(|r| format!("at {r:.0}/s: every try was inconclusive (the producer could not offer the rate: a busy machine); counted as failing"))
                    .collect();
                let valid = problems.is_empty();
                problems.append(&mut warnings);
                let series = Series {
                    index,
                    key,
                    zero_loss_rate: outcome.zero_loss_rate,
                    first_lossy_rate: outcome.first_lossy_rate,
                    verdict_rule: rule.describe(),
                    shape: shape.name().into(),
                    capped: outcome.capped,
                    reached_hi: outcome.reached_hi,
                    trials_per_rate: cfg.trials,
                    ndr_achieved: spread(outcome.zero_loss_rate),
                    pdr_loss: cfg.pdr_loss,
                    pdr: pdr.zero_loss_rate,
                    pdr_first_over: pdr.first_lossy_rate,
                    loss_at_pdr: loss_at(pdr.zero_loss_rate),
                    loss_at_first_failing: loss_at(outcome.first_lossy_rate),
                    valid,
                    problems,
                    points,
                };
                observer.series_done(&series);
                out.push(series);
            }
        }
    }
    Ok(out)
}
