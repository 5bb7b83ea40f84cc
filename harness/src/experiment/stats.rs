//! Confidence intervals for a proportion (lost samples over offered ones,
//! pooled over a cell's repeated trials).
//!
//! - [`wilson`]: the Wilson score interval; good when the count is not tiny.
//! - [`clopper_pearson`]: the exact (conservative) interval from beta
//!   quantiles; used when drops are rare (fewer than [`RARE`] lost), where
//!   Wilson's normal approximation is poor.
//! - [`loss_interval`] picks between them.
//!
//! And for distributions over repeats (`harness fidelity`): [`Spread`]
//! (median and quartiles) and [`mann_whitney`], the rank-sum test of whether
//! two samples come from one distribution.
//!
//! Samples lost within one trial are not independent (a ring that fills
//! drops a run of them), so these intervals are lower bounds on the real
//! uncertainty; the trials' spread is reported beside them.

use serde::{Deserialize, Serialize};

/// Below this many lost samples the exact interval is used.
pub const RARE: u64 = 10;

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// A proportion with its 95% interval, all in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proportion {
    pub k: u64,
    pub n: u64,
    pub p: f64,
    pub lo: f64,
    pub hi: f64,
    /// `wilson` or `clopper-pearson`.
    pub method: String,
}

/// The Wilson score interval for `k` successes in `n` trials.
pub fn wilson(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n_f = n as f64;
    let p = k as f64 / n_f;
    let z2 = z * z;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = z * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// ln Γ(x) (Lanczos, g = 7, 9 terms): plenty for beta quantiles.
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-14 {
            break;
        }
    }
    h
}

/// The regularized incomplete beta function I_x(a, b).
pub fn beta_inc(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_cf(a, b, x) / a
    } else {
        1.0 - ln_front.exp() * beta_cf(b, a, 1.0 - x) / b
    }
}

/// The `q` quantile of Beta(a, b), by bisection on [`beta_inc`].
pub fn beta_quantile(q: f64, a: f64, b: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if beta_inc(a, b, mid) < q {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The exact two-sided 95% Clopper-Pearson interval for `k` of `n`.
pub fn clopper_pearson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let alpha = 0.05;
    let (kf, nf) = (k as f64, n as f64);
    let lo = if k == 0 {
        0.0
    } else {
        beta_quantile(alpha / 2.0, kf, nf - kf + 1.0)
    };
    let hi = if k == n {
        1.0
    } else {
        beta_quantile(1.0 - alpha / 2.0, kf + 1.0, nf - kf)
    };
    (lo, hi)
}

/// `k` lost of `n` offered, with the interval that suits the count.
pub fn loss_interval(k: u64, n: u64) -> Proportion {
    let (lo, hi, method) = if k < RARE {
        let (l, h) = clopper_pearson(k, n);
        (l, h, "clopper-pearson")
    } else {
        let (l, h) = wilson(k, n, Z95);
        (l, h, "wilson")
    };
    Proportion {
        k,
        n,
        p: if n == 0 { 0.0 } else { k as f64 / n as f64 },
        lo,
        hi,
        method: method.to_string(),
    }
}

/// Median and quartiles of a sample (linear interpolation between order
/// statistics, as numpy's default and R's type 7).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Spread {
    pub n: usize,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for an empty sample; NaNs are left out.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            let h = p * (v.len() - 1) as f64;
            let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
            v[lo] + (h - lo as f64) * (v[hi] - v[lo])
        };
        Some(Spread {
            n: v.len(),
            q1: q(0.25),
            median: q(0.5),
            q3: q(0.75),
            min: v[0],
            max: v[v.len() - 1],
        })
    }

    pub fn iqr(&self) -> f64 {
        self.q3 - self.q1
    }
}

/// The two-sided Mann-Whitney U test (Wilcoxon rank-sum).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RankSum {
    /// U of the first sample: pairs (a, b) with a > b, ties counting 1/2.
    pub u: f64,
    /// Two-sided p-value: normal approximation with the tie correction and a
    /// continuity correction of 1/2 (1 when every value is tied).
    pub p: f64,
}

/// Whether `a` and `b` come from one distribution, by ranks: robust to the
/// many zeros and the long tails of loss over repeats, where a t-test is not.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<RankSum> {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let mut all: Vec<(f64, usize)> = a
        .iter()
        .map(|&x| (x, 0))
        .chain(b.iter().map(|&x| (x, 1)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    // Mid-ranks over ties, and the tie term sum(t^3 - t).
    let (mut rank_a, mut ties, mut i) = (0.0, 0.0, 0);
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_a += mid * all[i..=j].iter().filter(|x| x.1 == 0).count() as f64;
        ties += t * t * t - t;
        i = j + 1;
    }
    let (f1, f2, nf) = (n1 as f64, n2 as f64, n as f64);
    let u = rank_a - f1 * (f1 + 1.0) / 2.0;
    let mean = f1 * f2 / 2.0;
    let var = f1 * f2 / 12.0 * ((nf + 1.0) - ties / (nf * (nf - 1.0)).max(1.0));
    if var <= 0.0 {
        return Some(RankSum { u, p: 1.0 });
    }
    let z = ((u - mean).abs() - 0.5).max(0.0) / var.sqrt();
    Some(RankSum {
        u,
        p: erfc(z / std::f64::consts::SQRT_2).min(1.0),
    })
}

