//! The zero-loss bar chart (each series' highest zero-loss rate, the goal
//! marked) and the pieces every horizontal bar chart is built from: the
//! label column, the axes, a bar, the goal line.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::axis::{Axis, AxisCoord};
use super::legend::{backed_text, no_data, text};
use super::{
    series_color, Area, Cart, Chart, DrawError, DrawResult, CAPTION_SIZE, CHAR_PX, DESC_SIZE,
    DETAIL_CHAR_PX, DETAIL_SIZE, FONT, GOAL_COLOR, GRID_COLOR, LABEL_SIZE, MUTED_COLOR, TEXT_COLOR,
};
use crate::format;
use crate::model::SweepReport;

/// The x axis of both zero-loss bar charts.
const NDR_DESC: &str = "highest offered rate with zero loss (events/s)";

/// The label column left of a bar chart: two-line labels (`1. variant` over
/// the fields that tell the rows apart), cut to fit.
pub(super) struct LabelColumn {
    width: u32,
    head_chars: usize,
    detail_chars: usize,
}

impl LabelColumn {
    /// Wide enough for the widest line at CHAR_PX per char, 96..=340 px.
    pub(super) fn fit(labels: &[(String, String)]) -> LabelColumn {
        let widest = labels
            .iter()
            .map(|(head, detail)| {
                (head.chars().count() as u32 * CHAR_PX)
                    .max(detail.chars().count() as u32 * DETAIL_CHAR_PX)
            })
            .max()
            .unwrap_or(0);
        let width = (widest + 20).clamp(96, 340);
        LabelColumn {
            width,
            head_chars: ((width - 20) / CHAR_PX) as usize,
            detail_chars: ((width - 20) / DETAIL_CHAR_PX) as usize,
        }
    }

    /// One row's label, right-aligned left of the plot's pixel `(px, py)`.
    pub(super) fn draw(
        &self,
        root: &Area,
        (px, py): (i32, i32),
        head: &str,
        detail: &str,
        color: RGBColor,
    ) -> DrawResult {
        let head_y = if detail.is_empty() { py } else { py - 7 };
        root.draw(&Text::new(
            format::truncate(head, self.head_chars),
            (px - 8, head_y),
            text(LABEL_SIZE, color, HPos::Right, VPos::Center),
        ))?;
        if !detail.is_empty() {
            root.draw(&Text::new(
                format::truncate(detail, self.detail_chars),
                (px - 8, py + 8),
                text(DETAIL_SIZE, MUTED_COLOR, HPos::Right, VPos::Center),
            ))?;
        }
        Ok(())
    }
}

/// A zero-loss bar chart's plot: its caption, the label column's room, the
/// rate axis (`x`, with its description) and one row per unit of `y`.
pub(super) fn ndr_bar_axes<'a, 'b>(
    area: &'a Area<'b>,
    title: &str,
    column: &LabelColumn,
    x: &Axis,
    y: &Axis,
) -> Result<Cart<'a, 'b>, DrawError> {
    bar_axes(area, title, column, (x, NDR_DESC, format::rate_tick), y)
}

/// A horizontal bar chart's plot: its caption, the label column's room, the
/// value axis (`x`, its description and tick format) and one row per unit of `y`.
pub(super) fn bar_axes<'a, 'b>(
    area: &'a Area<'b>,
    title: &str,
    column: &LabelColumn,
    (x, desc, tick): (&Axis, &str, fn(f64) -> String),
    y: &Axis,
) -> Result<Cart<'a, 'b>, DrawError> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, CAPTION_SIZE))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(column.width)
        .build_cartesian_2d(x.coord(), AxisCoord::new(y.plot_range(), Vec::new()))?;
    let x_fmt = |v: &f64| tick(*v);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(desc)
        .x_label_formatter(&x_fmt)
        .bold_line_style(GRID_COLOR)
        .light_line_style(TRANSPARENT)
        .axis_style(TEXT_COLOR)
        .label_style((FONT, LABEL_SIZE).into_font().color(&TEXT_COLOR))
        .axis_desc_style((FONT, DESC_SIZE).into_font().color(&TEXT_COLOR))
        .draw()?;
    Ok(chart)
}

