//! [`ZeroLossSearch`]: the highest rate at which a probe loses nothing.
//!
//! The probe is any closure `rate -> lost` (a short paced replay at that rate
//! in the benchmark and sweeps; a pure function in the tests). The search
//! assumes loss is monotone in rate: it doubles from `lo` until a probe loses
//! (or `hi` is reached), then bisects geometrically between the last clean
//! rate and the first lossy one until they are within `resolution` of each
//! other. Geometric midpoints (sqrt(a*b)) suit rates: the same number of
//! probes resolves 10 k/s and 1 M/s to the same relative precision.
//!
//! Probes needed: doubling from lo to the edge takes log2(edge/lo) probes, and
//! bisecting a factor-2 bracket to a relative width r takes
//! log2(log2(2)/log2(1+r)) = log2(1/log2(1+r)), e.g. 4 for r = 5%. From
//! lo = 10 k to an edge near 600 k that is 6 + 4 + 1 = 11 probes.

/// One probe's outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe {
    pub rate: f64,
    pub lost: u64,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOutcome {
    /// The highest rate that lost nothing; `None` if even `lo` lost.
    pub zero_loss_rate: Option<f64>,
    /// The lowest rate that lost something; `None` if `hi` was clean.
    pub first_lossy_rate: Option<f64>,
    /// Every probe in order.
    pub probes: Vec<Probe>,
    /// `max_probes` ended the search before the bracket reached `resolution`.
    pub capped: bool,
    /// `hi` was clean: the true edge is at `hi` or above.
    pub reached_hi: bool,
}

/// Search bounds and precision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZeroLossSearch {
    /// First rate probed (events/s).
    pub lo: f64,
    /// Highest rate probed.
    pub hi: f64,
    /// Stop when lossy/clean - 1 <= resolution.
    pub resolution: f64,
    /// Hard cap on probes, whatever the bounds.
    pub max_probes: usize,
}

impl Default for ZeroLossSearch {
    fn default() -> Self {
        ZeroLossSearch {
            lo: 10_000.0,
            hi: 2_000_000.0,
            resolution: 0.05,
            max_probes: 20,
        }
    }
}

/// Why a search could not run.
#[derive(Debug, thiserror::Error)]
pub enum SearchError<E: std::error::Error + 'static> {
    #[error("search bounds lo {lo} .. hi {hi} with resolution {resolution}: need 0 < lo <= hi and resolution > 0")]
    Bounds { lo: f64, hi: f64, resolution: f64 },
    #[error("probe at {rate:.0} events/s failed: {source}")]
    Probe { rate: f64, source: E },
}

