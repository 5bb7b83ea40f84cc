//! The CPU-per-stage chart: one horizontal bar per series, stacked from the
//! left in pipeline order (producer, reader, decode, classify, serialize,
//! sink client, broker...), each segment a stage's CPU ns per event at the
//! series' zero-loss trial, in the stage's colour, with the total at the
//! bar's end and a legend of the stages under the plot.

use super::*;

/// The legend's stages per row: 4 columns of ~190 px fit the 800 px canvas.
const LEGEND_COLS: usize = 4;
/// Bar half-thickness in row units (one series = 1).
const BAR_HALF: f64 = 0.32;

/// Every stage any series recorded a per-event cost for, in the order they
/// first appear (the harness writes them in pipeline order).
fn stages(report: &SweepReport) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for st in report.series.iter().flat_map(|s| &s.cpu_per_stage) {
        if st.ns_per_event > 0.0 && !out.contains(&st.stage.as_str()) {
            out.push(&st.stage);
        }
    }
    out
}

/// A stage's colour: its position in [`stages`] in the palette (a stage is not
/// a series, so it does not take a series' colour; within one report every
/// bar gives the same stage the same colour).
fn stage_color(k: usize) -> RGBColor {
    PALETTE[k % PALETTE.len()]
}

fn legend_height(n: usize) -> u32 {
    LEGEND_ROW * n.div_ceil(LEGEND_COLS).max(1) as u32 + 12
}

/// The canvas height: chrome, legend rows, and a row per series (at least one).
pub(super) fn height(report: &SweepReport) -> u32 {
    BAR_CHROME + legend_height(stages(report).len()) + BAR_ROW * (report.series.len() as u32).max(1)
}

pub(super) fn draw(root: &Area, report: &SweepReport) -> DrawResult {
    let title = Chart::CpuPerStage.title();
    let names = stages(report);
    if names.is_empty() {
        let why = if report.series.is_empty() {
            "no series in this sweep"
        } else {
            "no CPU per event was recorded (results older than the stage table)"
        };
        return no_data(root, title, why);
    }
    let n = report.series.len();
    let (_, h) = root.dim_in_pixel();
    let (plot, legend) = root.split_vertically(h - legend_height(names.len()));
    draw_legend_rows(&legend, &names)?;

    let labels = format::series_label_parts(&report.series);
    let column = LabelColumn::fit(&labels);
    let totals: Vec<f64> = report
        .series
        .iter()
        .map(|s| {
            s.cpu_per_stage
                .iter()
                .map(|st| st.ns_per_event)
                .filter(|v| v.is_finite() && *v > 0.0)
                .sum()
        })
        .collect();
    // 1.3x headroom: room right of the longest bar for its "12.4 µs/event" note.
    let x = Axis::fit(&totals, None, true, 1.3);
    let y = Axis {
        log: false,
        lo: 0.0,
        hi: n as f64,
    };
    let desc = "CPU per event (ns, all threads and the broker), at the zero-loss trial";
    let mut chart = bar_axes(&plot, title, &column, (&x, desc, format::nanos_tick), &y)?;

    let mut notes = Vec::with_capacity(n);
    for (i, s) in report.series.iter().enumerate() {
        // First series on top.
        let yc = (n - i) as f64 - 0.5;
        let (head, detail) = &labels[i];
        let label_color = if s.valid { TEXT_COLOR } else { GOAL_COLOR };
        column.draw(
            &plot,
            chart.backend_coord(&(x.lo, yc)),
            head,
            detail,
            label_color,
        )?;
        let mut at = 0.0;
        for st in &s.cpu_per_stage {
            let v = st.ns_per_event;
            let Some(k) = names.iter().position(|n| *n == st.stage) else {
                continue;
            };
            if !(v.is_finite() && v > 0.0) {
                continue;
            }
            let bar = [(at, yc - BAR_HALF), (at + v, yc + BAR_HALF)];
            draw_bar(&mut chart, bar, stage_color(k), s.valid)?;
            at += v;
        }
        let (mut note, color) = if at > 0.0 {
            (format!("{}/event", format::nanos(at)), TEXT_COLOR)
        } else {
            ("not recorded".to_string(), MUTED_COLOR)
        };
        if !s.valid {
            note.push_str(" · INVALID");
        }
        notes.push((note, at, yc, color));
    }
    for (note, at, yc, color) in notes {
        backed_text(&mut chart, (at, yc), note, (6, 0), color, VPos::Center)?;
    }
    Ok(())
}

/// The stages' swatches, [`LEGEND_COLS`] to a row, in pipeline order.
fn draw_legend_rows(area: &Area, names: &[&str]) -> DrawResult {
    let items: Vec<(&str, RGBColor)> = names
        .iter()
        .enumerate()
        .map(|(k, n)| (*n, stage_color(k)))
        .collect();
    draw_swatches(area, &items, LEGEND_COLS)
}
