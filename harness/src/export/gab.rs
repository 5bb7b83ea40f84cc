//! github-action-benchmark's `customBiggerIsBetter` input (NDR and PDR,
//! events/s), or with `loss`, `customSmallerIsBetter` (loss % at the first
//! failing rate): an array of `{name, unit, value, range}`.

use serde::Serialize;

use super::{bench_name, top, Exporter};
use crate::experiment::results::SweepResults;
use crate::gate::judge::{bracket, loss_by_rate};
use crate::gate::Measure;

/// github-action-benchmark: rates, or with `loss`, loss percentages.
pub struct GithubActionBenchmark {
    pub loss: bool,
}

impl Exporter for GithubActionBenchmark {
    type Output = Vec<GabEntry>;
    fn export(&self, results: &SweepResults) -> Vec<GabEntry> {
        github_action_benchmark(results, self.loss)
    }
}

/// One entry of a github-action-benchmark `custom*` array.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct GabEntry {
    pub name: String,
    pub unit: String,
    pub value: f64,
    pub range: String,
}

fn github_action_benchmark(r: &SweepResults, loss: bool) -> Vec<GabEntry> {
    let mut out = Vec::new();
    for s in r.series.iter().filter(|s| s.valid) {
        if loss {
            if let Some((rate, p)) = s
                .first_lossy_rate
                .and_then(|f| loss_by_rate(s).into_iter().find(|(r, _)| *r == f))
            {
                out.push(GabEntry {
                    name: format!("{} loss at {rate:.0}/s", bench_name(s)),
                    unit: "%".into(),
                    value: p.p * 100.0,
                    range: format!("{:.4}..{:.4}", p.lo * 100.0, p.hi * 100.0),
                });
            }
            continue;
        }
        for (name, m) in [("NDR", Measure::Ndr), ("PDR", Measure::Pdr)] {
            if m == Measure::Pdr && s.pdr.is_none() && s.pdr_first_over.is_none() {
                continue;
            }
            let b = bracket(s, m);
            out.push(GabEntry {
                name: format!("{} {name}", bench_name(s)),
                unit: "events/s".into(),
                value: b.lo,
                range: format!("+{:.0}", top(b.lo, b.hi) - b.lo),
            });
        }
    }
    out
}
