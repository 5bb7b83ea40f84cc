//! The comparison page (`compare.html`) of `harness compare`: one table per
//! cell with both sides' figures, the change, its interval, the pairs and
//! the verdict, then every pair's figures. It takes computed results and
//! computes nothing but formatting.

use reports::escape;

use crate::compare::judge::{change_text, figure_value, interval_text};
use crate::compare::CompareResults;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}\
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}\
.regression{background:#fdd}.inconclusive{background:#ffd}.pass{background:#dfd}\
details{margin-bottom:1.5em}";

/// The page, whole.
pub fn render(r: &CompareResults) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<title>dropbench compare</title>");
    h.push_str(&format!("<style>{STYLE}</style></head><body>\n"));
    h.push_str("<h1>Baseline against candidate, measured in turn</h1>\n");
    let verdict = match r.verdict() {
        Ok(()) => "pass".to_string(),
        Err(e) => e.to_string(),
    };
    h.push_str(&format!(
        "<p id=\"verdict\">{}</p>\n<ul>\n<li>baseline: {} ({})</li>\n<li>candidate: {} ({}){}</li>\n\
         <li>{} pairs of {} ms trials per cell, order within each pair random (seed {})</li>\n\
         <li>host: {}; measured in {:.0} s</li>\n</ul>\n",
        escape(&verdict),
        escape(&r.baseline.source),
        escape(&r.baseline.version),
        escape(&r.candidate.source),
        escape(&r.candidate.version),
        if r.candidate_knobs.is_empty() {
            String::new()
        } else {
            format!(", knobs {}", escape(&r.candidate_knobs.join(" ")))
        },
        r.pairs,
        r.trial_ms,
        r.seed,
        escape(&r.host),
        r.measure_s
    ));
    for c in &r.cells {
        h.push_str(&format!("<h2>{}</h2>\n", escape(&c.cell.label())));
        if let Some(rate) = c.loss_rate {
            h.push_str(&format!(
                "<p>Loss trials offered {:.1} k events/s.</p>\n",
                rate / 1e3
            ));
        }
        h.push_str(
            "<table><tr><th>rule</th><th>baseline</th><th>candidate</th><th>change</th>\
             <th>interval</th><th>spread</th><th>pairs</th><th>verdict</th></tr>\n",
        );
        for k in &c.checks {
            h.push_str(&format!(
                "<tr class=\"{v}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{:.3}</td><td>{}</td><td>{v}</td></tr>\n",
                escape(&k.rule_text),
                figure_value(&k.figure, k.baseline),
                figure_value(&k.figure, k.candidate),
                change_text(&k.figure, k.change),
                interval_text(k),
                k.spread,
                k.pairs,
                v = escape(&k.verdict)
            ));
        }
        h.push_str("</table>\n");
        h.push_str(
            "<details><summary>Every pair</summary><table><tr><th>pair</th><th>first</th>\
             <th>baseline k/s</th><th>candidate k/s</th><th>baseline ns/ev</th>\
             <th>candidate ns/ev</th><th>baseline loss</th><th>candidate loss</th></tr>\n",
        );
        for (i, p) in c.pairs.iter().enumerate() {
            let loss = |f: &Option<crate::compare::TrialFigures>| {
                f.as_ref()
                    .map_or("-".into(), |f| format!("{:.3}%", 100.0 * f.loss()))
            };
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.0}</td><td>{:.0}</td>\
                 <td>{}</td><td>{}</td></tr>\n",
                i + 1,
                escape(&p.first),
                p.baseline.throughput / 1e3,
                p.candidate.throughput / 1e3,
                p.baseline.cpu_ns_per_event,
                p.candidate.cpu_ns_per_event,
                loss(&p.baseline_at_rate),
                loss(&p.candidate_at_rate)
            ));
        }
        h.push_str("</table></details>\n");
        if let Some(i) = &c.instructions {
            h.push_str(&format!(
                "<table><tr><th>instructions per event ({} and {} events counted)</th>\
                 <th>baseline</th><th>candidate</th><th>change</th></tr>\n",
                i.events,
                2 * i.events
            ));
            let row = |name: &str, b: f64, c: f64| {
                format!(
                    "<tr><td>{}</td><td>{b:.0}</td><td>{c:.0}</td><td>{:+.2}%</td></tr>\n",
                    escape(name),
                    if b > 0.0 { 100.0 * (c / b - 1.0) } else { 0.0 }
                )
            };
            h.push_str(&row("total", i.baseline.total, i.candidate.total));
            for (s, b) in &i.baseline.stages {
                let c = i.candidate.stages.get(s).copied().unwrap_or(0.0);
                h.push_str(&row(s, *b, c));
            }
            h.push_str("</table>\n");
        }
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{CellComparison, Check, CompareCell, Pair, Side, TrialFigures};
    use crate::experiment::results::CellKey;

    fn side(role: &str) -> Side {
        Side {
            role: role.into(),
            source: format!("<{role}>"),
            commit: None,
            binary: "/bin/harness".into(),
            version: "harness 0.1.0".into(),
            build_s: 0.0,
        }
    }

    #[test]
    fn the_page_has_a_row_per_check_and_pair_and_escapes_text() {
        let key = CellKey {
            variant: "batched".into(),
            capture: "c&d.pcapng".into(),
            layout: "fixed4k".into(),
            transport: "perf".into(),
            ring_total_bytes: 32 << 20,
            wakeup: "events:64".into(),
            sink: "null".into(),
            mode: crate::results::Mode::Replay,
            knobs: String::new(),
            broker: String::new(),
            profile: "release".into(),
        };
        let fig = |t| TrialFigures {
            throughput: t,
            cpu_ns_per_event: 2000.0,
            offered: 1000,
            ..TrialFigures::default()
        };
        let check = |figure: &str, verdict: &str| Check {
            rule: 1,
            rule_text: "rule 1: throughput drop < 10%".into(),
            figure: figure.into(),
            baseline: 500_000.0,
            candidate: 400_000.0,
            change: -0.2,
            low: -0.25,
            high: -0.15,
            spread: 0.05,
            pairs: 3,
            detectable: Some(0.08),
            verdict: verdict.into(),
        };
        let r = CompareResults {
            schema: crate::compare::SCHEMA.into(),
            baseline: side("baseline"),
            candidate: side("candidate"),
            candidate_knobs: vec!["extra_work=1us".into()],
            seed: 7,
            trial_ms: 1000,
            pairs: 3,
            cells: vec![CellComparison {
                cell: CompareCell {
                    key,
                    capture: "c&d.pcapng".into(),
                    variant: "batched".into(),
                    knobs: vec![],
                    transport: "perf".into(),
                    ring_bytes: 16 << 20,
                    rings: Some(2),
                    wakeup: "events:64".into(),
                    sink: "null".into(),
                    brokers: None,
                },
                loss_rate: Some(150_000.0),
                pairs: (0..3)
                    .map(|_| Pair {
                        first: "baseline".into(),
                        baseline: fig(500_000.0),
                        candidate: fig(400_000.0),
                        ..Pair::default()
                    })
                    .collect(),
                instructions: None,
                checks: vec![check("throughput", "regression"), check("cpu", "pass")],
                first: None,
            }],
            measure_s: 12.0,
            host: "test".into(),
        };
        let h = render(&r);
        assert!(h.contains("compare failed: 1 of 2 checks regressed"), "{h}");
        assert!(
            h.contains("&lt;baseline&gt;") && !h.contains("<baseline>"),
            "{h}"
        );
        assert!(h.contains("c&amp;d.pcapng"), "{h}");
        assert_eq!(h.matches("<tr class=\"regression\">").count(), 1);
        assert_eq!(h.matches("<tr class=\"pass\">").count(), 1);
        // Three pairs, each a row with both throughputs.
        assert_eq!(h.matches("<td>500.0</td><td>400.0</td>").count(), 3);
        assert!(h.contains("Loss trials offered 150.0 k events/s."));
        assert!(h.contains("-20.0%"), "{h}");
    }
}
