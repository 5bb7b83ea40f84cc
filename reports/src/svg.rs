//! The SVG charts, drawn with plotters into a `String`.
//!
//! Output is deterministic: fixed widths, heights that depend only on the
//! number of series, series in the report's order (points sorted by rate),
//! integer pixel coordinates, no clock, no fonts measured (plotters' SVG text
//! layout estimate is a fixed formula of size and length).
//!
//! Values that can't be placed on an axis (NaN, ±inf, non-positive rates) are
//! left out of the chart; the HTML tables still show them as they are.

use std::fmt;
use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::VPos;

use crate::error::ReportError;
use crate::format;
use crate::model::{Series, SweepReport};

mod axis;
mod bars;
mod legend;
mod mode_bars;
mod stage_bars;

use axis::{Axis, AxisCoord};
use bars::{bar_axes, bar_chart, draw_bar, draw_goal, ndr_bar_axes, LabelColumn};
use legend::{backed_text, draw_legend, draw_swatches, no_data, Legend};

/// Which chart to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chart {
    /// Lost % against offered rate, one line per series.
    LossVsRate,
    /// p99 latency against offered rate, one line per series.
    P99VsRate,
    /// Horizontal bars: each series' highest zero-loss rate, with the goal marked.
    ZeroLossRate,
    /// Delivered events/s against offered rate, one line per series.
    ThroughputVsRate,
    /// Median latency against offered rate.
    P50VsRate,
    /// 99.9th-percentile latency against offered rate.
    P999VsRate,
    /// Bytes waiting in the rings over the trial at each series' zero-loss rate.
    RingOccupancy,
    /// Each variant's zero-loss rate against ring size.
    NdrVsRing,
    /// Grouped bars: each cell's zero-loss rate in each mode it ran
    /// (replay, kernel, live).
    NdrByMode,
    /// Stacked bars: each series' CPU per event by pipeline stage, at its
    /// zero-loss trial.
    CpuPerStage,
}

impl Chart {
    /// Every chart, in the order the report shows them.
    pub const ALL: [Chart; 10] = [
        Chart::LossVsRate,
        Chart::ZeroLossRate,
        Chart::NdrVsRing,
        Chart::NdrByMode,
        Chart::CpuPerStage,
        Chart::ThroughputVsRate,
        Chart::P50VsRate,
        Chart::P99VsRate,
        Chart::P999VsRate,
        Chart::RingOccupancy,
    ];

    /// The file name [`crate::write_report`] gives this chart.
    pub fn file_name(self) -> &'static str {
        match self {
            Chart::LossVsRate => "loss-vs-rate.svg",
            Chart::P99VsRate => "p99-vs-rate.svg",
            Chart::ZeroLossRate => "zero-loss-rate.svg",
            Chart::ThroughputVsRate => "throughput-vs-rate.svg",
            Chart::P50VsRate => "p50-vs-rate.svg",
            Chart::P999VsRate => "p999-vs-rate.svg",
            Chart::RingOccupancy => "ring-occupancy.svg",
            Chart::NdrVsRing => "ndr-vs-ring.svg",
            Chart::NdrByMode => "ndr-by-mode.svg",
            Chart::CpuPerStage => "cpu-per-stage.svg",
        }
    }

    /// The chart's caption.
    pub fn title(self) -> &'static str {
        match self {
            Chart::LossVsRate => "Lost events vs offered rate",
            Chart::P99VsRate => "p99 latency vs offered rate",
            Chart::ZeroLossRate => "Highest zero-loss rate",
            Chart::ThroughputVsRate => "Throughput vs offered rate",
            Chart::P50VsRate => "p50 latency vs offered rate",
            Chart::P999VsRate => "p99.9 latency vs offered rate",
            Chart::RingOccupancy => "Ring occupancy over the zero-loss trial",
            Chart::NdrVsRing => "Zero-loss rate vs ring size",
            Chart::NdrByMode => "Zero-loss rate by mode",
            Chart::CpuPerStage => "CPU per event by stage at the zero-loss rate",
        }
    }
}

impl fmt::Display for Chart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Chart::LossVsRate => "loss-vs-rate",
            Chart::P99VsRate => "p99-vs-rate",
            Chart::ZeroLossRate => "zero-loss-rate",
            Chart::ThroughputVsRate => "throughput-vs-rate",
            Chart::P50VsRate => "p50-vs-rate",
            Chart::P999VsRate => "p999-vs-rate",
            Chart::RingOccupancy => "ring-occupancy",
            Chart::NdrVsRing => "ndr-vs-ring",
            Chart::NdrByMode => "ndr-by-mode",
            Chart::CpuPerStage => "cpu-per-stage",
        })
    }
}