/// One bar filled with `color`; an invalid series' bar is a washed-out fill
/// inside a red frame.
pub(super) fn draw_bar(
    chart: &mut Cart,
    bar: [(f64, f64); 2],
    color: RGBColor,
    valid: bool,
) -> DrawResult {
    if valid {
        chart.draw_series(std::iter::once(Rectangle::new(bar, color.filled())))?;
    } else {
        chart.draw_series(std::iter::once(Rectangle::new(
            bar,
            color.mix(0.3).filled(),
        )))?;
        chart.draw_series(std::iter::once(Rectangle::new(
            bar,
            GOAL_COLOR.stroke_width(2),
        )))?;
    }
    Ok(())
}

/// The goal rate as a dashed vertical line over the whole `y` range, labelled at its top.
pub(super) fn draw_goal(chart: &mut Cart, g: f64, y: &Axis) -> DrawResult {
    chart.draw_series(DashedLineSeries::new(
        [(g, y.lo), (g, y.hi)],
        6,
        4,
        GOAL_COLOR.stroke_width(2),
    ))?;
    chart.draw_series(std::iter::once(
        EmptyElement::at((g, y.hi))
            + Text::new(
                format!("goal {}/s", format::rate_tick(g)),
                (5, 4),
                text(LABEL_SIZE, GOAL_COLOR, HPos::Left, VPos::Top),
            ),
    ))?;
    Ok(())
}

pub(super) fn bar_chart(root: &Area, report: &SweepReport) -> DrawResult {
    let title = Chart::ZeroLossRate.title();
    let n = report.series.len();
    if n == 0 {
        return no_data(root, title, "no series in this sweep");
    }
    // Two-line labels: "1. variant" over the fields that differ between series.
    let labels = format::series_label_parts(&report.series);
    let column = LabelColumn::fit(&labels);

    let goal = report.goal_rate.filter(|g| g.is_finite() && *g > 0.0);
    let mut values: Vec<f64> = report
        .series
        .iter()
        .filter_map(|s| s.zero_loss_rate)
        .filter(|r| r.is_finite() && *r >= 0.0)
        .collect();
    values.extend(goal);
    if values.is_empty() {
        values.push(0.0);
    }
    // 1.45x headroom leaves room right of the longest bar for its
    // "612.5 k/s · 1.85× baseline" label (~170 px of a ~440 px plot).
    let x = Axis::fit(&values, None, true, 1.45);
    // One unit per bar, plus 0.6 of a bar on top for the goal's label.
    let y = Axis {
        log: false,
        lo: 0.0,
        hi: n as f64 + 0.6,
    };

    let mut chart = ndr_bar_axes(root, title, &column, &x, &y)?;

    let mut notes = Vec::with_capacity(n);
    for (i, s) in report.series.iter().enumerate() {
        // First series on top.
        let yc = (n - i) as f64 - 0.5;
        let color = series_color(i);
        let label_color = if s.valid { TEXT_COLOR } else { GOAL_COLOR };
        let (head, detail) = &labels[i];
        column.draw(
            root,
            chart.backend_coord(&(x.lo, yc)),
            head,
            detail,
            label_color,
        )?;

        let (mut note, note_x) = match s.zero_loss_rate {
            Some(r) if r.is_finite() && r >= 0.0 => {
                draw_bar(
                    &mut chart,
                    [(0.0, yc - 0.32), (r, yc + 0.32)],
                    color,
                    s.valid,
                )?;
                let mut note = format!("{}/s", format::rate(r));
                if s.baseline == Some(i) {
                    note.push_str(" · baseline");
                } else if let Some(ratio) = format::baseline_ratio(report, i) {
                    note.push_str(&format!(" · {} baseline", format::ratio(ratio)));
                }
                (note, r)
            }
            Some(r) => (format!("zero-loss rate is {}", format::rate(r)), 0.0),
            None => ("lost events even at the lowest rate tried".to_string(), 0.0),
        };
        if !s.valid {
            note.push_str(" · INVALID");
        }
        let note_color = if s.valid && s.zero_loss_rate.is_some() {
            TEXT_COLOR
        } else {
            GOAL_COLOR
        };
        notes.push((note, note_x, yc, note_color));
    }

    // The goal line goes over the bars but under the notes.
    if let Some(g) = goal {
        draw_goal(&mut chart, g, &y)?;
    }
    // Notes last, on a backing, so the goal line doesn't strike them through.
    for (note, x_at, yc, color) in notes {
        backed_text(&mut chart, (x_at, yc), note, (6, 0), color, VPos::Center)?;
    }
    Ok(())
}
