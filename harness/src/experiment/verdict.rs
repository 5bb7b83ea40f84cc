//! The steady-state verdict of one trial: did the pipeline hold this rate,
//! or did the trial merely end before its buffers filled?
//!
//! A trial offers a rate for a warm-up and then a measured window. It passes
//! only if, in this order:
//! 1. its ledger balances (otherwise its counts mean nothing: `unbalanced`);
//! 2. nothing was lost anywhere, warm-up included (`lost`);
//! 3. the producer offered what the schedule asked: p99 of its lateness
//!    within the trial's limit (`producer-short`: a late producer smooths the
//!    traffic's bursts away, so a clean result would flatter the pipeline).
//!    What lateness matters depends on the ring: the limit is a quarter of
//!    the time the rings take to fill at the trial's rate, at least 1 ms
//!    and at most `max_lateness` ([`lateness_limit`]);
//! 4. consumption kept pace over the window: the rate at which the pipeline
//!    finished samples (fitted by least squares over the window's progress
//!    samples) is at least `1 - tolerance` of the rate the rings took them,
//!    unless the backlog grew by no more than the allowance (`behind`);
//! 5. the backlog (everything taken by the rings and not yet finished: ring
//!    contents, queues between stages, the sink's queue) did not grow over the
//!    window by more than `tolerance` of what was offered in it plus an
//!    allowance for batching (`backlog-growing`).
//!
//! A pipeline 5% too slow loses nothing in a short trial (a 32 MiB ring
//! holds ~150 k compact records, seconds of a small deficit), but fails 4.
//! The allowance is how far a keeping-up pipeline's backlog moves in steps by
//! design: what the wakeup policy lets accumulate before the reader is woken,
//! the batches in flight between stages, the sink's linger. A fitted line
//! over steps that size can tilt by about one step, so growth within it is
//! not counted. See docs/tuning.md, "Trials".

use serde::{Deserialize, Serialize};

use crate::results::ProgressSample;
pub use crate::results::{Verdict, VerdictKind, WindowStats};

/// The rule's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VerdictRule {
    /// Excluded from the window (thread start, page faults, connections).
    pub warmup_ns: u64,
    /// The measured window after the warm-up.
    pub window_ns: u64,
    /// Allowed shortfall of consumption against intake, and allowed growth of
    /// the backlog, as a fraction of what the window offered: 0.02 = 2%.
    pub tolerance: f64,
    /// The most p99 lateness of the producer's writes any trial allows; a
    /// trial's own limit may be lower ([`lateness_limit`]).
    pub max_lateness_ns: u64,
}

/// Below this a producer's lateness never fails a trial: 1 ms, about twenty
/// sleep-wakeups of the producer on these VMs.
pub const MIN_LATENESS_LIMIT_NS: u64 = 1_000_000;

/// The p99 lateness a trial allows: a quarter of `fill_ns` (how long the
/// rings take to fill from empty at the trial's rate, the time scale on which
/// lateness could hide a burst from them), between 1 ms and the rule's cap.
pub fn lateness_limit(rule: &VerdictRule, fill_ns: u64) -> u64 {
    (fill_ns / 4).clamp(
        MIN_LATENESS_LIMIT_NS,
        rule.max_lateness_ns.max(MIN_LATENESS_LIMIT_NS),
    )
}

impl VerdictRule {
    /// How the rule is named in results and tables.
    pub fn describe(&self) -> String {
        format!(
            "steady-state: warm-up {}, window {}, tolerance {}%, producer p99 lateness <= ring fill time / 4 within [1ms, {}]",
            probes::units::format_duration(std::time::Duration::from_nanos(self.warmup_ns)),
            probes::units::format_duration(std::time::Duration::from_nanos(self.window_ns)),
            self.tolerance * 100.0,
            probes::units::format_duration(std::time::Duration::from_nanos(self.max_lateness_ns)),
        )
    }
}

impl Default for VerdictRule {
    fn default() -> Self {
        VerdictRule {
            warmup_ns: 250_000_000,
            window_ns: 1_000_000_000,
            tolerance: 0.02,
            max_lateness_ns: 10_000_000,
        }
    }
}

/// What the verdict looks at, gathered by the trial.
#[derive(Debug, Clone, Default)]
pub struct TrialEvidence<'a> {
    /// Progress samples over the whole trial (the rule picks the window).
    pub samples: &'a [ProgressSample],
    /// Samples lost anywhere (rings, pipeline drops, sink failures).
    pub lost: u64,
    /// Ledger equations that do not hold.
    pub imbalances: Vec<String>,
    /// The producer's p99 lateness.
    pub lateness_p99_ns: u64,
    /// The most p99 lateness this trial allows ([`lateness_limit`]).
    pub lateness_limit_ns: u64,
    /// Records a keeping-up pipeline may hold (wakeup, batches, linger).
    pub allowance: u64,
}

