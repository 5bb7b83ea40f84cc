//! The sweep config's TOML schema ([`SweepConfig`], kept as text in the run
//! folder's `plan.toml`), its defaults, and where in a text a key's value is.
//! Reading a config checks it too: [`SweepConfig::load`] and
//! [`parse_config_str`] go through [`Plan`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use super::{Plan, PlanError};

/// The matrix, as `harness sweep --config FILE` reads it (TOML). Every field
/// has a default, so an empty file (or none) is the default sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweepConfig {
    /// Captures to replay. Default: the bundled fixed4k captures (the seed's
    /// layout): the load generator's flat traffic and real programs' bursts.
    pub captures: Vec<PathBuf>,
    /// Variants: names, or tables with a name and the knobs, layouts and
    /// transports to run it with (docs/sweep-config.md). Default: every
    /// registered variant with its own knobs, layout and transport.
    pub variants: Vec<VariantEntry>,
    /// The event layout axis: every variant runs on each (cells a variant
    /// cannot read are skipped with the reason). Empty: each variant's own.
    pub layouts: Vec<String>,
    /// The transport axis, as `layouts`. Empty: each variant's own.
    pub transports: Vec<String>,
    /// Ring memory per configuration, e.g. `["32MiB", "4MiB"]`. The perf
    /// transport splits it over its per-CPU rings (power-of-two each); the
    /// ring buffer gets it whole. 32 MiB is the closest power of two under
    /// the seed's 35 MB buffer.
    pub ring_bytes: Vec<String>,
    /// Wakeup policies for each transport: one, or a list (an axis).
    pub perf_wakeup: OneOrMany,
    pub ringbuf_wakeup: OneOrMany,
    /// `kafka` (default), `null` or `file:PATH`.
    pub sink: String,
    /// Kafka brokers; none means librdkafka's embedded mock cluster.
    pub brokers: Option<String>,
    /// Each trial's measured window, e.g. `1s` (`probe` was its old name).
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
    /// Trials first run at each rate; a rate holds when most of its trials
    /// are clean.
    pub trials: usize,
    /// Trials a majority of which settles each of the two rates that bound
    /// a search's answer (docs/tuning.md, "Re-measuring at the edge"); 1
    /// believes every single trial.
    pub edge_trials: usize,
    /// The partial-drop rate's threshold: the steady-state loss fraction
    /// allowed (0.001 = 0.1%).
    pub pdr_loss: f64,
    /// How each cell runs: `replay` (emulated rings, no root) and/or `live`
    /// (the load generator issues the capture's traffic through the real
    /// probes and rings; root). Live cells are skipped, with the reason, when
    /// this process may not load BPF.
    pub modes: Vec<String>,
    /// Live cells: the load generator's threads (1..=64). One thread issues
    /// ~220 k ops/s traced on these machines, so faster live cells need two
    /// (docs/tuning.md, "What bounds a live cell").
    pub live_load_threads: usize,
    /// The rate searches' bounds (events/s) and precision.
    pub lo: f64,
    pub hi: f64,
    pub resolution: f64,
    /// Rates a search may try (`max_probes` was its old name).
    #[serde(alias = "max_probes")]
    pub max_trials: usize,
    /// The minimum-ring search, per series (off unless set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ring: Option<MinRingConfig>,
    /// The rate the report marks as the goal (the seed's 600 k ops/s).
    pub goal_rate: Option<f64>,
    /// How captures are held: `auto` (preloaded when the file fits in half
    /// of the memory left, streamed from the file otherwise), `preload` or
    /// `stream` (docs/tuning.md, "Big captures").
    pub load: String,
    /// Real commands whose traffic is traced live and replayed, over
    /// repeats, in each variant x ring x perf wakeup of the plan (what
    /// `harness fidelity` does; root; docs/fidelity.md). Empty: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<ProgramEntry>,
    /// Runs per side and cell for `programs`.
    pub program_repeats: usize,
}

