//! The absolute, open-loop schedule: integer arithmetic that cannot drift or overflow.
//!
//! A rate is held as a whole number of ops per 1000 s (`milli_rate`, so 0.001 ops/s resolution).
//! Global slot `k` is due `floor(k * 10^12 / milli_rate)` ns after the run's start. Each due time is a
//! function of `k` alone, never a sum of rounded periods, so there is no drift however long the run:
//! slot 10^15 at 1 M ops/s is due at exactly 10^15 * 1000 ns. The product `k * 10^12` is taken in u128:
//! with `k < 2^64` it stays below 2^64 * 2^40 = 2^104, far from u128's 2^128.
//!
//! Threads share one schedule: with `T` threads, thread `t` owns slots `t, t+T, t+2T, ...`, and walks
//! them with a [`DueCursor`] that steps the quotient and remainder of `k * 10^12 / milli_rate`
//! exactly, so the hot path does no 128-bit division.

use crate::error::LoadError;
use std::ops::Range;

/// `10^12` = ns per second (10^9) times the 1000 of `milli_rate`.
const NANOS_PER_MILLI_OP_UNIT: u128 = 1_000_000_000_000;

/// The highest rate accepted, 10^9 ops/s: one slot per ns. Higher rates would give several slots the
/// same due time, which is harmless, but no machine issues a syscall per ns.
pub const MAX_RATE: f64 = 1e9;

/// A paced rate turned into exact integer form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    milli_rate: u64,
}

impl Schedule {
    /// Builds the schedule of `ops_per_sec`, rounded to the nearest 0.001 ops/s.
    pub fn from_rate(ops_per_sec: f64) -> Result<Schedule, LoadError> {
        if ops_per_sec.is_nan() || ops_per_sec <= 0.0 || ops_per_sec.is_infinite() {
            return Err(LoadError::RateNotPositive { rate: ops_per_sec });
        }
        if ops_per_sec > MAX_RATE {
            return Err(LoadError::RateTooHigh {
                rate: ops_per_sec,
                limit: MAX_RATE,
            });
        }
        // <= 10^12, exact in f64 to well below 0.001.
        let milli_rate = (ops_per_sec * 1000.0).round() as u64;
        if milli_rate == 0 {
            return Err(LoadError::RateTooLow { rate: ops_per_sec });
        }
        Ok(Schedule { milli_rate })
    }

    /// Builds a schedule from a whole number of ops per 1000 s (must be > 0).
    pub fn from_milli_rate(milli_rate: u64) -> Option<Schedule> {
        (milli_rate > 0).then_some(Schedule { milli_rate })
    }

    /// Ops per 1000 s.
    pub fn milli_rate(&self) -> u64 {
        self.milli_rate
    }

    /// The rate in ops/s.
    pub fn rate(&self) -> f64 {
        self.milli_rate as f64 / 1000.0
    }

    /// Nanoseconds after the start at which global slot `k` is due: `floor(k * 10^12 / milli_rate)`.
    pub fn due_ns(&self, k: u64) -> u128 {
        k as u128 * NANOS_PER_MILLI_OP_UNIT / self.milli_rate as u128
    }

    /// How many slots are due strictly before `window_ns`: the smallest `k` with `due_ns(k) >= window_ns`.
    ///
    /// `floor(k*10^12/m) < w` holds iff `k*10^12 < w*m` (w is whole), i.e. `k < w*m/10^12`, so the count
    /// is `ceil(w*m / 10^12)`. Saturates at `u64::MAX` (a window of 10^12 s at 10^9 ops/s and more).
    pub fn slots_before(&self, window_ns: u128) -> u64 {
        let num = window_ns.saturating_mul(self.milli_rate as u128);
        let count = num.div_ceil(NANOS_PER_MILLI_OP_UNIT);
        u64::try_from(count).unwrap_or(u64::MAX)
    }
}

/// Global slot of thread `thread`'s `j`-th own slot: `thread + threads * j`, or `None` past `u64::MAX`.
pub fn thread_slot(thread: u64, threads: u64, j: u64) -> Option<u64> {
    threads.checked_mul(j)?.checked_add(thread)
}