/// Chart width in pixels; the HTML scales it down on narrow screens.
const WIDTH: u32 = 800;
/// Height of the plotting part of the two line charts (legend rows come on top).
const LINE_PLOT_HEIGHT: u32 = 420;
/// One legend row: 12 px text plus spacing.
const LEGEND_ROW: u32 = 20;
/// Vertical space per bar in the zero-loss chart.
const BAR_ROW: u32 = 34;
/// Caption plus the x axis and its description in the bar chart.
const BAR_CHROME: u32 = 120;
/// plotters writes `font-size` as the style's size / 1.24, so these give
/// about 19, 12 and 13 px text.
const CAPTION_SIZE: u32 = 24;
const LABEL_SIZE: u32 = 15;
const DESC_SIZE: u32 = 16;
/// The second line of a bar label, about 11 px.
const DETAIL_SIZE: u32 = 14;
/// Width budget per character of 12 px sans-serif text (browsers average about
/// 6.5 px), used to size the label column and to truncate labels.
const CHAR_PX: u32 = 7;
/// The same for 11 px detail text.
const DETAIL_CHAR_PX: u32 = 6;
const FONT: &str = "sans-serif";

/// Tableau 10: distinguishable, colour-blind-aware, and fixed so a series keeps
/// its colour across charts and runs. Series 11+ reuse colours with another marker.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0xE1, 0x57, 0x59),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0xED, 0xC9, 0x48),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0xFF, 0x9D, 0xA7),
    RGBColor(0x9C, 0x75, 0x5F),
    RGBColor(0xBA, 0xB0, 0xAC),
];
const GOAL_COLOR: RGBColor = RGBColor(0xC0, 0x1C, 0x28);
const GRID_COLOR: RGBColor = RGBColor(0xE2, 0xE2, 0xE2);
const TEXT_COLOR: RGBColor = RGBColor(0x22, 0x22, 0x22);
const MUTED_COLOR: RGBColor = RGBColor(0x66, 0x66, 0x66);

/// The colour series `index` has in every chart.
pub(crate) fn series_color(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// `#RRGGBB` of [`series_color`], for the HTML swatches.
pub(crate) fn series_color_hex(index: usize) -> String {
    let RGBColor(r, g, b) = series_color(index);
    format!("#{r:02X}{g:02X}{b:02X}")
}

/// Marker shape for series `index`: circles for the first ten, then
/// triangles, then crosses, so reused colours stay distinguishable.
#[derive(Clone, Copy)]
enum Marker {
    Circle,
    Triangle,
    Cross,
}

fn marker(index: usize) -> Marker {
    match (index / PALETTE.len()) % 3 {
        0 => Marker::Circle,
        1 => Marker::Triangle,
        _ => Marker::Cross,
    }
}

type DrawError = DrawingAreaErrorKind<std::io::Error>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws `chart` for `report` as a standalone SVG document.
pub fn render_svg(report: &SweepReport, chart: Chart) -> Result<String, ReportError> {
    let plan = plan(report, chart);
    let mut buf = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut buf, plan.size(report)).into_drawing_area();
        draw(report, &plan, &root).and_then(|()| root.present())
    };
    result.map_err(|e| ReportError::Chart {
        chart,
        message: e.to_string(),
    })?;
    Ok(buf)
}

/// What a chart will draw, decided before the canvas is sized.
enum Plan {
    Lines(Vec<Line>, LineSpec),
    Bars,
    ModeBars,
    StageBars,
}

impl Plan {
    fn size(&self, report: &SweepReport) -> (u32, u32) {
        match self {
            Plan::Lines(lines, _) => (WIDTH, LINE_PLOT_HEIGHT + Legend::new(lines).height()),
            // At least room for one bar so "no series" has somewhere to go.
            Plan::Bars => (
                WIDTH,
                BAR_CHROME + BAR_ROW * (report.series.len() as u32).max(1),
            ),
            Plan::ModeBars => (WIDTH, mode_bars::height(report)),
            Plan::StageBars => (WIDTH, stage_bars::height(report)),
        }
    }
}

