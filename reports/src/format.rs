//! Number and label formatting shared by the HTML page and the charts.
//!
//! Every function is pure and locale-free so reports are byte-for-byte
//! reproducible. Non-finite floats are printed as what they are (`NaN`, `inf`)
//! rather than hidden.

use crate::model::{Series, SweepReport};

/// Prints a non-finite float honestly; `None` for finite ones.
fn non_finite(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".to_string())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "inf" } else { "-inf" }.to_string())
    } else {
        None
    }
}

/// Drops trailing zeros after a decimal point: `1.50` -> `1.5`, `2.00` -> `2`.
fn trim_zeros(s: String) -> String {
    if !s.contains('.') {
        return s;
    }
    let t = s.trim_end_matches('0').trim_end_matches('.');
    t.to_string()
}

/// A rate in events/s with an SI prefix and 3-4 significant digits:
/// `950`, `612.5 k`, `1.25 M`. No unit, so callers add `/s` or `ev/s`.
pub fn rate(v: f64) -> String {
    if let Some(s) = non_finite(v) {
        return s;
    }
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// A short axis label for a rate: `100k`, `1.5M`, `250` (trailing zeros dropped).
pub fn rate_tick(v: f64) -> String {
    if let Some(s) = non_finite(v) {
        return s;
    }
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    format!("{}{suffix}", trim_zeros(format!("{scaled:.2}")))
}

/// A duration in nanoseconds with a unit: `850 ns`, `12.3 µs`, `4.56 ms`, `1.20 s`.
pub fn nanos(ns: f64) -> String {
    if let Some(s) = non_finite(ns) {
        return s;
    }
    let a = ns.abs();
    if a >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if a >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if a >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// A short axis label for a duration in ns: `500ns`, `20µs`, `1.5ms`.
pub fn nanos_tick(ns: f64) -> String {
    if let Some(s) = non_finite(ns) {
        return s;
    }
    let a = ns.abs();
    let (scaled, unit) = if a >= 1e9 {
        (ns / 1e9, "s")
    } else if a >= 1e6 {
        (ns / 1e6, "ms")
    } else if a >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    format!("{}{unit}", trim_zeros(format!("{scaled:.2}")))
}

/// A byte size in binary units: `512 B`, `4 KiB`, `35 MiB`, `1.5 GiB`.
/// Whole multiples print without decimals so ring sizes read as configured.
pub fn bytes(b: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if b >= size {
            return if b.is_multiple_of(size) {
                format!("{} {unit}", b / size)
            } else {
                format!("{:.1} {unit}", b as f64 / size as f64)
            };
        }
    }
    format!("{b} B")
}

/// An integer count with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A loss percentage. Exact zero prints as `0`; small non-zero losses keep
/// enough digits (or go scientific) so they never round to a misleading `0.000`.
pub fn percent(p: f64) -> String {
    if let Some(s) = non_finite(p) {
        return s;
    }
    if p == 0.0 {
        "0".to_string()
    } else if p.abs() < 0.001 {
        format!("{p:.1e}")
    } else if p.abs() < 1.0 {
        format!("{p:.3}")
    } else {
        format!("{p:.2}")
    }
}

/// A short axis label for a percentage: `0`, `2.5`, `10`.
pub fn percent_tick(p: f64) -> String {
    if let Some(s) = non_finite(p) {
        return s;
    }
    trim_zeros(format!("{p:.3}"))
}

/// A ratio such as a series' zero-loss rate over the baseline's: `1.85×`.
pub fn ratio(r: f64) -> String {
    if let Some(s) = non_finite(r) {
        return s;
    }
    format!("{r:.2}×")
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the Unix epoch.
pub fn utc(unix_s: u64) -> String {
    let days = unix_s / 86_400;
    let secs = unix_s % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
/// Howard Hinnant's `civil_from_days`: shift the year to start in March so the
/// leap day is last, then split into 400-year eras of 146 097 days.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of (March-based) year
    let mp = (5 * doy + 2) / 153; // March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// An axis label for a byte count: `0`, `512 KiB`, `32 MiB`.
pub fn bytes_tick(v: f64) -> String {
    if !v.is_finite() || v <= 0.0 {
        return "0".into();
    }
    bytes(v.round() as u64)
}

/// An axis label for seconds: `0`, `0.25`, `1.5`.
pub fn seconds_tick(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The summary's "× baseline" figure: this series' zero-loss rate over its
/// baseline series' ([`crate::Series::baseline`]). `None` when it has no
/// baseline, either rate is missing or non-finite, or the baseline's is 0.
pub fn baseline_ratio(report: &SweepReport, index: usize) -> Option<f64> {
    let b = report.series.get(index)?.baseline?;
    let base = report.series.get(b)?.zero_loss_rate?;
    let this = report.series.get(index)?.zero_loss_rate?;
    if base.is_finite() && base > 0.0 && this.is_finite() {
        Some(this / base)
    } else {
        None
    }
}

/// Short chart labels: `1. variant` plus whichever of layout, transport, ring,
/// wakeup, sink and capture differ between series (fields all series share add
/// nothing). The number matches the `#` column of the HTML summary.
pub fn series_labels(series: &[Series]) -> Vec<String> {
    series_label_parts(series)
        .into_iter()
        .map(|(head, detail)| {
            if detail.is_empty() {
                head
            } else {
                format!("{head} · {detail}")
            }
        })
        .collect()
}

/// [`series_labels`] split in two: (`1. variant`, `layout · ring · ...`), the
/// second part empty when no other field differs between series.
pub fn series_label_parts(series: &[Series]) -> Vec<(String, String)> {
    let varies = |f: &dyn Fn(&Series) -> String| -> bool {
        series
            .first()
            .is_some_and(|first| series.iter().any(|s| f(s) != f(first)))
    };
    let layout = varies(&|s| s.layout.clone());
    let transport = varies(&|s| s.transport.clone());
    let ring = varies(&|s| s.ring_bytes.to_string());
    let wakeup = varies(&|s| s.wakeup.clone());
    let sink = varies(&|s| s.sink.clone());
    let capture = varies(&|s| s.capture.clone());
    series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut parts = Vec::new();
            if layout {
                parts.push(s.layout.clone());
            }
            if transport {
                parts.push(s.transport.clone());
            }
            if ring {
                parts.push(bytes(s.ring_bytes));
            }
            if wakeup && !s.wakeup.is_empty() {
                parts.push(s.wakeup.clone());
            }
            if sink {
                parts.push(s.sink.clone());
            }
            if capture && !s.capture.is_empty() {
                parts.push(s.capture.clone());
            }
            (format!("{}. {}", i + 1, s.variant), parts.join(" · "))
        })
        .collect()
}

/// Cuts `s` to at most `max` characters, ending in `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_ticks() {
        assert_eq!(rate(950.0), "950");
        assert_eq!(rate(612_500.0), "612.5 k");
        assert_eq!(rate(1_250_000.0), "1.25 M");
        assert_eq!(rate(f64::NAN), "NaN");
        assert_eq!(rate_tick(100_000.0), "100k");
        assert_eq!(rate_tick(1_500_000.0), "1.5M");
        assert_eq!(rate_tick(2e9), "2G");
    }

    #[test]
    fn durations() {
        assert_eq!(nanos(850.0), "850 ns");
        assert_eq!(nanos(12_345.0), "12.3 µs");
        assert_eq!(nanos(4_560_000.0), "4.56 ms");
        assert_eq!(nanos(1.2e9), "1.20 s");
        assert_eq!(nanos_tick(20_000.0), "20µs");
        assert_eq!(nanos(f64::INFINITY), "inf");
    }

    #[test]
    fn sizes_counts_percents() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(35 << 20), "35 MiB");
        assert_eq!(bytes(3 << 19), "1.5 MiB");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(percent(0.0), "0");
        assert_eq!(percent(0.0004), "4.0e-4");
        assert_eq!(percent(0.05), "0.050");
        assert_eq!(percent(12.345), "12.35");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        // 2000-02-29 is a leap day in a year divisible by 400.
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_550_237), "2026-11-24 19:57:17 UTC");
    }

    fn series(variant: &str, wakeup: &str, ring_bytes: u64) -> Series {
        Series {
            variant: variant.into(),
            layout: "fixed4k".into(),
            transport: "perf".into(),
            ring_bytes,
            baseline: None,
            mode: crate::Mode::Replay,
            pdr: None,
            wakeup: wakeup.into(),
            capture: String::new(),
            sink: "null".into(),
            zero_loss_rate: None,
            valid: true,
            problems: vec![],
            points: vec![],
            occupancy: vec![],
            cpu_per_stage: vec![],
        }
    }

    #[test]
    fn labels_name_only_the_fields_that_differ() {
        let same = [series("a", "w64", 1 << 20), series("b", "w64", 1 << 20)];
        assert_eq!(series_labels(&same), ["1. a", "2. b"]);
        let differ = [
            series("a", "w64", 1 << 20),
            series("a", "watermark", 2 << 20),
        ];
        assert_eq!(
            series_labels(&differ),
            ["1. a · 1 MiB · w64", "2. a · 2 MiB · watermark"]
        );
        assert!(series_labels(&[]).is_empty());
    }

    #[test]
    fn truncation_counts_chars() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("µµµµ", 3), "µµ…");
    }
}
