//! Legends and the text helpers every chart uses: the line charts' legend
//! strip, the bar charts' swatches, text on a white backing, and the
//! placeholder of a chart with nothing to draw.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    marker, series_color, Area, Cart, DrawResult, Line, Marker, CAPTION_SIZE, CHAR_PX, DESC_SIZE,
    FONT, GOAL_COLOR, LABEL_SIZE, LEGEND_ROW, TEXT_COLOR, WIDTH,
};
use crate::format;

pub(super) fn text(size: u32, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle {
        font: (FONT, size).into_font(),
        color: color.to_backend_color(),
        pos: Pos::new(h, v),
    }
}

/// Left-anchored text at `offset` pixels from `at`, on a translucent white
/// backing (width estimated at CHAR_PX per char) so lines under it don't
/// strike it through.
pub(super) fn backed_text(
    chart: &mut Cart,
    at: (f64, f64),
    label: String,
    offset: (i32, i32),
    color: RGBColor,
    v: VPos,
) -> DrawResult {
    let w = (label.chars().count() as u32 * CHAR_PX) as i32;
    // 18 px box around 12 px text: from the offset down (top-anchored) or centred on it.
    let (top, bottom) = match v {
        VPos::Top => (offset.1 - 2, offset.1 + 16),
        _ => (offset.1 - 9, offset.1 + 9),
    };
    chart.draw_series(std::iter::once(
        EmptyElement::at(at)
            + Rectangle::new(
                [(offset.0 - 3, top), (offset.0 + w + 3, bottom)],
                WHITE.mix(0.85).filled(),
            ),
    ))?;
    chart.draw_series(std::iter::once(
        EmptyElement::at(at) + Text::new(label, offset, text(LABEL_SIZE, color, HPos::Left, v)),
    ))?;
    Ok(())
}

pub(super) fn no_data(area: &Area, title: &str, why: &str) -> DrawResult {
    let inner = area.titled(title, (FONT, CAPTION_SIZE))?;
    let (w, h) = inner.dim_in_pixel();
    inner.draw(&Text::new(
        why.to_string(),
        (w as i32 / 2, h as i32 / 2),
        text(DESC_SIZE, TEXT_COLOR, HPos::Center, VPos::Center),
    ))
}

/// The legend strip under a line chart: one entry per series, in two columns
/// when every entry fits in half the width, else in one.
pub(super) struct Legend {
    /// Full entry texts: label plus ` [INVALID]` / ` (no data)` markers.
    entries: Vec<(String, String)>,
    columns: u32,
    /// Characters that fit in one column's text part.
    max_chars: usize,
}

impl Legend {
    pub(super) fn new(lines: &[Line]) -> Legend {
        let entries: Vec<(String, String)> = lines
            .iter()
            .map(|line| {
                let mut suffix = String::new();
                if line.invalid {
                    suffix.push_str(" [INVALID]");
                }
                if line.points.is_empty() {
                    suffix.push_str(" (no data)");
                }
                (line.label.clone(), suffix)
            })
            .collect();
        // Sample line (24 px) + gap (8) + 12 px slack; the rest is text.
        let fit = |columns: u32| (((WIDTH - 32) / columns - 44) / CHAR_PX) as usize;
        let longest = entries
            .iter()
            .map(|(l, s)| l.chars().count() + s.chars().count())
            .max()
            .unwrap_or(0);
        let columns = if entries.len() > 1 && longest <= fit(2) {
            2
        } else {
            1
        };
        Legend {
            entries,
            columns,
            max_chars: fit(columns),
        }
    }

    pub(super) fn height(&self) -> u32 {
        if self.entries.is_empty() {
            0
        } else {
            (self.entries.len() as u32).div_ceil(self.columns) * LEGEND_ROW + 16
        }
    }
}

/// Draws the legend: a line sample with the series' marker, then its label.
pub(super) fn draw_legend(area: &Area, lines: &[Line]) -> DrawResult {
    let legend = Legend::new(lines);
    let col_w = (WIDTH - 32) / legend.columns;
    for (i, (line, (label, suffix))) in lines.iter().zip(&legend.entries).enumerate() {
        let (row, col) = (i as u32 / legend.columns, i as u32 % legend.columns);
        let x0 = (16 + col * col_w) as i32;
        let y = (8 + row * LEGEND_ROW + LEGEND_ROW / 2) as i32;
        let color = series_color(line.index);
        let style = color.stroke_width(2);
        if line.invalid {
            area.draw(&PathElement::new([(x0, y), (x0 + 8, y)], style))?;
            area.draw(&PathElement::new([(x0 + 16, y), (x0 + 24, y)], style))?;
        } else {
            area.draw(&PathElement::new([(x0, y), (x0 + 24, y)], style))?;
        }
        let m = (x0 + 12, y);
        match marker(line.index) {
            Marker::Circle => area.draw(&Circle::new(m, 3, color.filled()))?,
            Marker::Triangle => area.draw(&TriangleMarker::new(m, 5, color.filled()))?,
            Marker::Cross => area.draw(&Cross::new(m, 4, color.stroke_width(2)))?,
        }
        // The markers go after the label and survive truncation.
        let room = legend.max_chars.saturating_sub(suffix.chars().count());
        let text_color = if line.invalid { GOAL_COLOR } else { TEXT_COLOR };
        area.draw(&Text::new(
            format::truncate(label, room) + suffix,
            (x0 + 32, y),
            text(LABEL_SIZE, text_color, HPos::Left, VPos::Center),
        ))?;
    }
    Ok(())
}

/// A legend under a bar chart: per item a filled square in its colour, then
/// its name, `cols` items to a row of [`LEGEND_ROW`] px.
pub(super) fn draw_swatches(area: &Area, items: &[(&str, RGBColor)], cols: usize) -> DrawResult {
    let cols = cols.max(1);
    let col_w = ((WIDTH - 32) / cols as u32) as i32;
    for (k, (name, color)) in items.iter().enumerate() {
        let x0 = 16 + (k % cols) as i32 * col_w;
        let y = (LEGEND_ROW / 2 + LEGEND_ROW * (k / cols) as u32) as i32;
        area.draw(&Rectangle::new(
            [(x0, y - 6), (x0 + 12, y + 6)],
            color.filled(),
        ))?;
        area.draw(&Text::new(
            name.to_string(),
            (x0 + 20, y),
            text(LABEL_SIZE, TEXT_COLOR, HPos::Left, VPos::Center),
        ))?;
    }
    Ok(())
}