/// How many of the global slots `0..total` thread `thread` of `threads` owns.
pub fn thread_slot_count(thread: u64, threads: u64, total: u64) -> u64 {
    if thread >= total {
        0
    } else {
        // Slots thread, thread+T, ... below total: 1 + floor((total - 1 - thread) / T).
        1 + (total - 1 - thread) / threads
    }
}

/// Own-slot indices covered by burst `b` of a thread that owns `count` slots, `burst` per wake-up.
pub fn burst_range(b: u64, burst: u64, count: u64) -> Range<u64> {
    let start = b.saturating_mul(burst).min(count);
    let end = start.saturating_add(burst).min(count);
    start..end
}

/// Walks the due times of slots `k0, k0 + step, k0 + 2*step, ...` exactly.
///
/// Keeps `k * 10^12 = quotient * m + remainder`; moving `k` by `step` adds the precomputed
/// `step * 10^12 = step_q * m + step_r` and carries once when the remainders reach `m`. The result is
/// bit-for-bit `Schedule::due_ns(k)`, with only additions on the hot path.
#[derive(Clone, Debug)]
pub struct DueCursor {
    quotient: u128,
    remainder: u128,
    step_q: u128,
    step_r: u128,
    m: u128,
}

impl DueCursor {
    /// A cursor at slot `k0`, advancing `step` slots per [`DueCursor::advance`].
    pub fn new(schedule: Schedule, k0: u64, step: u64) -> DueCursor {
        let m = schedule.milli_rate as u128;
        let num = k0 as u128 * NANOS_PER_MILLI_OP_UNIT;
        let step_num = step as u128 * NANOS_PER_MILLI_OP_UNIT;
        DueCursor {
            quotient: num / m,
            remainder: num % m,
            step_q: step_num / m,
            step_r: step_num % m,
            m,
        }
    }

    /// Due time of the current slot, in ns after the start.
    #[inline(always)]
    pub fn due_ns(&self) -> u128 {
        self.quotient
    }

