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
