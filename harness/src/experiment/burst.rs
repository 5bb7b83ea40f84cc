//! A capture's burst factor: how many times its mean rate a pipeline must
//! finish samples at for the capture's bursts to fit in a ring.
//!
//! A trial replays the capture's inter-arrival times scaled to its mean rate
//! `r`, so a burst of the capture arrives at a multiple of `r`. A pipeline
//! that finishes `S` samples a second holds `r` only if the backlog the
//! bursts build never outgrows the ring. With arrivals scaled by `r` and a
//! constant `S` that depends on `S / r` alone (scale time and both rates
//! together and nothing changes), so each capture and ring memory has one
//! factor `k`: the pipeline holds `r` roughly when `S >= k * r`.
//!
//! The model is a fluid queue per ring over the recorded timestamps
//! (Lindley's recursion: a ring's backlog after each sample is its backlog
//! before, less what the reader finished since the previous sample, plus
//! one), with one reader sharing its rate equally among the rings that hold
//! samples, as a reader that visits every ring in turn does. Each ring holds
//! its share of the memory; a perf ring takes its CPU's samples, the ring
//! buffer all of them. It is an estimate, used only to aim a search
//! ([`crate::experiment::search::Answer::finished_per_s`]): a real reader's
//! speed varies with its batches, per-ring readers do not share, and wakeups
//! add delay. Every rate is still judged by its own trials.
//!
//! On the bundled real-programs capture (two CPUs, two thirds of the samples
//! on one; enter and exit records, 2.1 KB on average) with 32 MiB of perf
//! rings the factor is 4.6; the seed's design there held 3.7 k/s and
//! finished 19 k/s when saturated (debug build), a factor of 5.2. As one
//! ring of the same memory the factor is 1.8: the bursts land on one CPU.
//! A flat capture's factor is 1.

use crate::capture::Capture;

/// Factors searched between 1 (a flat capture) and this (a capture whose
/// bursts need a pipeline this many times its mean; past it the estimate
/// says nothing useful for aiming a search).
const MAX_FACTOR: f64 = 1_000.0;

/// The burst factor of `capture`'s samples in `rings` rings (None: one ring
/// takes every CPU's samples, the BPF ring buffer) of `capacity_records`
/// samples each. 1 for a streamed capture, whose timestamps are not in
/// memory, and for one with fewer than two samples.
pub fn of_capture(capture: &Capture, rings: Option<u32>, capacity_records: u64) -> f64 {
    let n = rings.unwrap_or(1).max(1);
    let mut arrivals: Vec<(u64, usize)> = capture
        .records()
        .iter()
        .filter(|r| r.orig > 0)
        .map(|r| (r.origin_ns, (r.ring % n) as usize))
        .collect();
    arrivals.sort_unstable();
    burst_factor(&arrivals, n as usize, capacity_records)
}

