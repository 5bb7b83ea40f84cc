//! The co-runner: while a capture of a real command is replayed, it takes
//! the CPUs as the command's tasks did when they were recorded
//! ([`CpuProfile`]), so the reader competes for them as it did live.
//!
//! One thread per CPU the profile used, pinned there. Bucket by bucket, it
//! waits for the bucket's start (mapped onto the replay's clock: recorded
//! time `t` is due at `start + (t - first sample) / speed`), then spins until
//! its own thread CPU time has grown by the bucket's busy time, or the bucket
//! is over, whichever comes first; then it sleeps until the next bucket.
//!
//! What it does not reproduce (docs/fidelity.md): what the command's work
//! does to caches and TLBs, the kernel's tracepoint path (it spins in user
//! space), and the command's own slowdown when the reader takes its CPU (the
//! replay's records stay on their recorded schedule). A busy bucket is spun
//! at its start, not spread over it: at 10 ms buckets and the scheduler's
//! 3-4 ms slices the difference is one slice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::capture::cpu_profile::CpuProfile;
use crate::host::monotonic_ns;

/// What the co-runner was asked for and what it got, per CPU.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CoRunnerReport {
    /// ns of CPU the profile asked for, per CPU (of the buckets replayed).
    pub asked_ns: Vec<u64>,
    /// ns each thread spun.
    pub spun_ns: Vec<u64>,
    /// CPUs it could not pin a thread to (fewer online here than recorded).
    pub unpinned: Vec<usize>,
}

/// One busy slot: from `at_ns` (on the replay's monotonic clock), spin
/// `busy_ns` of CPU, giving up at `until_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub at_ns: u64,
    pub busy_ns: u64,
    pub until_ns: u64,
}

/// The share of the command's CPU the co-runner takes: all of it but the
/// probes' programs' run time, when the profile has it. The programs are what
/// the replay's producer stands in for (it writes the records), so spinning
/// their time too would count it twice.
pub fn share_left_to_co_runner(p: &CpuProfile) -> f64 {
    let total: u64 = p.total_per_cpu().iter().sum();
    match (p.programs_ns, total) {
        (Some(prog), t) if t > 0 => (1.0 - prog as f64 / t as f64).clamp(0.0, 1.0),
        _ => 1.0,
    }
}

/// The busy slots of `cpu` for a replay whose first sample (recorded at
/// `first_ns`) is due at `start_ns`, `speed` times the recorded pace.
/// Buckets that end before the first sample are skipped (the replay starts
/// there); a partly covered first bucket keeps its share of the time.
pub fn slots(p: &CpuProfile, cpu: usize, start_ns: u64, first_ns: u64, speed: f64) -> Vec<Slot> {
    let Some(row) = p.busy_ns.get(cpu) else {
        return Vec::new();
    };
    let speed = if speed.is_finite() && speed > 0.0 {
        speed
    } else {
        1.0
    };
    let map = |t: u64| start_ns + ((t.saturating_sub(first_ns)) as f64 / speed) as u64;
    let keep = share_left_to_co_runner(p);
    row.iter()
        .enumerate()
        .filter(|(_, &busy)| busy > 0)
        .filter_map(|(b, &busy)| {
            let from = p.start_ns + b as u64 * p.bucket_ns;
            let to = from + p.bucket_ns;
            if to <= first_ns {
                return None;
            }
            // The part of the bucket after the first sample.
            let part = (to - from.max(first_ns)) as f64 / p.bucket_ns as f64;
            let at = map(from.max(first_ns));
            let until = map(to);
            let busy = ((busy as f64 * part * keep) as u64).min(until - at);
            (busy > 0).then_some(Slot {
                at_ns: at,
                busy_ns: busy,
                until_ns: until,
            })
        })
        .collect()
}

/// One co-runner thread: its CPU, the ns it was asked for, and its handle,
/// which returns the ns it spun and whether it was pinned.
type Spinner = (usize, u64, std::thread::JoinHandle<(u64, bool)>);

/// The co-runner's threads, running until [`CoRunner::finish`] or their last slot.
pub struct CoRunner {
    stop: Arc<AtomicBool>,
    threads: Vec<Spinner>,
}

