//! Each rule against each cell it selects.
//!
//! - Loss at a rate: lost anywhere (ring + every stage's drops) over offered,
//!   pooled over the trials at that rate, with its 95% interval
//!   ([`crate::experiment::stats::loss_interval`]: Wilson, or Clopper-Pearson
//!   when fewer than 10 were lost). It fails only when the interval's lower
//!   end is above the threshold. A rate the search did not try is judged from
//!   its neighbours, since loss does not fall as the rate rises: a lower rate
//!   clearly over the threshold fails it; a higher rate clearly within passes it.
//! - NDR and PDR: the search brackets each one, [holds, first failing): the
//!   true rate lies in between. `>= bound` fails only when the bracket's top
//!   (the first failing rate) is at or below the bound.
//! - Regression: fails only when the current bracket's top is below the
//!   baseline bracket's bottom less the allowed drop, i.e. even the most
//!   favourable reading of the current run is worse than the least favourable
//!   reading of the baseline, by more than the allowance.

use crate::experiment::results::{CellKey, CellOutcome, SweepResults};
use crate::experiment::stats::{loss_interval, Proportion};
use crate::results::RunResult;

use super::rules::{fmt_pct, Measure, Rule, RuleKind, RulesFile};
use super::GateInputError;

/// How one rule judged one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// Its interval straddles the threshold, or the search did not measure
    /// near it: not clearly past, so it passes, marked.
    Unclear,
    Fail,
    /// In the baseline, not in these results (regression rules).
    Missing,
    /// Not in the baseline (regression rules): nothing to compare.
    New,
}

impl Status {
    pub fn fails(self) -> bool {
        matches!(self, Status::Fail | Status::Missing)
    }
    pub fn mark(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Unclear => "pass?",
            Status::Fail => "FAIL",
            Status::Missing => "FAIL",
            Status::New => "new",
        }
    }
}

/// One line of the gate's table.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub rule: usize,
    pub rule_text: String,
    pub cell: CellKey,
    pub status: Status,
    /// The numbers behind the status, in words.
    pub numbers: String,
}

/// A rate bracket from the search: the true rate is in `[lo, hi)`; `hi` is
/// infinite when the highest rate tried held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bracket {
    pub lo: f64,
    pub hi: f64,
}

impl std::fmt::Display for Bracket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.hi.is_finite() {
            write!(f, "[{:.0}, {:.0})/s", self.lo, self.hi)
        } else {
            write!(f, "[{:.0}/s, untried above)", self.lo)
        }
    }
}

pub fn bracket(s: &CellOutcome, m: Measure) -> Bracket {
    let (lo, hi) = match m {
        Measure::Ndr => (s.zero_loss_rate, s.first_lossy_rate),
        Measure::Pdr => (s.pdr, s.pdr_first_over),
    };
    Bracket {
        lo: lo.unwrap_or(0.0),
        hi: hi.unwrap_or(f64::INFINITY),
    }
}

/// Samples lost anywhere in one trial, from its ledger: lost in the ring,
/// dropped by a pipeline stage, failed in the sink. Without a ledger, the
/// ring's losses.
pub fn lost_anywhere(p: &RunResult) -> u64 {
    let Some(l) = &p.ledger else {
        return p.counts.lost;
    };
    let ring = l.kernel.map_or(p.counts.lost, |k| k.lost);
    let dropped: u64 = l.stages.dropped.values().sum();
    ring + dropped + l.sink.failed
}

/// Loss pooled over the trials at each offered rate, by rate.
pub fn loss_by_rate(s: &CellOutcome) -> Vec<(f64, Proportion)> {
    let mut rates: Vec<f64> = s
        .points
        .iter()
        .filter_map(|p| p.config.target_rate)
        .collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    rates
        .into_iter()
        .map(|r| {
            let (k, n) = s
                .points
                .iter()
                .filter(|p| p.config.target_rate == Some(r))
                .fold((0, 0), |(k, n), p| {
                    (k + lost_anywhere(p), n + p.counts.offered)
                });
            (r, loss_interval(k, n))
        })
        .collect()
}