/// The burst factor of samples arriving at `(origin_ns, ring)` (sorted by
/// time) into `rings` rings of `capacity_records` each: the least `k` (to
/// 0.1 %) such that a reader finishing `k` times the samples' mean rate,
/// shared among the rings that hold samples, never leaves a ring holding
/// more than its capacity, over two passes (a backlog left at the end of a
/// pass meets the start of the next).
pub fn burst_factor(arrivals: &[(u64, usize)], rings: usize, capacity_records: u64) -> f64 {
    let (Some(&(first, _)), Some(&(last, _))) = (arrivals.first(), arrivals.last()) else {
        return 1.0;
    };
    if arrivals.len() < 2 || last <= first || capacity_records == 0 || rings == 0 {
        return 1.0;
    }
    // Mean rate in samples per ns: (n - 1) intervals over the span, as the
    // pacing defines it (Pacing::Shape).
    let mean = (arrivals.len() - 1) as f64 / (last - first) as f64;
    let fits = |k: f64| overflows(arrivals, rings, k * mean, capacity_records as f64).is_none();
    if fits(1.0) {
        return 1.0;
    }
    if !fits(MAX_FACTOR) {
        return MAX_FACTOR;
    }
    // Geometric bisection: fits(lo) is false, fits(hi) true.
    let (mut lo, mut hi) = (1.0f64, MAX_FACTOR);
    while hi / lo > 1.001 {
        let mid = (lo * hi).sqrt();
        if fits(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// The first sample (index into `arrivals`, in the first or second pass)
/// that finds its ring over `capacity` when one reader drains `per_ns`
/// samples a nanosecond shared among the busy rings; None if none does.
fn overflows(arrivals: &[(u64, usize)], rings: usize, per_ns: f64, capacity: f64) -> Option<usize> {
    let span = arrivals[arrivals.len() - 1].0 - arrivals[0].0;
    // The next pass starts one mean interval after the last sample.
    let gap = span as f64 / (arrivals.len() - 1) as f64;
    let mut backlog = vec![0.0f64; rings];
    let mut prev = arrivals[0].0 as f64;
    for pass in 0..2usize {
        let offset = pass as f64 * (span as f64 + gap);
        for (i, &(t, ring)) in arrivals.iter().enumerate() {
            let t = t as f64 + offset;
            drain(&mut backlog, per_ns * (t - prev));
            prev = t;
            backlog[ring] += 1.0;
            if backlog[ring] > capacity {
                return Some(pass * arrivals.len() + i);
            }
        }
    }
    None
}

/// Takes `budget` samples off the rings, shared equally among those that
/// hold any; a ring emptied before its share passes the rest to the others.
fn drain(backlog: &mut [f64], mut budget: f64) {
    while budget > 0.0 {
        let busy = backlog.iter().filter(|b| **b > 0.0).count();
        if busy == 0 {
            return;
        }
        let share = budget / busy as f64;
        budget = 0.0;
        for b in backlog.iter_mut().filter(|b| **b > 0.0) {
            if *b <= share {
                budget += share - *b;
                *b = 0.0;
            } else {
                *b -= share;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One ring's arrivals at `times_ns`.
    fn one_ring(times_ns: impl IntoIterator<Item = u64>) -> Vec<(u64, usize)> {
        times_ns.into_iter().map(|t| (t, 0)).collect()
    }

    #[test]
    fn a_flat_capture_needs_no_more_than_its_mean() {
        let even = one_ring((0..10_000u64).map(|i| i * 100_000));
        assert_eq!(burst_factor(&even, 1, 64), 1.0);
        assert_eq!(burst_factor(&[], 1, 64), 1.0);
        assert_eq!(burst_factor(&[(5, 0)], 1, 64), 1.0);
    }

    #[test]
    fn a_burst_bigger_than_the_ring_needs_a_faster_pipeline() {
        // 1 000 samples over 1 s, then 1 000 within 1 us, then one more a
        // second later: ~1 000/s on average. No pipeline up to the cap
        // drains a burst that lands in 1 us into a ring of 500.
        let mut t: Vec<u64> = (0..1_000u64).map(|i| i * 1_000_000).collect();
        t.extend((0..1_000u64).map(|i| 1_000_000_000 + i));
        t.push(2_000_000_000);
        let t = one_ring(t);
        assert_eq!(burst_factor(&t, 1, 500), MAX_FACTOR);
        // A ring that holds the burst: the mean rate nearly suffices.
        let k = burst_factor(&t, 1, 1_100);
        assert!((1.0..1.2).contains(&k), "{k}");
    }

    #[test]
    fn the_factor_is_the_ratio_a_queue_model_needs() {
        // Two phases of 1 s: 1 000 samples, then 9 000 (10 000 in 2 s, a
        // mean of 5 000/s). With a ring of 1 000, the dense second needs a
        // drain of about (9 000 - 1 000)/s = 8 000/s: 1.6 times the mean.
        let mut t: Vec<u64> = (0..1_000u64).map(|i| i * 1_000_000).collect();
        t.extend((0..9_000u64).map(|i| 1_000_000_000 + i * 111_111));
        let t = one_ring(t);
        let k = burst_factor(&t, 1, 1_000);
        assert!((1.55..1.65).contains(&k), "{k}");
        // A bigger ring needs less; the factor never falls under 1.
        let bigger = burst_factor(&t, 1, 4_000);
        assert!((1.0..k).contains(&bigger), "{bigger}");
        assert_eq!(burst_factor(&t, 1, 1_000_000), 1.0);
    }

    #[test]
    fn rings_hold_their_own_share_and_share_the_reader() {
        // The same two phases, the dense second all on ring 1 and the
        // sparse one on ring 0. Split into two rings of 1 000, ring 1 alone
        // must hold the burst, but it has the reader to itself while ring 0
        // is empty: the factor is the one-ring factor of ring 1's second.
        let mut t: Vec<(u64, usize)> = (0..1_000u64).map(|i| (i * 1_000_000, 0)).collect();
        t.extend((0..9_000u64).map(|i| (1_000_000_000 + i * 111_111, 1)));
        let split = burst_factor(&t, 2, 1_000);
        assert!((1.55..1.65).contains(&split), "{split}");
        // Both rings equally busy in the dense second: two rings of 1 000
        // sharing the reader are one ring of 2 000.
        let mut both = t.clone();
        both.extend((0..9_000u64).map(|i| (1_000_000_000 + i * 111_111 + 1, 0)));
        both.sort_unstable();
        let shared = burst_factor(&both, 2, 1_000);
        let alone = burst_factor(&one_ring(both.iter().map(|a| a.0)), 1, 2_000);
        assert!((shared / alone - 1.0).abs() < 0.01, "{shared} vs {alone}");
        // Ring 0 with a third of the dense second: ring 1 fills first,
        // with half the reader while ring 0 holds samples; it needs more
        // than one ring of the same memory.
        let mut skewed = t.clone();
        skewed.extend((0..3_000u64).map(|i| (1_000_000_000 + i * 333_333 + 1, 0)));
        skewed.sort_unstable();
        let shared = burst_factor(&skewed, 2, 1_000);
        let alone = burst_factor(&one_ring(skewed.iter().map(|a| a.0)), 1, 2_000);
        assert!(
            shared > alone * 1.05,
            "{shared} vs one ring of both: {alone}"
        );
        // Draining shares the budget and passes on what an empty ring
        // cannot take.
        let mut b = [3.0, 0.0, 10.0];
        drain(&mut b, 8.0);
        assert_eq!(b, [0.0, 0.0, 5.0]);
    }

    #[test]
    fn the_bundled_real_programs_capture_needs_four_to_five_times_its_mean() {
        // The figure docs/tuning.md quotes: 32 MiB over the capture's two
        // perf rings, 16 MiB each, records of its mean size plus a header.
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/captures/real-programs-perf.pcapng"
        );
        let c = Capture::load(std::path::Path::new(file)).unwrap();
        let record = c.summary.mean_sample_len() + 8;
        let perf = of_capture(&c, Some(2), (16 << 20) / record);
        assert!((4.0..5.5).contains(&perf), "{perf}");
        let one = of_capture(&c, None, (32 << 20) / record);
        assert!((1.5..2.2).contains(&one), "{one}");
    }
}
