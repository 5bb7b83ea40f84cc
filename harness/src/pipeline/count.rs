//! One deterministic pass of a variant over a fixed input, for counting the
//! instructions it spends per event (`harness count`, run under callgrind by
//! `harness compare`).
//!
//! The first `events` samples of the capture (in kernel order, looping over
//! the capture if it holds fewer) are written into emulated rings large
//! enough to hold all of them, the rings are closed, and only then does the
//! variant read them, into the null sink (a counter). Nothing is paced and
//! nothing is lost, so the work does not depend on how fast the host is:
//! the same build over the same input does the same work, and the per-event
//! figures differ only by how often threads met at a hand-off (about 0.01 %
//! measured: 2.6 k instructions apart in 128 M). The stages
//! are told apart by their marker functions ([`super::stage`]); everything
//! else the variant does (reading the ring, copying, handing off) is the
//! rest. Writing the rings is set apart in [`fill_rings`], never inlined, so
//! its instructions can be subtracted by name.

use std::sync::Arc;

use super::{Context, Input, Knobs, PipelineError, Variant};
use crate::capture::{Capture, CaptureError, Transport};
use crate::classify::Classifier;
use crate::ledger::StageCounts;
use crate::replay::order::{KernelOrder, Step};
use crate::replay::{build_rings, event_len, ReplayError, ReplayOptions, RingWriters, SampleBytes};
use crate::sink::null::NullSink;
use crate::sink::Sink;

/// The name [`fill_rings`] goes by in a profile (not the variant's work).
pub const FILL_MARKER: &str = "harness::pipeline::count::fill_rings";

/// What one counted pass did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CountReport {
    pub variant: String,
    /// Samples written into the rings.
    pub events: u64,
    pub read: u64,
    pub decoded: u64,
    pub produced: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CountError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Rings(#[from] ReplayError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("{file}: the capture holds no samples to count over")]
    Empty { file: String },
    #[error("events: {0}: count over 1 to 1000000 events")]
    Events(u64),
    #[error("variant {variant}: {what} (a counted pass must read every event once)")]
    Incomplete { variant: &'static str, what: String },
}

/// Runs `variant` with `knobs` (but one worker) once over `events` samples
/// of `capture`.
pub fn count_pass(
    capture: &Capture,
    variant: &'static Variant,
    knobs: Knobs,
    events: u64,
) -> Result<CountReport, CountError> {
    if !(1..=1_000_000).contains(&events) {
        return Err(CountError::Events(events));
    }
    if capture.summary.samples == 0 {
        return Err(CountError::Empty {
            file: capture.file.clone(),
        });
    }
    // One worker: with two, which worker a batch lands on moves the count
    // (each keeps its own classifier scratch, whose lazily built automata
    // cost what they cost on first use per thread): 24.6 to 32.8 M
    // instructions of classify over the same 1000 events, against 2.6 k
    // apart with one. Sharded variants read one ring per thread whatever
    // this says, which is deterministic already.
    let knobs = Knobs {
        workers: 1,
        ..knobs
    };
    knobs.check(variant.name)?;
    // Every sample could land in one ring: each ring holds them all. A
    // record is the sample plus an 8-byte perf header, 8-byte aligned (the
    // ring buffer's header is as large), so 16 bytes over the largest event
    // is enough; one page more keeps the ring from ever being exactly full.
    let largest = capture
        .records()
        .iter()
        .map(|r| u64::from(r.orig))
        .max()
        .unwrap_or(4096);
    let ring_bytes = (events * (largest + 16) + 4096).next_power_of_two();
    let transport = if variant.transports.contains(&capture.meta.transport) {
        capture.meta.transport
    } else {
        variant.transport
    };
    let opts = ReplayOptions {
        transport: Some(transport),
        ring_bytes: Some(ring_bytes),
        rings: (transport == Transport::Perf).then_some(capture.meta.rings.max(1)),
        ..ReplayOptions::default()
    };
    let cfg = opts.resolve(&capture.meta)?;
    let (mut writers, source) = build_rings(&cfg)?;
    let written = fill_rings(capture, &mut writers, events)?;
    writers.close();
    let sink = Arc::new(NullSink::new());
    let ctx = Context::new(
        Arc::new(Classifier::default_rules()),
        sink.clone() as Arc<dyn Sink>,
    );
    let input = if variant.sharded {
        Input::Shards(probes::record::ShardedSource::into_shards(Box::new(source)))
    } else {
        Input::Single(Box::new(source) as Box<dyn probes::record::RecordSource>)
    };
    let run = (variant.build)(knobs).run(input, &ctx)?;
    let StageCounts {
        read,
        decoded,
        produced,
        ..
    } = run.stages;
    if read != written || decoded != written {
        return Err(CountError::Incomplete {
            variant: variant.name,
            what: format!("wrote {written} events, read {read}, decoded {decoded}"),
        });
    }
    Ok(CountReport {
        variant: variant.name.into(),
        events: written,
        read,
        decoded,
        produced,
    })
}

/// Writes the first `events` samples (looping over the capture) into the
/// rings; each ring is large enough that none is refused.
#[inline(never)]
pub fn fill_rings(
    capture: &Capture,
    writers: &mut RingWriters,
    events: u64,
) -> Result<u64, CountError> {
    let mut order = KernelOrder::new(capture);
    let mut written = 0;
    while written < events {
        match order.next_step()? {
            Step::Sample(s) => {
                let bytes = SampleBytes {
                    prefix: s.prefix,
                    len: event_len(s.prefix, s.orig as usize),
                    ts: None,
                };
                if !writers.output(s.ring, &bytes) {
                    return Err(CountError::Incomplete {
                        variant: "count",
                        what: format!("ring {} refused event {written}", s.ring),
                    });
                }
                written += 1;
            }
            Step::PassEnd => {}
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture() -> Option<Capture> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/captures/fixed4k-perf.pcapng");
        Capture::open(&p, crate::capture::Loading::Preload).ok()
    }

    #[test]
    fn every_variant_reads_every_event_once() {
        let c = capture().expect("the bundled capture");
        for v in crate::pipeline::VARIANTS {
            let r = count_pass(&c, v, (v.knobs)(), 700).unwrap();
            assert_eq!((r.events, r.read, r.decoded), (700, 700, 700), "{r:?}");
            assert!(r.produced > 0, "{r:?}");
        }
    }

    #[test]
    fn a_pass_of_no_events_is_refused() {
        let c = capture().expect("the bundled capture");
        let b = crate::pipeline::variant("batched").unwrap();
        assert!(matches!(
            count_pass(&c, b, (b.knobs)(), 0),
            Err(CountError::Events(0))
        ));
    }
}
