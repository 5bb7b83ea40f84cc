//! The sweep's searches, each over a monotone trial function:
//!
//! - [`ZeroLossSearch`]: the highest rate at which a trial loses nothing (the
//!   NDR; run with a loss threshold it gives the PDR);
//! - [`MinRingSearch`]: the smallest power-of-two ring that reaches a target
//!   loss at a given rate.
//!
//! A trial is any closure `rate -> lost` (a short paced replay at that rate
//! in the benchmark and sweeps; a pure function in the tests). The search
//! assumes loss is monotone in rate: it doubles from `lo` until a trial loses
//! (or `hi` is reached), then bisects geometrically between the last clean
//! rate and the first lossy one until they are within `resolution` of each
//! other. Geometric midpoints (sqrt(a*b)) suit rates: the same number of
//! trials resolves 10 k/s and 1 M/s to the same relative precision.
//!
//! Trials needed: doubling from lo to the edge takes log2(edge/lo) trials, and
//! bisecting a factor-2 bracket to a relative width r takes
//! log2(log2(2)/log2(1+r)) = log2(1/log2(1+r)), e.g. 4 for r = 5%. From
//! lo = 10 k to an edge near 600 k that is 6 + 4 + 1 = 11 trials.
//!
//! On a shared machine one trial is not an answer: a stall of the reader
//! longer than the ring's slack loses samples at any rate (docs/tuning.md,
//! "Why the zero-loss rate of fixed4k events depends on the trial length"),
//! and one such trial ends the doubling early. [`ZeroLossSearch::run_confirmed`]
//! re-measures the two rates that bound the answer, as FD.io CSIT's MLRsearch
//! (draft-ietf-bmwg-mlrsearch) does with its goal exceed ratio of 0.5: a rate
//! holds when most of its trials hold, and the search is run again whenever
//! re-measuring turns one of the bracket's ends over.
//!
//! A failing trial also says roughly what the pipeline holds
//! ([`Answer::finished_per_s`]: its throughput, over the capture's burst
//! factor when the trial was saturated; experiment::burst).
//! [`ZeroLossSearch::run_guided`] aims by it where halving or bisecting would
//! overshoot: below the start it tries a resolution step under that rate and
//! gallops from there (down while failing, up while clean, by one step,
//! then two, four), not at half the rate and back. At low rates the
//! capture's shape stretches each trial over a whole pass, 10-19 s there,
//! so every rate tried far under the edge costs more than several failing
//! trials above it. The answer is the same kind: only the rates tried
//! change, and every rate is still judged by its own trials.

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

/// What the trials at one rate said: how many held and how many did not,
/// and how many measured seconds each side covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    #[serde(default)]
    pub passed_s: f64,
    #[serde(default)]
    pub failed_s: f64,
    /// The slowest rate at which the pipeline finished samples in a failing
    /// trial here (events/s), where the trial measured it: a guided search's
    /// next step ([`ZeroLossSearch::run_guided`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_per_s: Option<f64>,
}

impl Tally {
    /// Adds one trial that measured `seconds`.
    pub fn add(&mut self, passed: bool, seconds: f64) {
        if passed {
            self.passed += 1;
            self.passed_s += seconds;
        } else {
            self.failed += 1;
            self.failed_s += seconds;
        }
    }
    /// Adds one failing trial that measured `seconds`, during which the
    /// pipeline finished `finished_per_s` samples a second.
    pub fn add_failed(&mut self, seconds: f64, finished_per_s: f64) {
        self.add(false, seconds);
        if finished_per_s.is_finite() && finished_per_s > 0.0 {
            self.finished_per_s = Some(
                self.finished_per_s
                    .map_or(finished_per_s, |f| f.min(finished_per_s)),
            );
        }
    }
    pub fn total(&self) -> usize {
        self.passed + self.failed
    }
    /// Most measured time held (a tie does not).
    pub fn holds(&self) -> bool {
        self.passed_s > self.failed_s
    }
    /// The answer can no longer turn over within `goal_s` measured seconds:
    /// whichever way the seconds still missing went, the same side would
    /// have the majority (MLRsearch's goal duration sum with an exceed
    /// ratio of 0.5). With 1 s trials and a 3 s goal, two agreeing trials
    /// settle a rate and a split takes a third; one trial stretched over
    /// 3 s settles it alone.
    pub fn settled(&self, goal_s: f64) -> bool {
        let missing = (goal_s - self.passed_s - self.failed_s).max(0.0);
        self.passed_s > self.failed_s + missing || self.failed_s >= self.passed_s + missing
    }
}

