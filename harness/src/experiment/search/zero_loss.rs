//! The zero-loss rate search ([`ZeroLossSearch`]): doubling from `lo` to
//! the first lossy rate, then bisecting geometrically to the resolution,
//! aimed by what failing trials measured ([`ZeroLossSearch::run_guided`]).

use super::SearchError;

/// One rate the search tried, and what its trials lost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub rate: f64,
    pub lost: u64,
}

/// What a trial (or the trials at one rate) told a guided search.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Answer {
    /// Samples lost (0: the rate held).
    pub lost: u64,
    /// When the rate failed: the rate (events/s) the pipeline holds by how
    /// fast it finished samples while failing, if the trial measured it
    /// (its throughput, over the capture's burst factor when saturated).
    pub finished_per_s: Option<f64>,
}

impl From<u64> for Answer {
    fn from(lost: u64) -> Self {
        Answer {
            lost,
            finished_per_s: None,
        }
    }
}

/// What a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOutcome {
    /// The highest rate that lost nothing; `None` if even `lo` lost.
    pub zero_loss_rate: Option<f64>,
    /// The lowest rate that lost something; `None` if `hi` was clean.
    pub first_lossy_rate: Option<f64>,
    /// Every step in order.
    pub steps: Vec<Step>,
    /// `max_trials` ended the search before the bracket reached `resolution`.
    pub capped: bool,
    /// `hi` was clean: the true edge is at `hi` or above.
    pub reached_hi: bool,
}

/// Search bounds and precision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZeroLossSearch {
    /// First rate tried (events/s).
    pub lo: f64,
    /// Highest rate tried.
    pub hi: f64,
    /// Stop when lossy/clean - 1 <= resolution.
    pub resolution: f64,
    /// Hard cap on rates tried, whatever the bounds.
    pub max_trials: usize,
}

impl Default for ZeroLossSearch {
    fn default() -> Self {
        ZeroLossSearch {
            lo: 10_000.0,
            hi: 2_000_000.0,
            resolution: 0.05,
            max_trials: 20,
        }
    }
}

impl ZeroLossSearch {
    pub fn run<E, F>(&self, mut trial: F) -> Result<SearchOutcome, SearchError<E>>
    where
        E: std::error::Error + 'static,
        F: FnMut(f64) -> Result<u64, E>,
    {
        self.run_guided(|rate| trial(rate).map(Answer::from))
    }