fn plan(report: &SweepReport, chart: Chart) -> Plan {
    match chart {
        Chart::LossVsRate => Plan::Lines(
            {
                // A log axis cannot place 0% (report.loss_log leaves them out).
                let keep = |lost: f64| lost > 0.0 || (!report.loss_log && lost >= 0.0);
                let mut ls = lines(report, |s| {
                    s.points
                        .iter()
                        .map(|p| (p.rate, p.lost_pct))
                        .filter(|&(_, lost)| keep(lost))
                        .collect()
                });
                for (l, s) in ls.iter_mut().zip(&report.series) {
                    l.bars = s
                        .points
                        .iter()
                        .filter_map(|p| p.lost_pct_interval.map(|(lo, hi)| (p.rate, lo, hi)))
                        .filter(|&(x, lo, hi)| {
                            x.is_finite() && x > 0.0 && keep(hi) && lo.is_finite() && hi >= lo
                        })
                        .map(|(x, lo, hi)| {
                            (
                                x,
                                if report.loss_log {
                                    lo.max(hi / 1e3)
                                } else {
                                    lo
                                },
                                hi,
                            )
                        })
                        .collect();
                    l.marks = [(s.zero_loss_rate, Mark::Ndr), (s.pdr, Mark::Pdr)]
                        .into_iter()
                        .filter_map(|(r, m)| {
                            r.filter(|r| r.is_finite() && *r > 0.0).map(|r| (r, m))
                        })
                        .collect();
                }
                ls
            },
            LineSpec {
                title: chart.title(),
                y_desc: "lost (% of offered)",
                y_tick: format::percent_tick,
                // Loss is 0 below saturation and climbs to tens of % past
                // it; a log axis would hide exactly the zeros that matter, so
                // it is an option (`harness report --log-loss`): from any span.
                y_log_above: report.loss_log.then_some(1.0),
                ..LineSpec::RATE_X
            },
        ),
        Chart::P99VsRate => latency_plan(report, chart, "p99 latency", |p| p.p99_ns),
        Chart::P50VsRate => latency_plan(report, chart, "p50 latency", |p| p.p50_ns),
        Chart::P999VsRate => latency_plan(report, chart, "p99.9 latency", |p| p.p999_ns),
        Chart::ThroughputVsRate => Plan::Lines(
            lines(report, |s| {
                s.points.iter().map(|p| (p.rate, p.throughput)).collect()
            }),
            LineSpec {
                title: chart.title(),
                y_desc: "delivered (events/s)",
                y_tick: format::rate_tick,
                y_log_above: None,
                ..LineSpec::RATE_X
            },
        ),
        Chart::RingOccupancy => Plan::Lines(
            lines(report, |s| s.occupancy.clone()),
            LineSpec {
                title: chart.title(),
                y_desc: "waiting in the rings (bytes)",
                y_tick: format::bytes_tick,
                y_log_above: None,
                x_desc: "time since the trial's first record (s)",
                x_desc_log: "time since the trial's first record (s)",
                x_tick: format::seconds_tick,
                x_log_above: None,
                goal: false,
            },
        ),
        Chart::NdrVsRing => Plan::Lines(
            ring_lines(report),
            LineSpec {
                title: chart.title(),
                y_desc: "zero-loss rate (events/s)",
                y_tick: format::rate_tick,
                y_log_above: None,
                x_desc: "ring size (per CPU for perf, whole for the ring buffer)",
                x_desc_log: "ring size (per CPU for perf, whole for the ring buffer; log scale)",
                x_tick: format::bytes_tick,
                // Ring sizes step by powers of two.
                x_log_above: Some(4.0),
                goal: false,
            },
        ),
        Chart::ZeroLossRate => Plan::Bars,
        Chart::NdrByMode => Plan::ModeBars,
        Chart::CpuPerStage => Plan::StageBars,
    }
}

