//! The NDR-by-mode chart: for each cell run in more than one mode, one
//! horizontal bar per mode (replay, kernel, live) at its highest zero-loss
//! rate, in the mode's colour, with a legend of the modes under the plot.

use super::*;
use crate::modes::{mode_cells, Mode};

/// Vertical space per cell: three 15 px bars with 5 px between them and
/// 12 px between cells (the bars are 0.24 of the cell's unit, 0.28 apart).
const CELL_ROW: u32 = 62;
/// The legend's row under the plot, with its margin.
const LEGEND_H: u32 = LEGEND_ROW + 12;
/// Bar thickness and spacing in cell units (one cell = 1).
const BAR_HALF: f64 = 0.12;
const BAR_STEP: f64 = 0.28;

/// Each mode's colour: the palette's blue, orange and green, the same in
/// every report (a mode is not a series, so it does not take a series' colour).
fn mode_color(mode: Mode) -> RGBColor {
    match mode {
        Mode::Replay => PALETTE[0],
        Mode::Kernel => PALETTE[1],
        Mode::Live => PALETTE[4],
    }
}

/// The canvas height: chrome, legend, and a row per cell (at least one, so
/// "no cell" has somewhere to go).
pub(super) fn height(report: &SweepReport) -> u32 {
    BAR_CHROME + LEGEND_H + CELL_ROW * (mode_cells(report).len() as u32).max(1)
}

pub(super) fn draw(root: &Area, report: &SweepReport) -> DrawResult {
    let title = Chart::NdrByMode.title();
    let cells = mode_cells(report);
    if cells.is_empty() {
        let why = if report.series.is_empty() {
            "no series in this sweep"
        } else {
            "no cell ran in more than one mode (replay, kernel, live)"
        };
        return no_data(root, title, why);
    }
    let n = cells.len();
    let (_, h) = root.dim_in_pixel();
    let (plot, legend) = root.split_vertically(h - LEGEND_H);
    draw_legend_row(&legend)?;

    let labels: Vec<(String, String)> = cells
        .iter()
        .map(|c| (c.head.clone(), c.detail.clone()))
        .collect();
    let column = LabelColumn::fit(&labels);
    let goal = report.goal_rate.filter(|g| g.is_finite() && *g > 0.0);
    let mut values: Vec<f64> = cells
        .iter()
        .flat_map(|c| Mode::ALL.map(|m| c.ndr(m)))
        .flatten()
        .filter(|r| r.is_finite() && *r >= 0.0)
        .collect();
    values.extend(goal);
    if values.is_empty() {
        values.push(0.0);
    }
    // 1.3x headroom: room right of the longest bar for its "612.5 k/s" note.
    let x = Axis::fit(&values, None, true, 1.3);
    // One unit per cell, plus 0.4 on top for the goal's label.
    let y = Axis {
        log: false,
        lo: 0.0,
        hi: n as f64 + 0.4,
    };
    let mut chart = ndr_bar_axes(&plot, title, &column, &x, &y)?;

    let mut notes = Vec::new();
    for (i, c) in cells.iter().enumerate() {
        // First cell on top; within it replay, kernel, live from the top.
        let yc = (n - i) as f64 - 0.5;
        column.draw(
            &plot,
            chart.backend_coord(&(x.lo, yc)),
            &c.head,
            &c.detail,
            TEXT_COLOR,
        )?;
        for (k, mode) in Mode::ALL.into_iter().enumerate() {
            let yb = yc + BAR_STEP * (1.0 - k as f64);
            let Some(s) = c.series(mode) else {
                notes.push((format!("{}: not run", mode.name()), 0.0, yb, MUTED_COLOR));
                continue;
            };
            let (mut note, at, color) = match s.zero_loss_rate {
                Some(r) if r.is_finite() && r >= 0.0 => {
                    let bar = [(0.0, yb - BAR_HALF), (r, yb + BAR_HALF)];
                    draw_bar(&mut chart, bar, mode_color(mode), s.valid)?;
                    (format!("{}/s", format::rate(r)), r, TEXT_COLOR)
                }
                _ => (format!("{}: none", mode.name()), 0.0, GOAL_COLOR),
            };
            if !s.valid {
                note.push_str(" · INVALID");
            }
            notes.push((note, at, yb, color));
        }
    }
    if let Some(g) = goal {
        draw_goal(&mut chart, g, &y)?;
    }
    for (note, at, yb, color) in notes {
        backed_text(&mut chart, (at, yb), note, (6, 0), color, VPos::Center)?;
    }
    Ok(())
}

/// The modes' swatches in one row: a filled square, then what the mode runs on.
fn draw_legend_row(area: &Area) -> DrawResult {
    let items = Mode::ALL.map(|m| (m.describe(), mode_color(m)));
    draw_swatches(area, &items, Mode::ALL.len())
}
