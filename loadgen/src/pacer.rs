//! The worker loop: open-loop pacing on the absolute schedule, or back-to-back in `max` mode.

use crate::corpus::Corpus;
use crate::ops::{issue, OpKind, StatBuffers, Tally};
use crate::schedule::{DueCursor, Schedule};
use hdrhistogram::Histogram;
use std::ffi::c_char;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// The last stretch before a due time is spun, not slept: a timed sleep on a busy 2-core VM wakes
/// tens of µs late even with 1 ns timer slack, and 50 µs covers that with room to spare.
const SPIN_NS: u64 = 50_000;
/// Long waits sleep in pieces of at most 10 ms so that `stop()` is seen within 10 ms at low rates.
const MAX_SLEEP_NS: u64 = 10_000_000;
/// In `max` mode the stop flag and the clock are read every `max(burst, 64)` ops: at ~1 µs per op
/// that is a check every ~64 µs, cheap next to the syscalls and quick enough to end on time.
const MAX_MODE_MIN_CHUNK: u64 = 64;
/// Lateness is recorded up to 60 s at 3 significant digits (~200 KB of buckets per thread); later
/// values are clamped to 60 s.
pub(crate) const LATENESS_MAX_NS: u64 = 60_000_000_000;

/// CLOCK_MONOTONIC in ns (vDSO, no syscall with the TSC clocksource). u64 ns lasts 584 years of uptime.
#[inline(always)]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Waits until CLOCK_MONOTONIC reaches `due` (ns): sleeps until `SPIN_NS` before it, then spins.
/// Returns the time it saw last, or early if `stop` is set during a sleep.
#[inline]
fn wait_until(due: u128, stop: &AtomicBool) -> u64 {
    loop {
        let now = now_ns();
        if now as u128 >= due {
            return now;
        }
        let left = (due - now as u128).min(u64::MAX as u128) as u64;
        if left > SPIN_NS {
            if stop.load(Ordering::Relaxed) {
                return now;
            }
            let wake = now + (left - SPIN_NS).min(MAX_SLEEP_NS);
            let ts = libc::timespec {
                tv_sec: (wake / 1_000_000_000) as _,
                tv_nsec: (wake % 1_000_000_000) as _,
            };
            // SAFETY: valid timespec; an interrupted sleep just loops.
            unsafe {
                libc::clock_nanosleep(
                    libc::CLOCK_MONOTONIC,
                    libc::TIMER_ABSTIME,
                    &ts,
                    std::ptr::null_mut(),
                )
            };
        } else {
            std::hint::spin_loop();
        }
    }
}

/// How a worker paces its ops.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pacing {
    Paced(Schedule),
    Max,
}

/// One worker's share of the run.
pub(crate) struct WorkerPlan {
    pub index: usize,
    pub threads: usize,
    pub cpu: Option<usize>,
    pub cycle: Arc<[OpKind]>,
    pub corpus: Arc<Corpus>,
    pub pacing: Pacing,
    pub burst: usize,
    pub nice: Option<i32>,
    /// Own slots (paced) or own op budget (max); `u64::MAX` for a max-mode run bounded by time.
    pub own_ops: u64,
    /// End of the run in ns after the start, for runs bounded by time.
    pub deadline_ns: Option<u128>,
}

/// A counter on its own cache line, so threads publishing progress don't share lines.
#[repr(align(64))]
#[derive(Default)]
pub(crate) struct PaddedCounter(pub AtomicU64);

/// Start gate: workers wait on it after reporting their tid until the run is released or aborted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum GateState {
    Closed,
    Open { start_ns: u64 },
    Abort,
}

/// What the workers and the [`crate::Load`] handle share.
pub(crate) struct Shared {
    pub stop: AtomicBool,
    pub gate: Mutex<GateState>,
    pub gate_cv: Condvar,
    pub done: Vec<PaddedCounter>,
}

impl Shared {
    pub fn new(threads: usize) -> Shared {
        Shared {
            stop: AtomicBool::new(false),
            gate: Mutex::new(GateState::Closed),
            gate_cv: Condvar::new(),
            done: (0..threads).map(|_| PaddedCounter::default()).collect(),
        }
    }

    pub fn set_gate(&self, state: GateState) {
        let mut g = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        if *g == GateState::Closed {
            *g = state;
        }
        self.gate_cv.notify_all();
    }

