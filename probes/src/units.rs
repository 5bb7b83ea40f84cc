//! Byte sizes and durations as users write them on the command line and in
//! capture metadata.

use std::time::Duration;

/// Parses a byte count: `4096`, `64k`/`64KiB`, `8M`/`8MiB`, `35MiB`, `1G` (powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let i = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(i);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad byte count {s:?}; use e.g. 65536, 64KiB, 8MiB"))?;
    let mul: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "bad byte unit in {s:?}; use K, M or G (KiB, MiB, GiB)"
            ))
        }
    };
    n.checked_mul(mul)
        .ok_or_else(|| format!("byte count {s:?} overflows"))
}

/// Parses `10s`, `1.5s`, `500ms`, `250us`, `100ns`, `2m`, or bare seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?}; use e.g. 10s, 500ms, 250us"))?;
    let ns_per = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        _ => {
            return Err(format!(
                "bad duration unit in {s:?}; use ns, us, ms, s or m"
            ))
        }
    };
    let ns = v * ns_per;
    if !ns.is_finite() || !(0.0..=1e18).contains(&ns) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_nanos(ns.round() as u64))
}

/// The shortest exact spelling of `n` bytes that [`parse_bytes`] reads back.
pub fn format_bytes(n: u64) -> String {
    match n {
        0 => "0".into(),
        n if n.is_multiple_of(1 << 30) => format!("{}GiB", n >> 30),
        n if n.is_multiple_of(1 << 20) => format!("{}MiB", n >> 20),
        n if n.is_multiple_of(1 << 10) => format!("{}KiB", n >> 10),
        n => n.to_string(),
    }
}

/// The shortest exact spelling of `d` that [`parse_duration`] reads back.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns.is_multiple_of(1_000_000_000) {
        format!("{}s", ns / 1_000_000_000)
    } else if ns.is_multiple_of(1_000_000) {
        format!("{}ms", ns / 1_000_000)
    } else if ns.is_multiple_of(1_000) {
        format!("{}us", ns / 1_000)
    } else {
        format!("{ns}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_format_back_to_themselves() {
        for n in [0u64, 1, 1000, 4096, 35 << 20, 3 << 30, (1 << 20) + 1] {
            assert_eq!(parse_bytes(&format_bytes(n)).unwrap(), n, "{n}");
        }
        assert_eq!(format_bytes(4 << 20), "4MiB");
        assert_eq!(format_bytes(1536), "1536");
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("35MiB").unwrap(), 35 << 20);
        assert_eq!(parse_bytes("64k").unwrap(), 64 << 10);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("12q").unwrap_err().contains("12q"));
        assert!(parse_bytes("99999999999999999999").is_err());
        assert!(parse_bytes("17179869184G")
            .unwrap_err()
            .contains("overflows"));
    }

    #[test]
    fn durations_round_trip() {
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        for d in [
            Duration::from_secs(3),
            Duration::from_millis(1),
            Duration::from_micros(250),
            Duration::from_nanos(7),
        ] {
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }
}