    /// [`ZeroLossSearch::run`], aimed by what failing trials measured. When
    /// `lo` fails, the first failure that says the pipeline holds `f`
    /// events/s sends the search a resolution step under `f` (not under
    /// lo / 64), and it gallops from there: down while failing, up while
    /// clean (see the loops). While bisecting, after a failure saying `f`,
    /// the next rate is `f` when that is below the bisecting step and at
    /// least a resolution step above the highest clean rate, so every trial
    /// still narrows the bracket. An `f` is dropped once a rate at or above
    /// it holds, and one more than a resolution step below the clean rate
    /// is not used.
    pub fn run_guided<E, F>(&self, mut trial: F) -> Result<SearchOutcome, SearchError<E>>
    where
        E: std::error::Error + 'static,
        F: FnMut(f64) -> Result<Answer, E>,
    {
        if !(self.lo > 0.0 && self.lo <= self.hi && self.resolution > 0.0 && self.hi.is_finite()) {
            return Err(SearchError::Bounds {
                lo: self.lo,
                hi: self.hi,
                resolution: self.resolution,
            });
        }
        let mut steps = Vec::new();
        // The throughput the last failing trial measured.
        let mut finished: Option<f64> = None;
        let mut run = |rate: f64,
                       steps: &mut Vec<Step>,
                       finished: &mut Option<f64>|
         -> Result<bool, SearchError<E>> {
            let a = trial(rate).map_err(|source| SearchError::Trial { rate, source })?;
            steps.push(Step { rate, lost: a.lost });
            if a.lost > 0 {
                *finished = a.finished_per_s.filter(|f| f.is_finite() && *f > 0.0);
            } else if finished.is_some_and(|f| rate >= f) {
                // The pipeline held the rate its measured throughput said
                // it would: the throughput is stale.
                *finished = None;
            }
            Ok(a.lost == 0)
        };
        let floor = self.lo / 64.0;
        // Wider than the resolution (a hair of slack: a step of exactly one
        // resolution, as a guided step makes, closes the bracket).
        let wide = |good: f64, bad: f64| bad / good - 1.0 > self.resolution * (1.0 + 1e-9);
        let step = 1.0 + self.resolution;
        // Below `lo`. The first failing trial that measured the pipeline's
        // throughput aims the search: a resolution step under the rate that
        // throughput holds ([`Answer::finished_per_s`]), never under lo / 64 (a design that
        // fails there has no zero-loss rate in range). From that guess it
        // gallops down while lossy, by a resolution step, then two, four,
        // eight: a guess a step too high costs one trial, one far too high a
        // few, never the many of a resolution walk. With no measured
        // throughput it halves, down to lo / 64. Why not halve from the
        // guess: at low rates the capture's shape stretches each trial over
        // a whole pass (10-19 s for the seed's design on the real-programs
        // capture), so a clean rate far under the edge, and the bisection
        // back up from it, cost more than the few failing trials above it,
        // which stop early (trial::stop_at_loss).
        let mut start = self.lo;
        let mut first_bad = None;
        // The gallop's next factor; None until a throughput aimed the search.
        let mut gallop: Option<f64> = None;
        // Whether the first clean rate is the guess itself: the search then
        // gallops up from it too.
        let mut guessed = false;
        while !run(start, &mut steps, &mut finished)? {
            first_bad = Some(start);
            if start <= floor || steps.len() >= self.max_trials {
                return Ok(SearchOutcome {
                    zero_loss_rate: None,
                    first_lossy_rate: Some(start),
                    steps,
                    capped: false,
                    reached_hi: false,
                });
            }
            (start, guessed) = match (gallop, finished) {
                (Some(g), _) => {
                    gallop = Some(g * g);
                    ((start / g).max(floor), false)
                }
                (None, Some(f)) => {
                    gallop = Some(step);
                    ((f.min(start) / step).max(floor), true)
                }
                (None, None) => ((start / 2.0).max(floor), false),
            };
        }
        let mut good = start;
        let mut bad = first_bad;
        while bad.is_none() && good < self.hi && steps.len() < self.max_trials {
            let next = (good * 2.0).min(self.hi);
            if run(next, &mut steps, &mut finished)? {
                good = next;
            } else {
                bad = Some(next);
            }
        }
        if let Some(mut b) = bad {
            // Galloping up from a clean guess: a resolution step twice (the
            // guess is a step under the estimate, and the estimate is rough),
            // then two, four, until a rate fails; then plain bisection.
            let mut up = guessed.then_some((step, false));
            while wide(good, b) && steps.len() < self.max_trials {
                let mid = (good * b).sqrt();
                let aimed = up.map_or(mid, |(u, _)| (good * u).min(mid));
                // The rate a failing trial's throughput holds, when it is
                // below that, and at least a resolution step above the
                // clean rate. One far below the clean rate (a stalled
                // window) is not used.
                let next = match finished {
                    Some(f) if f < aimed && f * step >= good => f.max(good * step),
                    _ => aimed,
                };
                if run(next, &mut steps, &mut finished)? {
                    good = next;
                    up = up.map(|(u, again)| if again { (u * u, true) } else { (u, true) });
                } else {
                    b = next;
                    up = None;
                }
            }
            bad = Some(b);
        }
        let capped = match bad {
            Some(b) => wide(good, b),
            None => good < self.hi,
        };
        Ok(SearchOutcome {
            zero_loss_rate: Some(good),
            first_lossy_rate: bad,
            reached_hi: bad.is_none() && good >= self.hi,
            capped,
            steps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::search::test_support::{brackets, pipeline, sweep_bounds};
    use std::convert::Infallible;

    #[test]
    fn finds_the_edge_within_the_resolution() {
        for cap in [12_345.0, 99_000.0, 600_000.0, 1_234_567.0] {
            let s = ZeroLossSearch::default();
            let out = s.run(pipeline(cap)).unwrap();
            let good = out.zero_loss_rate.unwrap();
            let bad = out.first_lossy_rate.unwrap();
            assert!(good <= cap && cap < bad, "cap {cap}: {good} .. {bad}");
            assert!(bad / good - 1.0 <= 0.05, "cap {cap}: {good} .. {bad}");
            // Every clean step is at or below the edge, every lossy one above.
            for p in &out.steps {
                assert_eq!(p.lost == 0, p.rate <= cap, "{p:?}");
            }
            // Doubling + bisection: at most 9 doublings from 10 k to 2 M, + 4 bisections + 1.
            assert!(out.steps.len() <= 14, "{} steps", out.steps.len());
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
        // 1k, 2k, 4k, ..., 32k, then 50k: 7 trials.
        assert_eq!(out.steps.len(), 7);

        assert!(out.reached_hi && !out.capped);

        // Lossy at lo: halves down to lo / 64, then gives up.
        let out = s.run(pipeline(10.0)).unwrap();
        assert_eq!(out.zero_loss_rate, None);
        assert_eq!(out.first_lossy_rate, Some(1_000.0 / 64.0));
        assert_eq!(out.steps.len(), 7);
        // Clean below lo: the edge is found under it.
        let out = s.run(pipeline(300.0)).unwrap();
        let z = out.zero_loss_rate.unwrap();
        assert!(
            z <= 300.0 && out.first_lossy_rate.unwrap() > 300.0,
            "{out:?}"
        );
    }

    #[test]
    fn respects_the_trial_cap_and_reports_trial_errors() {
        let s = ZeroLossSearch {
            max_trials: 3,
            ..Default::default()
        };
        let out = s.run(pipeline(1e9)).unwrap();
        assert_eq!(out.steps.len(), 3);
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
        assert_eq!(e.to_string(), "trial at 40000 events/s failed: broker gone");
        let e = ZeroLossSearch {
            lo: 0.0,
            ..Default::default()
        }
        .run(pipeline(1.0))
        .unwrap_err();
        assert!(e.to_string().contains("need 0 < lo"), "{e}");
    }

    /// A pipeline that keeps up to `cap` events/s; a failing trial reports
    /// `finished(rate)` as its throughput.
    fn measured(
        cap: f64,
        finished: impl Fn(f64) -> f64,
    ) -> impl FnMut(f64) -> Result<Answer, Infallible> {
        move |rate| {
            Ok(if rate > cap {
                Answer {
                    lost: 1,
                    finished_per_s: Some(finished(rate)),
                }
            } else {
                Answer::default()
            })
        }
    }

    #[test]
    fn a_failing_trials_throughput_is_the_next_step() {
        let s = sweep_bounds();
        for cap in [
            4_600.0,
            9_000.0,
            37_000.0,
            130_000.0,
            450_000.0,
            1_300_000.0,
        ] {
            let plain = brackets(&s.run(pipeline(cap)).unwrap(), cap);
            // Throughput a little above what holds (a saturated pipeline
            // finishes faster than it sustains with an empty ring).
            let out = s.run_guided(measured(cap, |_| cap * 1.04)).unwrap();
            let guided = brackets(&out, cap);
            assert!(guided <= plain, "cap {cap}: {guided} > {plain}");
            // Below the start, halving overshoots to under 0.75 of the edge
            // for these caps and bisects back; the guided search's lowest
            // clean rate is a resolution step or two under the edge.
            let lowest_clean = |o: &SearchOutcome| {
                o.steps
                    .iter()
                    .filter(|p| p.lost == 0)
                    .map(|p| p.rate)
                    .fold(f64::INFINITY, f64::min)
            };
            if cap < s.lo {
                let plain_low = lowest_clean(&s.run(pipeline(cap)).unwrap());
                assert!(plain_low < cap * 0.75, "cap {cap}: plain {plain_low}");
                assert!(lowest_clean(&out) >= cap / 1.25, "cap {cap}: {out:?}");
            }
        }
    }

    #[test]
    fn a_wrong_throughput_costs_trials_but_not_the_answer() {
        let s = sweep_bounds();
        for cap in [4_600.0, 60_000.0, 450_000.0] {
            let plain = s.run(pipeline(cap)).unwrap();
            // Far too high: a gentle step down at most every other halving,
            // never above the bisecting step.
            let rates = |o: &SearchOutcome| o.steps.iter().map(|p| p.rate).collect::<Vec<_>>();
            let out = s.run_guided(measured(cap, |rate| rate * 2.0)).unwrap();
            let n = brackets(&out, cap);
            let halvings = plain
                .steps
                .iter()
                .filter(|p| p.rate < s.lo && p.lost > 0)
                .count();
            assert!(
                n <= plain.steps.len() + halvings.div_ceil(2) + 1,
                "cap {cap}: {out:?}"
            );
            // Far too low (a stalled window): the bracket still closes on the edge.
            let out = s.run_guided(measured(cap, |_| cap / 10.0)).unwrap();
            brackets(&out, cap);
            // Nothing measured: the plain search.
            let out = s
                .run_guided(|r| Ok::<_, Infallible>(Answer::from(u64::from(r > cap))))
                .unwrap();
            assert_eq!(rates(&out), rates(&plain), "cap {cap}");
        }
    }

    #[test]
    fn a_throughput_far_under_the_start_aims_the_search_near_the_edge() {
        // The seed's design on the real-programs capture: it holds ~4 k/s,
        // and a saturated trial at 160 k/s says so (its throughput over the
        // capture's burst factor, experiment::burst), give or take a step.
        let s = sweep_bounds();
        // Below the start each trial covers a whole pass of the capture:
        // its time goes as 1 / rate.
        let cost = |o: &SearchOutcome| o.steps.iter().map(|p| 1.0 / p.rate).sum::<f64>();
        for cap in [3_700.0, 4_600.0, 30_000.0] {
            let plain = s.run(pipeline(cap)).unwrap();
            brackets(&plain, cap);
            for estimate in [cap * 0.95, cap * 1.04, cap * 1.2] {
                let aimed = s.run_guided(measured(cap, |_| estimate)).unwrap();
                let n = brackets(&aimed, cap);
                assert!(n <= 5, "cap {cap}, estimate {estimate}: {aimed:?}");
                assert!(
                    cost(&aimed) < 0.6 * cost(&plain),
                    "cap {cap}, estimate {estimate}: {aimed:?} vs {plain:?}"
                );
            }
        }
        // An estimate far too low (a stalled window): the search gallops
        // back up, and still brackets the edge.
        let out = s.run_guided(measured(40_000.0, |_| 4_000.0)).unwrap();
        brackets(&out, 40_000.0);
        assert!(out.steps.len() <= 12, "{out:?}");
    }
}