/// One end of the final bracket and the trials that settled it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EdgeTally {
    pub rate: f64,
    pub tally: Tally,
}

/// What a confirmed search found: the search's outcome over the rates'
/// majorities, and the trials at the two ends of its bracket.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfirmedOutcome {
    pub outcome: SearchOutcome,
    /// The highest rate the search answered clean (`zero_loss_rate`) and the lowest
    /// it answered lossy (`first_lossy_rate`), each with its trials.
    pub edges: Vec<EdgeTally>,
    /// Times re-measuring turned an end over and the search ran again.
    pub reruns: usize,
}

/// Rounds of re-measuring after which a search that keeps turning its ends
/// over stops and says it is capped: each round adds at least one rate and
/// its edge trials (3-5 trials). 2, not 4: on a host whose speed flips
/// within seconds (docs/tuning.md, "The host moves under a sweep") a series
/// took 27 trials with 4 and pushed the default sweep to 220 s.
const MAX_RERUNS: usize = 2;

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

/// Why a search could not run.
#[derive(Debug, thiserror::Error)]
pub enum SearchError<E: std::error::Error + 'static> {
    #[error("search bounds lo {lo} .. hi {hi} with resolution {resolution}: need 0 < lo <= hi and resolution > 0")]
    Bounds { lo: f64, hi: f64, resolution: f64 },
    #[error("trial at {rate:.0} events/s failed: {source}")]
    Trial { rate: f64, source: E },
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