    fn wait_gate(&self) -> GateState {
        let mut g = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        while *g == GateState::Closed {
            g = self.gate_cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        *g
    }
}

/// What a worker hands back at the end.
pub(crate) struct WorkerOutcome {
    pub tally: Tally,
    pub lateness: Histogram<u64>,
    /// When its last op returned (CLOCK_MONOTONIC ns); the start if it issued none.
    pub end_ns: u64,
    /// Own slots left when the deadline passed while the worker was behind.
    pub missed: u64,
    pub ran: bool,
    /// The thread's CPU time over its run (user + system, the traced
    /// syscalls' BPF programs included), from CLOCK_THREAD_CPUTIME_ID.
    pub cpu_ns: u64,
}

/// The calling thread's CPU time so far (user + system), in ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sets up the calling thread (tid, pinning, timer slack), reports it, waits for the gate, runs.
pub(crate) fn worker_main(
    plan: WorkerPlan,
    shared: Arc<Shared>,
    ready: std::sync::mpsc::Sender<(usize, Result<i32, String>)>,
) -> WorkerOutcome {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    // 1 ns timer slack: the default 50 µs would make every sleep up to 50 µs late.
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    let mut setup = Ok(tid);
    if let Some(cpu) = plan.cpu {
        if let Err(e) = pin_current_thread(cpu) {
            setup = Err(format!("cannot pin to CPU {cpu}: {e}"));
        }
    }
    if let (Ok(_), Some(nice)) = (&setup, plan.nice) {
        // Linux applies PRIO_PROCESS with a tid to that one thread.
        // SAFETY: plain integer arguments.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) } != 0 {
            setup = Err(format!(
                "cannot set nice {nice}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    let lateness = Histogram::new_with_bounds(1, LATENESS_MAX_NS, 3)
        .expect("static histogram bounds are valid");
    let mut outcome = WorkerOutcome {
        tally: Tally::default(),
        lateness,
        end_ns: 0,
        missed: 0,
        ran: false,
        cpu_ns: 0,
    };
    let ok = setup.is_ok();
    let _ = ready.send((plan.index, setup));
    drop(ready);
    let GateState::Open { start_ns } = shared.wait_gate() else {
        return outcome;
    };
    if !ok {
        return outcome;
    }
    outcome.ran = true;
    let cpu0 = thread_cpu_ns();
    run(&plan, &shared, start_ns, &mut outcome);
    outcome.cpu_ns = thread_cpu_ns().saturating_sub(cpu0);
    outcome
}

fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is a plain bit array; pid 0 means the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn run(plan: &WorkerPlan, shared: &Shared, start_ns: u64, out: &mut WorkerOutcome) {
    // Raw pointers to the corpus' C strings: the Arc<Corpus> in the plan keeps them alive.
    let paths: Vec<*const c_char> = plan.corpus.paths().iter().map(|p| p.as_ptr()).collect();
    let cycle: &[OpKind] = &plan.cycle;
    // Threads start at evenly spaced points of the path list so they don't walk in lockstep.
    let mut path_i = plan.index * paths.len() / plan.threads;
    let mut op_i = 0usize;
    let mut buf = StatBuffers::default();
    let tally = &mut out.tally;
    let done = &shared.done[plan.index].0;
    let count = plan.own_ops;
    let deadline = plan.deadline_ns.map(|d| start_ns as u128 + d);
    let mut j: u64 = 0;

    // One op: the next op of the cycle on the next path.
    macro_rules! next_op {
        () => {{
            // SAFETY: path_i < paths.len() and every pointer is a live NUL-terminated string.
            unsafe {
                issue(
                    *cycle.get_unchecked(op_i),
                    *paths.get_unchecked(path_i),
                    &mut buf,
                    tally,
                )
            };
            op_i += 1;
            if op_i == cycle.len() {
                op_i = 0;
            }
            path_i += 1;
            if path_i == paths.len() {
                path_i = 0;
            }
        }};
    }

    match plan.pacing {
        Pacing::Paced(schedule) => {
            let mut cursor = DueCursor::new(schedule, plan.index as u64, plan.threads as u64);
            let burst = plan.burst as u64;
            let mut now = start_ns;
            while j < count {
                now = wait_until(start_ns as u128 + cursor.due_ns(), &shared.stop);
                if shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                if deadline.is_some_and(|dl| now as u128 >= dl) {
                    out.missed = count - j;
                    break;
                }
                let burst_end = j.saturating_add(burst).min(count);
                while j < burst_end {
                    let due = start_ns as u128 + cursor.due_ns();
                    // Early ops (later in a burst than "now") count as 0 late.
                    out.lateness.saturating_record(
                        (now as u128).saturating_sub(due).min(u64::MAX as u128) as u64,
                    );
                    next_op!();
                    j += 1;
                    cursor.advance();
                    now = now_ns();
                }
                done.store(j, Ordering::Relaxed);
            }
            out.end_ns = now;
        }
        Pacing::Max => {
            let chunk = (plan.burst as u64).max(MAX_MODE_MIN_CHUNK);
            while j < count && !shared.stop.load(Ordering::Relaxed) {
                let n = chunk.min(count - j);
                for _ in 0..n {
                    next_op!();
                }
                j += n;
                done.store(j, Ordering::Relaxed);
                if deadline.is_some_and(|dl| now_ns() as u128 >= dl) {
                    break;
                }
            }
            out.end_ns = now_ns();
        }
    }
    done.store(j, Ordering::Relaxed);
}
