//! `batched`: drains many records per wakeup and passes batches in pooled
//! buffers.
//!
//! - One reader thread calls `read_batch(batch_size)` and copies each record
//!   into a [`RecordBatch`] taken from a pool: one contiguous buffer plus
//!   offsets, reused run after run, so steady state allocates nothing.
//! - Full batches (and the partial batch left at the end of each drain) go
//!   over a bounded channel (`channel_depth` batches) to `workers` threads
//!   that decode in place in the batch buffer, classify, serialize into a
//!   reused buffer and publish asynchronously, then return the batch to the pool.
//!
//! Knobs: workers, channel_depth, batch_size, read_timeout, path_cache,
//! message_events (each batch's events packed into batch messages).

use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use probes::record::{Batch, RecordRef};

use super::clocks::StageClocks;
use super::{
    check_knobs, count_lost, join, merge_latency, thread_cpu, Context, EventProcessor, Input,
    Knobs, Pipeline, PipelineError, RunReport, StageCpu, Transport, Variant,
};
use crate::ledger::StageCounts;

pub const VARIANT: Variant = Variant {
    name: "batched",
    summary: "1 reader draining batches into pooled buffers, N workers, async publish",
    layout: probes::abi::Layout::Fixed4k,
    transport: Transport::Perf,
    layouts: &[probes::abi::Layout::Fixed4k, probes::abi::Layout::Compact],
    transports: &[Transport::Perf, Transport::Ringbuf],
    sharded: false,
    in_default_sweep: true,
    knobs: || Knobs {
        workers: 2,
        channel_depth: 16,
        batch_size: 256,
        ..Knobs::default()
    },
    tune_kafka: |_| {},
    build: |k| Box::new(Batched { knobs: k }),
};

/// Records copied back to back into one buffer.
#[derive(Default)]
pub(crate) struct RecordBatch {
    pub buf: Vec<u8>,
    /// (start, end, origin_ns) of each record in `buf`.
    pub spans: Vec<(u32, u32, u64)>,
}

impl RecordBatch {
    pub fn push(&mut self, data: &[u8], origin_ns: u64) {
        let start = self.buf.len() as u32;
        self.buf.extend_from_slice(data);
        self.spans.push((start, self.buf.len() as u32, origin_ns));
    }
    pub fn clear(&mut self) {
        self.buf.clear();
        self.spans.clear();
    }
    pub fn len(&self) -> usize {
        self.spans.len()
    }
    pub fn records(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.spans
            .iter()
            .map(|&(a, b, o)| (&self.buf[a as usize..b as usize], o))
    }
}

/// A fixed set of batches circulating between reader and workers. Its size,
/// `channel_depth + workers + 1`, lets every channel slot and every worker
/// hold one while the reader fills another, so the pool never starves a
/// pipeline that keeps up, and bounds memory when it does not.
pub(crate) struct BatchPool {
    pub free_tx: Sender<RecordBatch>,
    pub free_rx: Receiver<RecordBatch>,
}

impl BatchPool {
    pub fn new(count: usize, bytes_each: usize, records_each: usize) -> Self {
        let (free_tx, free_rx) = bounded(count);
        for _ in 0..count {
            let b = RecordBatch {
                buf: Vec::with_capacity(bytes_each),
                spans: Vec::with_capacity(records_each),
            };
            free_tx.send(b).expect("pool has room for its own batches");
        }
        BatchPool { free_tx, free_rx }
    }
}

pub struct Batched {
    knobs: Knobs,
}

impl Pipeline for Batched {
    fn name(&self) -> &'static str {
        VARIANT.name
    }

    fn run(&self, input: Input, ctx: &Context) -> Result<RunReport, PipelineError> {
        check_knobs(VARIANT.name, &self.knobs)?;
        let source = input.into_single();
        // A fixed4k record is 4144 bytes (+ up to 7 of perf padding).
        let pool = BatchPool::new(
            self.knobs.channel_depth + self.knobs.workers + 1,
            self.knobs.batch_size * 4152,
            self.knobs.batch_size,
        );
        run_batched(
            VARIANT.name,
            self.knobs,
            source,
            ctx,
            pool,
            |b, data, origin| b.push(data, origin),
        )
    }
}

/// The reader/worker skeleton shared with `ringbuf`: `fill` decides what of
/// each sample goes into the batch (the whole record, or a compacted copy).
pub(crate) fn run_batched(
    variant: &'static str,
    knobs: Knobs,
    mut source: Box<dyn probes::record::RecordSource>,
    ctx: &Context,
    pool: BatchPool,
    fill: fn(&mut RecordBatch, &[u8], u64),
) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let (tx, rx) = bounded::<RecordBatch>(knobs.channel_depth);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..knobs.workers)
            .map(|_| {
                let rx = rx.clone();
                let free = pool.free_tx.clone();
                let ctx = ctx.clone();
                s.spawn(move || {
                    let mut p = EventProcessor::with_knobs(ctx.classifier.clone(), &knobs);
                    for mut batch in rx {
                        for (rec, origin) in batch.records() {
                            p.process(rec, origin, &*ctx.sink);
                        }
                        // The batch's messages go before the next batch is awaited.
                        p.flush(&*ctx.sink);
                        batch.clear();
                        let _ = free.send(batch);
                    }
                    (p.counts, thread_cpu(), p.latency, p.clocks)
                })
            })
            .collect();
        drop(rx);
        let free_rx = pool.free_rx.clone();
        let reader = s.spawn(move || {
            let mut counts = StageCounts::default();
            let mut cur = free_rx.recv().expect("pool starts full");
            let res = loop {
                if ctx.stopping() {
                    break Ok(());
                }
                let r = source.read_batch(knobs.batch_size, knobs.read_timeout, &mut |r| match r {
                    RecordRef::Sample {
                        data, origin_ns, ..
                    } => {
                        counts.read += 1;
                        fill(&mut cur, data, origin_ns);
                        if cur.len() >= knobs.batch_size {
                            let next = free_rx.recv().expect("workers return batches");
                            let _ = tx.send(std::mem::replace(&mut cur, next));
                        }
                    }
                    RecordRef::Lost { count, .. } => count_lost(&mut counts, count),
                });
                // Ship what this drain found rather than wait for a full batch.
                if cur.len() > 0 {
                    let next = free_rx.recv().expect("workers return batches");
                    let _ = tx.send(std::mem::replace(&mut cur, next));
                }
                match r {
                    Ok(Batch::Closed) => break Ok(()),
                    Ok(_) => {}
                    Err(e) => break Err(e),
                }
            };
            drop(tx);
            (counts, thread_cpu(), res)
        });
        let (mut counts, reader_cpu, res) = join(variant, "reader", reader)?;
        let mut cpu = StageCpu {
            reader: reader_cpu,
            ..Default::default()
        };
        let mut latency = None;
        let mut stage_ns = StageClocks::default();
        for w in workers {
            let (c, t, l, k) = join(variant, "worker", w)?;
            counts.add(&c);
            cpu.workers += t;
            merge_latency(&mut latency, &l);
            stage_ns.merge(&k);
        }
        res.map_err(|source| PipelineError::Source { variant, source })?;
        Ok(RunReport {
            variant: variant.into(),
            stages: counts,
            wall: started.elapsed(),
            cpu,
            stage_ns,
            latency,
        })
    })
}
