//! Pipelines and bounds the searches' tests share.

use std::convert::Infallible;

use super::{SearchOutcome, ZeroLossSearch};

/// A pipeline that keeps up to `cap` events/s and loses the excess.
pub(super) fn pipeline(cap: f64) -> impl FnMut(f64) -> Result<u64, Infallible> {
    move |rate| {
        Ok(if rate > cap {
            (rate - cap) as u64 + 1
        } else {
            0
        })
    }
}

/// The sweep's bounds: from 160 k, to a 10 % bracket, at most 14 trials.
pub(super) fn sweep_bounds() -> ZeroLossSearch {
    ZeroLossSearch {
        lo: 160_000.0,
        hi: 2_000_000.0,
        resolution: 0.10,
        max_trials: 14,
    }
}

/// The bracket is within the resolution around `cap`, every step on its
/// right side, and the steps are returned.
pub(super) fn brackets(out: &SearchOutcome, cap: f64) -> usize {
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
