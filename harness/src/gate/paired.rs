//! Deciding whether a change moved a figure, from paired measurements: the
//! baseline and the candidate measured in turn, pair by pair, in one job
//! (issue 27). On these shared hosts a figure moves 30-50 % between runs
//! minutes apart, but the two members of a pair see nearly the same host, so
//! their ratio is far steadier than either figure (docs/gate.md).
//!
//! Per pair, the log-ratio `d = ln(candidate / baseline)` (for a figure where
//! smaller is better, `ln(baseline / candidate)`, so that a negative `d` is
//! always a change for the worse). The change is estimated by the
//! Hodges-Lehmann estimator (the median of the Walsh averages
//! `(d_i + d_j) / 2`, `i <= j`) with the confidence interval that inverts
//! the Wilcoxon signed-rank test, from the test statistic's exact
//! distribution. Neither assumes the log-ratios are normal; both only assume
//! they are symmetric about the true change.
//!
//! The verdict weighs the interval and the estimate against two sizes: the
//! `threshold`, the change a team must catch (default 10 %), and the
//! `tolerance`, the change it accepts as noise (default half the threshold):
//! - `regression`: the whole interval is on the worse side of no change (the
//!   change is real at the rule's confidence) and the estimate is worse than
//!   the tolerance (it is big enough to matter). A change as large as the
//!   threshold fails as soon as the interval is narrower than the threshold,
//!   which is what the must-catch size asks; a tiny real change never fails.
//! - `pass`: no plausible change is worse than the threshold (the interval's
//!   worse end is within it), and the pairs were precise enough to see a
//!   change of the threshold's size at all.
//! - `inconclusive`: anything else: the interval reaches past the threshold
//!   without showing a real change, or the pairs are too few for their spread
//!   to detect a change of the threshold's size ([`detectable_change`] over
//!   the threshold: a rank interval alone stays narrow around the centre of a
//!   symmetric, bimodal spread). The run was too noisy, or too short, to
//!   decide; its spread is reported, and the gate neither fails nor passes.
//!
//! Loss is judged on differences, not ratios ([`decide_increase`]): a
//! lost-sample proportion is often 0, and the question is how many points it
//! rose by.

/// Which way a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Throughput, zero-loss rate.
    Bigger,
    /// CPU per event, instructions, loss.
    Smaller,
}

/// How a paired comparison is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedRule {
    /// The change for the worse that must be caught, as a fraction: 0.10 = 10 %.
    pub threshold: f64,
    /// The change for the worse accepted as noise: a real change smaller than
    /// this never fails. Half the threshold unless set.
    pub tolerance: f64,
    /// Two-sided confidence of the interval: 0.90 (Datadog SMP's level).
    pub confidence: f64,
    pub better: Better,
}

impl Default for PairedRule {
    fn default() -> Self {
        PairedRule::with_threshold(0.10, Better::Bigger)
    }
}

impl PairedRule {
    /// A rule catching `threshold` with the default tolerance (half of it)
    /// and confidence (90 %).
    pub fn with_threshold(threshold: f64, better: Better) -> Self {
        PairedRule {
            threshold,
            tolerance: threshold / 2.0,
            confidence: 0.90,
            better,
        }
    }
}

/// The verdict of a paired comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairedVerdict {
    Pass,
    Regression,
    Inconclusive,
}

impl PairedVerdict {
    pub fn name(self) -> &'static str {
        match self {
            PairedVerdict::Pass => "pass",
            PairedVerdict::Regression => "regression",
            PairedVerdict::Inconclusive => "inconclusive",
        }
    }
}

/// What the pairs say about the change. Changes are relative and signed so
/// that negative is worse: -0.12 is 12 % worse, whichever way the figure is
/// better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedDecision {
    pub pairs: usize,
    /// Hodges-Lehmann estimate of the change.
    pub change: f64,
    /// The interval for the change at the rule's confidence; infinite ends
    /// when there are too few pairs for that confidence.
    pub low: f64,
    pub high: f64,
    /// Standard deviation of the per-pair log-ratios: the noise the pairing
    /// left.
    pub spread: f64,
    pub verdict: PairedVerdict,
}

