//! The sweep's plan: the config as TOML ([`SweepConfig`], kept as text in
//! the run folder's `plan.toml`), checked and parsed once into a typed
//! [`Plan`], and the cells it makes with the captures ([`Plan::cells`]).
//!
//! A [`Plan`] is built only by [`Plan::parse`] or [`Plan::from_config`], both
//! fallible: every duration, byte size, wakeup, sink, shape, loading, mode,
//! variant and knob is parsed there, and every error names the key (and the
//! line, when there is a text). Nothing downstream parses a string again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::capture::{Capture, Loading};
use crate::experiment::kernel::EXEC_READER;
use crate::experiment::results::{SeriesKey, SkippedSeries};
use crate::experiment::search::{MinRingSearch, ZeroLossSearch};
use crate::experiment::sweep::SweepError;
use crate::experiment::trial::RateShape;
use crate::experiment::verdict::VerdictRule;
use crate::pipeline::{Knobs, Variant};
use crate::replay::kernel::{ExecSpec, Ready};
use crate::replay::Wakeup;
use crate::sink::SinkSpec;
use probes::abi::Layout;
use probes::Transport;

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

/// How a cell runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Emulated rings fed by a paced replay (no root).
    Replay,
    /// The load generator through the real probes and rings (root).
    Live,
    /// The capture injected into the kernel's real rings by a BPF program
    /// (`BPF_PROG_TEST_RUN`), read by the variant (root).
    Kernel,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Replay => "replay",
            Mode::Live => "live",
            Mode::Kernel => "kernel",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "replay" => Ok(Mode::Replay),
            "live" => Ok(Mode::Live),
            "kernel" => Ok(Mode::Kernel),
            _ => Err(format!(
                "unknown mode {s:?}; expected replay, live or kernel"
            )),
        }
    }
}

/// An outside program that reads the kernel's pinned rings in a plan's
/// kernel cells (`exec:COMMAND`, or a table with `exec`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExecReader {
    /// Its series go by `exec:<name>`: the table's `name`, else the command.
    pub name: String,
    pub command: String,
    pub ready: Ready,
    pub ready_timeout: Duration,
    pub drain: Duration,
}

impl ExecReader {
    /// The prefix that marks an exec reader among variant names.
    pub const PREFIX: &'static str = "exec:";

    /// The name its series carry as their variant.
    pub fn series_name(&self) -> String {
        format!("{}{}", Self::PREFIX, self.name)
    }

    /// How a kernel trial runs it.
    pub fn spec(&self) -> ExecSpec {
        ExecSpec {
            ready: self.ready,
            ready_timeout: self.ready_timeout,
            drain: self.drain,
            ..ExecSpec::new(self.command.clone())
        }
    }
}

/// A variant as the plan runs it.
#[derive(Debug, Clone)]
pub struct PlanVariant {
    /// The dropbench variant; [`EXEC_READER`] for an outside reader.
    pub variant: &'static Variant,
    /// The outside reader, for an `exec:` entry.
    pub exec: Option<ExecReader>,
    pub knobs: Knobs,
    /// The knobs set away from the variant's defaults (`workers=4`), empty if none.
    pub knobs_label: String,
    /// Layouts and transports asked of this variant by name (checked: it can read them).
    pub layouts: Vec<Layout>,
    pub transports: Vec<Transport>,
}

/// The sweep's plan, every value parsed and checked.
#[derive(Debug, Clone)]
pub struct Plan {
    config: SweepConfig,
    pub(crate) captures: Vec<PathBuf>,
    pub(crate) variants: Vec<PlanVariant>,
    pub(crate) layouts: Vec<Layout>,
    pub(crate) transports: Vec<Transport>,
    pub(crate) ring_bytes: Vec<u64>,
    pub(crate) perf_wakeups: Vec<Wakeup>,
    pub(crate) ringbuf_wakeups: Vec<Wakeup>,
    pub(crate) sink: SinkSpec,
    pub(crate) rule: VerdictRule,
    pub(crate) shape: RateShape,
    pub(crate) loading: Loading,
    pub(crate) modes: Vec<Mode>,
    pub(crate) live_load_threads: usize,
    pub(crate) search: ZeroLossSearch,
    pub(crate) trials: usize,
    pub(crate) edge_trials: usize,
    pub(crate) pdr_loss: f64,
    pub(crate) goal_rate: Option<f64>,
    pub(crate) min_ring: Option<MinRingSearch>,
}

/// A bad value: its key, what to look for on its line, what is wrong.
struct Bad {
    key: String,
    /// Text on the line after the key's (a variant's name, then its knob).
    near: Vec<String>,
    what: String,
}

fn bad(key: &str, what: impl Into<String>) -> Bad {
    Bad {
        key: key.into(),
        near: Vec::new(),
        what: what.into(),
    }
}

