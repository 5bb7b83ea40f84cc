//! `fidelity.html`: each cell's lost % as distributions, one row per side
//! (live, replay, replay with the co-runner): every run as a dot, the
//! interquartile range as a box, the median as a bar. It only draws what
//! [`FidelityResults`] holds; the statistics are computed in
//! `experiment::fidelity`.

use std::fmt::Write as _;

use crate::experiment::fidelity::{CellResult, FidelityResults, Side};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const WIDTH: f64 = 560.0;
const LEFT: f64 = 150.0;
const ROW: f64 = 26.0;

fn colour(side: Side) -> &'static str {
    match side {
        Side::Live => "#1b6ca8",
        Side::Replay => "#b35900",
        Side::ReplayCoRunner => "#2e7d32",
    }
}

/// The cell's strip plot: x is lost %, from 0 to the largest run (at least 1 %).
fn plot(c: &CellResult) -> String {
    let max = c
        .sides
        .iter()
        .flat_map(|s| s.runs.iter().map(|r| r.lost_pct))
        .fold(1.0_f64, f64::max);
    let x = |p: f64| LEFT + (p / max) * (WIDTH - LEFT - 20.0);
    let height = ROW * c.sides.len() as f64 + 28.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img" aria-label="lost % per run, {}">"#,
        esc(&c.label)
    );
    for (i, side) in c.sides.iter().enumerate() {
        let y = 14.0 + ROW * i as f64;
        let col = colour(side.side);
        let _ = write!(
            s,
            r#"<text x="4" y="{:.1}" font-size="12">{}</text>"#,
            y + 4.0,
            esc(side.side.name())
        );
        if let Some(d) = side.lost_pct {
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="14" fill="{col}" fill-opacity="0.18" stroke="{col}"/><line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{col}" stroke-width="3"/>"#,
                x(d.q1),
                y - 7.0,
                (x(d.q3) - x(d.q1)).max(1.0),
                x(d.median),
                x(d.median),
                y - 9.0,
                y + 9.0
            );
        }
        for r in &side.runs {
            let (fill, title) = match &r.not_judged {
                None => (col, format!("repeat {}: {:.3} %", r.repeat + 1, r.lost_pct)),
                Some(why) => (
                    "none",
                    format!("repeat {}: not judged: {why}", r.repeat + 1),
                ),
            };
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{y:.1}" r="3" fill="{fill}" stroke="{col}"><title>{}</title></circle>"#,
                x(r.lost_pct),
                esc(&title)
            );
        }
    }
    let axis = height - 8.0;
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="{axis}" font-size="11">0 %</text><text x="{:.1}" y="{axis}" font-size="11" text-anchor="end">{max:.2} % lost</text></svg>"#,
        WIDTH - 20.0
    );
    s
}