/// One line per variant (and capture, layout, transport, mode): its zero-loss
/// rate at each ring size. Series without a zero-loss rate are left out.
fn ring_lines(report: &SweepReport) -> Vec<Line> {
    let group = |s: &Series| {
        format!(
            "{} · {} · {} · {} · {}",
            s.variant, s.capture, s.layout, s.transport, s.mode
        )
    };
    let mut out: Vec<(String, Line)> = Vec::new();
    for (i, s) in report.series.iter().enumerate() {
        let g = group(s);
        let at = out.iter().position(|(k, _)| *k == g).unwrap_or_else(|| {
            out.push((
                g.clone(),
                Line {
                    index: i,
                    label: s.variant.clone(),
                    invalid: !s.valid,
                    points: Vec::new(),
                    bars: Vec::new(),
                    marks: Vec::new(),
                },
            ));
            out.len() - 1
        });
        let line = &mut out[at].1;
        line.invalid |= !s.valid;
        if let Some(r) = s.zero_loss_rate.filter(|r| r.is_finite() && *r > 0.0) {
            line.points.push((s.ring_bytes as f64, r));
        }
    }
    let mut lines: Vec<Line> = out.into_iter().map(|(_, l)| l).collect();
    for l in &mut lines {
        l.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    lines
}

/// A latency percentile against offered rate.
fn latency_plan(
    report: &SweepReport,
    chart: Chart,
    y_desc: &'static str,
    pick: fn(&crate::model::Point) -> u64,
) -> Plan {
    Plan::Lines(
        lines(report, |s| {
            s.points
                .iter()
                // No delivered event, no latency: it is 0 by convention then.
                .filter(|p| p.delivered > 0)
                .map(|p| (p.rate, pick(p) as f64))
                .collect()
        }),
        LineSpec {
            title: chart.title(),
            y_desc,
            y_tick: format::nanos_tick,
            // Past saturation latency jumps from µs to ms (queues fill), so
            // spans over 100x go logarithmic to keep the low end readable.
            y_log_above: Some(100.0),
            ..LineSpec::RATE_X
        },
    )
}

fn draw(report: &SweepReport, plan: &Plan, root: &Area) -> Result<(), DrawError> {
    root.fill(&WHITE)?;
    match plan {
        Plan::Lines(lines, spec) => line_chart(root, report, lines, spec),
        Plan::Bars => bar_chart(root, report),
        Plan::ModeBars => mode_bars::draw(root, report),
        Plan::StageBars => stage_bars::draw(root, report),
    }
}

/// One series as drawn: its label, colour index, and finite points sorted by rate.
struct Line {
    index: usize,
    label: String,
    invalid: bool,
    points: Vec<(f64, f64)>,
    /// Vertical interval bars: (x, low, high).
    bars: Vec<(f64, f64, f64)>,
    /// Vertical marks at these x values: (x, dashed = NDR / dotted = PDR).
    marks: Vec<(f64, Mark)>,
}

/// A rate marked on the loss chart.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Ndr,
    Pdr,
}

/// Collects each series' plottable points: rate > 0 and both coordinates
/// finite (a log x axis needs rate > 0, and an offered rate of 0 is no run).
fn lines(report: &SweepReport, pick: impl Fn(&Series) -> Vec<(f64, f64)>) -> Vec<Line> {
    let labels = format::series_labels(&report.series);
    report
        .series
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(index, (s, label))| {
            let mut points: Vec<(f64, f64)> = pick(s)
                .into_iter()
                .filter(|&(x, y)| x.is_finite() && x > 0.0 && y.is_finite())
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            Line {
                index,
                label,
                invalid: !s.valid,
                points,
                bars: Vec::new(),
                marks: Vec::new(),
            }
        })
        .collect()
}

struct LineSpec {
    title: &'static str,
    y_desc: &'static str,
    y_tick: fn(f64) -> String,
    /// Make y logarithmic when max/min exceeds this (and all values are > 0).
    y_log_above: Option<f64>,
    x_desc: &'static str,
    x_desc_log: &'static str,
    x_tick: fn(f64) -> String,
    /// Make x logarithmic when max/min exceeds this.
    x_log_above: Option<f64>,
    /// Mark the goal rate (x is an offered rate).
    goal: bool,
}

impl LineSpec {
    /// x is the offered rate: log-scaled past a 10x span (sweeps step
    /// geometrically), the goal marked.
    const RATE_X: LineSpec = LineSpec {
        title: "",
        y_desc: "",
        y_tick: format::rate_tick,
        y_log_above: None,
        x_desc: "offered rate (events/s)",
        x_desc_log: "offered rate (events/s, log scale)",
        x_tick: format::rate_tick,
        x_log_above: Some(10.0),
        goal: true,
    };
}