impl ZeroLossSearch {
    pub fn run<E, F>(&self, mut probe: F) -> Result<SearchOutcome, SearchError<E>>
    where
        E: std::error::Error + 'static,
        F: FnMut(f64) -> Result<u64, E>,
    {
        if !(self.lo > 0.0 && self.lo <= self.hi && self.resolution > 0.0 && self.hi.is_finite()) {
            return Err(SearchError::Bounds {
                lo: self.lo,
                hi: self.hi,
                resolution: self.resolution,
            });
        }
        let mut probes = Vec::new();
        let mut run = |rate: f64, probes: &mut Vec<Probe>| -> Result<bool, SearchError<E>> {
            let lost = probe(rate).map_err(|source| SearchError::Probe { rate, source })?;
            probes.push(Probe { rate, lost });
            Ok(lost == 0)
        };
        // Below `lo`: halve while lossy, down to lo / 32 (a design that fails
        // there is reported as having no zero-loss rate in range).
        let mut start = self.lo;
        let mut first_bad = None;
        while !run(start, &mut probes)? {
            first_bad = Some(start);
            if start <= self.lo / 32.0 || probes.len() >= self.max_probes {
                return Ok(SearchOutcome {
                    zero_loss_rate: None,
                    first_lossy_rate: Some(start),
                    probes,
                    capped: false,
                    reached_hi: false,
                });
            }
            start /= 2.0;
        }
        let mut good = start;
        let mut bad = first_bad;
        while bad.is_none() && good < self.hi && probes.len() < self.max_probes {
            let next = (good * 2.0).min(self.hi);
            if run(next, &mut probes)? {
                good = next;
            } else {
                bad = Some(next);
            }
        }
        if let Some(mut b) = bad {
            while b / good - 1.0 > self.resolution && probes.len() < self.max_probes {
                let mid = (good * b).sqrt();
                if run(mid, &mut probes)? {
                    good = mid;
                } else {
                    b = mid;
                }
            }
            bad = Some(b);
        }
        let capped = match bad {
            Some(b) => b / good - 1.0 > self.resolution,
            None => good < self.hi,
        };
        Ok(SearchOutcome {
            zero_loss_rate: Some(good),
            first_lossy_rate: bad,
            reached_hi: bad.is_none() && good >= self.hi,
            capped,
            probes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// A pipeline that keeps up to `cap` events/s and loses the excess.
    fn pipeline(cap: f64) -> impl FnMut(f64) -> Result<u64, Infallible> {
        move |rate| {
            Ok(if rate > cap {
                (rate - cap) as u64 + 1
            } else {
                0
            })
        }
    }

    #[test]
    fn finds_the_edge_within_the_resolution() {
        for cap in [12_345.0, 99_000.0, 600_000.0, 1_234_567.0] {
            let s = ZeroLossSearch::default();
            let out = s.run(pipeline(cap)).unwrap();
            let good = out.zero_loss_rate.unwrap();
            let bad = out.first_lossy_rate.unwrap();
            assert!(good <= cap && cap < bad, "cap {cap}: {good} .. {bad}");
            assert!(bad / good - 1.0 <= 0.05, "cap {cap}: {good} .. {bad}");
            // Every clean probe is at or below the edge, every lossy one above.
            for p in &out.probes {
                assert_eq!(p.lost == 0, p.rate <= cap, "{p:?}");
            }
            // Doubling + bisection: at most 9 doublings from 10 k to 2 M, + 4 bisections + 1.
            assert!(out.probes.len() <= 14, "{} probes", out.probes.len());
        }
    }

    #[test]
    fn clean_everywhere_reports_hi_and_lossy_at_lo_reports_none() {
        let s = ZeroLossSearch {
            lo: 1_000.0,
            hi: 50_000.0,
            ..Default::default()
        };
        let out = s.run(pipeline(1e9)).unwrap();
        assert_eq!(out.zero_loss_rate, Some(50_000.0));
        assert_eq!(out.first_lossy_rate, None);
        // 1k, 2k, 4k, ..., 32k, then 50k: 7 probes.
        assert_eq!(out.probes.len(), 7);

        assert!(out.reached_hi && !out.capped);

        // Lossy at lo: halves down to lo / 32, then gives up.
        let out = s.run(pipeline(10.0)).unwrap();
        assert_eq!(out.zero_loss_rate, None);
        assert_eq!(out.first_lossy_rate, Some(1_000.0 / 32.0));
        assert_eq!(out.probes.len(), 6);
        // Clean below lo: the edge is found under it.
        let out = s.run(pipeline(300.0)).unwrap();
        let z = out.zero_loss_rate.unwrap();
        assert!(
            z <= 300.0 && out.first_lossy_rate.unwrap() > 300.0,
            "{out:?}"
        );
    }

    #[test]
    fn respects_the_probe_cap_and_reports_probe_errors() {
        let s = ZeroLossSearch {
            max_probes: 3,
            ..Default::default()
        };
        let out = s.run(pipeline(1e9)).unwrap();
        assert_eq!(out.probes.len(), 3);
        assert_eq!(out.zero_loss_rate, Some(40_000.0));
        assert!(out.capped && !out.reached_hi);

        let e = ZeroLossSearch::default()
            .run(|r| {
                if r > 30_000.0 {
                    Err(std::io::Error::other("broker gone"))
                } else {
                    Ok(0)
                }
            })
            .unwrap_err();
        assert_eq!(e.to_string(), "probe at 40000 events/s failed: broker gone");
        let e = ZeroLossSearch {
            lo: 0.0,
            ..Default::default()
        }
        .run(pipeline(1.0))
        .unwrap_err();
        assert!(e.to_string().contains("need 0 < lo"), "{e}");
    }
}