/// Least-squares slope and intercept of `y` over `x`.
fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (slope, my - slope * mx)
}

/// The window's figures from the progress samples that fall in it.
pub fn window_stats(rule: &VerdictRule, samples: &[ProgressSample]) -> WindowStats {
    let from = rule.warmup_ns;
    let to = rule.warmup_ns.saturating_add(rule.window_ns);
    let w: Vec<&ProgressSample> = samples
        .iter()
        .filter(|s| s.t_ns >= from && s.t_ns <= to)
        .collect();
    let (Some(first), Some(last)) = (w.first(), w.last()) else {
        return WindowStats::default();
    };
    let secs = |s: &ProgressSample| (s.t_ns - first.t_ns) as f64 / 1e9;
    let intake: Vec<(f64, f64)> = w.iter().map(|s| (secs(s), s.accepted as f64)).collect();
    let done: Vec<(f64, f64)> = w.iter().map(|s| (secs(s), s.done as f64)).collect();
    let backlog: Vec<(f64, f64)> = w
        .iter()
        .map(|s| (secs(s), s.accepted.saturating_sub(s.done) as f64))
        .collect();
    let (intake_per_s, _) = fit(&intake);
    let (done_per_s, _) = fit(&done);
    let (b_slope, b0) = fit(&backlog);
    let span = secs(last);
    WindowStats {
        span_ns: last.t_ns - first.t_ns,
        points: w.len() as u32,
        offered: last.offered - first.offered,
        intake_per_s,
        done_per_s,
        backlog_start: b0,
        backlog_end: b0 + b_slope * span,
        ring_bytes_max: w.iter().map(|s| s.ring_bytes).max().unwrap_or(0),
    }
}

