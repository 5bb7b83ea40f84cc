//! Each compare rule on each cell it selects, from the cell's paired figures.
//!
//! - throughput (bigger is better) and CPU per event (smaller is better):
//!   log-ratios per pair, [`paired::decide`] with the rule's threshold.
//! - loss at the rate: per pair the two lost-sample proportions,
//!   [`paired::decide_increase`] with the rule's `max_increase` in points.
//! - instructions per event: counted, not timed, so one figure per side;
//!   a rise past the threshold fails, anything else passes.

use serde::{Deserialize, Serialize};

use super::{CellComparison, Pair};
use crate::gate::paired::{self, Better, PairedDecision, PairedRule, PairedVerdict};
use crate::gate::rules::{
    fmt_pct, DEFAULT_INSTRUCTIONS_THRESHOLD, DEFAULT_MAX_LOSS_INCREASE, DEFAULT_THRESHOLD,
};
use crate::gate::{PairedFigure, RulesFile, Selector};

pub const PASS: &str = "pass";
pub const REGRESSION: &str = "regression";
pub const INCONCLUSIVE: &str = "inconclusive";

/// One compare rule: its number in the rules file (0: a default rule).
#[derive(Debug, Clone, PartialEq)]
pub struct CompareRule {
    pub number: usize,
    pub select: Selector,
    pub figure: PairedFigure,
}

/// The rules a comparison judges by.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareRules {
    pub origin: String,
    pub rules: Vec<CompareRule>,
    /// Two-sided confidence of every interval.
    pub confidence: f64,
}

impl CompareRules {
    /// Without a rules file: every figure on every cell, at the default
    /// thresholds (docs/gate.md).
    pub fn defaults() -> Self {
        let all = |figure| CompareRule {
            number: 0,
            select: Selector::default(),
            figure,
        };
        CompareRules {
            origin: "the default compare rules".into(),
            rules: vec![
                all(PairedFigure::Throughput {
                    threshold: DEFAULT_THRESHOLD,
                }),
                all(PairedFigure::Cpu {
                    threshold: DEFAULT_THRESHOLD,
                }),
                all(PairedFigure::Loss {
                    rate: None,
                    max_increase: DEFAULT_MAX_LOSS_INCREASE,
                }),
                all(PairedFigure::Instructions {
                    threshold: DEFAULT_INSTRUCTIONS_THRESHOLD,
                }),
            ],
            confidence: 0.90,
        }
    }

    /// The `compare = true` rules of a rules file (none: the defaults).
    pub fn from_file(f: &RulesFile) -> Self {
        let rules: Vec<CompareRule> = f
            .paired()
            .map(|(r, figure)| CompareRule {
                number: r.number,
                select: r.select.clone(),
                figure,
            })
            .collect();
        if rules.is_empty() {
            return Self::defaults();
        }
        CompareRules {
            origin: f.path.clone(),
            rules,
            confidence: 0.90,
        }
    }

    pub fn wants(&self, name: &str) -> bool {
        self.rules.iter().any(|r| r.figure.name() == name)
    }
}

/// One rule on one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The rule's number in the rules file; 0 for a default rule.
    pub rule: usize,
    pub rule_text: String,
    /// `throughput`, `cpu`, `loss` or `instructions`.
    pub figure: String,
    /// Medians over the pairs (the figure itself for instructions).
    pub baseline: f64,
    pub candidate: f64,
    /// The change, stored negative-is-worse whichever way the figure is
    /// better: the log-ratio's relative change for throughput, CPU and
    /// instructions (CPU up 14 % is stored as 1/1.14 - 1 = -12.3 %); for
    /// loss, the rise in points, negated.
    pub change: f64,
    pub low: f64,
    pub high: f64,
    /// Standard deviation of the per-pair differences (log-ratios, or loss points).
    pub spread: f64,
    pub pairs: usize,
    /// The smallest relative change these pairs detect (throughput and CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detectable: Option<f64>,
    pub verdict: String,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn rule_text(r: &CompareRule) -> String {
    let what = match r.figure {
        PairedFigure::Throughput { threshold } => {
            format!("throughput drop < {}%", fmt_pct(threshold))
        }
        PairedFigure::Cpu { threshold } => format!("CPU per event rise < {}%", fmt_pct(threshold)),
        PairedFigure::Instructions { threshold } => {
            format!("instructions per event rise <= {}%", fmt_pct(threshold))
        }
        PairedFigure::Loss { max_increase, .. } => {
            format!("loss rise < {} points", fmt_pct(max_increase))
        }
    };
    if r.number == 0 {
        format!("{what} (default)")
    } else {
        format!("rule {}: {what}", r.number)
    }
}

fn check_from(r: &CompareRule, b: f64, c: f64, d: PairedDecision, detect: Option<f64>) -> Check {
    Check {
        rule: r.number,
        rule_text: rule_text(r),
        figure: r.figure.name().into(),
        baseline: b,
        candidate: c,
        change: d.change,
        low: d.low,
        high: d.high,
        spread: d.spread,
        pairs: d.pairs,
        detectable: detect,
        verdict: match d.verdict {
            PairedVerdict::Pass => PASS,
            PairedVerdict::Regression => REGRESSION,
            PairedVerdict::Inconclusive => INCONCLUSIVE,
        }
        .into(),
    }
}

