//! The rules file (`ci/gates.toml`; format in docs/gate.md), parsed once into
//! typed [`Rule`]s.
//!
//! ```toml
//! [[rule]]
//! kind = "loss"          # loss <= max_loss at offered `rate` (events/s)
//! variant = "batched"    # "*": every variant
//! ring = "32MiB"         # optional; also capture, layout, transport, wakeup, mode
//! rate = 20000
//! max_loss = "0.1%"
//!
//! [[rule]]
//! kind = "ndr"           # or "pdr": the rate is at least `at_least`
//! variant = "*"
//! at_least = 10000
//!
//! [[rule]]
//! kind = "regression"    # the NDR (or `measure = "pdr"`) fell by no more than max_drop
//! variant = "*"
//! max_drop = "50%"
//! ```

use std::path::Path;

use serde::Deserialize;

use super::GateInputError;
use crate::experiment::results::CellKey;

/// Which of a cell's rates a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// The no-drop rate: the highest rate with nothing lost.
    Ndr,
    /// The partial-drop rate: loss within the sweep's `pdr_loss`.
    Pdr,
}

impl std::fmt::Display for Measure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Measure::Ndr => "NDR",
            Measure::Pdr => "PDR",
        })
    }
}

/// What a rule asserts about each cell it selects.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// Loss (a fraction of offered) is at most `max_loss` at offered `rate`.
    Loss { rate: f64, max_loss: f64 },
    /// The measure is at least `at_least` events/s.
    AtLeast { measure: Measure, at_least: f64 },
    /// The measure fell by no more than `max_drop` (a fraction) from the baseline's.
    Regression { measure: Measure, max_drop: f64 },
    /// `compare = true`: a figure of two builds measured in turn by `harness
    /// compare`, judged on paired differences. The gate skips these.
    Paired(PairedFigure),
}

/// What a `compare = true` rule judges (docs/gate.md, "Comparing two builds").
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PairedFigure {
    /// Saturated throughput fell by no more than `threshold` (a fraction).
    Throughput { threshold: f64 },
    /// Pipeline CPU per event rose by no more than `threshold`.
    Cpu { threshold: f64 },
    /// Loss at `rate` (events/s; none: the comparison's fraction of the
    /// baseline's saturated throughput) rose by no more than `max_increase`
    /// points.
    Loss {
        rate: Option<f64>,
        max_increase: f64,
    },
    /// Instructions per event (callgrind) rose by no more than `threshold`.
    Instructions { threshold: f64 },
}

impl PairedFigure {
    pub fn name(&self) -> &'static str {
        match self {
            PairedFigure::Throughput { .. } => "throughput",
            PairedFigure::Cpu { .. } => "cpu",
            PairedFigure::Loss { .. } => "loss",
            PairedFigure::Instructions { .. } => "instructions",
        }
    }
}

/// Which cells a rule applies to; an absent field matches anything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selector {
    /// `None`: every variant (`"*"`).
    pub variant: Option<String>,
    pub capture: Option<String>,
    pub layout: Option<String>,
    pub transport: Option<String>,
    /// Ring memory of the cell (the whole of it, as the series key holds it).
    pub ring_total_bytes: Option<u64>,
    pub wakeup: Option<String>,
    pub mode: Option<String>,
}

impl Selector {
    pub fn matches(&self, k: &CellKey) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.variant, &k.variant)
            && eq(&self.capture, &k.capture)
            && eq(&self.layout, &k.layout)
            && eq(&self.transport, &k.transport)
            && self
                .ring_total_bytes
                .is_none_or(|b| b == k.ring_total_bytes)
            && eq(&self.wakeup, &k.wakeup)
            && eq(&self.mode, k.mode.name())
    }
}

