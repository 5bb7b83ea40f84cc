//! The minimum-ring search ([`MinRingSearch`]): the smallest power-of-two
//! ring memory that reaches a target loss at a given rate.

use super::SearchError;

/// The smallest power-of-two ring memory whose trials at `rate` lose at
/// most `loss` (0: every trial clean), between `lo_bytes` and `hi_bytes`.
///
/// Loss is assumed to fall as the ring grows. The search tries `hi` (if it
/// fails, no size in range holds), then `lo` (if it holds, it is the
/// answer), then bisects the exponents between them: over the k powers of
/// two in range that is at most 2 + ceil(log2(k - 1)) trials, 6 for the
/// default 256 KiB..256 MiB (11 sizes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinRingSearch {
    /// Offered events/s.
    pub rate: f64,
    /// Steady-state loss fraction allowed.
    pub loss: f64,
    pub lo_bytes: u64,
    pub hi_bytes: u64,
}

/// One ring size the minimum-ring search tried.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RingStep {
    pub ring_bytes: u64,
    /// The trials' steady-state loss fraction (worst over the trials).
    pub loss: f64,
    pub holds: bool,
}

/// What the minimum-ring search found.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MinRing {
    pub rate: f64,
    pub loss: f64,
    /// The smallest size that held; `None` if even the largest lost more.
    pub ring_bytes: Option<u64>,
    /// The largest size tried that did not hold (the bracket's lower end);
    /// `None` when the smallest size held.
    pub failing_below: Option<u64>,
    /// The smallest size in range held: the true minimum may be smaller.
    pub at_lo: bool,
    /// The largest size in range did not hold: the true minimum is larger.
    pub reached_hi: bool,
    /// Every size tried, in order.
    pub steps: Vec<RingStep>,
}

impl MinRingSearch {
    /// Runs the search; `trial(ring_bytes)` gives the loss fraction at
    /// `self.rate` with that much ring memory.
    pub fn run<E, F>(&self, mut trial: F) -> Result<MinRing, SearchError<E>>
    where
        E: std::error::Error + 'static,
        F: FnMut(u64) -> Result<f64, E>,
    {
        // Exponents of the powers of two inside [lo, hi].
        let lo_e = 64 - (self.lo_bytes.max(1) - 1).leading_zeros();
        let hi_e = 63 - self.hi_bytes.max(1).leading_zeros();
        if !(self.rate > 0.0 && self.rate.is_finite()) || lo_e > hi_e {
            return Err(SearchError::Bounds {
                lo: self.lo_bytes as f64,
                hi: self.hi_bytes as f64,
                resolution: 0.0,
            });
        }
        let mut steps = Vec::new();
        let rate = self.rate;
        let mut holds = |e: u32, steps: &mut Vec<RingStep>| -> Result<bool, SearchError<E>> {
            let ring_bytes = 1u64 << e;
            let loss = trial(ring_bytes).map_err(|source| SearchError::Trial { rate, source })?;
            let holds = if self.loss == 0.0 {
                loss == 0.0
            } else {
                loss <= self.loss
            };
            steps.push(RingStep {
                ring_bytes,
                loss,
                holds,
            });
            Ok(holds)
        };
        let done = |ring, below, at_lo, reached_hi, steps| MinRing {
            rate,
            loss: self.loss,
            ring_bytes: ring,
            failing_below: below,
            at_lo,
            reached_hi,
            steps,
        };
        if !holds(hi_e, &mut steps)? {
            return Ok(done(None, Some(1u64 << hi_e), false, true, steps));
        }
        if lo_e == hi_e || holds(lo_e, &mut steps)? {
            return Ok(done(Some(1u64 << lo_e), None, true, false, steps));
        }
        // lo fails, hi holds: bisect the exponents.
        let (mut bad, mut good) = (lo_e, hi_e);
        while good - bad > 1 {
            let mid = (bad + good) / 2;
            if holds(mid, &mut steps)? {
                good = mid;
            } else {
                bad = mid;
            }
        }
        Ok(done(
            Some(1u64 << good),
            Some(1u64 << bad),
            false,
            false,
            steps,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// A pipeline that loses nothing from `need` bytes of ring up.
    fn ring(need: u64) -> impl FnMut(u64) -> Result<f64, Infallible> {
        move |bytes| Ok(if bytes >= need { 0.0 } else { 0.01 })
    }

    #[test]
    fn min_ring_bisects_powers_of_two_and_reports_its_bracket() {
        let s = MinRingSearch {
            rate: 300_000.0,
            loss: 0.0,
            lo_bytes: 256 << 10,
            hi_bytes: 256 << 20,
        };
        for need in [3 << 20, 4 << 20, (256 << 10) + 1, 200 << 20] {
            let out = s.run(ring(need)).unwrap();
            let got = out.ring_bytes.unwrap();
            assert!(
                got.is_power_of_two() && got >= need && got / 2 < need,
                "{need}: {out:?}"
            );
            assert_eq!(out.failing_below, Some(got / 2), "{need}");
            assert!(!out.at_lo && !out.reached_hi);
            // hi, lo, then at most ceil(log2(10)) = 4 bisections.
            assert!(out.steps.len() <= 6, "{need}: {} steps", out.steps.len());
            for st in &out.steps {
                assert_eq!(st.holds, st.ring_bytes >= need, "{st:?}");
            }
        }
        // Holds at the smallest size: the minimum may be smaller still.
        let out = s.run(ring(1)).unwrap();
        assert_eq!(out.ring_bytes, Some(256 << 10));
        assert!(out.at_lo && out.failing_below.is_none());
        // Fails at the largest: no size in range holds.
        let out = s.run(ring(1 << 40)).unwrap();
        assert_eq!(out.ring_bytes, None);
        assert!(out.reached_hi && out.steps.len() == 1);
        // A loss allowance: 1% holds everywhere here.
        let out = MinRingSearch { loss: 0.01, ..s }
            .run(ring(1 << 40))
            .unwrap();
        assert_eq!(out.ring_bytes, Some(256 << 10));
        // Sizes that are not powers of two are rounded inward; an empty range is refused.
        let odd = MinRingSearch {
            lo_bytes: 300 << 10,
            hi_bytes: 300 << 10,
            ..s
        };
        assert!(odd.run(ring(1)).is_err());
    }
}
