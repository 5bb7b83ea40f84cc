//! The host's memory speed, read between trials: is this a moment at which a
//! trial can say anything about the pipeline?
//!
//! These 2-core VMs share their host's caches and memory with other tenants.
//! Measured here (docs/tuning.md, "The host between trials"): a register-only
//! loop on both cores kept 0.88-1.00 of its best speed second after second,
//! while a loop copying 4 KiB blocks through 2 MiB ran anywhere from 0.11 to
//! 0.93 of its best, in episodes of one to several seconds, with the kernel's
//! steal counter flat. A pipeline that moves 4 KiB records is that copy loop:
//! a trial run inside such an episode measures the neighbours, not the design.
//!
//! So the sweep reads the host's copy speed with a short [`SpeedProbe`]
//! before and after each trial (the pipeline is idle then, so its own memory
//! traffic does not count), relative to the best reading this process has
//! seen:
//!
//! - before a trial it waits, up to [`HostGauge::max_wait`], while the reading
//!   is below the threshold (a disturbance of a few seconds passes);
//! - a trial that failed with a reading below the threshold on either side is
//!   [`HostCheck::disturbed`]: the sweep runs it again, as it does a trial the
//!   producer could not offer, and says so. A clean trial is kept whatever the
//!   host did: the design held even with less of the machine.
//!
//! The readings go with every trial in the results (`host`), so a figure
//! always says what the machine was doing around it.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One reading of how fast the host copies memory, in bytes/s.
pub trait SpeedProbe {
    fn read(&mut self) -> f64;
}

/// Copies 4 KiB blocks from a 1 MiB buffer into another, at offsets that
/// step through both: 2 MiB in play is more than a core's L2 here (512 KiB),
/// so the copies go to the shared L3 and memory, where the tenants meet, and
/// the block is the seed's event size. A reading is the best of three 6 ms
/// runs: a preemption or a page of bad luck does not make the host look slow,
/// a disturbance that lasts (the kind that spoils a trial) does.
pub struct MemoryProbe {
    src: Vec<u8>,
    dst: Vec<u8>,
    at: usize,
}

const PROBE_BUF: usize = 1 << 20;
const PROBE_BLOCK: usize = 4096;
const PROBE_RUN: Duration = Duration::from_millis(6);
const PROBE_RUNS: usize = 3;

impl Default for MemoryProbe {
    fn default() -> Self {
        // Filled (not zeroed lazily by the allocator) so every page is real.
        MemoryProbe {
            src: vec![0x5a; PROBE_BUF],
            dst: vec![0xa5; PROBE_BUF],
            at: 0,
        }
    }
}

impl MemoryProbe {
    fn run_once(&mut self) -> f64 {
        let blocks = PROBE_BUF / PROBE_BLOCK;
        let started = Instant::now();
        let mut copied = 0usize;
        loop {
            // 64 blocks (256 KiB) between clock reads.
            for _ in 0..64 {
                // Odd strides visit every block of both buffers, in orders
                // the prefetcher cannot follow from one block to the next.
                let s = (self.at * 7) % blocks * PROBE_BLOCK;
                let d = (self.at * 13) % blocks * PROBE_BLOCK;
                self.dst[d..d + PROBE_BLOCK].copy_from_slice(&self.src[s..s + PROBE_BLOCK]);
                self.at = self.at.wrapping_add(1);
                copied += PROBE_BLOCK;
            }
            std::hint::black_box(&mut self.dst);
            let t = started.elapsed();
            if t >= PROBE_RUN {
                return copied as f64 / t.as_secs_f64();
            }
        }
    }
}

impl SpeedProbe for MemoryProbe {
    fn read(&mut self) -> f64 {
        (0..PROBE_RUNS).map(|_| self.run_once()).fold(0.0, f64::max)
    }
}

/// What the host looked like around one trial, relative to the best
/// reading the sweep had seen (1.0 = as fast as ever).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HostCheck {
    /// Just before the trial (after any wait).
    pub before: f64,
    /// Just after the trial.
    pub after: f64,
    /// How long the trial waited for the host to be quiet.
    pub waited_ms: u64,
}

impl HostCheck {
    /// Either reading below `threshold`.
    pub fn disturbed(&self, threshold: f64) -> bool {
        self.before < threshold || self.after < threshold
    }
}

/// The sweep's view of the host: the best speed seen, and the rule.
pub struct HostGauge<P: SpeedProbe = MemoryProbe> {
    probe: P,
    best: f64,
    /// Readings below this fraction of the best are a disturbed host; 0 turns
    /// the gauge off (no readings, nothing waits, nothing is run again).
    pub threshold: f64,
    /// The longest a trial waits for a quiet host before it runs anyway.
    pub max_wait: Duration,
    /// Between readings while waiting.
    pub poll: Duration,
}

