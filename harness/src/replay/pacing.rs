//! When each replayed record is due.
//!
//! Every due time is computed from the run's start in integer nanoseconds
//! from the record's global index (or its recorded offset, or the bytes
//! before it), never by adding intervals to the previous due time. So error
//! cannot accumulate, a late record does not shift the ones after it (the
//! producer catches up, and the lateness shows in latency, measured from the
//! due time), and u128 intermediates mean nothing overflows for any run
//! length or rate. (tcpreplay's pacing bugs came from accumulated per-packet
//! sleeps and 32-bit/µs arithmetic.)

use std::time::Duration;

/// How fast to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// The recorded timing.
    Original,
    /// The recorded timing, `x` times faster.
    Speed(f64),
    /// A fixed number of records per second, evenly spaced (`uniform`).
    Rate(f64),
    /// A mean number of records per second with the capture's own shape: the
    /// recorded inter-arrival times scaled by one factor, so bursts and lulls
    /// stay bursts and lulls (`shape`). The factor is the target rate over the
    /// capture's mean rate, `(samples - 1) / (last - first)`.
    Shape(f64),
    /// A fixed number of sample bytes per second (MB = 10^6 bytes).
    Mbps(f64),
    /// As fast as the producer can go.
    Max,
}

impl Pacing {
    pub fn describe(&self) -> String {
        match self {
            Pacing::Original => "original".into(),
            Pacing::Speed(x) => format!("speed:{x}"),
            Pacing::Rate(r) => format!("rate:{r}"),
            Pacing::Shape(r) => format!("shape:{r}"),
            Pacing::Mbps(m) => format!("mbps:{m}"),
            Pacing::Max => "max".into(),
        }
    }

    pub fn target_rate(&self) -> Option<f64> {
        match self {
            Pacing::Rate(r) | Pacing::Shape(r) => Some(*r),
            _ => None,
        }
    }
}

const NS: u128 = 1_000_000_000;
/// Fixed-point scale for speed and rate: 10^-6 of a unit keeps six decimal
/// digits of the user's figure, far below the ±1% accuracy asked.
const MICRO: u128 = 1_000_000;

/// The due-time calculator of one run.
#[derive(Debug, Clone)]
pub struct Schedule {
    start_ns: u64,
    mode: Mode,
}

#[derive(Debug, Clone)]
enum Mode {
    /// Recorded offsets scaled by `MICRO / speed_micro`; each loop starts
    /// `loop_span_ns` (recorded) after the previous one.
    Recorded {
        first_origin: u64,
        loop_span_ns: u64,
        speed_micro: u128,
    },
    /// index * NS * MICRO / rate_micro.
    Rate {
        rate_micro: u128,
    },
    /// bytes_before * NS * MICRO / bytes_per_s_micro.
    Bytes {
        bytes_per_s_micro: u128,
    },
    Max,
}

/// Why a pacing cannot be scheduled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PacingError {
    #[error("{what} must be a positive finite number, got {value}")]
    NotPositive { what: &'static str, value: f64 },
}

fn micro(what: &'static str, v: f64) -> Result<u128, PacingError> {
    let m = (v * MICRO as f64).round();
    if !v.is_finite() || v <= 0.0 || !(1.0..=1e30).contains(&m) {
        return Err(PacingError::NotPositive { what, value: v });
    }
    Ok(m as u128)
}

impl Schedule {
    /// `first_origin`/`last_origin`: the capture's first and last sample
    /// timestamps; `samples`: how many samples one loop has.
    pub fn new(
        pacing: Pacing,
        start_ns: u64,
        first_origin: u64,
        last_origin: u64,
        samples: u64,
    ) -> Result<Schedule, PacingError> {
        let span = last_origin.saturating_sub(first_origin);
        // A capture with no spread in time has no shape to keep: pace it evenly.
        let pacing = match pacing {
            Pacing::Shape(r) if samples < 2 || span == 0 => Pacing::Rate(r),
            p => p,
        };
        let mode = match pacing {
            Pacing::Original | Pacing::Speed(_) | Pacing::Shape(_) => {
                let speed_micro = match pacing {
                    Pacing::Speed(x) => micro("speed", x)?,
                    // target / mean, mean = (samples - 1) * 1e9 / span (records/s):
                    // speed = target * span / ((samples - 1) * 1e9), kept in micro units.
                    Pacing::Shape(r) => {
                        let target = micro("rate", r)?;
                        let speed = target * span as u128 / ((samples as u128 - 1) * NS);
                        speed.max(1)
                    }
                    _ => MICRO,
                };
                // One mean gap between the last record of a loop and the
                // first of the next, so loops neither overlap nor stall.
                let gap = if samples > 1 {
                    (span / (samples - 1)).max(1)
                } else {
                    1_000_000
                };
                Mode::Recorded {
                    first_origin,
                    loop_span_ns: span.saturating_add(gap),
                    speed_micro,
                }
            }
            Pacing::Rate(r) => Mode::Rate {
                rate_micro: micro("rate", r)?,
            },
            Pacing::Mbps(m) => Mode::Bytes {
                // MB/s -> bytes/s: × 10^6.
                bytes_per_s_micro: micro("MB/s", m)? * 1_000_000,
            },
            Pacing::Max => Mode::Max,
        };
        Ok(Schedule { start_ns, mode })
    }

    pub fn start_ns(&self) -> u64 {
        self.start_ns
    }

    pub fn is_max(&self) -> bool {
        matches!(self.mode, Mode::Max)
    }