/// Judges one trial by the rule (see the module docs for the order).
pub fn judge(rule: &VerdictRule, e: &TrialEvidence<'_>) -> Verdict {
    let window = window_stats(rule, e.samples);
    let v = |kind, reason: String| Verdict {
        kind,
        reason,
        window,
    };
    if !e.imbalances.is_empty() {
        return v(
            VerdictKind::Unbalanced,
            format!("ledger: {}", e.imbalances.join("; ")),
        );
    }
    if e.lost > 0 {
        return v(VerdictKind::Lost, format!("{} samples lost", e.lost));
    }
    if e.lateness_p99_ns > e.lateness_limit_ns {
        return v(
            VerdictKind::ProducerShort,
            format!(
                "the producer wrote p99 {:.2} ms behind schedule (allowed {:.2} ms)",
                e.lateness_p99_ns as f64 / 1e6,
                e.lateness_limit_ns as f64 / 1e6
            ),
        );
    }
    // At least 3 points, spanning at least half the window: a fit over less
    // judges nothing.
    if window.points < 3 || window.span_ns < rule.window_ns / 2 {
        return v(
            VerdictKind::Unmeasured,
            format!(
                "the window held {} progress samples over {:.0} ms",
                window.points,
                window.span_ns as f64 / 1e6
            ),
        );
    }
    let allowance = e.allowance as f64;
    let growth = window.backlog_end - window.backlog_start;
    let over = |x: f64| x > rule.tolerance * window.offered as f64 + allowance;
    if window.done_per_s < window.intake_per_s * (1.0 - rule.tolerance) && growth > allowance {
        return v(
            VerdictKind::Behind,
            format!(
                "finished {:.0}/s of {:.0}/s taken ({:.1}% short); backlog {:.0} -> {:.0} records",
                window.done_per_s,
                window.intake_per_s,
                100.0 * (1.0 - window.done_per_s / window.intake_per_s.max(1e-9)),
                window.backlog_start,
                window.backlog_end
            ),
        );
    }
    if over(growth) {
        return v(
            VerdictKind::BacklogGrowing,
            format!(
                "backlog grew {:.0} -> {:.0} records over the window (allowed growth {:.0})",
                window.backlog_start,
                window.backlog_end,
                rule.tolerance * window.offered as f64 + allowance
            ),
        );
    }
    v(
        VerdictKind::Clean,
        format!(
            "kept pace: finished {:.0}/s of {:.0}/s taken, backlog {:.0} -> {:.0}",
            window.done_per_s, window.intake_per_s, window.backlog_start, window.backlog_end
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Progress of a trial offering `rate`/s into a pipeline that finishes
    /// `capacity`/s (never more than it has), sampled every 10 ms for `ms`.
    fn run(rate: f64, capacity: f64, ms: u64) -> Vec<ProgressSample> {
        (0..=ms / 10)
            .map(|i| {
                let t = i * 10 * MS;
                let taken = (rate * t as f64 / 1e9) as u64;
                let done = ((capacity * t as f64 / 1e9) as u64).min(taken);
                ProgressSample {
                    t_ns: t,
                    offered: taken,
                    accepted: taken,
                    done,
                    ring_bytes: (taken - done) * 100,
                }
            })
            .collect()
    }

    fn rule() -> VerdictRule {
        VerdictRule {
            warmup_ns: 200 * MS,
            window_ns: 800 * MS,
            ..Default::default()
        }
    }

    fn judge_run(samples: &[ProgressSample], allowance: u64) -> Verdict {
        judge(
            &rule(),
            &TrialEvidence {
                samples,
                allowance,
                lateness_limit_ns: MS,
                ..Default::default()
            },
        )
    }

    #[test]
    fn a_pipeline_that_keeps_up_is_clean() {
        let s = run(500_000.0, 600_000.0, 1000);
        let v = judge_run(&s, 4096);
        assert_eq!(v.kind, VerdictKind::Clean, "{}", v.reason);
        assert!((v.window.intake_per_s - 500_000.0).abs() < 1_000.0);
        assert!(v.window.points >= 80);
    }

    #[test]
    fn five_percent_short_fails_even_though_nothing_was_lost_yet() {
        // 5% short at 500 k/s: 20 k records of backlog after 0.8 s, far from
        // filling a 32 MiB ring, so a loss-only rule would call it clean.
        let s = run(500_000.0, 475_000.0, 1000);
        let v = judge_run(&s, 4096);
        assert_eq!(v.kind, VerdictKind::Behind, "{}", v.reason);
        assert!(v.reason.contains("5.0% short"), "{}", v.reason);
    }

    #[test]
    fn a_small_shortfall_inside_the_tolerance_is_clean() {
        // 1% short: inside the 2% tolerance.
        let s = run(500_000.0, 495_000.0, 1000);
        assert_eq!(judge_run(&s, 4096).kind, VerdictKind::Clean);
    }

    #[test]
    fn batching_within_the_allowance_is_not_growth() {
        // The pipeline finishes in bursts of 50 000 (e.g. a watermark wakeup):
        // done lags intake by up to 50 k records, but does not fall behind.
        let s: Vec<ProgressSample> = run(500_000.0, 500_000.0, 1000)
            .into_iter()
            .map(|mut p| {
                p.done = p.done / 50_000 * 50_000;
                p
            })
            .collect();
        let v = judge_run(&s, 50_000);
        assert_eq!(v.kind, VerdictKind::Clean, "{}", v.reason);
    }

    #[test]
    fn losses_imbalances_and_a_late_producer_come_first() {
        let s = run(500_000.0, 600_000.0, 1000);
        let base = TrialEvidence {
            samples: &s,
            allowance: 4096,
            lateness_limit_ns: MS,
            ..Default::default()
        };
        let lost = TrialEvidence {
            lost: 3,
            ..base.clone()
        };
        assert_eq!(judge(&rule(), &lost).kind, VerdictKind::Lost);
        let late = TrialEvidence {
            lateness_p99_ns: 3 * MS,
            ..base.clone()
        };
        let v = judge(&rule(), &late);
        assert_eq!(v.kind, VerdictKind::ProducerShort);
        assert!(v.reason.contains("3.00 ms"), "{}", v.reason);
        let bad = TrialEvidence {
            imbalances: vec!["read = decoded + decode errors: 1 != 0 + 0".into()],
            lost: 3,
            ..base
        };
        assert_eq!(judge(&rule(), &bad).kind, VerdictKind::Unbalanced);
    }

    #[test]
    fn the_lateness_limit_follows_the_ring() {
        let r = VerdictRule::default();
        // A ring that fills in 6.7 ms (16 MiB of fixed4k at 600 k/s): 1.7 ms.
        assert_eq!(lateness_limit(&r, 6_700_000), 1_675_000);
        // Tiny rings: never below 1 ms; roomy ones: never above the cap.
        assert_eq!(lateness_limit(&r, 10_000), MS);
        assert_eq!(lateness_limit(&r, 10_000 * MS), 10 * MS);
    }

    #[test]
    fn a_trial_shorter_than_its_window_is_unmeasured() {
        let s = run(500_000.0, 600_000.0, 300);
        assert_eq!(judge_run(&s, 4096).kind, VerdictKind::Unmeasured);
        assert_eq!(judge_run(&[], 4096).kind, VerdictKind::Unmeasured);
    }
}