impl ZeroLossSearch {
    /// The search with its bracket's ends re-measured: `tally(rate, n)` runs
    /// trials at `rate` until it has at least `n` and returns what they all
    /// said (trials already run are reused). Every rate starts with one; the
    /// two rates that bound the answer then get trials until their answer is
    /// settled within `goal_s` measured seconds ([`Tally::settled`]). When
    /// that turns an end over (a lossy trial was a stall; a clean one was
    /// luck), the search runs again over the rates' majorities, trying new
    /// rates where the path changed.
    ///
    /// With `goal_s` no longer than one trial this is [`ZeroLossSearch::run`].
    pub fn run_confirmed<E, F>(
        &self,
        goal_s: f64,
        mut tally: F,
    ) -> Result<ConfirmedOutcome, SearchError<E>>
    where
        E: std::error::Error + 'static,
        F: FnMut(f64, usize) -> Result<Tally, E>,
    {
        let mut reruns = 0;
        loop {
            let mut seen: Vec<(f64, Tally)> = Vec::new();
            let mut outcome = self.run_guided(|rate| {
                let t = tally(rate, 1)?;
                seen.push((rate, t));
                Ok(Answer {
                    lost: u64::from(!t.holds()),
                    finished_per_s: t.finished_per_s,
                })
            })?;
            let mut edges = Vec::new();
            let mut turned = false;
            // The failing end first: a stall turns it over far more often
            // than luck turns a clean one, and once an end has turned the
            // search runs again without settling the other.
            let ends = [outcome.first_lossy_rate, outcome.zero_loss_rate];
            for rate in ends.into_iter().flatten() {
                let before = seen.iter().rev().find(|(r, _)| *r == rate).map(|x| x.1);
                let mut t = before.unwrap_or_default();
                while !t.settled(goal_s) {
                    t = tally(rate, t.total() + 1)
                        .map_err(|source| SearchError::Trial { rate, source })?;
                }
                edges.push(EdgeTally { rate, tally: t });
                if before.is_some_and(|b| b.holds() != t.holds()) {
                    turned = true;
                    // With no rerun left the answer stands as capped: settle
                    // its other end too, so both ends it reports were
                    // re-measured.
                    if reruns < MAX_RERUNS {
                        break;
                    }
                }
            }
            edges.sort_by(|a, b| a.rate.total_cmp(&b.rate));
            if !turned || reruns >= MAX_RERUNS {
                outcome.capped |= turned;
                return Ok(ConfirmedOutcome {
                    outcome,
                    edges,
                    reruns,
                });
            }
            reruns += 1;
        }
    }
}

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

    /// The sweep's bounds: from 160 k, to a 10 % bracket, at most 14 trials.
    fn sweep_bounds() -> ZeroLossSearch {
        ZeroLossSearch {
            lo: 160_000.0,
            hi: 2_000_000.0,
            resolution: 0.10,
            max_trials: 14,
        }
    }

    /// The bracket is within the resolution around `cap`, every step on its
    /// right side, and the steps are returned.
    fn brackets(out: &SearchOutcome, cap: f64) -> usize {
        let good = out.zero_loss_rate.unwrap();
        let bad = out.first_lossy_rate.unwrap();
        assert!(good <= cap && cap < bad, "cap {cap}: {out:?}");
        assert!(
            bad / good - 1.0 <= 0.10 + 1e-9 && !out.capped,
            "cap {cap}: {out:?}"
        );
        for p in &out.steps {
            assert_eq!(p.lost == 0, p.rate <= cap, "{p:?}");
        }
        out.steps.len()
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

    #[test]
    fn a_tally_keeps_its_slowest_failing_throughput() {
        let mut t = Tally::default();
        t.add(true, 1.0);
        assert_eq!(t.finished_per_s, None);
        t.add_failed(1.0, 5_000.0);
        t.add_failed(1.0, 4_000.0);
        t.add_failed(1.0, f64::NAN);
        t.add_failed(1.0, 0.0);
        assert_eq!(t.finished_per_s, Some(4_000.0));
        assert_eq!((t.passed, t.failed), (1, 4));
        // run_confirmed steps by it too.
        let cap = 4_600.0;
        let (plain, _) = tallies(move |rate, _| rate > cap);
        let s = sweep_bounds();
        let a = s.run_confirmed(3.0, plain).unwrap();
        let b = s
            .run_confirmed(3.0, |rate, n| {
                let mut t = Tally::default();
                for _ in 0..n {
                    if rate > cap {
                        t.add_failed(1.0, cap);
                    } else {
                        t.add(true, 1.0);
                    }
                }
                Ok::<_, Infallible>(t)
            })
            .unwrap();
        brackets(&a.outcome, cap);
        brackets(&b.outcome, cap);
        assert!(
            b.outcome.steps.len() + 2 <= a.outcome.steps.len(),
            "{b:?} against {a:?}"
        );
    }

    /// Every trial a test's `tally` ran: its rate and its number there.
    type TrialLog = std::rc::Rc<std::cell::RefCell<Vec<(f64, usize)>>>;

    /// Trials at each rate, numbered from 0, and whether `lossy(rate, n)`
    /// says the nth lost: `tally` as the sweep gives it.
    fn tallies(
        lossy: impl Fn(f64, usize) -> bool,
    ) -> (
        impl FnMut(f64, usize) -> Result<Tally, Infallible>,
        TrialLog,
    ) {
        let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::<(f64, usize)>::new()));
        let seen = log.clone();
        let f = move |rate: f64, n: usize| {
            let mut t = Tally::default();
            let mut log = seen.borrow_mut();
            let ran = log.iter().filter(|(r, _)| *r == rate).count();
            for i in 0..n.max(ran) {
                if i >= ran {
                    log.push((rate, i));
                }
                t.add(!lossy(rate, i), 1.0);
            }
            Ok(t)
        };
        (f, log)
    }

    #[test]
    fn tally_settles_on_a_majority_of_measured_seconds() {
        // Trials of 0.99 s (a window a sample short of 1 s) against a 3 s goal.
        let t = |passed: usize, failed: usize| {
            let mut t = Tally::default();
            (0..passed).for_each(|_| t.add(true, 0.99));
            (0..failed).for_each(|_| t.add(false, 0.99));
            t
        };
        assert!(t(2, 0).settled(3.0) && t(0, 2).settled(3.0) && t(2, 1).settled(3.0));
        assert!(!t(1, 1).settled(3.0) && !t(1, 0).settled(3.0));
        assert!(t(1, 0).settled(1.0) && t(0, 1).settled(1.0));
        assert!(t(2, 1).holds() && !t(1, 1).holds() && !t(1, 2).holds());
        // A window stretched over a whole pass of the capture settles alone.
        let mut long = Tally::default();
        long.add(true, 6.7);
        assert!(long.settled(3.0) && long.holds());
    }

    #[test]
    fn a_stall_below_the_edge_is_re_measured_and_the_search_goes_on() {
        // Holds up to 300 k; the first trial at 80 k meets a stall and loses.
        let (f, log) = tallies(|rate, n| rate > 300_000.0 || (rate == 80_000.0 && n == 0));
        let s = ZeroLossSearch::default();
        let single = s.run(|r| Ok::<_, Infallible>(u64::from(r > 300_000.0 || r == 80_000.0)));
        // One trial per rate: the stall ends the doubling at 80 k.
        assert!(single.unwrap().zero_loss_rate.unwrap() < 80_000.0);
        let out = s.run_confirmed(3.0, f).unwrap();
        let good = out.outcome.zero_loss_rate.unwrap();
        let bad = out.outcome.first_lossy_rate.unwrap();
        assert!(good <= 300_000.0 && bad > 300_000.0, "{out:?}");
        assert!(bad / good - 1.0 <= 0.05 && !out.outcome.capped, "{out:?}");
        assert_eq!(out.reruns, 1);
        // 80 k was tried three times (the stall, then two clean trials).
        assert_eq!(
            log.borrow().iter().filter(|(r, _)| *r == 80_000.0).count(),
            3
        );
        // Both ends settled by a majority of three.
        assert_eq!(out.edges.len(), 2);
        for e in &out.edges {
            assert!(e.tally.settled(3.0), "{e:?}");
            assert_eq!(e.tally.holds(), e.rate <= 300_000.0, "{e:?}");
        }
    }

    #[test]
    fn a_lucky_clean_trial_above_the_edge_is_turned_over() {
        // Holds up to 100 k; the first trial at 160 k is clean by luck.
        let (f, _) = tallies(|rate, n| rate > 100_000.0 && !(rate == 160_000.0 && n == 0));
        let out = ZeroLossSearch::default().run_confirmed(3.0, f).unwrap();
        let good = out.outcome.zero_loss_rate.unwrap();
        assert!((95_000.0..=100_000.0).contains(&good), "{out:?}");
        assert!(out.reruns >= 1 && !out.outcome.capped, "{out:?}");
    }

    #[test]
    fn one_edge_trial_is_the_plain_search_and_flapping_is_capped() {
        let cap = 250_000.0;
        let (f, log) = tallies(move |rate, _| rate > cap);
        let s = ZeroLossSearch::default();
        let out = s.run_confirmed(1.0, f).unwrap();
        let plain = s.run(pipeline(cap)).unwrap();
        assert_eq!(out.outcome.zero_loss_rate, plain.zero_loss_rate);
        assert_eq!(out.outcome.first_lossy_rate, plain.first_lossy_rate);
        assert_eq!(log.borrow().len(), plain.steps.len());
        assert_eq!(out.reruns, 0);

        // A pipeline whose every first trial disagrees with the rest: each round turns an end over.
        let (f, _) = tallies(move |rate, n| (rate > cap) != (n == 0));
        let out = s.run_confirmed(3.0, f).unwrap();
        assert!(out.reruns <= MAX_RERUNS, "{out:?}");
        // Capped, the answer still names both ends it re-measured.
        assert!(out.outcome.capped, "{out:?}");
        for end in [out.outcome.zero_loss_rate, out.outcome.first_lossy_rate] {
            let end = end.unwrap();
            let e = out.edges.iter().find(|e| e.rate == end);
            assert!(e.is_some_and(|e| e.tally.settled(3.0)), "{end}: {out:?}");
        }
        let e = ZeroLossSearch::default()
            .run_confirmed(3.0, |r, _| {
                if r > 30_000.0 {
                    Err(std::io::Error::other("broker gone"))
                } else {
                    let mut t = Tally::default();
                    t.add(true, 1.0);
                    Ok(t)
                }
            })
            .unwrap_err();
        assert_eq!(e.to_string(), "trial at 40000 events/s failed: broker gone");
    }

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