fn pct(p: &Proportion) -> String {
    format!(
        "{}% [{}%, {}%] ({} of {}, {})",
        fmt_pct(p.p),
        fmt_pct(p.lo),
        fmt_pct(p.hi),
        p.k,
        p.n,
        p.method
    )
}

fn judge_loss(s: &CellOutcome, rate: f64, max_loss: f64) -> (Status, String) {
    let by = loss_by_rate(s);
    if let Some((_, p)) = by.iter().find(|(r, _)| *r == rate) {
        let st = if p.lo > max_loss {
            Status::Fail
        } else if p.hi <= max_loss {
            Status::Pass
        } else {
            Status::Unclear
        };
        return (st, format!("loss at {rate:.0}/s {}", pct(p)));
    }
    let below = by.iter().rev().find(|(r, _)| *r < rate);
    let above = by.iter().find(|(r, _)| *r > rate);
    if let Some((r, p)) = below.filter(|(_, p)| p.lo > max_loss) {
        return (
            Status::Fail,
            format!(
                "not tried at {rate:.0}/s; already at {r:.0}/s loss {}",
                pct(p)
            ),
        );
    }
    if let Some((r, p)) = above.filter(|(_, p)| p.hi <= max_loss) {
        return (
            Status::Pass,
            format!("not tried at {rate:.0}/s; even at {r:.0}/s loss {}", pct(p)),
        );
    }
    (
        Status::Unclear,
        format!(
            "not tried at {rate:.0}/s and its neighbours do not decide ({})",
            [below, above]
                .iter()
                .flatten()
                .map(|(r, p)| format!("{r:.0}/s: {}", pct(p)))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    )
}

/// The series of `base` that is the same cell as `key`: the same variant,
/// capture, transport, ring, wakeup and mode (sink, layout and profile are
/// checked separately: a difference there makes the baseline incomparable).
fn same_cell<'a>(base: &'a SweepResults, key: &CellKey) -> Option<&'a CellOutcome> {
    base.series.iter().find(|b| {
        b.key.variant == key.variant
            && b.key.capture == key.capture
            && b.key.transport == key.transport
            && b.key.ring_total_bytes == key.ring_total_bytes
            && b.key.wakeup == key.wakeup
            && b.key.mode == key.mode
    })
}

/// Checks that a baseline's cell was made the same way as the current one.
fn comparable(base_path: &str, b: &CellKey, c: &CellKey) -> Result<(), GateInputError> {
    let sink = |k: &CellKey| {
        if k.broker.is_empty() {
            k.sink.clone()
        } else {
            format!("{} ({})", k.sink, k.broker)
        }
    };
    let checks = [
        ("sink kind", sink(b), sink(c)),
        ("layout", b.layout.clone(), c.layout.clone()),
    ];
    for (what, bv, cv) in checks {
        // An old baseline without the broker recorded still has its sink name.
        let unknown_broker = what == "sink kind" && (b.broker.is_empty() || c.broker.is_empty());
        let differs = if unknown_broker {
            b.sink != c.sink
        } else {
            bv != cv
        };
        if differs {
            return Err(GateInputError::Incomparable {
                path: base_path.to_string(),
                what,
                baseline: bv,
                current: cv,
                cell: c.to_string(),
            });
        }
    }
    Ok(())
}