fn line_chart(root: &Area, report: &SweepReport, lines: &[Line], spec: &LineSpec) -> DrawResult {
    let n = lines.len();
    let (plot, legend) = root.split_vertically(LINE_PLOT_HEIGHT);
    if n > 0 {
        draw_legend(&legend, lines)?;
    }

    let xs: Vec<f64> = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .collect();
    let ys: Vec<f64> = lines
        .iter()
        .flat_map(|l| {
            l.points
                .iter()
                .map(|p| p.1)
                .chain(l.bars.iter().flat_map(|b| [b.1, b.2]))
        })
        .collect();
    if xs.is_empty() {
        let why = if n == 0 {
            "no series in this sweep"
        } else {
            "no plottable points (no finite, positive rates)"
        };
        return no_data(&plot, spec.title, why);
    }

    let goal = report
        .goal_rate
        .filter(|g| spec.goal && g.is_finite() && *g > 0.0);
    // The goal joins the x range so its marker is always visible.
    let mut x_values = xs;
    x_values.extend(goal);
    let x = Axis::fit(&x_values, spec.x_log_above, false, 1.0);
    let y = Axis::fit(&ys, spec.y_log_above, true, 1.0);

    let mut chart = ChartBuilder::on(&plot)
        .caption(spec.title, (FONT, CAPTION_SIZE))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(70)
        .build_cartesian_2d(x.coord(), y.coord())?;

    let x_fmt = |v: &f64| (spec.x_tick)(x.to_data(*v));
    let y_fmt = |v: &f64| (spec.y_tick)(y.to_data(*v));
    let x_desc = if x.log { spec.x_desc_log } else { spec.x_desc };
    let y_desc = if y.log {
        format!("{} (log scale)", spec.y_desc)
    } else {
        spec.y_desc.to_string()
    };
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .bold_line_style(GRID_COLOR)
        .light_line_style(TRANSPARENT)
        .axis_style(TEXT_COLOR)
        .label_style((FONT, LABEL_SIZE).into_font().color(&TEXT_COLOR))
        .axis_desc_style((FONT, DESC_SIZE).into_font().color(&TEXT_COLOR))
        .draw()?;

    let mut goal_label = None;
    if let Some(g) = goal {
        let gx = x.to_plot(g);
        let Range { start, end } = y.plot_range();
        chart.draw_series(DashedLineSeries::new(
            [(gx, start), (gx, end)],
            6,
            4,
            GOAL_COLOR.stroke_width(2),
        ))?;
        goal_label = Some((gx, end, format!("goal {}/s", format::rate_tick(g))));
    }

    for line in lines {
        let color = series_color(line.index);
        let pts: Vec<(f64, f64)> = line
            .points
            .iter()
            .filter(|(px, py)| x.contains(*px) && y.contains(*py))
            .map(|&(px, py)| (x.to_plot(px), y.to_plot(py)))
            .collect();
        if line.invalid {
            // Invalid (e.g. unbalanced ledger): dashed, so it can't pass for a result.
            chart.draw_series(DashedLineSeries::new(
                pts.clone(),
                8,
                5,
                color.stroke_width(2),
            ))?;
        } else {
            chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
        }
        draw_markers(&mut chart, &pts, line.index)?;
        for &(bx, lo, hi) in &line.bars {
            if !x.contains(bx) {
                continue;
            }
            let (lo, hi) = (y.to_plot(lo.max(y.lo)), y.to_plot(hi.min(y.hi)));
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x.to_plot(bx), lo), (x.to_plot(bx), hi)],
                color.stroke_width(1),
            )))?;
        }
        let Range { start, end } = y.plot_range();
        for &(mx, mark) in &line.marks {
            if !x.contains(mx) {
                continue;
            }
            let mx = x.to_plot(mx);
            // NDR dashed, PDR dotted, both thin and in the series' colour.
            let (dash, gap) = if mark == Mark::Ndr { (6, 4) } else { (2, 3) };
            chart.draw_series(DashedLineSeries::new(
                [(mx, start), (mx, end)],
                dash,
                gap,
                color.mix(0.7).stroke_width(1),
            ))?;
        }
    }
    // Drawn last, on a white backing, so lines passing the label don't cross it.
    if let Some((gx, top, label)) = goal_label {
        backed_text(&mut chart, (gx, top), label, (5, 4), GOAL_COLOR, VPos::Top)?;
    }
    Ok(())
}

type DrawResult = Result<(), DrawError>;
type Cart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<AxisCoord, AxisCoord>>;

fn draw_markers(chart: &mut Cart, pts: &[(f64, f64)], index: usize) -> DrawResult {
    let color = series_color(index);
    match marker(index) {
        Marker::Circle => {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        Marker::Triangle => {
            chart.draw_series(
                pts.iter()
                    .map(|&p| TriangleMarker::new(p, 5, color.filled())),
            )?;
        }
        Marker::Cross => {
            chart.draw_series(pts.iter().map(|&p| Cross::new(p, 4, color.stroke_width(2))))?;
        }
    }
    Ok(())
}
