//! Sampled stage clocks: how long decode, classify, serialize and the sink's
//! send take on the thread that processes events, timed for 1 event in
//! [`SAMPLE_EVERY`] and scaled up to every event.
//!
//! Each thread keeps its own [`StageClocks`] (plain integers, no atomics per
//! event) and the pipeline adds them up when its threads end
//! ([`StageClocks::merge`]), into [`super::RunReport::stage_ns`].
//!
//! A timed event reads CLOCK_MONOTONIC (vDSO, ~20-40 ns here) five times:
//! before decode and after each of the four stages. A wall clock also runs
//! while the thread is preempted, so a timed event that spans a preemption
//! would count the other thread's time as ours, 64-fold; an event whose
//! four laps add up to more than [`MAX_LAP_NS`] is therefore dropped from the
//! sample (counted in `discarded`) rather than scaled up.

use std::time::Instant;

/// Time 1 event in 64 on average. The gaps between timed events are random
/// (uniform over 0..=126 events skipped, mean 63): a fixed stride would alias
/// with the readers' own period (a perf wakeup every 64 samples makes every
/// 64th event the first of a drain, cache-cold after the sleep, measured
/// here at 4x the mean cost). A timed event costs 5 clock reads, ~20 ns each on the
/// vDSO: 100 ns / 64 = ~1.5 ns per event on average, under 0.1 % of the
/// ~2-3 us an event costs end to end. 64 still gives ~4 700 samples per
/// second at 300 k events/s, so a 1 s window's means are tight.
pub const SAMPLE_EVERY: u64 = 64;

/// A timed event longer than this (its four laps together) spanned a
/// preemption or a page-fault storm, not work: one event's decode..send is
/// 1-5 us (docs/tuning.md, "Where the time goes"), and a scheduler time slice
/// on these machines is milliseconds. 100 us sits 20x above the work and
/// far below a slice.
pub const MAX_LAP_NS: u64 = 100_000;

/// One timed event's laps, ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lap {
    pub decode: u64,
    pub classify: u64,
    pub serialize: u64,
    pub send: u64,
}

impl Lap {
    pub fn total(&self) -> u64 {
        self.decode + self.classify + self.serialize + self.send
    }
}

/// The sampled stage times of one thread (or, merged, of a whole run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StageClocks {
    /// Events that reached the sampler, timed or not.
    pub events: u64,
    /// Timed events kept in the sums.
    pub sampled: u64,
    /// Timed events dropped because they ran over [`MAX_LAP_NS`].
    pub discarded: u64,
    /// Sums over the kept timed events, ns.
    pub decode: u64,
    pub classify: u64,
    pub serialize: u64,
    pub send: u64,
    /// Events to skip before the next timed one.
    #[serde(skip)]
    skip: u64,
    /// The gaps' xorshift64 state (0: not seeded yet).
    #[serde(skip)]
    rng: u64,
}

/// The stages' estimated time over every event, ns.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageEstimate {
    pub decode: f64,
    pub classify: f64,
    pub serialize: f64,
    pub send: f64,
}

impl StageEstimate {
    pub fn total(&self) -> f64 {
        self.decode + self.classify + self.serialize + self.send
    }
    /// The estimate cut down to `cpu_ns`, the CPU the threads that ran the
    /// stages used. The send lap is wall time and can include waiting (a full
    /// queue, a lock, a blocked synchronous send), so any excess comes out of
    /// `send` first; only if decode, classify and serialize alone still exceed
    /// `cpu_ns` (sampling noise) are those three scaled down to fit.
    pub fn fitted(&self, cpu_ns: f64) -> StageEstimate {
        let mut e = *self;
        let over = e.total() - cpu_ns;
        if over <= 0.0 {
            return e;
        }
        e.send = (e.send - over).max(0.0);
        let cpu_bound = e.decode + e.classify + e.serialize;
        if cpu_bound > cpu_ns {
            let k = if cpu_bound > 0.0 {
                cpu_ns.max(0.0) / cpu_bound
            } else {
                0.0
            };
            e.decode *= k;
            e.classify *= k;
            e.serialize *= k;
        }
        e
    }
}

impl StageClocks {
    /// Counts one event and starts its stopwatch: running for the first
    /// event and then after a random gap (1 in [`SAMPLE_EVERY`] on average),
    /// idle (no clock read) otherwise.
    #[inline]
    pub fn start(&mut self) -> Stopwatch {
        self.events += 1;
        let on = self.skip == 0;
        if on {
            self.skip = self.gap();
        } else {
            self.skip -= 1;
        }
        Stopwatch {
            last: if on { Some(Instant::now()) } else { None },
        }
    }