/// Judges `current` by every rule. Bad input (a rule that selects no cell, a
/// regression rule without a baseline, an incomparable baseline) is an error;
/// everything else is an [`Outcome`], one per rule and cell.
pub fn judge(
    rules: &RulesFile,
    current: &SweepResults,
    current_path: &str,
    baseline: Option<(&SweepResults, &str)>,
) -> Result<Vec<Outcome>, GateInputError> {
    if let Some((b, bpath)) = baseline {
        let (bp, cp) = (super::profile_of(b), super::profile_of(current));
        if let (Some(bp), Some(cp)) = (&bp, &cp) {
            if bp != cp {
                return Err(GateInputError::Incomparable {
                    path: bpath.to_string(),
                    what: "build profile",
                    baseline: bp.clone(),
                    current: cp.clone(),
                    cell: "every cell".into(),
                });
            }
        }
    }
    let mut out = Vec::new();
    // `compare = true` rules are `harness compare`'s: two builds measured
    // in turn, not a results file.
    for rule in rules
        .rules
        .iter()
        .filter(|r| !matches!(r.kind, RuleKind::Paired(_)))
    {
        let cells: Vec<&CellOutcome> = current
            .series
            .iter()
            .filter(|s| rule.select.matches(&s.key))
            .collect();
        let outcome = |s: &CellOutcome, status, numbers| Outcome {
            rule: rule.number,
            rule_text: rule.to_string(),
            cell: s.key.clone(),
            status,
            numbers,
        };
        if let RuleKind::Regression { measure, max_drop } = rule.kind {
            let Some((base, bpath)) = baseline else {
                return Err(GateInputError::NeedsBaseline {
                    path: rules.path.clone(),
                    rule: rule.number,
                });
            };
            let base_cells = base.series.iter().filter(|s| rule.select.matches(&s.key));
            if cells.is_empty() && base_cells.clone().next().is_none() {
                return Err(no_cell(rules, rule, current_path));
            }
            for s in &cells {
                out.push(match same_cell(base, &s.key) {
                    None => outcome(s, Status::New, "not in the baseline".into()),
                    Some(b) => {
                        comparable(bpath, &b.key, &s.key)?;
                        let (st, n) = judge_regression(s, b, measure, max_drop);
                        outcome(s, st, n)
                    }
                });
            }
            for b in base_cells {
                if same_cell(current, &b.key).is_none() {
                    out.push(outcome(
                        b,
                        Status::Missing,
                        "in the baseline, missing from the results".into(),
                    ));
                }
            }
            continue;
        }
        if cells.is_empty() {
            return Err(no_cell(rules, rule, current_path));
        }
        for s in cells {
            let (st, numbers) = if !s.valid {
                (
                    Status::Fail,
                    format!(
                        "invalid (ledger did not balance): {}",
                        s.problems.join("; ")
                    ),
                )
            } else {
                match rule.kind {
                    RuleKind::Loss { rate, max_loss } => judge_loss(s, rate, max_loss),
                    RuleKind::AtLeast { measure, at_least } => {
                        let b = bracket(s, measure);
                        let st = if b.hi <= at_least {
                            Status::Fail
                        } else if b.lo >= at_least {
                            Status::Pass
                        } else {
                            Status::Unclear
                        };
                        (st, format!("{measure} {b}, bound {at_least:.0}/s"))
                    }
                    RuleKind::Regression { .. } | RuleKind::Paired(_) => {
                        unreachable!("handled above")
                    }
                }
            };
            out.push(outcome(s, st, numbers));
        }
    }
    Ok(out)
}

fn no_cell(rules: &RulesFile, rule: &Rule, results: &str) -> GateInputError {
    GateInputError::NoSuchCell {
        path: rules.path.clone(),
        rule: rule.number,
        text: rule.to_string(),
        results: results.to_string(),
    }
}