/// The loss rate a cell's loss trials use: the rule's, else `fraction` of
/// the baseline's median saturated throughput.
pub fn loss_rate(rules: &CompareRules, cell: &CellComparison, fraction: f64) -> Option<f64> {
    let rule = rules.rules.iter().find(|r| {
        matches!(r.figure, PairedFigure::Loss { .. }) && r.select.matches(&cell.cell.key)
    })?;
    match rule.figure {
        PairedFigure::Loss { rate: Some(r), .. } => Some(r),
        _ => {
            let b: Vec<f64> = cell.pairs.iter().map(|p| p.baseline.throughput).collect();
            Some((median(&b) * fraction).max(1.0))
        }
    }
}

/// Every rule that selects `cell`, judged.
pub fn judge_cell(rules: &CompareRules, cell: &CellComparison) -> Result<Vec<Check>, String> {
    let mut out = Vec::new();
    let side = |f: fn(&Pair) -> f64| -> Vec<f64> { cell.pairs.iter().map(f).collect() };
    for r in rules
        .rules
        .iter()
        .filter(|r| r.select.matches(&cell.cell.key))
    {
        let paired_rule = |threshold, better| PairedRule {
            confidence: rules.confidence,
            ..PairedRule::with_threshold(threshold, better)
        };
        match r.figure {
            PairedFigure::Throughput { threshold } | PairedFigure::Cpu { threshold } => {
                let (b, c, better) = if r.figure.name() == "throughput" {
                    (
                        side(|p| p.baseline.throughput),
                        side(|p| p.candidate.throughput),
                        Better::Bigger,
                    )
                } else {
                    (
                        side(|p| p.baseline.cpu_ns_per_event),
                        side(|p| p.candidate.cpu_ns_per_event),
                        Better::Smaller,
                    )
                };
                let d = paired::decide(&b, &c, &paired_rule(threshold, better))
                    .map_err(|e| format!("{}: {e}", r.figure.name()))?;
                let detect = paired::detectable_change(d.spread, d.pairs, rules.confidence);
                out.push(check_from(r, median(&b), median(&c), d, Some(detect)));
            }
            PairedFigure::Loss { max_increase, .. } => {
                let at = |p: &Option<super::TrialFigures>| p.as_ref().map(|f| f.loss());
                let b: Option<Vec<f64>> =
                    cell.pairs.iter().map(|p| at(&p.baseline_at_rate)).collect();
                let c: Option<Vec<f64>> = cell
                    .pairs
                    .iter()
                    .map(|p| at(&p.candidate_at_rate))
                    .collect();
                let (Some(b), Some(c)) = (b, c) else {
                    continue;
                };
                let d = paired::decide_increase(&b, &c, max_increase, rules.confidence)
                    .map_err(|e| format!("loss: {e}"))?;
                out.push(check_from(r, median(&b), median(&c), d, None));
            }
            PairedFigure::Instructions { threshold } => {
                let Some(i) = &cell.instructions else {
                    continue;
                };
                let (b, c) = (i.baseline.total, i.candidate.total);
                let change = if b > 0.0 { b / c - 1.0 } else { 0.0 };
                // Counted, not sampled: the figure is its own interval.
                let verdict = if c > b * (1.0 + threshold) {
                    PairedVerdict::Regression
                } else {
                    PairedVerdict::Pass
                };
                let d = PairedDecision {
                    pairs: 1,
                    change,
                    low: change,
                    high: change,
                    spread: 0.0,
                    verdict,
                };
                out.push(check_from(r, b, c, d, None));
            }
        }
    }
    Ok(out)
}

/// The verdict of a check measured twice: a regression only when both
/// measurements say so; a first regression the second does not repeat is
/// inconclusive (the two disagree), never a pass.
pub fn confirmed(first: &str, second: &str) -> &'static str {
    match (first, second) {
        (REGRESSION, REGRESSION) => REGRESSION,
        (REGRESSION, _) => INCONCLUSIVE,
        (_, PASS) => PASS,
        (_, REGRESSION) => REGRESSION,
        _ => INCONCLUSIVE,
    }
}

/// A figure in its unit.
pub fn figure_value(figure: &str, v: f64) -> String {
    match figure {
        "throughput" => format!("{:.1} k/s", v / 1e3),
        "cpu" => format!("{v:.0} ns/ev"),
        "loss" => format!("{:.3}%", 100.0 * v),
        "instructions" => format!("{v:.0} ins/ev"),
        _ => format!("{v}"),
    }
}

/// A change as the figure itself moved: `v` is stored negative-is-worse,
/// and is shown in the figure's own direction (CPU per event +14 % is a
/// rise), in points for loss.
pub fn change_text(figure: &str, v: f64) -> String {
    match figure {
        "loss" => format!("{:+.3} pt", -100.0 * v),
        "cpu" | "instructions" => format!("{:+.1}%", 100.0 * (1.0 / (1.0 + v) - 1.0)),
        _ => format!("{:+.1}%", 100.0 * v),
    }
}

