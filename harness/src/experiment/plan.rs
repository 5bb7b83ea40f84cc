//! The sweep's plan: the config as TOML, checked, and the series it makes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::capture::{Capture, Loading};
use crate::experiment::results::SeriesKey;
use crate::experiment::sweep::SweepError;
use crate::experiment::verdict::VerdictRule;
use crate::pipeline::Variant;
use crate::replay::Wakeup;
use crate::sink::SinkSpec;
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
        }
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

/// One series of the plan, before it runs.
#[derive(Debug, Clone)]
pub struct PlannedSeries {
    /// Position in the plan's order.
    pub index: usize,
    pub key: SeriesKey,
    pub(crate) capture: usize,
    pub(crate) variant: &'static Variant,
    pub(crate) ring_bytes: u64,
    pub(crate) rings: Option<u32>,
    pub(crate) wakeup: Wakeup,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