/// One entry of `programs`: a name for its results and the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramEntry {
    /// Names its files in the run folder (`fidelity-NAME.json`).
    pub name: String,
    /// Run with `sh -c`, once per run: it should do the same work every time.
    pub run: String,
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            captures: Vec::new(),
            variants: Vec::new(),
            layouts: Vec::new(),
            transports: Vec::new(),
            ring_bytes: vec!["32MiB".into()],
            // perf: a wakeup per 64 samples; ringbuf: no wakeups, 1 ms poll
            // (the best ring-buffer setting measured: docs/tuning.md, "Wakeup policy").
            perf_wakeup: OneOrMany::One("events:64".into()),
            ringbuf_wakeup: OneOrMany::One("no-wakeup:1ms".into()),
            sink: "kafka".into(),
            brokers: None,
            // docs/tuning.md, "Trials": long enough for ~100 progress samples
            // and many wakeups; short enough for the default sweep's budget.
            window: "1s".into(),
            warmup: "250ms".into(),
            tolerance: 0.02,
            shape: "capture".into(),
            modes: vec!["replay".into()],
            live_load_threads: 1,
            // One trial per rate keeps the default sweep under 3 minutes;
            // repeatability comes from the steady-state window instead.
            trials: 1,
            // Two agreeing trials settle an end, a split takes a third:
            // 2-4 more trials per series (docs/tuning.md, "Re-measuring at the edge").
            edge_trials: 3,
            pdr_loss: 0.001,
            // Start at 160 k/s, about the median edge of the default grid
            // (7 k to 830 k): doubling or halving from there takes 0-5
            // trials per series, ~10 fewer over the default sweep than from
            // 40 k, which pays for re-measuring the edges. Halving goes down
            // to 160 k / 64 = 2.5 k (the seed's design on the real-programs
            // capture holds ~7 k). A 10% bracket then takes 3 more trials.
            // (With the capture's shape a trial covers one whole pass: 2.3 s
            // at 20 k/s for the 47 k-sample real-programs capture.)
            lo: 160_000.0,
            hi: 2_000_000.0,
            resolution: 0.10,
            max_trials: 14,
            min_ring: None,
            goal_rate: Some(600_000.0),
            load: "auto".into(),
            programs: Vec::new(),
            // Ten runs per side: enough for quartiles and a rank-sum test
            // that can tell two distributions apart (docs/fidelity.md).
            program_repeats: 10,
        }
    }
}

/// A value or a list of values (`perf_wakeup = "events:64"` or
/// `perf_wakeup = ["events:1", "events:64"]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn values(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

/// One entry of `variants`: a name (the variant's own knobs, layout and
/// transport), or a table naming it with what to change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum VariantEntry {
    Name(String),
    Set(Box<VariantSettings>),
}

impl VariantEntry {
    /// The name as written (`exec:COMMAND` for an exec reader given as a
    /// string; a table's `name`, or its command when it has none).
    pub fn name(&self) -> &str {
        match self {
            VariantEntry::Name(n) => n,
            VariantEntry::Set(s) => match &s.exec {
                Some(c) if s.name.is_empty() => c,
                _ => &s.name,
            },
        }
    }
}

impl From<String> for VariantEntry {
    fn from(name: String) -> Self {
        VariantEntry::Name(name)
    }
}

/// A variant with its knobs (each unset one keeps the variant's default) and
/// the layouts and transports asked of it one by one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSettings {
    /// The variant's registry name; with `exec`, the name the reader's series
    /// go by (`exec:<name>`), the command when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// An outside reader instead of a dropbench variant: the command, run
    /// with `sh -c` on the kernel's pinned rings (kernel mode only;
    /// docs/byo-reader.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<String>,
    /// exec readers: how dropbench learns the reader is ready: `auto`,
    /// `file` or `after:DURATION` (as `harness replay --exec-ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// exec readers: how long to wait for the ready signal, e.g. `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_timeout: Option<String>,
    /// exec readers: time to catch up after the last injection, e.g. `500ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<String>,
    /// Layouts to run it on; each must be one the variant can read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layouts: Vec<String>,
    /// Transports to run it on; each must be one the variant can read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transports: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_depth: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// e.g. `10ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_publish: Option<bool>,
    /// e.g. `2us`: CPU spun per event, to slow a variant on purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_work: Option<String>,
    /// e.g. `4MiB`: bytes of paths each classifying thread remembers (`0`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_cache: Option<String>,
    /// Events packed into one Kafka message (1: one message per event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_events: Option<usize>,
}