/// Why pairs could not be judged (bad input, not a verdict).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PairedError {
    #[error(
        "{baseline} baseline figures against {candidate} candidate figures: pairs need one of each"
    )]
    Unpaired { baseline: usize, candidate: usize },
    #[error("no pairs to judge")]
    Empty,
    #[error("pair {index}: figures out of range (baseline {baseline}, candidate {candidate}): ratios need positive, differences non-negative finite figures")]
    NotPositive {
        index: usize,
        baseline: f64,
        candidate: f64,
    },
    #[error("confidence {0} is not between 0 and 1")]
    Confidence(f64),
    #[error("threshold {0} is not between 0 and 1")]
    Threshold(f64),
    #[error("tolerance {tolerance} must be above 0 and at most the threshold {threshold}")]
    Tolerance { tolerance: f64, threshold: f64 },
}

/// The per-pair log-ratios, signed so that negative is worse.
pub fn log_ratios(
    baseline: &[f64],
    candidate: &[f64],
    better: Better,
) -> Result<Vec<f64>, PairedError> {
    paired_map(baseline, candidate, |b, c| {
        let ok = |x: f64| x.is_finite() && x > 0.0;
        (ok(b) && ok(c)).then(|| match better {
            Better::Bigger => (c / b).ln(),
            Better::Smaller => (b / c).ln(),
        })
    })
}

/// `f(baseline, candidate)` of each pair; `None` from `f` is a figure out of range.
fn paired_map(
    baseline: &[f64],
    candidate: &[f64],
    f: impl Fn(f64, f64) -> Option<f64>,
) -> Result<Vec<f64>, PairedError> {
    if baseline.len() != candidate.len() {
        return Err(PairedError::Unpaired {
            baseline: baseline.len(),
            candidate: candidate.len(),
        });
    }
    if baseline.is_empty() {
        return Err(PairedError::Empty);
    }
    baseline
        .iter()
        .zip(candidate)
        .enumerate()
        .map(|(index, (&b, &c))| {
            f(b, c).ok_or(PairedError::NotPositive {
                index,
                baseline: b,
                candidate: c,
            })
        })
        .collect()
}

/// Judges paired figures by `rule`.
pub fn decide(
    baseline: &[f64],
    candidate: &[f64],
    rule: &PairedRule,
) -> Result<PairedDecision, PairedError> {
    if !(rule.confidence > 0.0 && rule.confidence < 1.0) {
        return Err(PairedError::Confidence(rule.confidence));
    }
    if !(rule.threshold > 0.0 && rule.threshold < 1.0) {
        return Err(PairedError::Threshold(rule.threshold));
    }
    if !(rule.tolerance > 0.0 && rule.tolerance <= rule.threshold) {
        return Err(PairedError::Tolerance {
            tolerance: rule.tolerance,
            threshold: rule.threshold,
        });
    }
    let d = log_ratios(baseline, candidate, rule.better)?;
    let (estimate, low, high) = hodges_lehmann(&d, rule.confidence);
    // The sizes as log-ratios: 10 % worse is ln(0.9).
    let limit = (1.0 - rule.threshold).ln();
    let tolerated = (1.0 - rule.tolerance).ln();
    let spread = std_dev(&d);
    let precise = detectable_change(spread, d.len(), rule.confidence) <= rule.threshold;
    let verdict = if high < 0.0 && estimate < tolerated {
        PairedVerdict::Regression
    } else if low >= limit && precise {
        PairedVerdict::Pass
    } else {
        PairedVerdict::Inconclusive
    };
    Ok(PairedDecision {
        pairs: d.len(),
        change: estimate.exp_m1(),
        low: low.exp_m1(),
        high: high.exp_m1(),
        spread,
        verdict,
    })
}

/// Judges paired proportions where bigger is worse (lost / offered) on their
/// differences: `candidate - baseline` per pair, in absolute points. The
/// change is reported negated (negative is worse, as for [`decide`]):
/// `change = -0.004` is 0.4 points more loss. A regression is a rise the
/// interval shows to be real (its lower end above zero) and whose estimate is
/// over `max_increase / 2`; a pass is an interval whose upper end is within
/// `max_increase`; anything else is inconclusive. With no spread at all
/// (every pair lost nothing on both sides) the interval is the single point
/// 0, a pass.
pub fn decide_increase(
    baseline: &[f64],
    candidate: &[f64],
    max_increase: f64,
    confidence: f64,
) -> Result<PairedDecision, PairedError> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(PairedError::Confidence(confidence));
    }
    if !(max_increase > 0.0 && max_increase < 1.0) {
        return Err(PairedError::Threshold(max_increase));
    }
    let d = paired_map(baseline, candidate, |b, c| {
        (b.is_finite() && c.is_finite() && b >= 0.0 && c >= 0.0).then_some(c - b)
    })?;
    let (estimate, low, high) = hodges_lehmann(&d, confidence);
    let verdict = if low > 0.0 && estimate > max_increase / 2.0 {
        PairedVerdict::Regression
    } else if high <= max_increase {
        PairedVerdict::Pass
    } else {
        PairedVerdict::Inconclusive
    };
    Ok(PairedDecision {
        pairs: d.len(),
        change: -estimate,
        low: -high,
        high: -low,
        spread: std_dev(&d),
        verdict,
    })
}

