//! The self-contained HTML page: inline CSS, inline SVG, no scripts, no
//! external URLs or fonts, so the file can be mailed or archived as CI output
//! and still render the same.
//!
//! Every string that comes from the report goes through [`escape`].

use crate::error::ReportError;
use crate::format;
use crate::model::{Point, Series, SweepReport};
use crate::modes::{mode_cells, Mode};
use crate::svg::{render_svg, series_color_hex, Chart};

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
:root { --fg: #222; --muted: #666; --line: #ddd; --bad: #c01c28; --bad-bg: #fdecea; --warn-bg: #fff6db; --ok: #2a7a2a; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--fg); margin: 0 auto; padding: 24px; max-width: 1200px; line-height: 1.4; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.25em; margin: 32px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 1.05em; margin: 0 0 8px; }
.meta { color: var(--muted); margin: 0 0 12px; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.92em; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 8px 0; font-size: 0.92em; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
table.summary { width: 100%; }
table.summary td, table.summary th { padding: 4px 6px; overflow-wrap: anywhere; }
table.env th { width: 14em; background: none; font-weight: 600; }
tr.invalid td { background: var(--bad-bg); }
tr.invalid td:first-child { box-shadow: inset 4px 0 0 var(--bad); }
tr.lossy td { background: var(--warn-bg); }
tr.zero-loss td { font-weight: 600; }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; font-size: 0.8em; font-weight: 700; letter-spacing: 0.03em; vertical-align: 1px; }
.badge.bad { background: var(--bad); color: #fff; }
.badge.ok { background: #e3f1e3; color: var(--ok); }
.badge.warn { background: var(--warn-bg); color: #7a5a00; border: 1px solid #e8d28a; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.alert { border: 2px solid var(--bad); background: var(--bad-bg); padding: 10px 14px; border-radius: 4px; margin: 12px 0; }
.alert ul, ul.problems { margin: 6px 0 0; padding-left: 20px; }
ul.problems li { color: var(--bad); }
ul.warnings li { color: #7a5a00; }
.scroll { overflow-x: auto; }
table.summary td.nowrap { white-space: nowrap; }
p.legend { color: var(--muted); font-size: 0.9em; margin: 4px 0 8px; }
ul.notes { color: var(--muted); margin: 4px 0; padding-left: 20px; }
figure { margin: 16px 0; }
figure svg { display: block; width: 100%; max-width: 960px; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.9em; margin-top: 4px; max-width: 960px; }
span.muted { color: var(--muted); font-size: 0.9em; }
article.series { border: 1px solid var(--line); border-radius: 4px; padding: 12px 14px; margin: 12px 0; overflow-x: auto; }
article.series.invalid { border: 2px solid var(--bad); background: linear-gradient(var(--bad-bg), #fff 120px); }
dl.facts { display: flex; flex-wrap: wrap; gap: 4px 24px; margin: 0 0 8px; }
dl.facts div { display: flex; gap: 6px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.empty { color: var(--muted); font-style: italic; }
footer { margin-top: 40px; color: var(--muted); font-size: 0.85em; }
@media print { body { max-width: none; padding: 0; } figure, article.series, .alert { break-inside: avoid; } .scroll { overflow: visible; } }
"#;

/// Renders the whole report as one HTML document (UTF-8 bytes).
pub fn render_html(report: &SweepReport) -> Result<Vec<u8>, ReportError> {
    let charts = Chart::ALL
        .iter()
        .map(|&c| render_svg(report, c).map(|svg| (c, svg)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page(report, &charts).into_bytes())
}

fn page(report: &SweepReport, charts: &[(Chart, String)]) -> String {
    let title = escape(&report.title);
    let mut out = String::with_capacity(64 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!(
        "<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
    ));

    out.push_str(&format!("<header>\n<h1>{title}</h1>\n<p class=\"meta\">"));
    let mut meta = vec![format!(
        "Generated {}",
        format::utc(report.generated_unix_s)
    )];
    match &report.capture {
        Some(c) => meta.push(format!("capture <code>{}</code>", escape(c))),
        None => meta.push("live run (no capture)".to_string()),
    }
    match report.goal_rate {
        Some(g) => meta.push(format!("goal {} events/s", format::rate(g))),
        None => meta.push("no goal rate set".to_string()),
    }
    meta.push(format!("{} series", report.series.len()));
    out.push_str(&meta.join(" · "));
    out.push_str("</p>\n");
    if !report.notes.is_empty() {
        out.push_str("<ul class=\"notes\">\n");
        for n in &report.notes {
            out.push_str(&format!("<li>{}</li>\n", escape(n)));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</header>\n");

    invalid_alert(&mut out, report);
    missing(&mut out, report);
    summary(&mut out, report);
    comparison(&mut out, report);
    environment(&mut out, report);

    out.push_str("<section id=\"charts\">\n<h2>Charts</h2>\n");
    for (chart, svg) in charts {
        out.push_str(&format!("<figure id=\"chart-{chart}\">\n"));
        out.push_str(&inline_svg(svg, chart.title()));
        out.push_str(&format!(
            "\n<figcaption>{}</figcaption>\n</figure>\n",
            caption(*chart)
        ));
        if *chart == Chart::NdrVsRing {
            minimum_rings(&mut out, report);
        }
    }
    out.push_str("</section>\n");

    modes_side_by_side(&mut out, report);
    details(&mut out, report);

    out.push_str(
        "<footer>dropbench report. Self-contained: no scripts, fonts or external resources. \
         Figures are as the harness measured them; this page only lays them out.</footer>\n",
    );
    out.push_str("</body>\n</html>\n");
    out
}

fn caption(chart: Chart) -> &'static str {
    match chart {
        Chart::LossVsRate => {
            "Events lost anywhere (ring, pipeline, sink) as a percentage of events offered, at each \
             offered rate, with each rate's 95% interval as a vertical bar where recorded. Thin \
             vertical lines in a series' colour mark its NDR (dashed: the highest rate with nothing \
             lost) and PDR (dotted: loss within the partial-drop threshold). Dashed series lines \
             are invalid series; the red dashed vertical line is the goal rate."
        }
        Chart::P99VsRate => {
            "99th-percentile latency from an event's origin to the sink, at each offered rate \
             (rates where nothing was delivered have no latency and are left out)."
        }
        Chart::ThroughputVsRate => {
            "Events delivered per second of run time, at each offered rate: it follows the offer \
             until the pipeline saturates, then flattens."
        }
        Chart::P50VsRate => {
            "Median latency from an event's scheduled time to the sink, at each offered rate \
             (rates where nothing was delivered are left out)."
        }
        Chart::P999VsRate => {
            "99.9th-percentile latency from an event's scheduled time to the sink, at each offered \
             rate (rates where nothing was delivered are left out)."
        }
        Chart::RingOccupancy => {
            "Bytes waiting in the rings (written by the kernel side, not yet read) over the trial at \
             each series' zero-loss rate (its lowest rate when none held), from the replay's \
             progress samples. A line that climbs to the ring size is a reader falling behind."
        }
        Chart::NdrVsRing => {
            "Each variant's highest zero-loss rate at each ring size the sweep tried (one point per \
             variant when it tried one size). The smallest ring that holds the goal rate is listed \
             under the chart."
        }
        Chart::NdrByMode => {
            "Each cell run in more than one mode: its highest zero-loss rate with the rings emulated \
             (replay), with the capture injected into the kernel's real rings (kernel), and under \
             the real probes and load (live), one bar per mode it ran. \"none\": the mode lost events \
             even at the lowest rate tried; a missing bar: the mode did not run that cell. The table \
             under \"Replay, kernel and live\" has the ratios to live."
        }
        Chart::ZeroLossRate => {
            "Highest offered rate at which each series lost nothing, with its ratio to the \
             first (baseline) series. Outlined bars are invalid series."
        }
        Chart::CpuPerStage => {
            "Where each series' CPU goes, per event, over its trial at the zero-loss rate (its \
             lowest rate when none held): one segment per pipeline stage, left to right in \
             pipeline order, the bar's length the total CPU of the process (and the broker's, when \
             it was measured) per event read. Decode, classify and serialize are sampled (1 event \
             in 64 timed); the sink client is what the process used beyond every thread accounted \
             for (librdkafka's threads, and the in-process mock cluster when there is no broker). \
             The per-series tables give each stage's share of all CPUs."
        }
    }
}

/// The chart as an inline `<svg>`: the HTML parser puts `<svg>` in the SVG
/// namespace by itself, so the `xmlns` URL is dropped (the page names no URL),
/// and the chart gets an accessible name.
fn inline_svg(svg: &str, title: &str) -> String {
    let svg = svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1);
    svg.replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{}\" ", escape(title)),
        1,
    )
}

fn invalid_alert(out: &mut String, report: &SweepReport) {
    let invalid: Vec<(usize, &Series)> = report
        .series
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.valid)
        .collect();
    if invalid.is_empty() {
        return;
    }
    out.push_str(&format!(
        "<div class=\"alert\" role=\"alert\"><strong>{} of {} series {} INVALID</strong>: \
         their figures can't be trusted.\n<ul>\n",
        invalid.len(),
        report.series.len(),
        if invalid.len() == 1 { "is" } else { "are" }
    ));
    for (i, s) in invalid {
        let why = if s.problems.is_empty() {
            "no reason given".to_string()
        } else {
            s.problems
                .iter()
                .map(|p| escape(p))
                .collect::<Vec<_>>()
                .join("; ")
        };
        out.push_str(&format!(
            "<li><a href=\"#series-{}\">{}. {}</a>: {why}</li>\n",
            i + 1,
            i + 1,
            escape(&s.variant)
        ));
    }
    out.push_str("</ul>\n</div>\n");
}

fn validity_cell(s: &Series) -> String {
    if !s.valid {
        "<span class=\"badge bad\">INVALID</span>".to_string()
    } else if !s.problems.is_empty() {
        format!(
            "<span class=\"badge warn\">{} warning{}</span>",
            s.problems.len(),
            if s.problems.len() == 1 { "" } else { "s" }
        )
    } else {
        "<span class=\"badge ok\">valid</span>".to_string()
    }
}

fn zero_loss_cell(rate: Option<f64>) -> String {
    match rate {
        Some(r) => format!("{} events/s", format::rate(r)),
        None => "none (lost at lowest rate)".to_string(),
    }
}

fn summary(out: &mut String, report: &SweepReport) {
    out.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n");
    if report.series.is_empty() {
        out.push_str("<p class=\"empty\">No series in this sweep.</p>\n</section>\n");
        return;
    }
    let goal = report.goal_rate;
    // Optional columns appear only when some series recorded them.
    let wakeup = report.series.iter().any(|s| !s.wakeup.is_empty());
    let capture = report.series.iter().any(|s| !s.capture.is_empty());
    out.push_str(
        "<div class=\"scroll\">\n<table class=\"summary\">\n<thead><tr><th>#</th><th>variant</th><th>layout</th>\
         <th>transport</th><th class=\"num\">ring</th>",
    );
    if wakeup {
        out.push_str("<th>wakeup</th>");
    }
    out.push_str("<th>sink</th>");
    if capture {
        out.push_str("<th>capture</th>");
    }
    out.push_str("<th class=\"num\">NDR (events/s)</th><th class=\"num\">× baseline</th>");
    if goal.is_some() {
        out.push_str("<th>goal</th>");
    }
    out.push_str("<th>status</th></tr></thead>\n<tbody>\n");
    for (i, s) in report.series.iter().enumerate() {
        let class = if s.valid { "" } else { " class=\"invalid\"" };
        let ratio = if s.baseline == Some(i) {
            "baseline".to_string()
        } else {
            format::baseline_ratio(report, i).map_or("—".to_string(), format::ratio)
        };
        out.push_str(&format!(
            "<tr{class}><td class=\"num\"><span class=\"swatch\" style=\"background:{}\"></span>{}</td>\
             <td class=\"nowrap\"><a href=\"#series-{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"num\">{}</td>",
            series_color_hex(i),
            i + 1,
            i + 1,
            escape(&s.variant),
            escape(&s.layout),
            escape(&s.transport),
            format::bytes(s.ring_bytes),
        ));
        if wakeup {
            out.push_str(&format!("<td>{}</td>", escape(&s.wakeup)));
        }
        out.push_str(&format!("<td>{}</td>", escape(&s.sink)));
        if capture {
            out.push_str(&format!("<td>{}</td>", escape(&s.capture)));
        }
        let zero_loss = match s.zero_loss_rate {
            Some(r) => format::rate(r),
            None => "none".to_string(),
        };
        out.push_str(&format!(
            "<td class=\"num\">{zero_loss}</td><td class=\"num\">{ratio}</td>"
        ));
        if let Some(g) = goal {
            // A display comparison of two given numbers, not a statistic.
            let meets = s.zero_loss_rate.is_some_and(|r| r >= g);
            out.push_str(if meets {
                "<td>meets</td>"
            } else {
                "<td>below</td>"
            });
        }
        out.push_str(&format!(
            "<td class=\"nowrap\">{}</td></tr>\n",
            validity_cell(s)
        ));
    }
    out.push_str("</tbody>\n</table>\n</div>\n");
    out.push_str(
        "<p class=\"legend\">NDR (no-drop rate): the highest offered rate at which nothing was lost; \
         none: events were lost even at the lowest rate tried. × baseline: ratio to the series marked baseline \
         (the seed's design on the same capture).</p>\n",
    );
    out.push_str("</section>\n");
}

fn missing(out: &mut String, report: &SweepReport) {
    if report.missing.is_empty() {
        return;
    }
    out.push_str(
        "<section id=\"missing\">\n<h2>What these results lack</h2>\n<ul class=\"warnings\">\n",
    );
    for m in &report.missing {
        out.push_str(&format!("<li>{}</li>\n", escape(m)));
    }
    out.push_str("</ul>\n</section>\n");
}

fn comparison(out: &mut String, report: &SweepReport) {
    let Some(c) = &report.comparison else {
        return;
    };
    out.push_str(&format!(
        "<section id=\"comparison\">\n<h2>Compared with <code>{}</code></h2>\n<p class=\"legend\">{}</p>\n",
        escape(&c.baseline),
        escape(&c.rule)
    ));
    let regressed = c.rows.iter().filter(|r| r.regressed).count();
    if regressed > 0 {
        out.push_str(&format!(
            "<div class=\"alert\" role=\"alert\"><strong>{regressed} of {} cells regressed</strong> (highlighted below).</div>\n",
            c.rows.len()
        ));
    }
    if c.rows.is_empty() {
        out.push_str("<p class=\"empty\">No cell is in both runs.</p>\n");
    } else {
        out.push_str(
            "<div class=\"scroll\">\n<table class=\"summary\">\n<thead><tr><th>cell</th>\
             <th class=\"num\">baseline (events/s)</th><th class=\"num\">now (events/s)</th>\
             <th class=\"num\">change</th><th>judged</th></tr></thead>\n<tbody>\n",
        );
        let rate = |r: Option<f64>| r.map_or("none".to_string(), format::rate);
        for r in &c.rows {
            out.push_str(&format!(
                "<tr{}><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{} {}</td></tr>\n",
                if r.regressed { " class=\"invalid\"" } else { "" },
                escape(&r.cell),
                rate(r.baseline_rate),
                rate(r.current_rate),
                r.change_pct.map_or("—".to_string(), |p| format!("{p:+.1}%")),
                if r.regressed {
                    "<span class=\"badge bad\">REGRESSED</span>"
                } else {
                    "<span class=\"badge ok\">holds</span>"
                },
                escape(&r.detail)
            ));
        }
        out.push_str("</tbody>\n</table>\n</div>\n");
    }
    for (title, cells) in [
        ("Only in the baseline", &c.only_in_baseline),
        ("Only in these results", &c.only_in_current),
    ] {
        if !cells.is_empty() {
            out.push_str(&format!("<h3>{title}</h3>\n<ul>\n"));
            for cell in cells {
                out.push_str(&format!("<li>{}</li>\n", escape(cell)));
            }
            out.push_str("</ul>\n");
        }
    }
    out.push_str("</section>\n");
}

/// Per variant, the smallest ring whose zero-loss rate reaches the goal (a
/// comparison of given numbers, not a statistic).
fn minimum_rings(out: &mut String, report: &SweepReport) {
    let Some(goal) = report.goal_rate else {
        out.push_str("<p class=\"legend\">No goal rate set: no minimum ring to name.</p>\n");
        return;
    };
    let mut variants: Vec<&str> = report.series.iter().map(|s| s.variant.as_str()).collect();
    variants.dedup();
    if variants.is_empty() {
        return;
    }
    out.push_str(&format!(
        "<ul class=\"notes\" id=\"minimum-ring\">\n<li>Smallest ring holding the goal ({} events/s), per variant:</li>\n",
        format::rate(goal)
    ));
    for v in variants {
        let min = report
            .series
            .iter()
            .filter(|s| s.variant == v && s.valid && s.zero_loss_rate.is_some_and(|r| r >= goal))
            .map(|s| s.ring_bytes)
            .min();
        out.push_str(&format!(
            "<li>{}: {}</li>\n",
            escape(v),
            min.map_or("none of the sizes tried".to_string(), format::bytes)
        ));
    }
    out.push_str("</ul>\n");
}

/// Cells run in more than one mode (emulated replay, kernel-backed replay,
/// live), side by side: each mode's NDR and its ratio to live's.
fn modes_side_by_side(out: &mut String, report: &SweepReport) {
    out.push_str("<section id=\"modes\">\n<h2>Replay, kernel and live</h2>\n");
    let cells = mode_cells(report);
    if cells.is_empty() {
        out.push_str(
            "<p class=\"empty\">No cell ran in more than one mode in these results \
             (a plan's <code>modes = [\"replay\", \"kernel\", \"live\"]</code> runs each cell in each; \
             kernel and live cells need root).</p>\n</section>\n",
        );
        return;
    }
    out.push_str(
        "<p>Each cell's highest zero-loss rate (NDR) in each mode it ran, and each mode's NDR over \
         live's (1.00× = the mode predicts live exactly). A dash: the mode did not run that cell, \
         or the ratio has no live NDR to divide by. The chart <a href=\"#chart-ndr-by-mode\">NDR by \
         mode</a> draws the same figures.</p>\n",
    );
    out.push_str(
        "<div class=\"scroll\">\n<table class=\"summary\">\n<thead><tr><th>cell</th>\
         <th class=\"num\">replay (events/s)</th><th class=\"num\">kernel (events/s)</th>\
         <th class=\"num\">live (events/s)</th><th class=\"num\">replay ÷ live</th>\
         <th class=\"num\">kernel ÷ live</th></tr></thead>\n<tbody>\n",
    );
    let dash = || "—".to_string();
    for c in &cells {
        let ndr = |m: Mode| match c.series(m) {
            None => dash(),
            Some(s) => s.zero_loss_rate.map_or("none".to_string(), format::rate),
        };
        let ratio = |m: Mode| c.ratio_to_live(m).map_or_else(dash, format::ratio);
        let cell = if c.detail.is_empty() {
            escape(&c.head)
        } else {
            format!(
                "{}<br><span class=\"muted\">{}</span>",
                escape(&c.head),
                escape(&c.detail)
            )
        };
        out.push_str(&format!(
            "<tr><td>{cell}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
            ndr(Mode::Replay),
            ndr(Mode::Kernel),
            ndr(Mode::Live),
            ratio(Mode::Replay),
            ratio(Mode::Kernel),
        ));
    }
    out.push_str("</tbody>\n</table>\n</div>\n</section>\n");
}

fn environment(out: &mut String, report: &SweepReport) {
    out.push_str("<section id=\"environment\">\n<h2>Environment</h2>\n");
    if report.environment.is_empty() {
        out.push_str("<p class=\"empty\">Not recorded.</p>\n");
    } else {
        out.push_str("<table class=\"env\">\n<tbody>\n");
        for (k, v) in &report.environment {
            out.push_str(&format!(
                "<tr><th scope=\"row\">{}</th><td>{}</td></tr>\n",
                escape(k),
                escape(v)
            ));
        }
        out.push_str("</tbody>\n</table>\n");
    }
    out.push_str("</section>\n");
}

fn details(out: &mut String, report: &SweepReport) {
    out.push_str("<section id=\"details\">\n<h2>Per-series results</h2>\n");
    if report.series.is_empty() {
        out.push_str("<p class=\"empty\">No series in this sweep.</p>\n");
    } else {
        out.push_str(
            "<p class=\"legend\">Rows in bold: the series' highest zero-loss rate. \
             Shaded rows: events were lost. Latencies run from an event's origin to the sink.</p>\n",
        );
    }
    for (i, s) in report.series.iter().enumerate() {
        let class = if s.valid { "series" } else { "series invalid" };
        out.push_str(&format!(
            "<article class=\"{class}\" id=\"series-{}\">\n<h3><span class=\"swatch\" style=\"background:{}\"></span>{}. {} {}</h3>\n",
            i + 1,
            series_color_hex(i),
            i + 1,
            escape(&s.variant),
            validity_cell(s),
        ));
        let mut facts = vec![
            ("layout", escape(&s.layout)),
            ("transport", escape(&s.transport)),
            ("ring", format::bytes(s.ring_bytes)),
        ];
        if !s.wakeup.is_empty() {
            facts.push(("wakeup", escape(&s.wakeup)));
        }
        facts.push(("sink", escape(&s.sink)));
        if !s.capture.is_empty() {
            facts.push(("capture", escape(&s.capture)));
        }
        facts.push(("zero-loss rate", zero_loss_cell(s.zero_loss_rate)));
        out.push_str("<dl class=\"facts\">");
        for (k, v) in facts {
            out.push_str(&format!("<div><dt>{k}</dt><dd>{v}</dd></div>"));
        }
        out.push_str("</dl>\n");
        if !s.problems.is_empty() {
            // Problems of an invalid series are errors; of a valid one, warnings.
            out.push_str(if s.valid {
                "<ul class=\"warnings\">\n"
            } else {
                "<ul class=\"problems\">\n"
            });
            for p in &s.problems {
                out.push_str(&format!("<li>{}</li>\n", escape(p)));
            }
            out.push_str("</ul>\n");
        }
        cpu_table(out, s);
        points_table(out, s);
        out.push_str("</article>\n");
    }
    out.push_str("</section>\n");
}

/// CPU per stage over the zero-loss trial, when recorded: CPU time, ns per
/// event and share of all CPUs (a dash where an older result has none).
fn cpu_table(out: &mut String, s: &Series) {
    if s.cpu_per_stage.is_empty() {
        return;
    }
    out.push_str(
        "<table class=\"points\">\n<caption>CPU per stage over the zero-loss trial</caption>\n\
         <thead><tr><th>stage</th><th class=\"num\">CPU time</th><th class=\"num\">per event</th>\
         <th class=\"num\">share of CPUs</th></tr></thead>\n<tbody>\n",
    );
    let recorded = |v: f64, show: &dyn Fn(f64) -> String| {
        if v > 0.0 {
            show(v)
        } else {
            "—".to_string()
        }
    };
    for st in &s.cpu_per_stage {
        out.push_str(&format!(
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
            escape(&st.stage),
            format::nanos(st.seconds * 1e9),
            recorded(st.ns_per_event, &format::nanos),
            recorded(st.share, &|x| format!("{:.1}%", x * 100.0)),
        ));
    }
    out.push_str("</tbody>\n</table>\n");
}

fn points_table(out: &mut String, s: &Series) {
    if s.points.is_empty() {
        out.push_str("<p class=\"empty\">No rates were run.</p>\n");
        return;
    }
    out.push_str(
        "<table class=\"points\">\n<thead><tr><th class=\"num\">offered rate</th>\
         <th class=\"num\">offered</th><th class=\"num\">delivered</th><th class=\"num\">lost</th>\
         <th class=\"num\">lost %</th><th class=\"num\">throughput</th><th class=\"num\">p50</th>\
         <th class=\"num\">p99</th><th class=\"num\">p99.9</th><th class=\"num\">ring high-water</th>\
         </tr></thead>\n<tbody>\n",
    );
    // Display order: by offered rate (NaN last), input order among equals.
    let mut points: Vec<&Point> = s.points.iter().collect();
    points.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    for p in points {
        let class = if s.zero_loss_rate == Some(p.rate) {
            " class=\"zero-loss\" title=\"highest zero-loss rate\""
        } else if p.lost > 0 {
            " class=\"lossy\""
        } else {
            ""
        };
        out.push_str(&format!(
            "<tr{class}><td class=\"num\">{}/s</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}/s</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>\n",
            format::rate(p.rate),
            format::count(p.offered),
            format::count(p.delivered),
            format::count(p.lost),
            format::percent(p.lost_pct),
            format::rate(p.throughput),
            latency(p, p.p50_ns),
            latency(p, p.p99_ns),
            latency(p, p.p999_ns),
            format::bytes(p.high_water_bytes),
        ));
    }
    out.push_str("</tbody>\n</table>\n");
}

/// A latency cell; "—" when nothing was delivered (no latency was measured).
fn latency(p: &Point, ns: u64) -> String {
    if p.delivered == 0 {
        "—".to_string()
    } else {
        format::nanos(ns as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn inline_svg_drops_namespace_url_and_names_chart() {
        let svg = r#"<svg width="1" height="1" viewBox="0 0 1 1" xmlns="http://www.w3.org/2000/svg"></svg>"#;
        let inl = inline_svg(svg, "A < B");
        assert!(!inl.contains("http"));
        assert!(inl.starts_with(r#"<svg role="img" aria-label="A &lt; B" width="1""#));
    }
}