    /// When a record is due (CLOCK_MONOTONIC ns). `index`: records offered
    /// before it in this run; `loop_index`: which pass over the capture;
    /// `origin`: its recorded timestamp; `bytes_before`: sample bytes offered
    /// before it. Saturates at u64::MAX (about 584 years of uptime).
    #[inline]
    pub fn due(&self, index: u64, loop_index: u64, origin: u64, bytes_before: u128) -> u64 {
        let offset: u128 = match self.mode {
            Mode::Recorded {
                first_origin,
                loop_span_ns,
                speed_micro,
            } => {
                let rec = origin.saturating_sub(first_origin) as u128
                    + loop_index as u128 * loop_span_ns as u128;
                rec * MICRO / speed_micro
            }
            Mode::Rate { rate_micro } => index as u128 * NS * MICRO / rate_micro,
            Mode::Bytes { bytes_per_s_micro } => bytes_before * NS * MICRO / bytes_per_s_micro,
            Mode::Max => 0,
        };
        (self.start_ns as u128 + offset).min(u64::MAX as u128) as u64
    }
}

/// Asks the kernel to wake this thread's timed sleeps within 1 µs of their
/// deadline instead of the default 50 µs slack. Call once on the producer
/// thread. Best effort: if the kernel refuses, sleeps are only less precise.
pub fn tight_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes the slack in ns as its only argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000u64, 0u64, 0u64, 0u64) };
}

/// Waits until CLOCK_MONOTONIC reaches `due_ns` by sleeping, never spinning,
/// and returns the time it returned at.
///
/// A sleep ends some tens of µs after its deadline (timer slack, set to 1 µs
/// by [`tight_timer_slack`], plus the wakeup); by then the next records are
/// due too, and the producer writes them without sleeping. So at high rates
/// it writes in bursts of ~50 µs of records, late by about that much, and
/// uses a fraction of a core instead of spinning one (the kernel side it
/// emulates costs the traced program, not a spare core). The lateness is
/// measured per record and judged by the trial's verdict.
#[inline]
pub fn wait_until(due_ns: u64) -> u64 {
    loop {
        let now = crate::host::monotonic_ns();
        if now >= due_ns {
            return now;
        }
        std::thread::sleep(Duration::from_nanos(due_ns - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_schedule_is_exact_and_does_not_overflow() {
        let s = Schedule::new(Pacing::Rate(3.0), 10, 0, 0, 1).unwrap();
        // 3 events/s: 333_333_333.33 ns apart, computed from the index.
        assert_eq!(s.due(0, 0, 0, 0), 10);
        assert_eq!(s.due(1, 0, 0, 0), 10 + 333_333_333);
        assert_eq!(s.due(3, 0, 0, 0), 10 + 1_000_000_000);
        assert_eq!(s.due(3_000_000, 0, 0, 0), 10 + 1_000_000 * 1_000_000_000);
        // Far beyond u64 ns: saturates instead of wrapping.
        assert_eq!(s.due(u64::MAX, 0, 0, 0), u64::MAX);
        let fast = Schedule::new(Pacing::Rate(1e6), 0, 0, 0, 1).unwrap();
        assert_eq!(fast.due(1_000_000, 0, 0, 0), 1_000_000_000);
    }

    #[test]
    fn recorded_schedules_scale_and_loop() {
        // 5 samples over 400 ns: mean gap 100 ns, so a loop spans 500 ns.
        let o = Schedule::new(Pacing::Original, 1000, 50, 450, 5).unwrap();
        assert_eq!(o.due(0, 0, 50, 0), 1000);
        assert_eq!(o.due(4, 0, 450, 0), 1400);
        assert_eq!(o.due(5, 1, 50, 0), 1500);
        let x2 = Schedule::new(Pacing::Speed(2.0), 0, 50, 450, 5).unwrap();
        assert_eq!(x2.due(4, 0, 450, 0), 200);
        assert_eq!(x2.due(9, 1, 450, 0), 450);
        let mb = Schedule::new(Pacing::Mbps(1.0), 0, 0, 0, 1).unwrap();
        // 1 MB/s: 10^6 bytes take one second.
        assert_eq!(mb.due(7, 0, 0, 1_000_000), 1_000_000_000);
    }

    #[test]
    fn shape_keeps_the_recorded_gaps_scaled_to_the_mean_rate() {
        // 5 samples over 4 ms: a mean of 1000/s. Recorded at 0, 1, 1.1, 1.2, 4 ms:
        // a burst in the middle. At a mean of 10 000/s everything is 10x closer.
        let ms = 1_000_000u64;
        let s = Schedule::new(Pacing::Shape(10_000.0), 0, 0, 4 * ms, 5).unwrap();
        assert_eq!(s.due(0, 0, 0, 0), 0);
        assert_eq!(s.due(1, 0, ms, 0), 100_000);
        assert_eq!(s.due(2, 0, ms + ms / 10, 0), 110_000);
        assert_eq!(s.due(4, 0, 4 * ms, 0), 400_000);
        // The next loop starts one mean gap (0.1 ms scaled) after the last record.
        assert_eq!(s.due(5, 1, 0, 0), 500_000);
        // No spread in time: paced evenly instead.
        let flat = Schedule::new(Pacing::Shape(4.0), 0, 7, 7, 3).unwrap();
        assert_eq!(flat.due(2, 0, 7, 0), 500_000_000);
        assert!(Schedule::new(Pacing::Shape(0.0), 0, 0, 10, 3).is_err());
    }

    #[test]
    fn bad_pacing_values_are_rejected() {
        for p in [
            Pacing::Rate(0.0),
            Pacing::Rate(-1.0),
            Pacing::Speed(f64::NAN),
            Pacing::Mbps(f64::INFINITY),
        ] {
            assert!(Schedule::new(p, 0, 0, 0, 1).is_err(), "{p:?}");
        }
    }
}
