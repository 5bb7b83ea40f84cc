//! The charts' axes: linear or base-10 log over finite data, with round
//! 1-2-5 ticks chosen here and handed to plotters as its coordinate.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;

/// A linear or base-10 log axis over finite data.
///
/// plotters draws in "plot space": the value itself for a linear axis, its
/// log10 for a log one. Ticks are chosen here (1-2-5 steps) so both kinds get
/// round labels.
#[derive(Clone, Copy, Debug)]
pub(super) struct Axis {
    pub(super) log: bool,
    /// Data-space bounds, lo < hi, both > 0 when `log`.
    pub(super) lo: f64,
    pub(super) hi: f64,
}

impl Axis {
    /// An axis over `values` (finite, at least one). Goes logarithmic when
    /// `log_above` is set, every value is > 0 and max/min exceeds it. `from_zero`
    /// starts a linear axis at 0; `headroom` multiplies the top (room for labels).
    pub(super) fn fit(
        values: &[f64],
        log_above: Option<f64>,
        from_zero: bool,
        headroom: f64,
    ) -> Axis {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if let Some(ratio) = log_above {
            if min > 0.0 && max / min > ratio {
                // A fifth of a decade of margin each side: 10^0.08 ≈ 1.2.
                return Axis {
                    log: true,
                    lo: min / 1.2,
                    hi: max * 1.2 * headroom,
                };
            }
        }
        let (lo, hi) = if from_zero {
            let lo = min.min(0.0);
            let hi = max.max(0.0) * 1.08 * headroom;
            // All zeros (e.g. no loss anywhere): show 0..1 so the line sits on the floor.
            if hi > lo {
                (lo, hi)
            } else {
                (lo, lo + 1.0)
            }
        } else if max > min {
            // 5% margin each side so end markers aren't cut by the frame.
            let pad = (max - min) * 0.05;
            let lo = if min >= 0.0 {
                (min - pad).max(0.0)
            } else {
                min - pad
            };
            (lo, max + pad * headroom)
        } else {
            // A single value: ±10% around it (or ±1 around 0).
            let pad = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
            (min - pad, max + pad)
        };
        Axis { log: false, lo, hi }
    }

    pub(super) fn to_plot(self, v: f64) -> f64 {
        if self.log {
            v.log10()
        } else {
            v
        }
    }

    pub(super) fn to_data(self, v: f64) -> f64 {
        if self.log {
            10f64.powf(v)
        } else {
            v
        }
    }

    pub(super) fn plot_range(self) -> Range<f64> {
        self.to_plot(self.lo)..self.to_plot(self.hi)
    }

    pub(super) fn contains(self, v: f64) -> bool {
        v.is_finite() && v >= self.lo && v <= self.hi
    }

    /// Tick values in data space.
    fn ticks(self) -> Vec<f64> {
        if self.log {
            log_ticks(self.lo, self.hi)
        } else {
            linear_ticks(self.lo, self.hi)
        }
    }

    pub(super) fn coord(self) -> AxisCoord {
        AxisCoord::new(
            self.plot_range(),
            self.ticks().into_iter().map(|t| self.to_plot(t)).collect(),
        )
    }
}

/// plotters' linear f64 coordinate with our own tick positions. (plotters'
/// `WithKeyPoints` over `RangedCoordf64` loses the label formatter hook, so
/// this small wrapper stands in; labels come from our formatters.)
#[derive(Clone)]
pub(super) struct AxisCoord {
    linear: RangedCoordf64,
    /// Tick positions in plot space.
    ticks: Vec<f64>,
}

impl AxisCoord {
    pub(super) fn new(range: Range<f64>, ticks: Vec<f64>) -> Self {
        AxisCoord {
            linear: range.into(),
            ticks,
        }
    }
}

impl Ranged for AxisCoord {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Bold ticks only: no light grid lines between them.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.linear.range()
    }
}

/// About six ticks at a 1, 2 or 5 × 10^k step.
fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 6.0;
    if !(raw.is_finite() && raw > 0.0) {
        return vec![];
    }
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    // Multiply rather than accumulate so ticks don't drift (0.30000000000000004).
    (first..=last)
        .map(|k| k as f64 * step)
        .map(|t| if t == 0.0 { 0.0 } else { t }) // no "-0"
        .collect()
}

/// Ticks at 1-2-5 × 10^k inside [lo, hi]; every 10^k if that gives more than
/// ten, 1..9 × 10^k if it gives fewer than three.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return vec![];
    }
    let kmin = lo.log10().floor() as i32;
    let kmax = hi.log10().ceil() as i32;
    let with = |mults: &[f64]| -> Vec<f64> {
        (kmin..=kmax)
            .flat_map(|k| mults.iter().map(move |m| m * 10f64.powi(k)))
            .filter(|&t| t >= lo && t <= hi)
            .collect()
    };
    let ticks = with(&[1.0, 2.0, 5.0]);
    if ticks.len() > 10 {
        with(&[1.0])
    } else if ticks.len() < 3 {
        with(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    } else {
        ticks
    }
}