/// The Hodges-Lehmann estimate of `d`'s centre and the interval that
/// inverts the two-sided Wilcoxon signed-rank test at `confidence`: the
/// `k`-th smallest and `k`-th largest Walsh averages, where `k - 1` is the
/// largest count of the signed-rank statistic with `P(T <= k - 1) <=
/// (1 - confidence) / 2`. With too few pairs for that confidence (`k` would
/// be 0), the interval is unbounded.
pub fn hodges_lehmann(d: &[f64], confidence: f64) -> (f64, f64, f64) {
    let n = d.len();
    let mut walsh = Vec::with_capacity(n * (n + 1) / 2);
    for i in 0..n {
        for j in i..n {
            walsh.push((d[i] + d[j]) / 2.0);
        }
    }
    walsh.sort_by(f64::total_cmp);
    let m = walsh.len();
    let estimate = if m % 2 == 1 {
        walsh[m / 2]
    } else {
        (walsh[m / 2 - 1] + walsh[m / 2]) / 2.0
    };
    let tail = (1.0 - confidence) / 2.0;
    let cdf = signed_rank_cdf(n);
    // k = the number of the smallest Walsh averages left below the interval,
    // plus one: the largest k with P(T <= k - 1) <= tail.
    let k = cdf.iter().take_while(|&&p| p <= tail).count();
    if k == 0 || k > m / 2 {
        return (estimate, f64::NEG_INFINITY, f64::INFINITY);
    }
    (estimate, walsh[k - 1], walsh[m - k])
}

/// `P(T <= t)` for t = 0..=n(n+1)/2, where T is the Wilcoxon signed-rank
/// statistic of `n` pairs with no change: each rank 1..=n counts with
/// probability 1/2. Exact, by counting the subsets of ranks with each sum.
pub fn signed_rank_cdf(n: usize) -> Vec<f64> {
    let max = n * (n + 1) / 2;
    // Counts as f64: 2^n subsets overflow integers past n = 64, and the
    // probabilities are all that is used.
    let mut ways = vec![0.0f64; max + 1];
    ways[0] = 1.0;
    for rank in 1..=n {
        for t in (rank..=max).rev() {
            ways[t] += ways[t - rank];
        }
    }
    let total = 2f64.powi(n as i32);
    let mut acc = 0.0;
    ways.iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect()
}

