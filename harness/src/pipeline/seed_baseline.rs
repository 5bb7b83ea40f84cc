//! `seed-baseline`: the seed's design, kept faithful on purpose.
//!
//! - One reader thread takes one record per read and copies it into a fresh
//!   `Vec` (like cilium/ebpf's `perf.Reader.Read`, which allocates a record).
//! - A bounded channel (`channel_depth` records) feeds `workers` classifier
//!   threads (the seed's Go channel and worker pool).
//! - Each worker decodes into an owned event (the path copied out, as a Go
//!   `string(b)` conversion does), classifies, serializes into a fresh buffer, and
//!   publishes one message at a time, waiting for its delivery (a synchronous
//!   producer) before taking the next record.
//!
//! Knobs: workers, channel_depth, read_timeout, sync_publish (default on;
//! off publishes asynchronously, to separate the two costs). batch_size is not used: the
//! seed reads one record per call; nor is message_events: the seed publishes
//! one message per event.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::bounded;
use hdrhistogram::Histogram;
use probes::abi::Event;
use probes::record::{Batch, RecordRef};

use super::clocks::{cpu_clock_cost, Lap, StageClocks};
use super::{
    check_knobs, count_lost, join, merge_latency, record_latency, thread_cpu, Context, Input,
    Knobs, Pipeline, PipelineError, RunReport, StageCpu, Transport, Variant,
};
use crate::classify::Classifier;
use crate::ledger::StageCounts;

pub const VARIANT: Variant = Variant {
    name: "seed-baseline",
    summary: "the seed: 1 reader copying each record, bounded channel, N workers publishing one message at a time",
    layout: probes::abi::Layout::Fixed4k,
    transport: Transport::Perf,
    layouts: &[probes::abi::Layout::Fixed4k, probes::abi::Layout::Compact],
    transports: &[Transport::Perf, Transport::Ringbuf],
    sharded: false,
    in_default_sweep: true,
    knobs: || Knobs {
        workers: 4,
        // A Go `make(chan []byte, 1024)`.
        channel_depth: 1024,
        batch_size: 1,
        sync_publish: true,
        ..Knobs::default()
    },
    // A synchronous producer (sarama's SyncProducer, or confluent-kafka-go's
    // Produce + wait on the delivery channel) sends each message at once.
    tune_kafka: |k| k.linger_ms = 0,
    build: |k| Box::new(SeedBaseline { knobs: k }),
};

pub struct SeedBaseline {
    knobs: Knobs,
}

/// The seed's decoded event: owned fields and an owned copy of the path.
struct OwnedEvent {
    event: probes::abi::EventHeader,
    path: Vec<u8>,
}

impl Pipeline for SeedBaseline {
    fn name(&self) -> &'static str {
        VARIANT.name
    }

    fn run(&self, input: Input, ctx: &Context) -> Result<RunReport, PipelineError> {
        check_knobs(VARIANT.name, &self.knobs)?;
        let mut source = input.into_single();
        let (tx, rx) = bounded::<(u64, Vec<u8>)>(self.knobs.channel_depth);
        let started = Instant::now();
        let knobs = self.knobs;
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..knobs.workers)
                .map(|_| {
                    let rx = rx.clone();
                    let ctx = ctx.clone();
                    s.spawn(move || worker(rx, &ctx.classifier, &*ctx.sink, &knobs))
                })
                .collect();
            drop(rx);
            let reader = s.spawn(move || {
                let mut counts = StageCounts::default();
                let res = loop {
                    if ctx.stopping() {
                        break Ok(());
                    }
                    let r = source.read_batch(1, knobs.read_timeout, &mut |r| match r {
                        RecordRef::Sample {
                            data, origin_ns, ..
                        } => {
                            counts.read += 1;
                            // A fresh allocation per record, as the seed does.
                            let _ = tx.send((origin_ns, data.to_vec()));
                        }
                        RecordRef::Lost { count, .. } => count_lost(&mut counts, count),
                    });
                    match r {
                        Ok(Batch::Closed) => break Ok(()),
                        Ok(_) => {}
                        Err(e) => break Err(e),
                    }
                };
                drop(tx);
                (counts, thread_cpu(), res)
            });
            let (mut counts, reader_cpu, res) = join(VARIANT.name, "reader", reader)?;
            let mut cpu = StageCpu {
                reader: reader_cpu,
                ..Default::default()
            };
            let mut latency = None;
            let mut stage_ns = StageClocks::default();
            for w in workers {
                let (c, t, l, k) = join(VARIANT.name, "worker", w)?;
                counts.add(&c);
                cpu.workers += t;
                merge_latency(&mut latency, &l);
                stage_ns.merge(&k);
            }
            res.map_err(|source| PipelineError::Source {
                variant: VARIANT.name,
                source,
            })?;
            Ok(RunReport {
                variant: VARIANT.name.into(),
                stages: counts,
                wall: started.elapsed(),
                cpu,
                stage_ns,
                latency,
            })
        })
    }
}

fn worker(
    rx: crossbeam_channel::Receiver<(u64, Vec<u8>)>,
    classifier: &Arc<Classifier>,
    sink: &dyn crate::sink::Sink,
    knobs: &Knobs,
) -> (
    StageCounts,
    std::time::Duration,
    Histogram<u64>,
    StageClocks,
) {
    let mut counts = StageCounts::default();
    let mut latency = crate::results::latency_histogram();
    let mut clocks = StageClocks::default();
    let sync_publish = knobs.sync_publish;
    // A synchronous send blocks until delivery: it is timed on this thread's
    // CPU clock (wall time would count the wait), less what reading it costs.
    let cpu_read_ns = if sync_publish { cpu_clock_cost() } else { 0 };
    let mut scratch = classifier.scratch_with_cache(knobs.path_cache);
    for (origin_ns, rec) in rx {
        let mut sw = clocks.start();
        let owned = match super::stage::decode(&rec) {
            Ok(ev) => OwnedEvent {
                event: ev.header,
                path: ev.path.to_vec(),
            },
            Err(_) => {
                counts.decode_errors += 1;
                continue;
            }
        };
        counts.decoded += 1;
        let ev = Event {
            header: owned.event,
            path: &owned.path,
        };
        let decode = sw.split();
        let classification =
            super::stage::classify(classifier, &ev, &mut scratch, std::time::Duration::ZERO);
        counts.classified += 1;
        let classify = sw.split();
        // A fresh message buffer per event.
        let mut value = Vec::new();
        let key = super::stage::serialize(&ev, &classification, &mut value);
        let serialize = sw.split();
        let (sent, send) = if sync_publish {
            let cpu0 = sw.on().then(thread_cpu);
            let sent = sink.send_sync(&key, &value);
            let send = cpu0.map_or(0, |c0| {
                (thread_cpu().saturating_sub(c0).as_nanos() as u64).saturating_sub(cpu_read_ns)
            });
            (sent, send)
        } else {
            let sent = sink.send(&key, &value);
            (sent, sw.split())
        };
        sw.finish(
            &mut clocks,
            Lap {
                decode,
                classify,
                serialize,
                send,
            },
            0,
        );
        match sent {
            Ok(()) => {
                counts.produced += 1;
                record_latency(&mut latency, origin_ns);
            }
            Err(r) => counts.drop_one(r),
        }
    }
    (counts, thread_cpu(), latency, clocks)
}