/// One rule: its place in the file (1-based), the cells and the assertion.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub number: usize,
    pub select: Selector,
    pub kind: RuleKind,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.select;
        match &self.kind {
            RuleKind::Loss { rate, max_loss } => {
                write!(f, "loss <= {}% at {rate:.0}/s", fmt_pct(*max_loss))?
            }
            RuleKind::AtLeast { measure, at_least } => write!(f, "{measure} >= {at_least:.0}/s")?,
            RuleKind::Regression { measure, max_drop } => {
                write!(f, "{measure} drop <= {}% vs baseline", fmt_pct(*max_drop))?
            }
            RuleKind::Paired(p) => match p {
                PairedFigure::Throughput { threshold } => {
                    write!(f, "throughput drop < {}% (compare)", fmt_pct(*threshold))?
                }
                PairedFigure::Cpu { threshold } => {
                    write!(f, "CPU per event rise < {}% (compare)", fmt_pct(*threshold))?
                }
                PairedFigure::Instructions { threshold } => write!(
                    f,
                    "instructions per event rise <= {}% (compare)",
                    fmt_pct(*threshold)
                )?,
                PairedFigure::Loss { rate, max_increase } => {
                    write!(f, "loss rise < {} points", fmt_pct(*max_increase))?;
                    match rate {
                        Some(r) => write!(f, " at {r:.0}/s (compare)")?,
                        None => write!(f, " (compare)")?,
                    }
                }
            },
        }
        write!(
            f,
            " for {}",
            s.variant.as_deref().unwrap_or("every variant")
        )?;
        if let Some(b) = s.ring_total_bytes {
            write!(f, ", ring {} KiB", b >> 10)?;
        }
        for (name, v) in [
            ("capture", &s.capture),
            ("layout", &s.layout),
            ("transport", &s.transport),
            ("wakeup", &s.wakeup),
            ("mode", &s.mode),
        ] {
            if let Some(v) = v {
                write!(f, ", {name} {v}")?;
            }
        }
        Ok(())
    }
}

