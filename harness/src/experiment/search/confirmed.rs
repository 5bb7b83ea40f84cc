//! The zero-loss search with its bracket's ends re-measured
//! ([`ZeroLossSearch::run_confirmed`]): the trials at one rate ([`Tally`]),
//! settled by a majority of measured seconds, and the search run again when
//! re-measuring turns an end over.

use super::zero_loss::{Answer, SearchOutcome, ZeroLossSearch};
use super::SearchError;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::search::test_support::{brackets, pipeline, sweep_bounds};
    use std::convert::Infallible;

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
}
