//! The gate's judging: a sweep's zero-loss rates against a baseline's.

use crate::experiment::results::{SeriesKey, SweepResults};

/// How the gate judged one series.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Within the allowed drop (ratio = current / baseline zero-loss rate).
    Holds { ratio: f64 },
    /// Improved past the allowed drop in the other direction (a new baseline is due).
    Improved { ratio: f64 },
    /// Zero-loss rate fell by more than allowed, or went from some rate to none.
    Regressed {
        baseline: Option<f64>,
        current: Option<f64>,
    },
    /// The current run's ledger did not balance: its figures mean nothing.
    Invalid { problems: Vec<String> },
    /// In the baseline, not in this run.
    Missing,
    /// In this run, not in the baseline.
    New,
}

impl Verdict {
    pub fn fails(&self) -> bool {
        matches!(
            self,
            Verdict::Regressed { .. } | Verdict::Invalid { .. } | Verdict::Missing
        )
    }
}

/// Compares `current` to `baseline`: a series fails when its zero-loss rate
/// dropped by more than `max_drop` (0.10 = 10%), lost its zero-loss rate
/// altogether, is invalid, or is missing.
pub fn judge(
    baseline: &SweepResults,
    current: &SweepResults,
    max_drop: f64,
) -> Vec<(SeriesKey, Verdict)> {
    let mut out = Vec::new();
    for b in &baseline.series {
        let v = match current.series.iter().find(|c| c.key == b.key) {
            None => Verdict::Missing,
            Some(c) if !c.valid => Verdict::Invalid {
                problems: c.problems.clone(),
            },
            Some(c) => match (b.zero_loss_rate, c.zero_loss_rate) {
                (None, None) => Verdict::Holds { ratio: 1.0 },
                (None, Some(_)) => Verdict::Improved {
                    ratio: f64::INFINITY,
                },
                (Some(_), None) => Verdict::Regressed {
                    baseline: b.zero_loss_rate,
                    current: None,
                },
                (Some(br), Some(cr)) => {
                    let ratio = cr / br;
                    if ratio < 1.0 - max_drop {
                        Verdict::Regressed {
                            baseline: Some(br),
                            current: Some(cr),
                        }
                    } else if ratio > 1.0 / (1.0 - max_drop) {
                        Verdict::Improved { ratio }
                    } else {
                        Verdict::Holds { ratio }
                    }
                }
            },
        };
        out.push((b.key.clone(), v));
    }
    for c in &current.series {
        if !baseline.series.iter().any(|b| b.key == c.key) {
            out.push((
                c.key.clone(),
                if c.valid {
                    Verdict::New
                } else {
                    Verdict::Invalid {
                        problems: c.problems.clone(),
                    }
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::results::fixtures::*;

    #[test]
    fn gate_verdicts() {
        let base = results(vec![
            series("a", Some(100_000.0), true),
            series("b", Some(100_000.0), true),
            series("c", Some(100_000.0), true),
            series("d", Some(100_000.0), true),
            series("gone", Some(1.0), true),
            series("e", None, true),
        ]);
        let cur = results(vec![
            series("a", Some(95_000.0), true),   // -5%: holds at 10%
            series("b", Some(85_000.0), true),   // -15%: regressed
            series("c", None, true),             // lost its zero-loss rate
            series("d", Some(200_000.0), false), // faster, but the ledger did not balance
            series("e", Some(5.0), true),
            series("new", Some(1.0), true),
        ]);
        let v: std::collections::BTreeMap<String, Verdict> = judge(&base, &cur, 0.10)
            .into_iter()
            .map(|(k, v)| (k.variant, v))
            .collect();
        assert!(matches!(v["a"], Verdict::Holds { ratio } if (ratio - 0.95).abs() < 1e-9));
        assert_eq!(
            v["b"],
            Verdict::Regressed {
                baseline: Some(100_000.0),
                current: Some(85_000.0)
            }
        );
        assert_eq!(
            v["c"],
            Verdict::Regressed {
                baseline: Some(100_000.0),
                current: None
            }
        );
        assert!(matches!(v["d"], Verdict::Invalid { .. }));
        assert_eq!(v["gone"], Verdict::Missing);
        assert!(matches!(v["e"], Verdict::Improved { .. }));
        assert_eq!(v["new"], Verdict::New);
        let failing: Vec<_> = v
            .iter()
            .filter(|(_, x)| x.fails())
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(failing, ["b", "c", "d", "gone"]);
    }
}