/// Below 0.7 of the best: quiet readings here sat at 0.8-0.93 of the best
/// and disturbed ones mostly at 0.1-0.6 (docs/tuning.md).
pub const DEFAULT_THRESHOLD: f64 = 0.7;
/// Disturbances here lasted one to several seconds; 3 s rides out most
/// while a sweep that meets a long one still finishes.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(3);

impl HostGauge<MemoryProbe> {
    /// The gauge with the default probe, calibrated: the best of 8 readings
    /// (~150 ms), so the first trial already has a reference.
    pub fn new(threshold: f64) -> Self {
        let mut g = HostGauge::with_probe(MemoryProbe::default(), threshold);
        if g.enabled() {
            for _ in 0..8 {
                g.read();
            }
        }
        g
    }
}

impl<P: SpeedProbe> HostGauge<P> {
    pub fn with_probe(probe: P, threshold: f64) -> Self {
        HostGauge {
            probe,
            best: 0.0,
            threshold,
            max_wait: DEFAULT_MAX_WAIT,
            poll: Duration::from_millis(100),
        }
    }

    pub fn enabled(&self) -> bool {
        self.threshold > 0.0
    }

    /// The best speed seen so far (bytes/s).
    pub fn best(&self) -> f64 {
        self.best
    }

    /// One reading relative to the best so far (which it may raise).
    fn read(&mut self) -> f64 {
        let v = self.probe.read();
        self.best = self.best.max(v);
        if self.best > 0.0 {
            v / self.best
        } else {
            0.0
        }
    }

    /// Before a trial: reads the host and waits, up to `max_wait`, while it
    /// is disturbed. `None` when the gauge is off.
    pub fn before_trial(&mut self) -> Option<HostCheck> {
        if !self.enabled() {
            return None;
        }
        let started = Instant::now();
        let mut r = self.read();
        while r < self.threshold && started.elapsed() + self.poll <= self.max_wait {
            std::thread::sleep(self.poll);
            r = self.read();
        }
        Some(HostCheck {
            before: r,
            after: 0.0,
            waited_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// After a trial: the second reading.
    pub fn after_trial(&mut self, check: &mut Option<HostCheck>) {
        if let Some(c) = check {
            c.after = self.read();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Readings from a script, then its last one forever.
    struct Script(Vec<f64>, usize);
    impl SpeedProbe for Script {
        fn read(&mut self) -> f64 {
            let v = self.0[self.1.min(self.0.len() - 1)];
            self.1 += 1;
            v
        }
    }

    fn gauge(readings: &[f64]) -> HostGauge<Script> {
        let mut g = HostGauge::with_probe(Script(readings.to_vec(), 0), 0.7);
        g.poll = Duration::from_millis(1);
        g.max_wait = Duration::from_millis(50);
        g
    }

    #[test]
    fn a_quiet_host_runs_at_once_and_a_slow_one_waits_until_it_recovers() {
        let mut g = gauge(&[10.0, 9.0, 3.0, 2.0, 8.0, 9.5]);
        // Calibration-like first reading sets the best.
        assert_eq!(g.read(), 1.0);
        let c = g.before_trial().unwrap();
        assert_eq!((c.before, c.waited_ms), (0.9, 0));
        let mut c = g.before_trial();
        // 3 and 2 are below 0.7 x 10: it waits through them and starts at 8.
        assert_eq!(c.unwrap().before, 0.8);
        g.after_trial(&mut c);
        assert_eq!(c.unwrap().after, 0.95);
        assert!(!c.unwrap().disturbed(0.7));
    }

    #[test]
    fn a_host_that_stays_slow_runs_the_trial_after_the_longest_wait_and_says_so() {
        let mut g = gauge(&[10.0, 2.0]);
        g.read();
        let started = Instant::now();
        let mut c = g.before_trial();
        assert!(started.elapsed() <= Duration::from_millis(50) + Duration::from_millis(20));
        g.after_trial(&mut c);
        let c = c.unwrap();
        assert_eq!(c.before, 0.2);
        assert!(c.waited_ms >= 40, "{c:?}");
        assert!(c.disturbed(0.7));
    }

    #[test]
    fn the_best_reading_rises_and_an_off_gauge_reads_nothing() {
        let mut g = gauge(&[5.0, 10.0, 6.0]);
        assert_eq!(g.read(), 1.0);
        assert_eq!(g.read(), 1.0);
        let mut c = g.before_trial();
        // 6 is 0.6 of the best 10: disturbed, waits, stays at 6.
        g.after_trial(&mut c);
        assert!(c.unwrap().disturbed(0.7));
        assert_eq!(g.best(), 10.0);

        let mut off = HostGauge::with_probe(Script(vec![1.0], 0), 0.0);
        assert!(off.before_trial().is_none());
        let mut none = None;
        off.after_trial(&mut none);
        assert!(none.is_none());
        assert_eq!(off.probe.1, 0, "an off gauge never reads");
    }

    #[test]
    fn the_memory_probe_reads_a_positive_speed() {
        let mut p = MemoryProbe::default();
        let v = p.read();
        assert!(v.is_finite() && v > 0.0, "{v}");
    }
}
