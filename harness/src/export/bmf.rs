//! Bencher Metric Format:
//! `{"<benchmark>": {"<measure>": {"value", "lower_value", "upper_value"}}}`,
//! one benchmark per cell, each rate's bounds the search's bracket.

use serde_json::{json, Map, Value};

use super::{bench_name, top, Exporter};
use crate::experiment::results::SweepResults;
use crate::gate::judge::{bracket, loss_by_rate};
use crate::gate::Measure;

/// Bencher Metric Format.
pub struct Bmf;

impl Exporter for Bmf {
    type Output = Value;
    fn export(&self, results: &SweepResults) -> Value {
        bmf(results)
    }
}

fn bmf(r: &SweepResults) -> Value {
    let mut out = Map::new();
    for s in r.series.iter().filter(|s| s.valid) {
        let mut measures = Map::new();
        for (name, m) in [("ndr", Measure::Ndr), ("pdr", Measure::Pdr)] {
            let b = bracket(s, m);
            if m == Measure::Pdr && s.pdr.is_none() && s.pdr_first_over.is_none() {
                continue;
            }
            measures.insert(
                format!("{name}-events-per-second"),
                json!({"value": b.lo, "lower_value": b.lo, "upper_value": top(b.lo, b.hi)}),
            );
        }
        if let Some((_, p)) = s
            .first_lossy_rate
            .and_then(|f| loss_by_rate(s).into_iter().find(|(r, _)| *r == f))
        {
            measures.insert(
                "loss-percent-at-first-failing-rate".into(),
                json!({"value": p.p * 100.0, "lower_value": p.lo * 100.0, "upper_value": p.hi * 100.0}),
            );
        }
        out.insert(bench_name(s), Value::Object(measures));
    }
    Value::Object(out)
}