    /// Moves to the slot `step` further on.
    #[inline(always)]
    pub fn advance(&mut self) {
        self.quotient += self.step_q;
        self.remainder += self.step_r;
        if self.remainder >= self.m {
            self.remainder -= self.m;
            self.quotient += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integer_period_is_exact_for_huge_slots() {
        // 1 M ops/s: period exactly 1000 ns, so slot k is due at k * 1000 ns, even at k = 10^15
        // (31 years in) and at u64::MAX.
        let s = Schedule::from_rate(1e6).unwrap();
        assert_eq!(s.due_ns(1_000_000_000_000_000), 1_000_000_000_000_000_000);
        assert_eq!(s.due_ns(u64::MAX), u64::MAX as u128 * 1000);
    }

    #[test]
    fn bad_rates_are_rejected_naming_the_rate() {
        for bad in [0.0, -5.0, f64::NAN, f64::NEG_INFINITY] {
            let err = Schedule::from_rate(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad}")), "{err}");
        }
        assert!(matches!(
            Schedule::from_rate(0.0001),
            Err(LoadError::RateTooLow { .. })
        ));
        assert!(matches!(
            Schedule::from_rate(2e9),
            Err(LoadError::RateTooHigh { .. })
        ));
    }

    #[test]
    fn slots_before_counts_a_five_second_window() {
        let s = Schedule::from_rate(200_000.0).unwrap();
        assert_eq!(s.slots_before(5_000_000_000), 1_000_000);
        // 3 ops/s over 1 s: slots at 0, 333333333, 666666666 ns.
        let s = Schedule::from_rate(3.0).unwrap();
        assert_eq!(s.slots_before(1_000_000_000), 3);
        assert_eq!(s.slots_before(666_666_666), 2);
        assert_eq!(s.slots_before(666_666_667), 3);
        assert_eq!(s.slots_before(u128::MAX), u64::MAX);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// due_ns(k) is exactly floor(k * 10^12 / m): checked by the defining inequality, in u128,
        /// for any k up to u64::MAX and any rate 0.001 ..= 10^9 ops/s.
        #[test]
        fn due_is_exact_floor(k in any::<u64>(), m in 1u64..=1_000_000_000_000) {
            let s = Schedule::from_milli_rate(m).unwrap();
            let due = s.due_ns(k);
            let num = k as u128 * 1_000_000_000_000u128;
            prop_assert!(due * m as u128 <= num);
            prop_assert!(num < (due + 1) * m as u128);
        }

        /// No drift: the due time of a+b never strays from due(a)+due(b) by more than the one ns of
        /// rounding, however large a and b are. A running sum of rounded periods would drift by up to
        /// one ns per slot.
        #[test]
        fn no_drift_between_far_slots(a in 0u64..u64::MAX / 2, b in 0u64..u64::MAX / 2, m in 1u64..=1_000_000_000_000) {
            let s = Schedule::from_milli_rate(m).unwrap();
            let split = s.due_ns(a) + s.due_ns(b);
            let whole = s.due_ns(a + b);
            prop_assert!(whole == split || whole == split + 1);
        }

        /// Whole-ns periods (rates dividing 10^12 milli-ops) are exact multiples for any k.
        #[test]
        fn whole_period_is_k_times_period(k in any::<u64>(), twos in 0u32..=12, fives in 0u32..=12) {
            // rate = 10^9 / period ops/s  =>  m = 10^12 / period, exact as period = 2^a 5^b divides 10^12.
            let period = 2u64.pow(twos) * 5u64.pow(fives);
            prop_assume!(period <= 1_000_000_000);
            let s = Schedule::from_milli_rate(1_000_000_000_000 / period).unwrap();
            prop_assert_eq!(s.due_ns(k), k as u128 * period as u128);
        }

        /// The cursor's additions give bit-for-bit the direct formula, starting anywhere (even near
        /// u64::MAX) and stepping by any thread count.
        #[test]
        fn cursor_matches_direct_formula(k0 in any::<u64>(), step in 1u64..=1024, m in 1u64..=1_000_000_000_000, n in 1usize..300) {
            let s = Schedule::from_milli_rate(m).unwrap();
            let mut cursor = DueCursor::new(s, k0, step);
            for i in 0..n as u64 {
                let Some(k) = step.checked_mul(i).and_then(|d| d.checked_add(k0)) else { break };
                prop_assert_eq!(cursor.due_ns(), s.due_ns(k));
                cursor.advance();
            }
        }

        /// Due times never go backwards and consecutive slots are one period apart, rounded.
        #[test]
        fn due_is_monotonic_with_period_gaps(k in 0u64..u64::MAX - 1, m in 1u64..=1_000_000_000_000) {
            let s = Schedule::from_milli_rate(m).unwrap();
            let gap = s.due_ns(k + 1) - s.due_ns(k);
            let floor_period = 1_000_000_000_000u128 / m as u128;
            prop_assert!(gap == floor_period || gap == floor_period + 1);
        }

        /// Threads x bursts cover every global slot of 0..total exactly once.
        #[test]
        fn bursts_cover_every_slot_once(total in 0u64..3000, threads in 1u64..=16, burst in 1u64..=64) {
            let mut seen = vec![0u8; total as usize];
            for t in 0..threads {
                let count = thread_slot_count(t, threads, total);
                let mut b = 0;
                loop {
                    let r = burst_range(b, burst, count);
                    if r.is_empty() { break; }
                    prop_assert!(r.end - r.start <= burst);
                    for j in r {
                        let k = thread_slot(t, threads, j).unwrap();
                        prop_assert!(k < total);
                        seen[k as usize] += 1;
                    }
                    b += 1;
                }
            }
            prop_assert!(seen.iter().all(|&n| n == 1));
        }

        /// The slot count of a window agrees with the due times on both sides of it.
        #[test]
        fn slots_before_agrees_with_due(w in 0u128..(1u128 << 64), m in 1u64..=1_000_000_000_000) {
            let s = Schedule::from_milli_rate(m).unwrap();
            let n = s.slots_before(w);
            prop_assume!(n < u64::MAX);
            if n > 0 { prop_assert!(s.due_ns(n - 1) < w); }
            prop_assert!(s.due_ns(n) >= w);
        }

        /// Burst ranges never overflow, even with indices near u64::MAX.
        #[test]
        fn burst_range_saturates(b in any::<u64>(), burst in 1u64..=u64::MAX, count in any::<u64>()) {
            let r = burst_range(b, burst, count);
            prop_assert!(r.start <= r.end && r.end <= count);
        }
    }
}