/// The interval of a check as the figure moved (loss as the rise in points).
pub fn interval_text(k: &Check) -> String {
    match k.figure.as_str() {
        "instructions" => "(counted)".into(),
        "throughput" => format!(
            "[{}, {}]",
            change_text("throughput", k.low),
            change_text("throughput", k.high)
        ),
        // The figure's rise is largest at the worse end.
        f => format!("[{}, {}]", change_text(f, k.high), change_text(f, k.low)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{CompareCell, Instructions, TrialFigures};
    use crate::experiment::results::CellKey;

    fn cell(pairs: Vec<Pair>, instructions: Option<Instructions>) -> CellComparison {
        CellComparison {
            cell: CompareCell {
                key: CellKey {
                    variant: "batched".into(),
                    capture: "c.pcapng".into(),
                    layout: "fixed4k".into(),
                    transport: "perf".into(),
                    ring_total_bytes: 2 << 20,
                    wakeup: "events:64".into(),
                    sink: "null".into(),
                    mode: crate::results::Mode::Replay,
                    knobs: String::new(),
                    broker: String::new(),
                    profile: "release".into(),
                },
                capture: "c.pcapng".into(),
                variant: "batched".into(),
                knobs: vec![],
                transport: "perf".into(),
                ring_bytes: 1 << 20,
                rings: Some(2),
                wakeup: "events:64".into(),
                sink: "null".into(),
                brokers: None,
            },
            loss_rate: None,
            pairs,
            instructions,
            checks: vec![],
            first: None,
        }
    }

    fn fig(throughput: f64, cpu: f64, lost: u64) -> TrialFigures {
        TrialFigures {
            throughput,
            cpu_ns_per_event: cpu,
            offered: 100_000,
            lost,
            ..TrialFigures::default()
        }
    }

    #[test]
    fn a_slower_candidate_fails_throughput_cpu_and_loss() {
        let pairs = (0..16)
            .map(|i| {
                let host = 1.0 + 0.05 * (i % 4) as f64;
                Pair {
                    first: "baseline".into(),
                    baseline: fig(500_000.0 * host, 2000.0 / host, 0),
                    candidate: fig(400_000.0 * host, 2500.0 / host, 0),
                    baseline_at_rate: Some(fig(0.0, 0.0, 0)),
                    candidate_at_rate: Some(fig(0.0, 0.0, 800 + i)),
                }
            })
            .collect();
        let c = cell(pairs, None);
        let checks = judge_cell(&CompareRules::defaults(), &c).unwrap();
        let v: Vec<(&str, &str)> = checks
            .iter()
            .map(|k| (k.figure.as_str(), k.verdict.as_str()))
            .collect();
        assert_eq!(
            v,
            [
                ("throughput", REGRESSION),
                ("cpu", REGRESSION),
                ("loss", REGRESSION)
            ]
        );
        assert!((checks[0].change + 0.2).abs() < 0.01, "{checks:?}");
        assert_eq!(
            loss_rate(&CompareRules::defaults(), &c, 0.7).map(|r| r.round()),
            Some((0.7 * 500_000.0 * 1.075f64).round())
        );
    }

    #[test]
    fn a_regression_stands_only_when_its_confirmation_repeats_it() {
        assert_eq!(confirmed(REGRESSION, REGRESSION), REGRESSION);
        assert_eq!(confirmed(REGRESSION, PASS), INCONCLUSIVE);
        assert_eq!(confirmed(REGRESSION, INCONCLUSIVE), INCONCLUSIVE);
    }

    #[test]
    fn equal_sides_pass_and_instructions_are_judged_on_their_counts() {
        let pairs = (0..16)
            .map(|i| {
                let host = 1.0 + 0.05 * (i % 4) as f64;
                Pair {
                    first: "candidate".into(),
                    baseline: fig(500_000.0 * host, 2000.0, 0),
                    candidate: fig(500_000.0 * host * (1.0 + 0.001 * (i % 3) as f64), 2000.0, 0),
                    ..Pair::default()
                }
            })
            .collect();
        let per = |t| crate::compare::callgrind::PerEvent {
            total: t,
            ..Default::default()
        };
        let c = cell(
            pairs,
            Some(Instructions {
                events: 1000,
                baseline: per(10_000.0),
                candidate: per(10_300.0),
            }),
        );
        let checks = judge_cell(&CompareRules::defaults(), &c).unwrap();
        let v: Vec<(&str, &str)> = checks
            .iter()
            .map(|k| (k.figure.as_str(), k.verdict.as_str()))
            .collect();
        // No loss trials: no loss check. Instructions up 3 % > 2 %: fails.
        assert_eq!(
            v,
            [
                ("throughput", PASS),
                ("cpu", PASS),
                ("instructions", REGRESSION)
            ]
        );
    }
}