    /// Events to skip before the next timed one: uniform over
    /// 0..=2 x SAMPLE_EVERY - 2, so one event in SAMPLE_EVERY is timed.
    fn gap(&mut self) -> u64 {
        if self.rng == 0 {
            // Any odd constant seeds it; the gaps need no secrecy, only no period.
            self.rng = 0x9E37_79B9_7F4A_7C15;
        }
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x % (2 * SAMPLE_EVERY - 1)
    }

    /// Adds a timed event's laps, or counts it as discarded when they ran
    /// over [`MAX_LAP_NS`] plus `work_ns`, the work the event was asked to do
    /// on purpose (the `extra_work` knob).
    pub fn record(&mut self, lap: Lap, work_ns: u64) {
        if lap.total() > MAX_LAP_NS + work_ns {
            self.discarded += 1;
            return;
        }
        self.sampled += 1;
        self.decode += lap.decode;
        self.classify += lap.classify;
        self.serialize += lap.serialize;
        self.send += lap.send;
    }

    /// Adds another thread's clocks.
    pub fn merge(&mut self, o: &StageClocks) {
        self.events += o.events;
        self.sampled += o.sampled;
        self.discarded += o.discarded;
        self.decode += o.decode;
        self.classify += o.classify;
        self.serialize += o.serialize;
        self.send += o.send;
    }

    /// Each stage's time over all `events`: its mean over the kept samples
    /// times the events. Zero when nothing was timed.
    pub fn estimate(&self) -> StageEstimate {
        if self.sampled == 0 {
            return StageEstimate::default();
        }
        let k = self.events as f64 / self.sampled as f64;
        StageEstimate {
            decode: self.decode as f64 * k,
            classify: self.classify as f64 * k,
            serialize: self.serialize as f64 * k,
            send: self.send as f64 * k,
        }
    }
}

/// The clock of one event: [`Stopwatch::split`] gives the time since the
/// previous split (or the start), and reads no clock when the event is not timed.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    last: Option<Instant>,
}

impl Stopwatch {
    /// Whether this event is timed.
    #[inline]
    pub fn on(&self) -> bool {
        self.last.is_some()
    }

    /// Ns since the last split, less one clock read (each lap holds the read
    /// that ends it: [`mono_clock_cost`]); 0 when the event is not timed.
    #[inline]
    pub fn split(&mut self) -> u64 {
        match &mut self.last {
            None => 0,
            Some(last) => {
                let now = Instant::now();
                let d = now.duration_since(*last).as_nanos() as u64;
                *last = now;
                d.saturating_sub(mono_clock_cost())
            }
        }
    }

    /// Books `lap` into `clocks` if this event was timed ([`StageClocks::record`]).
    #[inline]
    pub fn finish(self, clocks: &mut StageClocks, lap: Lap, work_ns: u64) {
        if self.on() {
            clocks.record(lap, work_ns);
        }
    }
}

/// What one read of the monotonic clock (`Instant::now`, the vDSO) adds to
/// a lap timed with it: the least of 64 back-to-back differences, measured
/// once per process. Without it the four laps of a timed event carry four
/// reads (~80-160 ns here), more than the reader's own drain of a compact
/// record (~30 ns).
pub fn mono_clock_cost() -> u64 {
    static COST: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *COST.get_or_init(|| {
        let origin = Instant::now();
        read_cost(64, || origin.elapsed())
    })
}

/// What one read of this thread's CPU clock (CLOCK_THREAD_CPUTIME_ID, a
/// system call: ~300 ns here, against ~30 ns for the vDSO's monotonic clock)
/// adds to an interval timed with it: the least of 16 back-to-back
/// differences.
pub fn cpu_clock_cost() -> u64 {
    read_cost(16, super::thread_cpu)
}

