//! A kernel-backed run's progress, sampled by its producer every
//! [`SAMPLE_NS`] as emulated replay's producer does
//! ([`crate::replay::run_watched`]), so the steady-state verdict can judge
//! kernel-backed trials.
//!
//! Each [`ProgressSample`] holds:
//! - `offered`: events injected so far (test runs made), `accepted`: outputs
//!   that succeeded so far (the injector's own result per slot);
//! - `done`: for dropbench's own pipeline, what its sink has finished with
//!   (as in emulated replay). For an exec reader of a ring buffer, the
//!   accepted records wholly behind the ring's `consumer_pos`: what the
//!   reader has taken out of the ring ([`RingbufConsumption`]). An exec
//!   reader's perf rings are its own mappings, out of dropbench's sight:
//!   nothing is observed, `done` = `accepted`, and the verdict can judge such
//!   a trial on loss and the kernel counters only ([`Observed::Loss`]);
//! - `ring_bytes`: read from the kernel rings' own positions: perf, each CPU's
//!   `data_head - data_tail` summed (dropbench's reader shares the mmapped
//!   pages); ring buffer, `producer_pos - consumer_pos` (a read-only mapping
//!   of the map's two position pages). 0 for an exec reader's perf rings.

use std::collections::VecDeque;

use probes::inject::{RingBufWatch, RingWatch};

use crate::replay::{DoneCounter, SAMPLE_NS};
use crate::results::ProgressSample;

/// What a sampled kernel-backed run lets the verdict judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Observed {
    /// The run was not sampled.
    Nothing,
    /// Consumption (`done`) was observed: the whole steady-state rule applies.
    Consumption,
    /// Only what the kernel counts: loss and the producer's pace. An exec
    /// reader of perf rings.
    Loss,
}

/// Records an outside reader has consumed from a BPF ring buffer, from the
/// ring's `consumer_pos` and the order and sizes of the records the injector
/// put in it (this thread makes every output, so it knows both).
#[derive(Debug, Clone, Default)]
pub struct RingbufConsumption {
    /// Where each accepted record not yet consumed ends, in ring positions.
    ends: VecDeque<u64>,
    /// Where the next accepted record starts.
    pos: u64,
    consumed: u64,
}

/// The ring buffer's record header: `len` and `pg_off`, 4 bytes each
/// (`BPF_RINGBUF_HDR_SZ`).
const RINGBUF_HDR: u64 = 8;

impl RingbufConsumption {
    /// Starts at the ring's producer position now.
    pub fn new(start_pos: u64) -> Self {
        RingbufConsumption {
            pos: start_pos,
            ..Default::default()
        }
    }

    /// An output of `len` bytes the ring took. It occupies the header plus
    /// `len`, rounded up to 8 (`__bpf_ringbuf_reserve` in
    /// kernel/bpf/ringbuf.c; readers advance `consumer_pos` by the same).
    pub fn accepted(&mut self, len: u32) {
        self.pos += (len as u64 + RINGBUF_HDR + 7) & !7;
        self.ends.push_back(self.pos);
    }

    /// Records consumed once the reader's position is `consumer_pos`: those
    /// that end at or before it.
    pub fn consumed(&mut self, consumer_pos: u64) -> u64 {
        while self.ends.front().is_some_and(|&e| e <= consumer_pos) {
            self.ends.pop_front();
            self.consumed += 1;
        }
        self.consumed
    }
}

/// How the producer learns how far the reader has got.
pub(super) enum Watch<'a> {
    Off,
    /// dropbench's own pipeline: its sink's finished count, and the rings'
    /// positions.
    Pipeline {
        done: DoneCounter<'a>,
        rings: Option<RingWatch>,
    },
    /// An outside reader of a ring buffer.
    ExecRingbuf {
        ring: &'a RingBufWatch,
        consumed: RingbufConsumption,
    },
    /// An outside reader of perf rings: nothing observable.
    ExecPerf,
}

impl Watch<'_> {
    pub(super) fn observed(&self) -> Observed {
        match self {
            Watch::Off => Observed::Nothing,
            Watch::Pipeline { .. } | Watch::ExecRingbuf { .. } => Observed::Consumption,
            Watch::ExecPerf => Observed::Loss,
        }
    }
}

