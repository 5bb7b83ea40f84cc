//! The emulated replay's producer: the loop that writes each record into
//! its ring at its due time, the book it keeps ([`Produced`], shared with
//! the kernel engine's producer), and a sample's length in a ring
//! ([`event_len`]).

use std::time::Duration;

use hdrhistogram::Histogram;

use super::order::{KernelOrder, Step};
use super::{
    pacing, Bound, DoneCounter, RingWriters, SampleBytes, Schedule, StopAtLoss, SAMPLE_NS,
    WINDOW_NS,
};
use crate::capture::CaptureError;
use crate::host::monotonic_ns;
use crate::results::{CpuTime, Lateness, ProgressSample};

/// A stored sample's length as the probe emitted it, which is what it takes
/// in any ring: its event header says how long it is
/// ([`probes::abi::event_size`]). A perf capture also stores the `raw_size`
/// padding (a 4144-byte fixed4k event is stored as 4148 bytes), which is
/// perf's, not the event's: replayed into perf it comes back, into the ring
/// buffer it must not. A sample whose header does not decode, or claims more
/// than was stored, keeps its stored length.
pub fn event_len(prefix: &[u8], stored: usize) -> usize {
    use probes::abi::{event_size, EventHeader, Kind, Layout, HEADER_LEN};
    if stored < HEADER_LEN {
        return stored;
    }
    // The capture drops trailing zeros: put back those of the header.
    let mut header = [0u8; HEADER_LEN];
    let n = prefix.len().min(HEADER_LEN);
    header[..n].copy_from_slice(&prefix[..n]);
    EventHeader::read(&header)
        .ok()
        .and_then(|h| {
            let layout = Layout::from_u8(h.layout)?;
            Some(event_size(
                layout,
                Kind::from_u8(h.kind)?,
                h.path_len as usize,
            ))
        })
        .filter(|&len| len <= stored)
        .unwrap_or(stored)
}

/// What a producer did, booked as it goes: emulated replay's producer and
/// the kernel engine's ([`kernel`](super::kernel)) fill the same book, and
/// [`ReplayReport::assemble`](super::ReplayReport::assemble) turns it into
/// their common report.
pub(crate) struct Produced {
    pub(super) start_ns: u64,
    pub bytes: u64,
    pub loops_done: u64,
    pub last_write_ns: u64,
    pub max_lateness_ns: u64,
    pub late_records: u64,
    /// Every write's lateness: 1 ns to 1 hour at 2 significant digits, so
    /// percentiles are within 1%.
    late_hist: Histogram<u64>,
    pub samples: Vec<ProgressSample>,
    pub cpu: CpuTime,
    pub windows: Vec<u64>,
    /// Reading a streamed capture failed: the run stopped there.
    pub error: Option<CaptureError>,
    /// The run stopped at its loss limit ([`StopAtLoss`]).
    pub stopped_at_loss: bool,
}

impl Produced {
    pub(crate) fn new(start_ns: u64) -> Self {
        Produced {
            start_ns,
            bytes: 0,
            loops_done: 0,
            last_write_ns: start_ns,
            max_lateness_ns: 0,
            late_records: 0,
            late_hist: Histogram::new_with_bounds(1, 3_600_000_000_000, 2).expect("static bounds"),
            samples: Vec::new(),
            cpu: CpuTime::default(),
            windows: Vec::new(),
            error: None,
            stopped_at_loss: false,
        }
    }

    /// Books one record due at `due` and written at `at`.
    #[inline]
    pub(crate) fn late(&mut self, due: u64, at: u64) {
        let late = at.saturating_sub(due);
        self.late_hist.saturating_record(late.max(1));
        self.max_lateness_ns = self.max_lateness_ns.max(late);
        // 1 ms behind schedule counts as late.
        if late > 1_000_000 {
            self.late_records += 1;
        }
    }

    /// Books `n` records written at `at` into their [`WINDOW_NS`] window.
    #[inline]
    pub(crate) fn wrote(&mut self, at: u64, n: u64) {
        let w = (at.saturating_sub(self.start_ns) / WINDOW_NS) as usize;
        if w >= self.windows.len() {
            self.windows.resize(w + 1, 0);
        }
        self.windows[w] += n;
        self.last_write_ns = at;
    }