fn judge_regression(
    c: &CellOutcome,
    b: &CellOutcome,
    m: Measure,
    max_drop: f64,
) -> (Status, String) {
    if !c.valid {
        return (
            Status::Fail,
            format!(
                "invalid (ledger did not balance): {}",
                c.problems.join("; ")
            ),
        );
    }
    let (cb, bb) = (bracket(c, m), bracket(b, m));
    let floor = bb.lo * (1.0 - max_drop);
    let numbers = format!(
        "{m} {cb} vs baseline {bb}; fails below {floor:.0}/s ({}% under the baseline's {:.0}/s)",
        fmt_pct(max_drop),
        bb.lo
    );
    let st = if cb.hi < floor {
        Status::Fail
    } else if cb.lo >= floor {
        Status::Pass
    } else {
        Status::Unclear
    };
    (st, numbers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::results::SWEEP_SCHEMA;

    fn key(v: &str) -> CellKey {
        CellKey {
            variant: v.into(),
            capture: "c.pcapng".into(),
            layout: "fixed4k".into(),
            transport: "perf".into(),
            ring_total_bytes: 1 << 20,
            wakeup: "events:64".into(),
            sink: "null".into(),
            mode: crate::results::Mode::Replay,
            knobs: String::new(),
            broker: String::new(),
            profile: "debug".into(),
        }
    }
    fn point(rate: f64, offered: u64, lost: u64) -> RunResult {
        let mut p: RunResult = serde_json::from_value(serde_json::json!({
            "schema": "dropbench.run/1", "kind": "sweep", "variant": "v",
            "started_unix_ns": 0, "duration_ns": 0,
            "config": {"probe": "fixed4k", "transport": "perf", "ring_bytes": 0, "rings": 1,
                       "wakeup": "", "pacing": "", "target_rate": rate},
            "counts": {"offered": offered, "accepted": offered - lost, "lost": lost,
                       "lost_pct": 0.0, "read": offered - lost, "lost_seen": lost, "bytes": 0},
            "rates": {"offered_per_s": rate, "read_per_s": rate, "bytes_per_s": 0.0},
            "stages": [], "rings": [],
            "environment": {"kernel": "", "cpus": 2, "cpu_model": "", "hostname": "", "version": ""},
            "valid": true, "problems": []
        }))
        .unwrap();
        p.config.target_rate = Some(rate);
        p
    }
    fn series(v: &str, ndr: (Option<f64>, Option<f64>), points: Vec<RunResult>) -> CellOutcome {
        CellOutcome {
            index: 0,
            key: key(v),
            zero_loss_rate: ndr.0,
            first_lossy_rate: ndr.1,
            strict_zero_loss_rate: ndr.0,
            edges: Vec::new(),
            reruns: 0,
            verdict_rule: String::new(),
            shape: String::new(),
            capped: false,
            reached_hi: ndr.1.is_none(),
            trials_per_rate: 1,
            ndr_achieved: None,
            pdr_loss: 0.001,
            pdr: None,
            pdr_first_over: None,
            loss_at_pdr: None,
            loss_at_first_failing: None,
            min_ring: None,
            valid: true,
            problems: vec![],
            points,
        }
    }
    fn results(s: Vec<CellOutcome>) -> SweepResults {
        serde_json::from_value(serde_json::json!({
            "schema": SWEEP_SCHEMA, "started_unix_s": 0,
            "environment": {"kernel": "", "cpus": 2, "cpu_model": "", "hostname": "", "version": ""},
            "sink_note": "", "captures": [], "series": s
        }))
        .unwrap()
    }
    fn rules(text: &str) -> RulesFile {
        RulesFile::parse(text, "g.toml").unwrap()
    }

    #[test]
    fn regression_compares_brackets_not_points() {
        let base = results(vec![
            series("a", (Some(100e3), Some(125e3)), vec![]),
            series("b", (Some(100e3), Some(125e3)), vec![]),
            series("gone", (Some(100e3), None), vec![]),
        ]);
        let cur = results(vec![
            // One doubling step lower: its bracket's top is still above 50 k.
            series("a", (Some(50e3), Some(100e3)), vec![]),
            // Clearly below: even its first failing rate is under 50 k.
            series("b", (Some(20e3), Some(40e3)), vec![]),
            series("new", (Some(1e3), Some(2e3)), vec![]),
        ]);
        let r = rules("[[rule]]\nkind = \"regression\"\nvariant = \"*\"\nmax_drop = \"50%\"\n");
        let o = judge(&r, &cur, "cur", Some((&base, "base"))).unwrap();
        let st: Vec<(&str, Status)> = o
            .iter()
            .map(|o| (o.cell.variant.as_str(), o.status))
            .collect();
        assert_eq!(
            st,
            [
                ("a", Status::Pass),
                ("b", Status::Fail),
                ("new", Status::New),
                ("gone", Status::Missing)
            ]
        );
        assert!(
            o[1].numbers
                .contains("[20000, 40000)/s vs baseline [100000, 125000)/s"),
            "{}",
            o[1].numbers
        );
    }

    #[test]
    fn loss_fails_only_when_the_interval_is_past_the_threshold() {
        let s = series(
            "a",
            (Some(10e3), Some(20e3)),
            vec![
                point(10e3, 10_000, 0),
                point(20e3, 20_000, 25), // 0.125%: its interval straddles 0.1%
                point(40e3, 40_000, 4000), // 10%: clearly over
            ],
        );
        let cur = results(vec![s]);
        let at = |rate: f64| {
            let r = rules(&format!(
                "[[rule]]\nkind = \"loss\"\nvariant = \"a\"\nrate = {rate}\nmax_loss = \"0.1%\"\n"
            ));
            judge(&r, &cur, "cur", None).unwrap()[0].status
        };
        assert_eq!(at(10e3), Status::Pass);
        assert_eq!(at(20e3), Status::Unclear);
        assert_eq!(at(40e3), Status::Fail);
        assert_eq!(
            at(80e3),
            Status::Fail,
            "a lower rate already failed clearly"
        );
        assert_eq!(at(5e3), Status::Pass, "a higher rate held clearly");
    }

    #[test]
    fn bad_input_is_an_error_naming_what() {
        let cur = results(vec![series("a", (Some(1e3), Some(2e3)), vec![])]);
        let r = rules("[[rule]]\nkind = \"ndr\"\nvariant = \"nope\"\nat_least = 1\n");
        let e = judge(&r, &cur, "cur.json", None).unwrap_err().to_string();
        assert!(
            e.contains("rule 1") && e.contains("does not exist in cur.json"),
            "{e}"
        );
        let r = rules("[[rule]]\nkind = \"regression\"\nvariant = \"*\"\nmax_drop = 0.5\n");
        let e = judge(&r, &cur, "cur.json", None).unwrap_err().to_string();
        assert!(e.contains("--baseline"), "{e}");
        let mut other = cur.clone();
        other.series[0].key.profile = "release".into();
        let e = judge(&r, &cur, "cur.json", Some((&other, "b.json")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("build profile differs"), "{e}");
        let mut other = cur.clone();
        other.series[0].key.sink = "kafka".into();
        other.series[0].key.broker = "mock".into();
        let e = judge(&r, &cur, "cur.json", Some((&other, "b.json")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sink kind differs"), "{e}");
        let mut other = cur.clone();
        other.series[0].key.layout = "compact".into();
        let e = judge(&r, &cur, "cur.json", Some((&other, "b.json")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("layout differs"), "{e}");
    }

    #[test]
    fn a_rate_rule_fails_only_when_every_repeat_fails() {
        let base = results(vec![series("a", (Some(100e3), Some(125e3)), vec![])]);
        let r = rules("[[rule]]\nkind = \"regression\"\nvariant = \"*\"\nmax_drop = \"50%\"\n");
        let slow = results(vec![series(
            "a",
            (Some(20e3), Some(40e3)),
            vec![point(40e3, 100, 1)],
        )]);
        let fine = results(vec![series(
            "a",
            (Some(80e3), Some(100e3)),
            vec![point(40e3, 100, 0)],
        )]);
        let status = |c: &SweepResults| judge(&r, c, "c", Some((&base, "b"))).unwrap()[0].status;
        assert_eq!(status(&slow), Status::Fail);
        let both = crate::gate::combine_repeats(&slow, std::slice::from_ref(&fine));
        assert_eq!(status(&both), Status::Pass, "the other repeat held");
        assert_eq!(both.series[0].points.len(), 2, "trials are pooled");
        let twice = crate::gate::combine_repeats(&slow, std::slice::from_ref(&slow));
        assert_eq!(status(&twice), Status::Fail, "failed in every repeat");
    }

    #[test]
    fn ndr_bound_reads_the_bracket() {
        let cur = results(vec![series("a", (Some(40e3), Some(50e3)), vec![])]);
        let at = |b: f64| {
            let r = rules(&format!(
                "[[rule]]\nkind = \"ndr\"\nvariant = \"a\"\nat_least = {b}\n"
            ));
            judge(&r, &cur, "c", None).unwrap()[0].status
        };
        assert_eq!(at(30e3), Status::Pass);
        assert_eq!(at(45e3), Status::Unclear);
        assert_eq!(at(50e3), Status::Fail);
    }
}