/// The whole page.
pub fn render(r: &FidelityResults) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>dropbench fidelity: {cmd}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse}}td,th{{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:right}}td:first-child,th:first-child{{text-align:left}}.no{{color:#b00020;font-weight:bold}}</style></head><body>
<h1>Replay against live: <code>{cmd}</code></h1>
<p>{repeats} repeats per side and cell on {host} ({kernel}, {cpus} CPUs), {secs:.0} s in all. Each repeat recorded a reference ({refb} per ring, the cell's wakeup), ran the command live into the cell's rings, and replayed the reference at its own timing into emulated rings of the same size and wakeup, read by the same variant. A cell holds when replay's median lost % is within {tol} percentage points of live's, or inside live's interquartile range.</p>
"#,
        cmd = esc(&r.command),
        repeats = r.repeats,
        host = esc(&r.host),
        kernel = esc(&r.kernel),
        cpus = r.cpus,
        secs = r.seconds,
        refb = probes::units::format_bytes(r.reference_ring_bytes),
        tol = r.tolerance_pp,
    );
    s += "<table><tr><th>cell</th><th>reader (every side)</th><th>side</th><th>median lost %</th><th>IQR</th><th>zero-loss runs</th><th>gap to live, points</th><th>Mann-Whitney p</th><th>holds</th></tr>\n";
    for c in &r.cells {
        for side in &c.sides {
            let a = c.agreement.iter().find(|a| a.side == side.side);
            let d = side.lost_pct;
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} of {} (95 % {:.0}-{:.0} %)</td><td>{}</td><td>{}</td><td{}>{}</td></tr>",
                esc(&c.label),
                esc(&side.reader),
                side.side.name(),
                d.map_or("-".into(), |d| format!("{:.3}", d.median)),
                d.map_or("-".into(), |d| format!("{:.3} - {:.3}", d.q1, d.q3)),
                side.zero_loss_runs,
                side.judged_runs,
                100.0 * side.zero_loss_interval.0,
                100.0 * side.zero_loss_interval.1,
                a.map_or("".into(), |a| format!("{:+.3}", a.median_gap_pp)),
                a.and_then(|a| a.rank_sum).map_or("".into(), |t| format!("{:.3}", t.p)),
                if a.is_some_and(|a| !a.holds) { r#" class="no""# } else { "" },
                a.map_or("", |a| if a.holds { "yes" } else { "no" }),
            );
        }
    }
    s += "</table>\n";
    for c in &r.cells {
        let _ = write!(
            s,
            "<h2>{}</h2>\n<p>Reference samples per repeat: {}; lost in the reference: {}. Live run time over the reference's: {}.</p>\n{}\n",
            esc(&c.label),
            c.reference_samples
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            c.reference_lost.iter().sum::<u64>(),
            c.live_over_reference_time
                .map_or("-".into(), |x| format!("{x:.2}x (median)")),
            plot(c)
        );
    }
    s += "</body></html>\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::fidelity::{agreement, CoRunnerSides, SideResult, SideRun};

    fn side(side: Side, pcts: &[f64]) -> SideResult {
        let runs: Vec<SideRun> = pcts
            .iter()
            .enumerate()
            .map(|(i, &p)| SideRun {
                repeat: i,
                offered: 100,
                lost: p as u64,
                lost_pct: p,
                seconds: 1.0,
                not_judged: (p < 0.0).then(|| "`du` exited with status 1".into()),
            })
            .collect();
        // Built through JSON so the private constructor stays private.
        let v = serde_json::json!({
            "side": side, "reader": "batched", "runs": runs,
            "lost_pct": crate::experiment::stats::Spread::of(&pcts.iter().copied().filter(|p| *p >= 0.0).collect::<Vec<_>>()),
            "zero_loss_runs": pcts.iter().filter(|p| **p == 0.0).count(),
            "judged_runs": pcts.iter().filter(|p| **p >= 0.0).count(),
            "zero_loss_interval": [0.1, 0.9]
        });
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_page_draws_every_run_and_says_which_cells_miss() {
        let live = side(Side::Live, &[10.0, 12.0, 14.0, -1.0]);
        let replay = side(Side::Replay, &[1.0, 2.0, 3.0]);
        let co = side(Side::ReplayCoRunner, &[11.0, 13.0, 15.0]);
        let agree = vec![
            agreement(&live, &replay).unwrap(),
            agreement(&live, &co).unwrap(),
        ];
        let r = FidelityResults {
            schema: crate::experiment::fidelity::SCHEMA.into(),
            command: "du -s /usr <share>".into(),
            repeats: 3,
            reference_ring_bytes: 64 << 20,
            co_runner: CoRunnerSides::Both,
            tolerance_pp: 2.0,
            host: "vm".into(),
            kernel: "6.18".into(),
            cpus: 2,
            started_unix_s: 0,
            seconds: 12.0,
            cells: vec![CellResult {
                label: "batched 16KiB events:1".into(),
                variant: "batched".into(),
                layout: "compact".into(),
                transport: "perf".into(),
                ring_bytes: 16384,
                wakeup: "events:1".into(),
                sides: vec![live, replay, co],
                agreement: agree,
                reference_samples: vec![100, 100, 100],
                reference_lost: vec![0, 0, 0],
                live_over_reference_time: Some(1.02),
            }],
        };
        let html = render(&r);
        assert!(html.contains("du -s /usr &lt;share&gt;"));
        // 4 + 3 + 3 runs, one dot each; the unjudged one hollow and titled.
        assert_eq!(html.matches("<circle").count(), 10);
        assert!(html.contains(r#"fill="none""#) && html.contains("not judged: `du` exited"));
        // Replay alone misses (median 2 against 12), with the co-runner it holds.
        assert!(html.contains(r#"<td class="no">no</td>"#), "{html}");
        assert_eq!(html.matches(">yes</td>").count(), 1);
        assert!(html.contains("1.02x (median)"));
        assert_eq!(html.matches("<svg").count(), 1);
    }
}