/// The complementary error function (Chebyshev fit, Numerical Recipes'
/// `erfcc`: fractional error below 1.2e-7 everywhere).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn wilson_matches_published_values() {
        // 81 of 263 (Wilson 1927 / Newcombe 1998's example): 0.2553 .. 0.3662.
        let (lo, hi) = wilson(81, 263, Z95);
        assert!(
            close(lo, 0.2553, 5e-4) && close(hi, 0.3662, 5e-4),
            "{lo} {hi}"
        );
        assert_eq!(wilson(0, 0, Z95), (0.0, 1.0));
    }

    #[test]
    fn clopper_pearson_matches_published_values() {
        // 0 of 10: upper = 1 - 0.025^(1/10) = 0.3085.
        let (lo, hi) = clopper_pearson(0, 10);
        assert_eq!(lo, 0.0);
        assert!(close(hi, 0.308_46, 1e-4), "{hi}");
        // 1 of 10: 0.00253 .. 0.4450 (standard tables).
        let (lo, hi) = clopper_pearson(1, 10);
        assert!(
            close(lo, 0.002_53, 5e-5) && close(hi, 0.445_02, 5e-4),
            "{lo} {hi}"
        );
        // 5 of 10: 0.1871 .. 0.8129.
        let (lo, hi) = clopper_pearson(5, 10);
        assert!(
            close(lo, 0.187_1, 5e-4) && close(hi, 0.812_9, 5e-4),
            "{lo} {hi}"
        );
        // Huge n, no loss: the rule of three, ~3.69/n for 97.5%.
        let (_, hi) = clopper_pearson(0, 1_000_000);
        assert!(close(hi, 3.689e-6, 2e-8), "{hi}");
    }

    #[test]
    fn the_rare_case_uses_the_exact_interval() {
        assert_eq!(loss_interval(3, 1000).method, "clopper-pearson");
        let w = loss_interval(500, 100_000);
        assert_eq!(w.method, "wilson");
        assert!(w.lo < 0.005 && 0.005 < w.hi);
    }

    #[test]
    fn quartiles_interpolate_between_order_statistics() {
        let s = Spread::of(&[4.0, 1.0, 3.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((s.n, s.min, s.max), (4, 1.0, 4.0));
        assert!((s.median - 2.5).abs() < 1e-12);
        assert!((s.q1 - 1.75).abs() < 1e-12 && (s.q3 - 3.25).abs() < 1e-12);
        assert!((s.iqr() - 1.5).abs() < 1e-12);
        assert_eq!(Spread::of(&[7.0]).unwrap().median, 7.0);
        assert!(Spread::of(&[]).is_none());
    }

    #[test]
    fn erfc_matches_known_values() {
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122),
            (1.0, 0.157_299_207),
            (2.0, 0.004_677_735),
            (-1.0, 1.842_700_793),
        ] {
            assert!((erfc(x) - want).abs() < 1e-6, "erfc({x}) = {}", erfc(x));
        }
    }

    #[test]
    fn the_rank_sum_test_separates_shifted_samples_and_not_equal_ones() {
        let a: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..10).map(|i| i as f64 + 20.0).collect();
        let r = mann_whitney(&a, &b).unwrap();
        assert_eq!(r.u, 0.0);
        // Exact two-sided p for complete separation at 10 + 10 is 1.08e-5;
        // the normal approximation gives ~1.8e-4.
        assert!(r.p < 1e-3, "{r:?}");
        let same = mann_whitney(&a, &a).unwrap();
        assert!(same.p > 0.9, "{same:?}");
        // Interleaved: 0,2,4.. against 1,3,5..: no difference to speak of.
        let even: Vec<f64> = (0..10).map(|i| 2.0 * i as f64).collect();
        let odd: Vec<f64> = (0..10).map(|i| 2.0 * i as f64 + 1.0).collect();
        assert!(mann_whitney(&even, &odd).unwrap().p > 0.5);
        // All tied (zero loss on both sides): p = 1, not NaN.
        assert_eq!(mann_whitney(&[0.0; 10], &[0.0; 10]).unwrap().p, 1.0);
        // Mostly zeros with a few losses on one side: ties handled, p in (0, 1).
        let mut z = vec![0.0; 10];
        z[9] = 3.0;
        let p = mann_whitney(&z, &[0.0; 10]).unwrap().p;
        assert!(p > 0.2 && p <= 1.0, "{p}");
        assert!(mann_whitney(&[], &a).is_none());
    }
}
