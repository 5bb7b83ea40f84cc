//! Checking a config into a typed [`Plan`]: every value parsed once, every
//! error a [`PlanError`] naming the origin, the key and (with a text) the
//! line. Also the pieces the check builds: exec readers, knobs labels and the
//! steady-state verdict rule.

use std::path::Path;
use std::time::Duration;

use super::cells::plan_variants;
use super::config::{locate, OneOrMany, SweepConfig, VariantEntry};
use super::{ExecReader, Mode, Plan};
use crate::capture::Loading;
use crate::experiment::search::{MinRingSearch, ZeroLossSearch};
use crate::experiment::trial::RateShape;
use crate::experiment::verdict::VerdictRule;
use crate::pipeline::Knobs;
use crate::replay::kernel::{ExecSpec, Ready};
use crate::replay::Wakeup;
use crate::sink::SinkSpec;
use probes::abi::Layout;
use probes::Transport;

/// Why a sweep config could not become a [`Plan`]: where it came from (a
/// file, or "the command line") and what is wrong with it, in one line that
/// names the key and, when there is a text, the line.
#[derive(Debug, thiserror::Error)]
#[error("sweep config {path}: {what}")]
pub struct PlanError {
    pub path: String,
    pub what: String,
}

/// A bad value: its key, what to look for on its line, what is wrong.
pub(super) struct Bad {
    pub(super) key: String,
    /// Text on the line after the key's (a variant's name, then its knob).
    pub(super) near: Vec<String>,
    pub(super) what: String,
}

pub(super) fn bad(key: &str, what: impl Into<String>) -> Bad {
    Bad {
        key: key.into(),
        near: Vec::new(),
        what: what.into(),
    }
}

impl Plan {
    /// Parses and checks a config text; every error names `origin`, the line
    /// and the key, in one line.
    pub fn parse(text: &str, origin: &str) -> Result<Plan, PlanError> {
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
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| config_error(&p, e.to_string()))?;
        Plan::parse(&text, &p)
    }

    /// Checks a config built in code (or changed from the command line);
    /// errors name `origin` and the key.
    pub fn from_config(cfg: SweepConfig, origin: &str) -> Result<Plan, PlanError> {
        Plan::build(cfg, None, origin)
    }

    fn build(cfg: SweepConfig, text: Option<&str>, origin: &str) -> Result<Plan, PlanError> {
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
        let mut names = std::collections::BTreeSet::new();
        for p in &cfg.programs {
            let near = |what: String| Bad {
                key: "programs".into(),
                near: vec![p.name.clone()],
                what,
            };
            let ok_name = !p.name.is_empty()
                && p.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok_name {
                return Err(near(format!(
                    "name {:?}: letters, digits, - and _ only (it names the program's files)",
                    p.name
                )));
            }
            if !names.insert(p.name.as_str()) {
                return Err(near(format!("name {:?} is given twice", p.name)));
            }
            if p.run.trim().is_empty() {
                return Err(near(format!("{}: run needs a command", p.name)));
            }
        }
        if !cfg.programs.is_empty() && !(3..=1000).contains(&cfg.program_repeats) {
            return Err(bad(
                "program_repeats",
                format!(
                    "{}: must be 3..=1000 (a distribution needs at least 3 runs per side)",
                    cfg.program_repeats
                ),
            ));
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
            programs: cfg.programs.clone(),
            program_repeats: cfg.program_repeats,
            config: cfg,
        })
    }
}

fn config_error(origin: &str, what: String) -> PlanError {
    PlanError {
        path: origin.to_string(),
        what,
    }
}

/// The outside reader an entry names (`exec:COMMAND`, or a table with
/// `exec`), checked; `None` for a dropbench variant. An error is its text and
/// the knob it is about.
pub(super) fn exec_reader(
    e: &VariantEntry,
) -> Result<Option<ExecReader>, (String, Option<&'static str>)> {
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
pub(super) fn knobs_label(defaults: &Knobs, k: &Knobs) -> String {
    k.diff_from(defaults)
        .into_iter()
        // extra_work is left out: it stands for a slower build of the same
        // variant (the gate's regression test), so the cell stays the same cell.
        .filter(|kv| !kv.starts_with("extra_work="))
        .collect::<Vec<_>>()
        .join(",")
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

#[cfg(test)]
mod tests {
    use super::*;

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
                "sink = \"null\"\n[[programs]]\nname = \"du /usr\"\nrun = \"du -s /usr\"\n".into(),
                &["line 3", "programs", "letters, digits"][..],
            ),
            (
                "[[programs]]\nname = \"du\"\nrun = \" \"\n".into(),
                &["programs", "run needs a command"][..],
            ),
            (
                "[[programs]]\nname = \"du\"\nrun = \"du -s /usr\"\n[[programs]]\nname = \"du\"\nrun = \"du -s /usr/share\"\n".into(),
                &["programs", "given twice"][..],
            ),
            (
                "[[programs]]\nname = \"du\"\nrun = \"du -s /usr\"\ncommand = \"x\"\n".into(),
                &["line 4", "command", "unknown field"][..],
            ),
            (
                "program_repeats = 2\n[[programs]]\nname = \"du\"\nrun = \"du -s /usr\"\n".into(),
                &["line 1", "program_repeats", "3..=1000"][..],
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
            assert_eq!(e.path, "t.toml", "{text}: {e}");
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
}