/// Sample standard deviation (0 for fewer than two values).
fn std_dev(d: &[f64]) -> f64 {
    let n = d.len();
    if n < 2 {
        return 0.0;
    }
    let mean = d.iter().sum::<f64>() / n as f64;
    (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
}

/// The smallest change (relative, as a positive fraction) that `pairs` pairs
/// with log-ratio spread `spread` detect with 90 % power at a two-sided
/// confidence `confidence`, by the normal approximation
/// `(z_{1-a/2} + z_{0.9}) * spread / sqrt(pairs)`. The A/A run's noise floor.
pub fn detectable_change(spread: f64, pairs: usize, confidence: f64) -> f64 {
    const Z_POWER_90: f64 = 1.281_551_565_545;
    let z = normal_quantile(1.0 - (1.0 - confidence) / 2.0);
    1.0 - (-(z + Z_POWER_90) * spread / (pairs.max(1) as f64).sqrt()).exp()
}

/// The standard normal quantile, by Acklam's rational approximation
/// (relative error under 1.2e-9), for `p` in (0, 1).
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of uniform numbers in [0, 1) (xorshift64*).
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        }
        /// Roughly normal, mean 0, sd 1 (the sum of 12 uniforms less 6).
        fn normal(&mut self) -> f64 {
            (0..12).map(|_| self.next()).sum::<f64>() - 6.0
        }
    }

    /// `n` pairs whose candidate is `shift` (relative) off the baseline,
    /// with a shared host factor moving both by 30 % and a per-pair noise
    /// of log-sd `noise` on the ratio.
    fn pairs(n: usize, shift: f64, noise: f64, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut r = Noise(seed);
        let (mut b, mut c) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let host = 700_000.0 * (1.0 + 0.3 * (r.next() - 0.5));
            b.push(host * (noise / 2.0 * r.normal()).exp());
            c.push(host * (1.0 + shift) * (noise / 2.0 * r.normal()).exp());
        }
        (b, c)
    }

    #[test]
    fn the_signed_rank_distribution_is_exact_for_small_n() {
        // n = 3: sums of subsets of {1, 2, 3}: 0,1,2,3,3,4,5,6.
        let cdf = signed_rank_cdf(3);
        let want = [1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 8.0].map(|x| x / 8.0);
        for (got, want) in cdf.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{cdf:?}");
        }
        // The textbook critical value: n = 20, two-sided 5 %: T <= 52.
        let cdf = signed_rank_cdf(20);
        assert!(
            cdf[52] <= 0.025 && cdf[53] > 0.025,
            "{} {}",
            cdf[52],
            cdf[53]
        );
    }

    #[test]
    fn a_known_slowdown_is_found_and_sized() {
        // 20 % slower, ratio noise sd 0.064, 20 pairs: found every time, and
        // the 90 % interval holds the truth about 9 times in 10.
        let mut covered = 0;
        for seed in 1..=40 {
            let (b, c) = pairs(20, -0.20, 0.09, seed);
            let d = decide(&b, &c, &PairedRule::default()).unwrap();
            assert_eq!(d.verdict, PairedVerdict::Regression, "seed {seed}: {d:?}");
            covered += usize::from(d.low <= -0.20 && -0.20 <= d.high);
        }
        assert!(
            covered >= 32,
            "the interval held the truth in {covered} of 40"
        );
    }

    #[test]
    fn no_change_passes_and_never_fails() {
        for seed in 1..=20 {
            let (b, c) = pairs(20, 0.0, 0.05, seed);
            let d = decide(&b, &c, &PairedRule::default()).unwrap();
            assert_ne!(d.verdict, PairedVerdict::Regression, "seed {seed}: {d:?}");
            assert_eq!(d.verdict, PairedVerdict::Pass, "seed {seed}: {d:?}");
        }
    }

    #[test]
    fn a_bimodal_spread_is_inconclusive() {
        // Half the pairs 25 % worse, half 25 % better: no honest verdict.
        let b = vec![100.0; 20];
        let c: Vec<f64> = (0..20)
            .map(|i| if i % 2 == 0 { 75.0 } else { 125.0 })
            .collect();
        let d = decide(&b, &c, &PairedRule::default()).unwrap();
        assert_eq!(d.verdict, PairedVerdict::Inconclusive, "{d:?}");
        assert!(d.spread > 0.2, "{d:?}");
    }

    #[test]
    fn too_few_pairs_are_inconclusive_not_a_verdict() {
        // Three pairs cannot reach 90 % two-sided (the smallest tail is 1/8).
        let d = decide(&[1.0; 3], &[0.5; 3], &PairedRule::default()).unwrap();
        assert_eq!(d.verdict, PairedVerdict::Inconclusive, "{d:?}");
        assert!(d.low == -1.0 && d.high.is_infinite(), "{d:?}");
    }

    #[test]
    fn smaller_is_better_turns_the_sign() {
        // CPU per event up by 20 %: a regression.
        let b = vec![1000.0; 12];
        let c: Vec<f64> = (0..12).map(|i| 1200.0 + i as f64).collect();
        let rule = PairedRule {
            better: Better::Smaller,
            ..PairedRule::default()
        };
        let d = decide(&b, &c, &rule).unwrap();
        assert_eq!(d.verdict, PairedVerdict::Regression, "{d:?}");
        assert!(d.change < -0.15, "{d:?}");
    }

    #[test]
    fn bad_input_is_an_error() {
        let r = PairedRule::default();
        assert!(matches!(
            decide(&[1.0], &[1.0, 2.0], &r),
            Err(PairedError::Unpaired { .. })
        ));
        assert_eq!(decide(&[], &[], &r), Err(PairedError::Empty));
        assert!(matches!(
            decide(&[1.0, 0.0], &[1.0, 1.0], &r),
            Err(PairedError::NotPositive { index: 1, .. })
        ));
        let bad = PairedRule {
            threshold: 1.5,
            ..r
        };
        assert_eq!(
            decide(&[1.0], &[1.0], &bad),
            Err(PairedError::Threshold(1.5))
        );
    }

    #[test]
    fn a_change_the_size_of_the_threshold_fails_and_a_a_rarely_does() {
        // 10 % slower at the measured A/A spread, 20 pairs: fails in at least
        // 9 of 10 seeds. No change at the same spread: fails in at most 1 of
        // 20 (the tolerance keeps a false alarm far rarer than the
        // interval's 5 % one-sided tail), and is inconclusive in at most 2.
        let found = (1..=100)
            .filter(|&s| {
                let (b, c) = pairs(20, -0.10, 0.089, s);
                decide(&b, &c, &PairedRule::default()).unwrap().verdict == PairedVerdict::Regression
            })
            .count();
        assert!(found >= 90, "10 % found in {found} of 100");
        let (mut failed, mut unsure) = (0, 0);
        for s in 1..=200 {
            let (b, c) = pairs(20, 0.0, 0.089, 1000 + s);
            match decide(&b, &c, &PairedRule::default()).unwrap().verdict {
                PairedVerdict::Regression => failed += 1,
                PairedVerdict::Inconclusive => unsure += 1,
                PairedVerdict::Pass => {}
            }
        }
        assert!(failed <= 10, "A/A failed {failed} of 200");
        assert!(unsure <= 20, "A/A inconclusive {unsure} of 200");
    }

    #[test]
    fn a_real_change_under_the_tolerance_never_fails() {
        // 3 % slower, measured precisely: real, but under the 5 % tolerance.
        for seed in 1..=20 {
            let (b, c) = pairs(30, -0.03, 0.01, seed);
            let d = decide(&b, &c, &PairedRule::default()).unwrap();
            assert!(d.high < 0.0, "seed {seed}: the change is real: {d:?}");
            assert_eq!(d.verdict, PairedVerdict::Pass, "seed {seed}: {d:?}");
        }
    }

    #[test]
    fn a_tolerance_over_the_threshold_is_refused() {
        let rule = PairedRule {
            tolerance: 0.2,
            ..PairedRule::default()
        };
        assert!(matches!(
            decide(&[1.0; 8], &[1.0; 8], &rule),
            Err(PairedError::Tolerance { .. })
        ));
    }

    #[test]
    fn loss_rising_from_nothing_to_half_a_percent_fails() {
        // Baseline loses nothing; candidate 0.4-0.7 %: 12 pairs, 0.25 points allowed.
        let b = vec![0.0; 12];
        let c: Vec<f64> = (0..12).map(|i| 0.004 + 0.0003 * i as f64).collect();
        let d = decide_increase(&b, &c, 0.0025, 0.90).unwrap();
        assert_eq!(d.verdict, PairedVerdict::Regression, "{d:?}");
        assert!((d.change + 0.0055).abs() < 0.001, "{d:?}");
    }

    #[test]
    fn loss_nowhere_passes_and_sporadic_loss_on_both_sides_does_not_fail() {
        let d = decide_increase(&[0.0; 12], &[0.0; 12], 0.0025, 0.90).unwrap();
        assert_eq!(d.verdict, PairedVerdict::Pass, "{d:?}");
        assert_eq!((d.low, d.high), (0.0, 0.0));
        // A hiccup loses 3 % in one side of a pair now and then, either side.
        let mut b = vec![0.0; 20];
        let mut c = vec![0.0; 20];
        b[3] = 0.03;
        c[7] = 0.03;
        b[11] = 0.02;
        c[15] = 0.01;
        let d = decide_increase(&b, &c, 0.0025, 0.90).unwrap();
        assert_ne!(d.verdict, PairedVerdict::Regression, "{d:?}");
        assert!(decide_increase(&[0.1], &[-0.1], 0.0025, 0.9).is_err());
    }

    #[test]
    fn the_noise_floor_matches_the_measured_a_a_spread() {
        // The A/A spread measured here (log-ratio sd 0.089, docs/gate.md): about
        // 7 pairs detect a 10 % change at 5 % false alarms (one side of a
        // 90 % interval) and 90 % power; 20 pairs about 6 %.
        let d7 = detectable_change(0.089, 7, 0.90);
        assert!((0.085..0.105).contains(&d7), "{d7}");
        let d20 = detectable_change(0.089, 20, 0.90);
        assert!((0.05..0.065).contains(&d20), "{d20}");
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
    }
}