impl<'de> Deserialize<'de> for VariantEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => Ok(VariantEntry::Name(s)),
            t @ toml::Value::Table(_) => VariantSettings::deserialize(t)
                .map(|s| VariantEntry::Set(Box::new(s)))
                // The knob's own message ("unknown field `x`, expected one of ...").
                .map_err(|e| D::Error::custom(format!("variants: {}", e.message().trim()))),
            other => Err(D::Error::custom(format!(
                "variants: a variant is a name or a table {{ name = \"...\", workers = 2, ... }}, not a {}",
                other.type_str()
            ))),
        }
    }
}

/// `min_ring = { rate = 300000.0, loss = 0.0 }`: per series, the smallest
/// power-of-two ring memory whose trials at `rate` lose at most `loss`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinRingConfig {
    /// Offered events/s.
    pub rate: f64,
    /// Steady-state loss fraction allowed; 0 = every trial clean.
    #[serde(default)]
    pub loss: f64,
    /// Smallest ring memory tried.
    #[serde(default = "min_ring_lo")]
    pub lo: String,
    /// Largest ring memory tried.
    #[serde(default = "min_ring_hi")]
    pub hi: String,
}

// 256 KiB: 64 fixed4k records, about the least a 2-CPU perf buffer can hold
// (128 KiB per CPU); 256 MiB: 8x the seed's 35 MB buffer. A bisection over
// the 11 powers of two between them takes at most 2 + log2(10) ~ 6 sizes.
fn min_ring_lo() -> String {
    "256KiB".into()
}
fn min_ring_hi() -> String {
    "256MiB".into()
}

impl SweepConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<SweepConfig, PlanError> {
        Plan::load(path).map(Plan::into_config)
    }
}

/// The 1-based line of a bad value in a TOML text: the line of `key = ...`
/// (or the `[key]`/`[[key]]` header), then the first line from there that
/// holds each of `near` in turn (a variant's quoted name, then its knob).
pub(super) fn locate(text: &str, key: &str, near: &[String]) -> Option<usize> {
    let top = key.split(':').next().unwrap_or(key).trim();
    let lines: Vec<&str> = text.lines().collect();
    let mut at = lines.iter().position(|l| {
        let l = l.trim_start();
        let header = l.trim_start_matches('[').trim_end().trim_end_matches(']');
        (l.starts_with('[') && header.trim() == top)
            || l.strip_prefix(top)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
    })?;
    for n in near {
        if let Some(i) = lines[at..].iter().position(|l| l.contains(n.as_str())) {
            at += i;
        }
    }
    Some(at + 1)
}

/// Parses and checks a sweep config; every error names the file (`origin`),
/// the line and the key, in one line.
pub fn parse_config_str(text: &str, origin: &str) -> Result<SweepConfig, PlanError> {
    Plan::parse(text, origin).map(Plan::into_config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_text_is_checked_and_names_its_origin() {
        let cfg = parse_config_str(
            "probe = \"100ms\"\nmax_probes = 3\ngoal_rate = 1e5\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(cfg.goal_rate, Some(100_000.0));
        // The old names of the trial length and the search's trial cap still read.
        assert_eq!((cfg.window.as_str(), cfg.max_trials), ("100ms", 3));
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
    fn a_plan_round_trips_through_its_toml() {
        let text = "variants = [\"compact\", { name = \"batched\", batch_size = 64, layouts = [\"compact\"] }]\n\
                    perf_wakeup = [\"events:1\", \"events:8\"]\nmin_ring = { rate = 1e5 }\nlayouts = [\"compact\"]\n";
        let cfg = parse_config_str(text, "t.toml").unwrap();
        let again = toml::to_string(&cfg).unwrap();
        assert_eq!(parse_config_str(&again, "t.toml").unwrap(), cfg, "{again}");
        assert_eq!(cfg.perf_wakeup.values().len(), 2);
    }
}
