//! `zero-copy-sharded` and `compact`: one reader thread per ring, each decoding
//! records in place in the ring and classifying them itself.
//!
//! Nothing is copied out of the ring and nothing is allocated per event: the
//! event borrows its path from the ring, the classifier's match buffers and the
//! message buffer are per-thread and reused, and the sink copies the ~100-byte
//! message (librdkafka's own enqueue copy). Rings run in parallel, one thread
//! each (per-CPU perf rings: one per CPU), so classification is parallel
//! across rings with no hand-off between threads at all.
//!
//! `compact` is the same code on the compact event layout (header + path, ~100
//! bytes instead of 4144), which shrinks what the kernel writes and the reader
//! touches.
//!
//! `tuned` adds a path cache per reader thread and packs 64 events into each
//! Kafka message.
//!
//! Knobs: batch_size (records per drain), read_timeout, path_cache,
//! message_events (each drain's events packed into batch messages). workers
//! and channel_depth are not used: the rings set the parallelism.

use std::time::Instant;

use probes::record::{Batch, RecordRef};

use super::clocks::StageClocks;
use super::{
    check_knobs, count_lost, join, merge_latency, thread_cpu, Context, EventProcessor, Input,
    Knobs, Pipeline, PipelineError, RunReport, StageCpu, Transport, Variant,
};

pub const VARIANT_SHARDED: Variant = Variant {
    name: "zero-copy-sharded",
    summary: "1 reader per ring, decode in place, classify in the reader, rings in parallel, no per-event allocation",
    layout: probes::abi::Layout::Fixed4k,
    transport: Transport::Perf,
    layouts: &[probes::abi::Layout::Fixed4k, probes::abi::Layout::Compact],
    transports: &[Transport::Perf, Transport::Ringbuf],
    sharded: true,
    // Left out of the default sweep: on fixed4k it measured the same NDR
    // as batched in every default run, and its design is inside compact and
    // tuned; the default sweep stays under 3 minutes with tuned added.
    in_default_sweep: false,
    knobs: || Knobs {
        batch_size: 512,
        ..Knobs::default()
    },
    tune_kafka: |_| {},
    build: |k| {
        Box::new(ZeroCopy {
            name: "zero-copy-sharded",
            knobs: k,
        })
    },
};

pub const VARIANT_COMPACT: Variant = Variant {
    name: "compact",
    summary: "zero-copy-sharded on the compact event layout (header + path only)",
    layout: probes::abi::Layout::Compact,
    layouts: &[probes::abi::Layout::Compact],
    in_default_sweep: true,
    build: |k| {
        Box::new(ZeroCopy {
            name: "compact",
            knobs: k,
        })
    },
    ..VARIANT_SHARDED
};

/// Every remedy the seed names that a perf-buffer tracer can apply, in one
/// variant: small events (`compact`), per-ring readers decoding in place with
/// no hand-off (`zero-copy-sharded`), classification that is cheap for paths
/// seen before (the path cache), events batched into Kafka messages (64 a
/// message: `message_events`) and an asynchronous producer batched by
/// librdkafka (linger 5 ms, 10 k messages, lz4: the default sink). Each
/// piece is also a variant or knob of its own, so a sweep can show what each
/// one buys (docs/tuning.md, "What each remedy buys").
pub const VARIANT_TUNED: Variant = Variant {
    name: "tuned",
    summary: "compact plus a path cache per reader and 64 events a Kafka message: every remedy a perf-buffer tracer can apply",
    knobs: || Knobs {
        // The bundled fixed4k capture holds 4 103 distinct paths of ~163
        // bytes (670 KB of keys); the real-programs one fewer. 4 MiB per
        // reader thread keeps every one of them with room for traffic 6x as
        // varied before the cache starts over.
        path_cache: 4 << 20,
        // librdkafka costs ~1.5 us a message (enqueue, delivery report, its
        // threads), whatever the ~100-byte payload: 64 events a message cut
        // the sink client from 1 456 to 444 ns/event and the broker from 519
        // to 311 (harness stages --rate 300k, real broker); 256 gave only
        // 389 and 296 for four times the batch (docs/tuning.md, "Batch
        // messages").
        message_events: 64,
        ..(VARIANT_COMPACT.knobs)()
    },
    // librdkafka's threads cost the same ~1.1 us/event at linger 5 and 20 ms
    // (pipeline_zero_loss, real broker): the default producer is kept.
    build: |k| {
        Box::new(ZeroCopy {
            name: "tuned",
            knobs: k,
        })
    },
    ..VARIANT_COMPACT
};

pub struct ZeroCopy {
    name: &'static str,
    knobs: Knobs,
}

impl Pipeline for ZeroCopy {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run(&self, input: Input, ctx: &Context) -> Result<RunReport, PipelineError> {
        check_knobs(self.name, &self.knobs)?;
        let shards = input.into_shards();
        let started = Instant::now();
        let knobs = self.knobs;
        let name = self.name;
        std::thread::scope(|s| {
            let readers: Vec<_> = shards
                .into_iter()
                .map(|mut src| {
                    let ctx = ctx.clone();
                    s.spawn(move || {
                        let mut p = EventProcessor::with_knobs(ctx.classifier.clone(), &knobs);
                        let sink = &*ctx.sink;
                        let res = loop {
                            if ctx.stopping() {
                                break Ok(());
                            }
                            let r =
                                src.read_batch(knobs.batch_size, knobs.read_timeout, &mut |r| {
                                    match r {
                                        RecordRef::Sample {
                                            data, origin_ns, ..
                                        } => {
                                            p.counts.read += 1;
                                            p.process(data, origin_ns, sink);
                                        }
                                        RecordRef::Lost { count, .. } => {
                                            count_lost(&mut p.counts, count)
                                        }
                                    }
                                });
                            // A drain's batch messages go now, not after the next one.
                            p.flush(sink);
                            match r {
                                Ok(Batch::Closed) => break Ok(()),
                                Ok(_) => {}
                                Err(e) => break Err(e),
                            }
                        };
                        p.flush(sink);
                        (p.counts, thread_cpu(), p.latency, p.clocks, res)
                    })
                })
                .collect();
            let mut stages = crate::ledger::StageCounts::default();
            let mut cpu = StageCpu::default();
            let mut first_err = None;
            let mut latency = None;
            let mut stage_ns = StageClocks::default();
            for h in readers {
                let (c, t, l, k, res) = join(name, "reader", h)?;
                stages.add(&c);
                cpu.reader += t;
                merge_latency(&mut latency, &l);
                stage_ns.merge(&k);
                if let Err(e) = res {
                    first_err.get_or_insert(e);
                }
            }
            if let Some(source) = first_err {
                return Err(PipelineError::Source {
                    variant: name,
                    source,
                });
            }
            Ok(RunReport {
                variant: name.into(),
                stages,
                wall: started.elapsed(),
                cpu,
                stage_ns,
                latency,
            })
        })
    }
}