/// A percentage for display: `0.1` -> `10`, `0.001` -> `0.1`.
pub fn fmt_pct(fraction: f64) -> String {
    let p = fraction * 100.0;
    let s = format!("{p:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The parsed rules file.
#[derive(Debug, Clone, PartialEq)]
pub struct RulesFile {
    pub path: String,
    pub rules: Vec<Rule>,
}

/// A compare rule's default threshold: a change of 10 % must be caught.
pub const DEFAULT_THRESHOLD: f64 = 0.10;
/// Instruction counts are exact to 0.1 % run to run: 2 % is far above noise
/// and below any change worth a look.
pub const DEFAULT_INSTRUCTIONS_THRESHOLD: f64 = 0.02;
/// Loss at the compare rate may rise by 0.25 points: half the 0.5 points a
/// comparison must catch.
pub const DEFAULT_MAX_LOSS_INCREASE: f64 = 0.0025;

/// A fraction written as `"10%"` or `0.1`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Fraction {
    Number(f64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    kind: String,
    variant: String,
    capture: Option<String>,
    layout: Option<String>,
    transport: Option<String>,
    ring: Option<String>,
    wakeup: Option<String>,
    mode: Option<String>,
    rate: Option<f64>,
    max_loss: Option<Fraction>,
    at_least: Option<f64>,
    measure: Option<String>,
    max_drop: Option<Fraction>,
    /// `true`: a rule for `harness compare` (paired figures of two builds).
    #[serde(default)]
    compare: bool,
    /// compare rules: the change that fails (throughput, cpu, instructions).
    threshold: Option<Fraction>,
    /// compare loss rules: the rise in loss, in points, that fails.
    max_increase: Option<Fraction>,
}

fn fraction(f: &Fraction, key: &str) -> Result<f64, String> {
    let v = match f {
        Fraction::Number(v) => Some(*v),
        Fraction::Text(t) => match t.trim().strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().ok().map(|p| p / 100.0),
            None => t.trim().parse::<f64>().ok(),
        },
    };
    match v {
        Some(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{key}: {f:?} is not a fraction in [0%, 100%) (e.g. \"10%\" or 0.1)"
        )),
    }
}

fn rate(v: Option<f64>, key: &str, kind: &str) -> Result<f64, String> {
    match v {
        Some(v) if v.is_finite() && v > 0.0 => Ok(v),
        Some(v) => Err(format!("{key}: {v} is not a positive rate in events/s")),
        None => Err(format!("a {kind} rule needs {key}")),
    }
}

impl RawRule {
    fn into_rule(self, number: usize) -> Result<Rule, String> {
        let measure = match self.measure.as_deref() {
            None | Some("ndr") => Measure::Ndr,
            Some("pdr") => Measure::Pdr,
            Some(m) => return Err(format!("measure: {m:?}; expected ndr or pdr")),
        };
        let unused = |present: bool, key: &str| {
            if present {
                Err(format!("{key} does not apply to a {} rule", self.kind))
            } else {
                Ok(())
            }
        };
        if !self.compare && matches!(self.kind.as_str(), "throughput" | "cpu" | "instructions") {
            return Err(format!(
                "a {} rule compares two builds: it needs compare = true (harness compare)",
                self.kind
            ));
        }
        if !self.compare {
            unused(self.threshold.is_some(), "threshold")?;
            unused(self.max_increase.is_some(), "max_increase")?;
        }
        let kind = match self.kind.as_str() {
            "throughput" | "cpu" | "instructions" | "loss" if self.compare => {
                unused(self.at_least.is_some(), "at_least")?;
                unused(self.max_drop.is_some(), "max_drop")?;
                unused(self.measure.is_some(), "measure")?;
                unused(self.max_loss.is_some(), "max_loss")?;
                let threshold = |default: f64| {
                    self.threshold
                        .as_ref()
                        .map(|t| fraction(t, "threshold"))
                        .transpose()
                        .map(|t| t.unwrap_or(default))
                };
                RuleKind::Paired(match self.kind.as_str() {
                    "loss" => {
                        unused(self.threshold.is_some(), "threshold")?;
                        PairedFigure::Loss {
                            rate: self.rate.map(|r| rate(Some(r), "rate", "loss")).transpose()?,
                            max_increase: self
                                .max_increase
                                .as_ref()
                                .map(|t| fraction(t, "max_increase"))
                                .transpose()?
                                .unwrap_or(DEFAULT_MAX_LOSS_INCREASE),
                        }
                    }
                    k => {
                        unused(self.rate.is_some(), "rate")?;
                        unused(self.max_increase.is_some(), "max_increase")?;
                        match k {
                            "throughput" => PairedFigure::Throughput {
                                threshold: threshold(DEFAULT_THRESHOLD)?,
                            },
                            "cpu" => PairedFigure::Cpu {
                                threshold: threshold(DEFAULT_THRESHOLD)?,
                            },
                            _ => PairedFigure::Instructions {
                                threshold: threshold(DEFAULT_INSTRUCTIONS_THRESHOLD)?,
                            },
                        }
                    }
                })
            }
            "loss" => {
                unused(self.at_least.is_some(), "at_least")?;
                unused(self.max_drop.is_some(), "max_drop")?;
                unused(self.measure.is_some(), "measure")?;
                RuleKind::Loss {
                    rate: rate(self.rate, "rate", "loss")?,
                    max_loss: fraction(
                        self.max_loss.as_ref().ok_or("a loss rule needs max_loss")?,
                        "max_loss",
                    )?,
                }
            }
            "ndr" | "pdr" => {
                unused(self.rate.is_some(), "rate")?;
                unused(self.max_loss.is_some(), "max_loss")?;
                unused(self.max_drop.is_some(), "max_drop")?;
                unused(self.measure.is_some(), "measure")?;
                RuleKind::AtLeast {
                    measure: if self.kind == "ndr" {
                        Measure::Ndr
                    } else {
                        Measure::Pdr
                    },
                    at_least: rate(self.at_least, "at_least", &self.kind)?,
                }
            }
            "regression" => {
                unused(self.rate.is_some(), "rate")?;
                unused(self.max_loss.is_some(), "max_loss")?;
                unused(self.at_least.is_some(), "at_least")?;
                RuleKind::Regression {
                    measure,
                    max_drop: fraction(
                        self.max_drop
                            .as_ref()
                            .ok_or("a regression rule needs max_drop")?,
                        "max_drop",
                    )?,
                }
            }
            k => {
                return Err(format!(
                    "kind: {k:?}; expected loss, ndr, pdr or regression (or, with compare = true, throughput, cpu, loss or instructions)"
                ))
            }
        };
        let ring_bytes = self
            .ring
            .as_deref()
            .map(|r| probes::units::parse_bytes(r).map_err(|e| format!("ring: {e}")))
            .transpose()?;
        Ok(Rule {
            number,
            select: Selector {
                variant: (self.variant != "*").then_some(self.variant),
                capture: self.capture,
                layout: self.layout,
                transport: self.transport,
                ring_total_bytes: ring_bytes,
                wakeup: self.wakeup,
                mode: self.mode,
            },
            kind,
        })
    }
}

impl RulesFile {
    /// The rules `harness gate` judges (all but `compare = true` ones).
    pub fn gate_rules(&self) -> usize {
        self.rules
            .iter()
            .filter(|r| !matches!(r.kind, RuleKind::Paired(_)))
            .count()
    }

    /// The `compare = true` rules, for `harness compare`.
    pub fn paired(&self) -> impl Iterator<Item = (&Rule, PairedFigure)> {
        self.rules.iter().filter_map(|r| match r.kind {
            RuleKind::Paired(p) => Some((r, p)),
            _ => None,
        })
    }

    pub fn load(path: &Path) -> Result<RulesFile, GateInputError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| GateInputError::Rules {
            path: p.clone(),
            what: e.to_string(),
        })?;
        Self::parse(&text, &p)
    }

    /// Parses rules text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<RulesFile, GateInputError> {
        let err = |what: String| GateInputError::Rules {
            path: origin.to_string(),
            what,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| err(e.message().replace('\n', " ")))?;
        if raw.rule.is_empty() {
            return Err(err("no [[rule]] entries".into()));
        }
        let rules = raw
            .rule
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.into_rule(i + 1)
                    .map_err(|e| err(format!("rule {}: {e}", i + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RulesFile {
            path: origin.to_string(),
            rules,
        })
    }

    /// The rules `harness gate` applies without a rules file: every cell's
    /// NDR against the baseline, with the given allowed drop.
    pub fn default_regression(max_drop: f64) -> RulesFile {
        RulesFile {
            path: "(built-in: --max-drop)".into(),
            rules: vec![Rule {
                number: 1,
                select: Selector::default(),
                kind: RuleKind::Regression {
                    measure: Measure::Ndr,
                    max_drop,
                },
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_rules_parse_with_defaults_and_the_gate_skips_them() {
        let f = RulesFile::parse(
            r#"
[[rule]]
kind = "throughput"
compare = true
variant = "*"
[[rule]]
kind = "loss"
compare = true
variant = "batched"
rate = 150000
max_increase = "0.5%"
[[rule]]
kind = "instructions"
compare = true
variant = "*"
threshold = "3%"
[[rule]]
kind = "ndr"
variant = "*"
at_least = 1000
"#,
            "t",
        )
        .unwrap();
        let paired: Vec<PairedFigure> = f.paired().map(|(_, p)| p).collect();
        assert_eq!(
            paired,
            [
                PairedFigure::Throughput { threshold: 0.10 },
                PairedFigure::Loss {
                    rate: Some(150000.0),
                    max_increase: 0.005
                },
                PairedFigure::Instructions { threshold: 0.03 },
            ]
        );
        assert_eq!(f.gate_rules(), 1);
        for (text, needle) in [
            ("kind = \"cpu\"\nvariant = \"*\"", "needs compare = true"),
            (
                "kind = \"throughput\"\ncompare = true\nvariant = \"*\"\nmax_increase = \"1%\"",
                "max_increase does not apply",
            ),
            (
                "kind = \"loss\"\nvariant = \"*\"\nrate = 1000\nmax_loss = \"1%\"\nthreshold = \"1%\"",
                "threshold does not apply",
            ),
        ] {
            let e = RulesFile::parse(&format!("[[rule]]\n{text}\n"), "t").unwrap_err();
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn parses_each_kind_and_names_bad_keys() {
        let f = RulesFile::parse(
            r#"
[[rule]]
kind = "loss"
variant = "batched"
ring = "32MiB"
rate = 20000
max_loss = "0.1%"
[[rule]]
kind = "pdr"
variant = "*"
at_least = 1e4
[[rule]]
kind = "regression"
variant = "*"
measure = "pdr"
max_drop = 0.5
"#,
            "g.toml",
        )
        .unwrap();
        assert_eq!(
            f.rules[0].kind,
            RuleKind::Loss {
                rate: 20000.0,
                max_loss: 0.001
            }
        );
        assert_eq!(f.rules[0].select.ring_total_bytes, Some(32 << 20));
        assert_eq!(f.rules[1].select.variant, None);
        assert_eq!(
            f.rules[2].kind,
            RuleKind::Regression {
                measure: Measure::Pdr,
                max_drop: 0.5
            }
        );
        assert_eq!(
            f.rules[0].to_string(),
            "loss <= 0.1% at 20000/s for batched, ring 32768 KiB"
        );
        for (text, want) in [
            (
                "[[rule]]\nkind = \"loss\"\nvariant = \"a\"\nrate = 1\n",
                "rule 1: a loss rule needs max_loss",
            ),
            (
                "[[rule]]\nkind = \"ndr\"\nvariant = \"a\"\nat_least = 1\nmax_drop = 0.1\n",
                "rule 1: max_drop does not apply",
            ),
            (
                "[[rule]]\nkind = \"regression\"\nvariant = \"a\"\nmax_drop = \"150%\"\n",
                "rule 1: max_drop",
            ),
            (
                "[[rule]]\nkind = \"speed\"\nvariant = \"a\"\n",
                "rule 1: kind",
            ),
            (
                "[[rule]]\nkind = \"ndr\"\nvariant = \"a\"\nat_least = 1\nbogus = 2\n",
                "bogus",
            ),
            ("", "no [[rule]]"),
        ] {
            let e = RulesFile::parse(text, "g.toml").unwrap_err().to_string();
            assert!(e.starts_with("rules g.toml: ") && e.contains(want), "{e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }
}