/// This thread's CPU time, ns.
fn thread_cpu_ns() -> u64 {
    crate::host::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// Pins the calling thread to `cpu`; false if the CPU is not there.
fn pin_to(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and
    // sched_setaffinity(0, ..) act on it and on this thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return false;
        }
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

impl CoRunner {
    /// Starts one thread per CPU of `p` with busy slots for this replay.
    pub fn start(p: &CpuProfile, start_ns: u64, first_ns: u64, speed: f64) -> CoRunner {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..p.busy_ns.len())
            .filter_map(|cpu| {
                let plan = slots(p, cpu, start_ns, first_ns, speed);
                if plan.is_empty() {
                    return None;
                }
                let asked = plan.iter().map(|s| s.busy_ns).sum();
                let stop = stop.clone();
                let handle = std::thread::Builder::new()
                    .name(format!("co-runner-{cpu}"))
                    .spawn(move || {
                        let pinned = pin_to(cpu);
                        let mut spun = 0;
                        for s in plan {
                            loop {
                                let now = monotonic_ns();
                                if stop.load(Ordering::Relaxed) {
                                    return (spun, pinned);
                                }
                                if now >= s.at_ns {
                                    break;
                                }
                                std::thread::sleep(Duration::from_nanos(
                                    (s.at_ns - now).min(5_000_000),
                                ));
                            }
                            let t0 = thread_cpu_ns();
                            while thread_cpu_ns() - t0 < s.busy_ns && monotonic_ns() < s.until_ns {
                                std::hint::spin_loop();
                            }
                            spun += thread_cpu_ns() - t0;
                        }
                        (spun, pinned)
                    })
                    .ok()?;
                Some((cpu, asked, handle))
            })
            .collect();
        CoRunner { stop, threads }
    }

    /// Stops the threads (they also end after their last slot) and reports.
    pub fn finish(self) -> CoRunnerReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut r = CoRunnerReport::default();
        for (cpu, asked, h) in self.threads {
            let (spun, pinned) = h.join().unwrap_or((0, false));
            if r.asked_ns.len() <= cpu {
                r.asked_ns.resize(cpu + 1, 0);
                r.spun_ns.resize(cpu + 1, 0);
            }
            r.asked_ns[cpu] = asked;
            r.spun_ns[cpu] = spun;
            if !pinned {
                r.unpinned.push(cpu);
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn profile() -> CpuProfile {
        // Buckets of 10 ms from t = 1000 ms: cpu0 busy 5, 0, 10 ms; cpu1 idle.
        let mut p = CpuProfile::new(2, 10 * MS, 1000 * MS);
        p.add(0, 1000 * MS, 5 * MS);
        p.add(0, 1020 * MS, 10 * MS);
        p
    }

    #[test]
    fn slots_follow_the_recorded_buckets_on_the_replay_clock() {
        let p = profile();
        // First sample recorded at 1000 ms, due at 50 ms on the replay's clock.
        let s = slots(&p, 0, 50 * MS, 1000 * MS, 1.0);
        assert_eq!(
            s,
            vec![
                Slot {
                    at_ns: 50 * MS,
                    busy_ns: 5 * MS,
                    until_ns: 60 * MS
                },
                Slot {
                    at_ns: 70 * MS,
                    busy_ns: 10 * MS,
                    until_ns: 80 * MS
                },
            ]
        );
        assert!(slots(&p, 1, 0, 1000 * MS, 1.0).is_empty());
        assert!(slots(&p, 7, 0, 1000 * MS, 1.0).is_empty());
    }

    #[test]
    fn a_faster_replay_compresses_the_slots_and_keeps_the_work() {
        let p = profile();
        let s = slots(&p, 0, 0, 1000 * MS, 2.0);
        assert_eq!(s[0].at_ns, 0);
        assert_eq!(s[0].until_ns, 5 * MS);
        assert_eq!(s[0].busy_ns, 5 * MS);
        // A full bucket at twice the speed cannot hold its 10 ms: clipped to 5.
        assert_eq!((s[1].at_ns, s[1].busy_ns), (10 * MS, 5 * MS));
    }

    #[test]
    fn buckets_before_the_first_sample_are_skipped_and_a_partial_one_prorated() {
        let p = profile();
        // First sample at 1005 ms: half of bucket 0 remains, so 2.5 ms of its 5.
        let s = slots(&p, 0, 0, 1005 * MS, 1.0);
        assert_eq!(
            s[0],
            Slot {
                at_ns: 0,
                busy_ns: 2_500_000,
                until_ns: 5 * MS
            }
        );
        let later = slots(&p, 0, 0, 1015 * MS, 1.0);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].at_ns, 5 * MS);
    }
}