    pub(crate) fn lateness(&self) -> Lateness {
        if self.late_hist.is_empty() {
            return Lateness::default();
        }
        Lateness {
            p50_ns: self.late_hist.value_at_quantile(0.5),
            p99_ns: self.late_hist.value_at_quantile(0.99),
            max_ns: self.late_hist.max(),
        }
    }
}

/// The producer loop: for each record in recorded order (which keeps the
/// per-CPU streams interleaved as recorded), wait for its due time, stamp it
/// and output it into its ring.
pub(super) fn produce(
    order: &mut KernelOrder<'_>,
    schedule: &Schedule,
    bound: Bound,
    stop: Option<StopAtLoss>,
    writers: &mut RingWriters,
    done: Option<DoneCounter<'_>>,
) -> Produced {
    let cpu0 = CpuTime::thread();
    pacing::tight_timer_slack();
    let mut p = Produced::new(schedule.start_ns());
    let mut next_sample = schedule.start_ns();
    let mut accepted = 0u64;
    let max = schedule.is_max();
    // `d` after the first record's due time, saturating.
    let after_start = |d: Duration| {
        schedule
            .start_ns()
            .saturating_add(d.as_nanos().min(u64::MAX as u128) as u64)
    };
    let end_ns = match bound {
        Bound::Duration(d) => Some(after_start(d)),
        Bound::Loops(_) => None,
    };
    let loops = match bound {
        Bound::Loops(n) => n,
        Bound::Duration(_) => u64::MAX,
    };
    if max {
        pacing::wait_until(schedule.start_ns());
    }
    let mut index = 0u64;
    let mut bytes_before: u128 = 0;
    // Waits until `until`, sleeping, and samples progress every SAMPLE_NS on
    // the way, so quiet stretches of a bursty capture are sampled too.
    let mut wait_sampling = |until: u64,
                             index: u64,
                             accepted: u64,
                             writers: &RingWriters,
                             progress: &mut Vec<ProgressSample>|
     -> u64 {
        loop {
            let now = monotonic_ns();
            if let Some(done) = done {
                if now >= next_sample {
                    progress.push(ProgressSample {
                        t_ns: now.saturating_sub(schedule.start_ns()),
                        offered: index,
                        accepted,
                        done: done(),
                        ring_bytes: writers.used_bytes(),
                    });
                    next_sample = now + SAMPLE_NS;
                }
            }
            if now >= until {
                return now;
            }
            let wake = if done.is_some() {
                until.min(next_sample)
            } else {
                until
            };
            std::thread::sleep(Duration::from_nanos(wake.saturating_sub(now).max(1)));
        }
    };
    'outer: for loop_index in 0..loops {
        loop {
            let rec = match order.next_step() {
                Ok(Step::Sample(s)) => s,
                Ok(Step::PassEnd) => break,
                Err(e) => {
                    p.error = Some(e);
                    break 'outer;
                }
            };
            let (due, now) = if max {
                let now = monotonic_ns();
                (now, now)
            } else {
                let due = schedule.due(index, loop_index, rec.origin_ns, bytes_before);
                if let Some(e) = end_ns.filter(|&e| due >= e) {
                    // The run ends in a gap: sample the rest of it, then stop.
                    wait_sampling(e, index, accepted, writers, &mut p.samples);
                    break 'outer;
                }
                (
                    due,
                    wait_sampling(due, index, accepted, writers, &mut p.samples),
                )
            };
            if max && end_ns.is_some_and(|e| now >= e) {
                break 'outer;
            }
            p.late(due, now);
            let s = SampleBytes {
                prefix: rec.prefix,
                len: event_len(rec.prefix, rec.orig as usize),
                ts: Some(due),
            };
            let took = writers.output(rec.ring, &s);
            if took {
                p.bytes += s.len as u64;
                accepted += 1;
            }
            index += 1;
            bytes_before += rec.orig as u128;
            p.wrote(now, 1);
            // Checked on a drop only: a run that keeps up never pays for it.
            if let (false, Some(stop)) = (took, stop) {
                if stop.reached(schedule.start_ns(), index - accepted, now) {
                    p.stopped_at_loss = true;
                    break 'outer;
                }
            }
        }
        p.loops_done += 1;
    }
    if let Some(done) = done {
        p.samples.push(ProgressSample {
            t_ns: p.last_write_ns.saturating_sub(schedule.start_ns()),
            offered: index,
            accepted,
            done: done(),
            ring_bytes: writers.used_bytes(),
        });
    }
    p.cpu = CpuTime::thread().since(cpu0);
    p
}