impl Plan {
    /// Parses and checks a config text; every error names `origin`, the line
    /// and the key, in one line.
    pub fn parse(text: &str, origin: &str) -> Result<Plan, SweepError> {
        let cfg: SweepConfig = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            // toml's message may span lines ("invalid array\nexpected `]`"): one line.
            let mut msg = e.message().trim().replace('\n', "; ");
            // Name the key of a `key = value` line when toml's message does not.
            let key = line
                .and_then(|l| text.lines().nth(l - 1))
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| k.trim())
                .filter(|k| !k.is_empty() && !k.starts_with('[') && !msg.contains(*k));
            if let Some(k) = key {
                msg = format!("{k}: {msg}");
            }
            config_error(
                origin,
                match line {
                    Some(l) => format!("line {l}: {msg}"),
                    None => msg,
                },
            )
        })?;
        Plan::build(cfg, Some(text), origin)
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Plan, SweepError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| config_error(&p, e.to_string()))?;
        Plan::parse(&text, &p)
    }

    /// Checks a config built in code (or changed from the command line);
    /// errors name `origin` and the key.
    pub fn from_config(cfg: SweepConfig, origin: &str) -> Result<Plan, SweepError> {
        Plan::build(cfg, None, origin)
    }

    fn build(cfg: SweepConfig, text: Option<&str>, origin: &str) -> Result<Plan, SweepError> {
        Plan::check(cfg).map_err(|b| {
            let line = text.and_then(|t| locate(t, &b.key, &b.near));
            let key = b.key;
            config_error(
                origin,
                match line {
                    Some(l) => format!("line {l}: {key}: {}", b.what),
                    None => format!("{key}: {}", b.what),
                },
            )
        })
    }

    fn check(cfg: SweepConfig) -> Result<Plan, Bad> {
        for c in &cfg.captures {
            if !c.is_file() {
                return Err(bad("captures", format!("{} is not a file", c.display())));
            }
        }
        let bytes = |key: &str, r: &str| {
            let b = probes::units::parse_bytes(r).map_err(|e| bad(key, e))?;
            // Two 4 KiB pages: the least a ring can be.
            if b < 8192 {
                return Err(bad(key, format!("{r:?}: at least 8 KiB")));
            }
            Ok(b)
        };
        let ring_bytes = cfg
            .ring_bytes
            .iter()
            .map(|r| bytes("ring_bytes", r))
            .collect::<Result<Vec<_>, _>>()?;
        if ring_bytes.is_empty() {
            return Err(bad("ring_bytes", "needs at least one size"));
        }
        let layouts = cfg
            .layouts
            .iter()
            .map(|l| l.parse::<Layout>().map_err(|e| bad("layouts", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let transports = cfg
            .transports
            .iter()
            .map(|t| t.parse::<Transport>().map_err(|e| bad("transports", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let variants = plan_variants(&cfg.variants)?;
        let policies = |key: &str, list: &OneOrMany, want: Transport| {
            if list.values().is_empty() {
                return Err(bad(key, "needs at least one policy"));
            }
            list.values()
                .iter()
                .map(|text| match text.parse::<Wakeup>() {
                    Ok(w) if w.transport() == want => Ok(w),
                    Ok(_) => Err(bad(key, format!("{text:?} is not a {want} policy"))),
                    Err(e) => Err(bad(key, e)),
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let perf_wakeups = policies("perf_wakeup", &cfg.perf_wakeup, Transport::Perf)?;
        let ringbuf_wakeups = policies("ringbuf_wakeup", &cfg.ringbuf_wakeup, Transport::Ringbuf)?;
        let sink =
            SinkSpec::parse(&cfg.sink, cfg.brokers.clone(), None).map_err(|e| bad("sink", e))?;
        let rule = rule(&cfg)?;
        let shape = cfg
            .shape
            .parse::<RateShape>()
            .map_err(|e| bad("shape", e))?;
        let loading = cfg.load.parse::<Loading>().map_err(|e| bad("load", e))?;
        if cfg.modes.is_empty() {
            return Err(bad("modes", "needs at least one of replay, live, kernel"));
        }
        let modes = cfg
            .modes
            .iter()
            .map(|m| m.parse::<Mode>().map_err(|e| bad("modes", e)))
            .collect::<Result<Vec<_>, _>>()?;
        // An outside reader can only read the kernel's real rings.
        if !modes.contains(&Mode::Kernel) {
            if let Some(x) = variants.iter().find_map(|v| v.exec.as_ref()) {
                return Err(Bad {
                    key: "variants".into(),
                    near: vec![x.command.clone()],
                    what: format!(
                        "{} reads the kernel's real rings, so it needs kernel mode: add \"kernel\" to modes (it has {})",
                        x.series_name(),
                        cfg.modes.join(", ")
                    ),
                });
            }
        }
        let rate = |key: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(bad(
                    key,
                    format!("{v}: must be a positive rate in events/s"),
                ))
            }
        };
        if !(1..=64).contains(&cfg.live_load_threads) {
            return Err(bad(
                "live_load_threads",
                format!("{}: must be 1..=64", cfg.live_load_threads),
            ));
        }
        rate("lo", cfg.lo)?;
        rate("hi", cfg.hi)?;
        if cfg.lo > cfg.hi {
            return Err(bad("hi", format!("{} is below lo {}", cfg.hi, cfg.lo)));
        }
        if !(cfg.resolution > 0.0 && cfg.resolution.is_finite()) {
            return Err(bad(
                "resolution",
                format!("{}: must be a positive fraction, e.g. 0.1", cfg.resolution),
            ));
        }
        if cfg.max_trials == 0 {
            return Err(bad("max_trials", "must be at least 1"));
        }
        if cfg.trials == 0 || cfg.trials > 100 {
            return Err(bad("trials", format!("{}: must be 1..=100", cfg.trials)));
        }
        if cfg.edge_trials == 0 || cfg.edge_trials > 99 || cfg.edge_trials.is_multiple_of(2) {
            return Err(bad(
                "edge_trials",
                format!(
                    "{}: must be odd, 1..=99 (a majority must settle)",
                    cfg.edge_trials
                ),
            ));
        }
        if !(cfg.pdr_loss > 0.0 && cfg.pdr_loss < 1.0) {
            return Err(bad(
                "pdr_loss",
                format!(
                    "{}: must be a fraction in (0, 1), e.g. 0.001 for 0.1%",
                    cfg.pdr_loss
                ),
            ));
        }
        if let Some(g) = cfg.goal_rate {
            rate("goal_rate", g)?;
        }
        let min_ring = match &cfg.min_ring {
            None => None,
            Some(m) => {
                let near = |what: &str| Bad {
                    key: "min_ring".into(),
                    near: Vec::new(),
                    what: what.into(),
                };
                rate("min_ring", m.rate).map_err(|b| near(&format!("rate {}", b.what)))?;
                if !(0.0..1.0).contains(&m.loss) {
                    return Err(near(&format!(
                        "loss {}: must be a fraction in [0, 1), e.g. 0.0 for none",
                        m.loss
                    )));
                }
                let lo = bytes("min_ring", &m.lo)?;
                let hi = bytes("min_ring", &m.hi)?;
                if lo > hi {
                    return Err(near(&format!("hi {} is below lo {}", m.hi, m.lo)));
                }
                Some(MinRingSearch {
                    rate: m.rate,
                    loss: m.loss,
                    lo_bytes: lo,
                    hi_bytes: hi,
                })
            }
        };
        Ok(Plan {
            captures: cfg.captures.clone(),
            variants,
            layouts,
            transports,
            ring_bytes,
            perf_wakeups,
            ringbuf_wakeups,
            sink,
            rule,
            shape,
            loading,
            modes,
            live_load_threads: cfg.live_load_threads,
            search: ZeroLossSearch {
                lo: cfg.lo,
                hi: cfg.hi,
                resolution: cfg.resolution,
                max_trials: cfg.max_trials,
            },
            trials: cfg.trials,
            edge_trials: cfg.edge_trials,
            pdr_loss: cfg.pdr_loss,
            goal_rate: cfg.goal_rate,
            min_ring,
            config: cfg,
        })
    }

    /// The config this plan was built from (as `plan.toml` keeps it).
    pub fn config(&self) -> &SweepConfig {
        &self.config
    }

    pub fn into_config(self) -> SweepConfig {
        self.config
    }

    /// The rate the report marks as the goal.
    pub fn goal_rate(&self) -> Option<f64> {
        self.goal_rate
    }

    /// How captures are held.
    pub fn loading(&self) -> Loading {
        self.loading
    }

    pub fn captures(&self) -> &[PathBuf] {
        &self.captures
    }

    pub fn sink(&self) -> &SinkSpec {
        &self.sink
    }

    /// Every cell the plan makes with `captures` (opened from
    /// [`Plan::captures`], in order): captures x ring sizes x variants x
    /// layouts x transports x wakeups x modes. Cells of the `layouts` and
    /// `transports` axes that a variant cannot read come back as skipped,
    /// with the reason.
    pub fn cells(&self, captures: &[Capture]) -> (Vec<PlannedSeries>, Vec<SkippedSeries>) {
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        for (ci, capture) in captures.iter().enumerate() {
            let capture_name = Path::new(&capture.file)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            for &total in &self.ring_bytes {
                for pv in &self.variants {
                    let v = pv.variant;
                    // An outside reader defaults to the capture's own layout and transport.
                    let (layout, transport) = match &pv.exec {
                        Some(_) => (capture.meta.layout, capture.meta.transport),
                        None => (v.layout, v.transport),
                    };
                    let layouts = pick(&pv.layouts, &self.layouts, layout);
                    let transports = pick(&pv.transports, &self.transports, transport);
                    // An outside reader writes to no sink of dropbench's.
                    let (variant, sink, broker) = match &pv.exec {
                        Some(x) => (x.series_name(), "none".to_string(), String::new()),
                        None => (
                            v.name.to_string(),
                            self.config.sink.clone(),
                            SeriesKey::broker_of(&self.config.sink, self.config.brokers.as_deref()),
                        ),
                    };
                    for &layout in &layouts {
                        for &transport in &transports {
                            let wakeups = match transport {
                                Transport::Perf => &self.perf_wakeups,
                                Transport::Ringbuf => &self.ringbuf_wakeups,
                            };
                            for &wakeup in wakeups {
                                let (ring_bytes, rings) = ring_split(transport, capture, total);
                                for &mode in &self.modes {
                                    let key = SeriesKey {
                                        variant: variant.clone(),
                                        capture: capture_name.clone(),
                                        layout: layout.to_string(),
                                        transport: transport.to_string(),
                                        ring_total_bytes: ring_bytes * rings.unwrap_or(1) as u64,
                                        wakeup: wakeup.to_string(),
                                        sink: sink.clone(),
                                        mode: mode.name().into(),
                                        knobs: pv.knobs_label.clone(),
                                        broker: broker.clone(),
                                        profile: SeriesKey::this_profile(),
                                    };
                                    if !v.supports(layout, transport) {
                                        skipped.push(SkippedSeries {
                                            key,
                                            reason: unsupported(v, layout, transport),
                                        });
                                        continue;
                                    }
                                    if pv.exec.is_some() && mode != Mode::Kernel {
                                        skipped.push(SkippedSeries {
                                            key,
                                            reason: format!(
                                                "an exec: reader reads only the kernel's real rings (pinned on bpffs): it runs in kernel mode, not {}",
                                                mode.name()
                                            ),
                                        });
                                        continue;
                                    }
                                    out.push(PlannedSeries {
                                        index: out.len(),
                                        key,
                                        capture: ci,
                                        variant: v,
                                        knobs: pv.knobs,
                                        layout,
                                        transport,
                                        ring_bytes,
                                        rings,
                                        wakeup,
                                        mode,
                                        exec: pv.exec.clone(),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        (out, skipped)
    }
}

fn config_error(origin: &str, what: String) -> SweepError {
    SweepError::Config {
        path: origin.to_string(),
        what,
    }
}

/// A variant's own list if it has one, else the axis, else its default.
fn pick<T: Copy>(own: &[T], axis: &[T], default: T) -> Vec<T> {
    if !own.is_empty() {
        own.to_vec()
    } else if !axis.is_empty() {
        axis.to_vec()
    } else {
        vec![default]
    }
}

fn unsupported(v: &Variant, layout: Layout, transport: Transport) -> String {
    let names = |xs: Vec<String>| xs.join(", ");
    format!(
        "variant {} cannot read {layout} records from {transport}: it reads layouts {} and transports {}",
        v.name,
        names(v.layouts.iter().map(|l| l.to_string()).collect()),
        names(v.transports.iter().map(|t| t.to_string()).collect()),
    )
}

/// The variants, each with its knobs set and the layouts and transports
/// asked of it checked against what it can read.
fn plan_variants(entries: &[VariantEntry]) -> Result<Vec<PlanVariant>, Bad> {
    if entries.is_empty() {
        return Ok(crate::pipeline::VARIANTS
            .iter()
            .filter(|v| v.in_default_sweep)
            .map(|v| PlanVariant {
                variant: v,
                exec: None,
                knobs: (v.knobs)(),
                knobs_label: String::new(),
                layouts: Vec::new(),
                transports: Vec::new(),
            })
            .collect());
    }
    let mut out: Vec<PlanVariant> = Vec::new();
    for e in entries {
        let name = e.name();
        let at = |what: String, knob: Option<&str>| Bad {
            key: match knob {
                Some(k) => format!("variants: {name}: {k}"),
                None => "variants".into(),
            },
            near: std::iter::once(format!("\"{name}\""))
                .chain(knob.map(str::to_string))
                .collect(),
            what,
        };
        if let Some(exec) = exec_reader(e).map_err(|(w, knob)| at(w, knob))? {
            let settings = match e {
                VariantEntry::Set(s) => Some(s.as_ref()),
                VariantEntry::Name(_) => None,
            };
            let (layouts, transports) = match settings {
                Some(s) => (
                    s.layouts
                        .iter()
                        .map(|l| l.parse::<Layout>().map_err(|w| at(w, Some("layouts"))))
                        .collect::<Result<Vec<_>, _>>()?,
                    s.transports
                        .iter()
                        .map(|t| {
                            t.parse::<Transport>()
                                .map_err(|w| at(w, Some("transports")))
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                None => (Vec::new(), Vec::new()),
            };
            if out
                .iter()
                .any(|o| o.exec.as_ref().is_some_and(|x| x.name == exec.name))
            {
                return Err(at(format!("{} is listed twice", exec.series_name()), None));
            }
            out.push(PlanVariant {
                variant: &EXEC_READER,
                exec: Some(exec),
                knobs: (EXEC_READER.knobs)(),
                knobs_label: String::new(),
                layouts,
                transports,
            });
            continue;
        }
        if matches!(e, VariantEntry::Set(s) if s.name.is_empty()) {
            return Err(at(
                "a variant table needs a name (or exec = \"COMMAND\" for your own reader)".into(),
                None,
            ));
        }
        let v = crate::pipeline::variant(name).map_err(|e| at(e.to_string(), None))?;
        let defaults = (v.knobs)();
        let mut knobs = defaults;
        let mut layouts = Vec::new();
        let mut transports = Vec::new();
        if let VariantEntry::Set(s) = e {
            let duration = |knob: &str, text: &str| {
                probes::units::parse_duration(text).map_err(|w| at(w, Some(knob)))
            };
            if let Some(x) = s.workers {
                knobs.workers = x;
            }
            if let Some(x) = s.channel_depth {
                knobs.channel_depth = x;
            }
            if let Some(x) = s.batch_size {
                knobs.batch_size = x;
            }
            if let Some(x) = s.sync_publish {
                knobs.sync_publish = x;
            }
            if let Some(x) = s.message_events {
                knobs.message_events = x;
            }
            if let Some(x) = &s.read_timeout {
                knobs.read_timeout = duration("read_timeout", x)?;
            }
            if let Some(x) = &s.extra_work {
                knobs.extra_work = duration("extra_work", x)?;
            }
            if let Some(x) = &s.path_cache {
                let bytes = probes::units::parse_bytes(x).map_err(|w| at(w, Some("path_cache")))?;
                knobs.path_cache = usize::try_from(bytes)
                    .map_err(|_| at(format!("{x}: too large"), Some("path_cache")))?;
            }
            if let Err(crate::pipeline::PipelineError::Knob {
                knob, value, why, ..
            }) = knobs.check(v.name)
            {
                return Err(at(format!("{value}: {why}"), Some(knob)));
            }
            for l in &s.layouts {
                let layout = l.parse::<Layout>().map_err(|w| at(w, Some("layouts")))?;
                if !v.layouts.contains(&layout) {
                    return Err(at(unsupported(v, layout, v.transport), Some("layouts")));
                }
                layouts.push(layout);
            }
            for t in &s.transports {
                let transport = t
                    .parse::<Transport>()
                    .map_err(|w| at(w, Some("transports")))?;
                if !v.transports.contains(&transport) {
                    return Err(at(unsupported(v, v.layout, transport), Some("transports")));
                }
                transports.push(transport);
            }
        }
        let knobs_label = knobs_label(&defaults, &knobs);
        if out
            .iter()
            .any(|o| o.variant.name == v.name && o.knobs_label == knobs_label)
        {
            return Err(at(
                format!("{name} is listed twice with the same knobs"),
                None,
            ));
        }
        out.push(PlanVariant {
            variant: v,
            exec: None,
            knobs,
            knobs_label,
            layouts,
            transports,
        });
    }
    Ok(out)
}

/// The outside reader an entry names (`exec:COMMAND`, or a table with
/// `exec`), checked; `None` for a dropbench variant. An error is its text and
/// the knob it is about.
fn exec_reader(e: &VariantEntry) -> Result<Option<ExecReader>, (String, Option<&'static str>)> {
    let (command, s) = match e {
        VariantEntry::Name(n) => match n.strip_prefix(ExecReader::PREFIX) {
            Some(c) => (c, None),
            None => return Ok(None),
        },
        VariantEntry::Set(s) => match &s.exec {
            Some(c) => (c.as_str(), Some(s)),
            None => return Ok(None),
        },
    };
    let command = command.trim();
    if command.is_empty() {
        return Err((
            "an exec reader needs a command, e.g. \"exec:./reader\"".into(),
            None,
        ));
    }
    let defaults = ExecSpec::new(command);
    let mut reader = ExecReader {
        name: command.to_string(),
        command: command.to_string(),
        ready: defaults.ready,
        ready_timeout: defaults.ready_timeout,
        drain: defaults.drain,
    };
    let Some(s) = s else {
        return Ok(Some(reader));
    };
    // dropbench's pipeline knobs mean nothing to an outside program.
    for (knob, set) in [
        ("workers", s.workers.is_some()),
        ("channel_depth", s.channel_depth.is_some()),
        ("batch_size", s.batch_size.is_some()),
        ("read_timeout", s.read_timeout.is_some()),
        ("sync_publish", s.sync_publish.is_some()),
        ("extra_work", s.extra_work.is_some()),
        ("path_cache", s.path_cache.is_some()),
        ("message_events", s.message_events.is_some()),
    ] {
        if set {
            return Err((
                "a pipeline knob of dropbench's variants; an exec reader has none (set it in your program)".into(),
                Some(knob),
            ));
        }
    }
    if !s.name.is_empty() {
        reader.name = s.name.trim().to_string();
    }
    let duration = |knob: &'static str, text: &str| {
        probes::units::parse_duration(text).map_err(|w| (w, Some(knob)))
    };
    if let Some(r) = &s.ready {
        reader.ready = r.parse::<Ready>().map_err(|w| (w, Some("ready")))?;
    }
    if let Some(t) = &s.ready_timeout {
        reader.ready_timeout = duration("ready_timeout", t)?;
    }
    if let Some(d) = &s.drain {
        reader.drain = duration("drain", d)?;
    }
    Ok(Some(reader))
}

/// The knobs that differ from the variant's defaults, as `workers=4,batch_size=64`.
fn knobs_label(defaults: &Knobs, k: &Knobs) -> String {
    let mut parts = Vec::new();
    let mut diff = |name: &str, a: String, b: String| {
        if a != b {
            parts.push(format!("{name}={b}"));
        }
    };
    diff(
        "workers",
        defaults.workers.to_string(),
        k.workers.to_string(),
    );
    diff(
        "channel_depth",
        defaults.channel_depth.to_string(),
        k.channel_depth.to_string(),
    );
    diff(
        "batch_size",
        defaults.batch_size.to_string(),
        k.batch_size.to_string(),
    );
    let d = probes::units::format_duration;
    diff("read_timeout", d(defaults.read_timeout), d(k.read_timeout));
    diff(
        "sync_publish",
        defaults.sync_publish.to_string(),
        k.sync_publish.to_string(),
    );
    diff(
        "path_cache",
        probes::units::format_bytes(defaults.path_cache as u64),
        probes::units::format_bytes(k.path_cache as u64),
    );
    diff(
        "message_events",
        defaults.message_events.to_string(),
        k.message_events.to_string(),
    );
    // extra_work is left out: it stands for a slower build of the same
    // variant (the gate's regression test), so the cell stays the same cell.
    parts.join(",")
}

/// The steady-state verdict rule the config's window, warm-up and tolerance give.
fn rule(cfg: &SweepConfig) -> Result<VerdictRule, Bad> {
    let window = probes::units::parse_duration(&cfg.window).map_err(|e| bad("window", e))?;
    let warmup = probes::units::parse_duration(&cfg.warmup).map_err(|e| bad("warmup", e))?;
    if window < Duration::from_millis(100) {
        return Err(bad(
            "window",
            format!(
                "{:?}: at least 100ms (the verdict fits progress sampled every 10 ms)",
                cfg.window
            ),
        ));
    }
    if !(cfg.tolerance > 0.0 && cfg.tolerance < 0.5) {
        return Err(bad(
            "tolerance",
            format!(
                "{}: must be a fraction in (0, 0.5), e.g. 0.02",
                cfg.tolerance
            ),
        ));
    }
    Ok(VerdictRule {
        warmup_ns: warmup.as_nanos() as u64,
        window_ns: window.as_nanos() as u64,
        tolerance: cfg.tolerance,
        ..VerdictRule::default()
    })
}

impl SweepConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<SweepConfig, SweepError> {
        Plan::load(path).map(Plan::into_config)
    }
}

/// The 1-based line of a bad value in a TOML text: the line of `key = ...`
/// (or the `[key]`/`[[key]]` header), then the first line from there that
/// holds each of `near` in turn (a variant's quoted name, then its knob).
fn locate(text: &str, key: &str, near: &[String]) -> Option<usize> {
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
pub fn parse_config_str(text: &str, origin: &str) -> Result<SweepConfig, SweepError> {
    Plan::parse(text, origin).map(Plan::into_config)
}

/// One cell of the plan, before it runs.
#[derive(Debug, Clone)]
pub struct PlannedSeries {
    /// Position in the plan's order.
    pub index: usize,
    pub key: SeriesKey,
    pub(crate) capture: usize,
    pub(crate) variant: &'static Variant,
    pub(crate) knobs: Knobs,
    pub(crate) layout: Layout,
    pub(crate) transport: Transport,
    /// Data bytes of one ring.
    pub(crate) ring_bytes: u64,
    /// Perf rings (None: the ring buffer, one ring).
    pub(crate) rings: Option<u32>,
    pub(crate) wakeup: Wakeup,
    pub(crate) mode: Mode,
    /// The outside reader of an `exec:` cell (its `variant` is [`EXEC_READER`]).
    pub(crate) exec: Option<ExecReader>,
}

/// One ring's bytes and the number of perf rings for `total` bytes of ring
/// memory on `transport`.
pub(crate) fn ring_split(
    transport: Transport,
    capture: &Capture,
    total: u64,
) -> (u64, Option<u32>) {
    match transport {
        Transport::Perf => {
            let rings = if capture.meta.transport == Transport::Perf {
                capture.meta.rings.max(1)
            } else {
                1
            };
            // Largest power of two that fits total / rings (the kernel wants
            // a power-of-two count of pages per CPU), at least one page.
            let per = (total / rings as u64).max(4096);
            (1u64 << (63 - per.leading_zeros()), Some(rings))
        }
        Transport::Ringbuf => (1u64 << (63 - total.max(4096).leading_zeros()), None),
    }
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

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/captures")
            .join(name)
    }

    fn cells(text: &str) -> (Vec<PlannedSeries>, Vec<SkippedSeries>) {
        let plan = Plan::parse(text, "t.toml").unwrap();
        let captures: Vec<Capture> = plan
            .captures()
            .iter()
            .map(|p| Capture::open(p, plan.loading()).unwrap())
            .collect();
        plan.cells(&captures)
    }

    #[test]
    fn the_default_plan_keeps_its_ten_series() {
        let text = format!(
            "captures = [{:?}, {:?}]\n",
            fixture("fixed4k-perf.pcapng"),
            fixture("real-programs-perf.pcapng")
        );
        let (run, skipped) = cells(&text);
        assert!(skipped.is_empty());
        let names: Vec<_> = run.iter().map(|c| c.key.variant.as_str()).collect();
        let v = ["seed-baseline", "batched", "compact", "tuned", "ringbuf"];
        assert_eq!(names, [v, v].concat());
        for (i, c) in run.iter().enumerate() {
            assert_eq!(c.index, i);
            assert_eq!(c.knobs, (c.variant.knobs)());
            assert_eq!(c.layout, c.variant.layout);
            assert_eq!(c.transport, c.variant.transport);
            assert!(c.key.knobs.is_empty());
        }
        // The ring buffer gets the 32 MiB whole; perf splits it per CPU.
        let ringbuf = run.iter().find(|c| c.key.variant == "ringbuf").unwrap();
        assert_eq!((ringbuf.ring_bytes, ringbuf.rings), (32 << 20, None));
    }

    #[test]
    fn axes_cross_variants_and_skip_what_a_variant_cannot_read() {
        let text = format!(
            "captures = [{:?}]\nlayouts = [\"fixed4k\", \"compact\"]\nperf_wakeup = [\"events:1\", \"events:64\"]\n\
             variants = [\"batched\", \"compact\", {{ name = \"batched\", workers = 4, extra_work = \"1us\", path_cache = \"1MiB\" }}]\n",
            fixture("fixed4k-perf.pcapng")
        );
        let (run, skipped) = cells(&text);
        // 3 variants x 2 layouts x 2 perf wakeups, less compact on fixed4k.
        assert_eq!(run.len(), 10);
        assert_eq!(skipped.len(), 2);
        for s in &skipped {
            assert_eq!(
                (s.key.variant.as_str(), s.key.layout.as_str()),
                ("compact", "fixed4k")
            );
            assert!(s.reason.contains("cannot read fixed4k"), "{}", s.reason);
        }
        let tuned: Vec<_> = run.iter().filter(|c| !c.key.knobs.is_empty()).collect();
        assert_eq!(tuned.len(), 4);
        for c in tuned {
            assert_eq!(c.key.knobs, "workers=4,path_cache=1MiB");
            assert_eq!(c.knobs.workers, 4);
            assert_eq!(c.knobs.path_cache, 1 << 20);
            assert_eq!(c.knobs.extra_work, Duration::from_micros(1));
            assert_eq!(c.knobs.channel_depth, (c.variant.knobs)().channel_depth);
        }
        // Keys stay distinct.
        let mut keys: Vec<_> = run.iter().map(|c| c.key.clone()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), run.len());
    }

    #[test]
    fn every_bad_plan_is_an_error_naming_key_and_line() {
        for (text, needles) in [
            (
                "variants = [\"warp-drive\"]\n".to_string(),
                &["line 1", "variants", "warp-drive"][..],
            ),
            (
                "sink = \"null\"\n\n[[variants]]\nname = \"batched\"\nworkerz = 2\n".into(),
                &["line 3", "workerz", "unknown field"][..],
            ),
            (
                "variants = [{ name = \"batched\", workers = 0 }]\n".into(),
                &["line 1", "variants: batched: workers", "0"][..],
            ),
            (
                "variants = [{ name = \"tuned\", path_cache = \"lots\" }]\n".into(),
                &["line 1", "variants: tuned: path_cache", "lots"][..],
            ),
            (
                "variants = [{ name = \"tuned\", message_events = 0 }]\n".into(),
                &["line 1", "variants: tuned: message_events", "0"][..],
            ),
            (
                "sink = \"null\"\n[[variants]]\nname = \"compact\"\nlayouts = [\"fixed4k\"]\n"
                    .into(),
                &[
                    "line 4",
                    "variants: compact: layouts",
                    "cannot read fixed4k",
                ][..],
            ),
            (
                "variants = [{ name = \"ringbuf\", transports = [\"perf\"] }]\n".into(),
                &["line 1", "transports", "cannot read"][..],
            ),
            (
                "layouts = [\"fixed8k\"]\n".into(),
                &["line 1", "layouts", "fixed8k"][..],
            ),
            (
                "transports = [\"pipe\"]\n".into(),
                &["line 1", "transports", "pipe"][..],
            ),
            (
                "modes = [\"dream\"]\n".into(),
                &["line 1", "modes", "dream"][..],
            ),
            ("\nlo = -5.0\n".into(), &["line 2", "lo", "-5"][..]),
            (
                "modes = [\"live\"]\nlive_load_threads = 0\n".into(),
                &["line 2", "live_load_threads", "1..=64"][..],
            ),
            (
                "min_ring = { rate = -1.0 }\n".into(),
                &["line 1", "min_ring", "rate"][..],
            ),
            (
                "min_ring = { rate = 1e5, lo = \"1GiB\" }\n".into(),
                &["line 1", "min_ring", "below"][..],
            ),
            (
                "captures = [\"/nonexistent/x.pcapng\"]\n".into(),
                &["line 1", "captures", "/nonexistent/x.pcapng"][..],
            ),
            ("ring_bytes = [\n".into(), &["line 2", "expected"][..]),
            ("\nperf_wakeup = 5\n".into(), &["line 2", "perf_wakeup"][..]),
            ("lo = \"fast\"\n".into(), &["line 1", "lo:", "string"][..]),
            (
                "variants = [\"batched\", \"batched\"]\n".into(),
                &["line 1", "twice"][..],
            ),
        ] {
            let e = Plan::parse(&text, "t.toml").unwrap_err();
            assert!(matches!(e, SweepError::Config { .. }), "{text}: {e}");
            let e = e.to_string();
            for n in needles {
                assert!(e.contains(n), "{text:?}: {n:?} missing from {e}");
            }
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        // Built in code, the same checks run (no line to name).
        let cfg = SweepConfig {
            variants: vec!["warp-drive".to_string().into()],
            ..SweepConfig::default()
        };
        let e = Plan::from_config(cfg, "code").unwrap_err().to_string();
        assert!(e.contains("code") && e.contains("warp-drive"), "{e}");
    }

    #[test]
    fn exec_readers_run_in_kernel_mode_only_and_go_by_their_name() {
        let text = format!(
            "captures = [{:?}]\nmodes = [\"replay\", \"kernel\"]\nsink = \"null\"\n\
             variants = [\"batched\", \"exec:./reader --x, y\",\n  \
             {{ exec = \"bpftool map event_pipe pinned $DROPBENCH_PIN_EVENTS\", name = \"bpftool\", transports = [\"perf\"], drain = \"1s\", ready = \"after:200ms\" }}]\n",
            fixture("fixed4k-perf.pcapng")
        );
        let (run, skipped) = cells(&text);
        let names: Vec<(&str, &str)> = run
            .iter()
            .map(|c| (c.key.variant.as_str(), c.key.mode.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("batched", "replay"),
                ("batched", "kernel"),
                ("exec:./reader --x, y", "kernel"),
                ("exec:bpftool", "kernel"),
            ]
        );
        // Their replay cells are skipped, saying why.
        assert_eq!(skipped.len(), 2);
        for s in &skipped {
            assert!(s.key.variant.starts_with("exec:"), "{:?}", s.key);
            assert_eq!(s.key.mode, "replay");
            assert!(s.reason.contains("kernel mode"), "{}", s.reason);
        }
        let bpftool = &run[3];
        let x = bpftool.exec.as_ref().unwrap();
        assert_eq!(
            x.command,
            "bpftool map event_pipe pinned $DROPBENCH_PIN_EVENTS"
        );
        assert_eq!(x.drain, Duration::from_secs(1));
        assert_eq!(x.ready, Ready::After(Duration::from_millis(200)));
        // The capture's own layout and transport; no sink of dropbench's.
        assert_eq!(
            (bpftool.layout, bpftool.transport),
            (Layout::Fixed4k, Transport::Perf)
        );
        assert_eq!(
            (bpftool.key.sink.as_str(), bpftool.key.broker.as_str()),
            ("none", "")
        );
        assert!(run[1].exec.is_none() && run[1].key.sink == "null");
        // It round-trips through plan.toml.
        let cfg = parse_config_str(&text, "t.toml").unwrap();
        let again = toml::to_string(&cfg).unwrap();
        assert_eq!(parse_config_str(&again, "t.toml").unwrap(), cfg, "{again}");
    }

    #[test]
    fn a_bad_exec_reader_is_an_error_naming_key_and_line() {
        for (text, needles) in [
            (
                "sink = \"null\"\nvariants = [\"batched\", \"exec:./r\"]\n",
                &["line 2", "variants", "exec:./r", "kernel mode", "modes"][..],
            ),
            (
                "modes = [\"kernel\"]\nvariants = [\"exec:  \"]\n",
                &["line 2", "variants", "needs a command"][..],
            ),
            (
                "modes = [\"kernel\"]\n[[variants]]\nexec = \"./r\"\nworkers = 2\n",
                &["line 4", "variants: ./r: workers", "has none"][..],
            ),
            (
                "modes = [\"kernel\"]\n[[variants]]\nexec = \"./r\"\nready = \"soon\"\n",
                &["line 4", "ready", "soon"][..],
            ),
            (
                "modes = [\"kernel\"]\n[[variants]]\nexec = \"./r\"\ndrain = \"long\"\n",
                &["line 4", "drain"][..],
            ),
            (
                "modes = [\"kernel\"]\nvariants = [\"exec:./r\", {{ exec = \"./r\" }}]\n",
                &["line 2", "exec:./r is listed twice"][..],
            ),
            (
                "modes = [\"kernel\"]\nvariants = [{{ workers = 2 }}]\n",
                &["line 2", "needs a name"][..],
            ),
        ] {
            let text = text.replace("{{", "{").replace("}}", "}");
            let e = Plan::parse(&text, "t.toml").unwrap_err().to_string();
            for n in needles {
                assert!(e.contains(n), "{text:?}: {n:?} missing from {e}");
            }
            assert_eq!(e.lines().count(), 1, "{e}");
        }
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