/// The least of `n` differences between two back-to-back reads of a clock:
/// the read itself, without preemption noise.
fn read_cost(n: usize, read: impl Fn() -> std::time::Duration) -> u64 {
    (0..n)
        .map(|_| {
            let a = read();
            let b = read();
            b.saturating_sub(a).as_nanos() as u64
        })
        .min()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lap(n: u64) -> Lap {
        Lap {
            decode: n,
            classify: 10 * n,
            serialize: 2 * n,
            send: 3 * n,
        }
    }

    #[test]
    fn one_event_in_sample_every_is_timed_starting_with_the_first_without_a_period() {
        let mut c = StageClocks::default();
        let n = 640 * SAMPLE_EVERY;
        let timed: Vec<u64> = (0..n).filter(|_| c.start().on()).collect();
        assert_eq!(c.events, n);
        assert_eq!(timed[0], 0);
        // 640 expected; the gaps are random, so within 10%.
        assert!((576..=704).contains(&timed.len()), "{}", timed.len());
        // No stride: timed events fall on every position of a 64-event drain.
        let mut seen = [false; SAMPLE_EVERY as usize];
        for t in &timed {
            seen[(t % SAMPLE_EVERY) as usize] = true;
        }
        assert!(seen.iter().filter(|s| **s).count() > 48, "{seen:?}");
    }

    #[test]
    fn the_estimate_scales_the_sample_mean_to_every_event() {
        let mut c = StageClocks {
            events: 630,
            ..Default::default()
        };
        for _ in 0..10 {
            let sw = c.start();
            assert!(sw.on());
            sw.finish(&mut c, lap(100), 0);
            c.skip = 0;
        }
        assert_eq!((c.events, c.sampled), (640, 10));
        let e = c.estimate();
        // 640 events x the sampled 100 / 1000 / 200 / 300 ns.
        assert_eq!(e.decode, 64_000.0);
        assert_eq!(e.classify, 640_000.0);
        assert_eq!(e.serialize, 128_000.0);
        assert_eq!(e.send, 192_000.0);
        assert_eq!(e.total(), 1_024_000.0);
        // Within the threads' CPU: unchanged.
        assert_eq!(e.fitted(2_000_000.0), e);
    }

    #[test]
    fn an_estimate_over_the_threads_cpu_loses_its_send_wait_first() {
        let e = StageEstimate {
            decode: 100.0,
            classify: 500.0,
            serialize: 100.0,
            send: 400.0,
        };
        // 100 over: it all comes out of send, the rest is as measured.
        let f = e.fitted(1_000.0);
        assert_eq!(
            (f.decode, f.classify, f.serialize, f.send),
            (100.0, 500.0, 100.0, 300.0)
        );
        // More over than send holds: send is 0, the rest scaled to fit.
        let f = e.fitted(350.0);
        assert_eq!(f.send, 0.0);
        assert_eq!((f.decode, f.classify, f.serialize), (50.0, 250.0, 50.0));
        assert!((f.total() - 350.0).abs() < 1e-9);
    }

    #[test]
    fn a_lap_over_the_limit_is_discarded_not_scaled() {
        let mut c = StageClocks {
            events: 2 * SAMPLE_EVERY,
            ..Default::default()
        };
        c.record(lap(100), 0);
        // 16 x 7_000 = 112_000 ns > MAX_LAP_NS: a preemption, not work.
        c.record(lap(7_000), 0);
        assert_eq!((c.sampled, c.discarded), (1, 1));
        // Unless the event was asked to spin that long.
        let mut slow = StageClocks::default();
        slow.record(lap(7_000), 500_000);
        assert_eq!((slow.sampled, slow.discarded), (1, 0));
        assert_eq!(c.estimate().classify, 1000.0 * 2.0 * SAMPLE_EVERY as f64);
    }

    #[test]
    fn merged_threads_add_up_and_nothing_timed_estimates_zero() {
        assert_eq!(StageClocks::default().estimate(), StageEstimate::default());
        let mut a = StageClocks {
            events: 64,
            ..Default::default()
        };
        a.record(lap(1), 0);
        let mut b = StageClocks {
            events: 128,
            discarded: 1,
            ..Default::default()
        };
        b.record(lap(3), 0);
        a.merge(&b);
        assert_eq!((a.events, a.sampled, a.discarded), (192, 2, 1));
        assert_eq!(a.decode, 4);
        // Mean decode 2 ns over 192 events.
        assert_eq!(a.estimate().decode, 384.0);
    }

    #[test]
    fn an_idle_stopwatch_reads_no_clock_and_books_nothing() {
        let mut c = StageClocks::default();
        let _first = c.start();
        c.skip = 5;
        let mut sw = c.start();
        assert!(!sw.on());
        assert_eq!(sw.split(), 0);
        sw.finish(&mut c, lap(5), 0);
        assert_eq!(c.sampled, 0);
    }
}