/// The producer's running counts and its next sampling time.
pub(super) struct Sampler<'a> {
    watch: Watch<'a>,
    start_ns: u64,
    next: u64,
    offered: u64,
    accepted: u64,
}

impl<'a> Sampler<'a> {
    pub(super) fn new(watch: Watch<'a>, start_ns: u64) -> Self {
        let next = match watch {
            Watch::Off => u64::MAX,
            _ => start_ns,
        };
        Sampler {
            watch,
            start_ns,
            next,
            offered: 0,
            accepted: 0,
        }
    }

    pub(super) fn observed(&self) -> Observed {
        self.watch.observed()
    }

    /// When the next sample is due (`u64::MAX` when not sampling).
    pub(super) fn next(&self) -> u64 {
        self.next
    }

    /// One output of `len` bytes, which the ring took (`ok`) or refused.
    #[inline]
    pub(super) fn output(&mut self, len: u32, ok: bool) {
        self.offered += 1;
        if ok {
            self.accepted += 1;
            if let Watch::ExecRingbuf { consumed, .. } = &mut self.watch {
                consumed.accepted(len);
            }
        }
    }

    /// Outputs the rings refused so far.
    pub(super) fn refused(&self) -> u64 {
        self.offered - self.accepted
    }

    /// Samples now if a sample is due.
    #[inline]
    pub(super) fn maybe(&mut self, now: u64, out: &mut Vec<ProgressSample>) {
        if now >= self.next {
            self.sample(now, out);
            self.next = now + SAMPLE_NS;
        }
    }

    /// Samples now (when sampling at all).
    pub(super) fn sample(&mut self, now: u64, out: &mut Vec<ProgressSample>) {
        let (done, ring_bytes) = match &mut self.watch {
            Watch::Off => return,
            Watch::Pipeline { done, rings } => {
                (done(), rings.as_ref().map_or(0, |r| r.used_bytes()))
            }
            Watch::ExecRingbuf { ring, consumed } => {
                (consumed.consumed(ring.consumer_pos()), ring.backlog())
            }
            Watch::ExecPerf => (self.accepted, 0),
        };
        out.push(ProgressSample {
            t_ns: now.saturating_sub(self.start_ns),
            offered: self.offered,
            accepted: self.accepted,
            done,
            ring_bytes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_counts_as_consumed_once_the_reader_is_past_its_end() {
        // Records of 64 and 52 bytes: 72 and 64 bytes in the ring (header 8,
        // rounded up to 8), from position 4096.
        let mut c = RingbufConsumption::new(4096);
        c.accepted(64);
        c.accepted(52);
        c.accepted(4144);
        assert_eq!(c.consumed(4096), 0);
        assert_eq!(c.consumed(4096 + 71), 0, "mid-record");
        assert_eq!(c.consumed(4096 + 72), 1);
        assert_eq!(c.consumed(4096 + 72 + 63), 1);
        assert_eq!(c.consumed(4096 + 72 + 64), 2);
        // 4144 + 8 = 4152, already a multiple of 8.
        assert_eq!(c.consumed(4096 + 72 + 64 + 4152), 3);
        assert_eq!(c.consumed(u64::MAX), 3, "nothing more was accepted");
    }

    #[test]
    fn an_outside_perf_reader_is_judged_on_loss_alone() {
        let mut out = Vec::new();
        let mut s = Sampler::new(Watch::ExecPerf, 1_000);
        assert_eq!(s.observed(), Observed::Loss);
        s.output(64, true);
        s.output(64, false);
        s.output(64, true);
        s.maybe(1_000 + 5, &mut out);
        assert_eq!(
            out,
            vec![ProgressSample {
                t_ns: 5,
                offered: 3,
                accepted: 2,
                done: 2,
                ring_bytes: 0
            }]
        );
        s.maybe(1_000 + 6, &mut out);
        assert_eq!(out.len(), 1, "the next sample is SAMPLE_NS later");
        assert_eq!(s.next(), 1_005 + SAMPLE_NS);

        let mut off = Sampler::new(Watch::Off, 0);
        off.output(8, true);
        off.maybe(u64::MAX - 1, &mut out);
        off.sample(5, &mut out);
        assert_eq!(out.len(), 1, "an unwatched run is never sampled");
        assert_eq!(off.observed(), Observed::Nothing);
    }
}
