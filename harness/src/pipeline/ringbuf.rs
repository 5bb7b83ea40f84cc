//! `ringbuf`: the best design for the single shared BPF ring buffer.
//!
//! One ring means one reader, so classifying in the reader (as
//! `zero-copy-sharded` does per ring) would put all the work on one core.
//! Instead the reader decodes each record in place and copies out only what
//! the event carries (its 48-byte header and its path, rebuilt as a compact
//! event: ~100 bytes, not 4144) into pooled batches; `workers` threads then
//! classify, serialize and publish in parallel. The reader's per-event cost is
//! a header check and one small copy. Records that fail to decode are passed
//! through unchanged so the workers count them as decode errors.
//!
//! Knobs: workers, channel_depth, batch_size, read_timeout, message_events.

use probes::abi::{Event, HEADER_LEN};

use super::batched::{run_batched, BatchPool, RecordBatch};
use super::{
    check_knobs, Context, Input, Knobs, Pipeline, PipelineError, RunReport, Transport, Variant,
};

pub const VARIANT: Variant = Variant {
    name: "ringbuf",
    summary: "BPF ring buffer, compact events: 1 reader copying header + path into pooled batches, N workers",
    layout: probes::abi::Layout::Compact,
    transport: Transport::Ringbuf,
    // It copies header + path only: a fixed4k record cut short would not decode.
    layouts: &[probes::abi::Layout::Compact],
    transports: &[Transport::Ringbuf],
    sharded: false,
    in_default_sweep: true,
    knobs: || Knobs {
        workers: 2,
        channel_depth: 64,
        batch_size: 512,
        ..Knobs::default()
    },
    tune_kafka: |_| {},
    build: |k| Box::new(Ringbuf { knobs: k }),
};

pub struct Ringbuf {
    knobs: Knobs,
}

/// Copies the header and the path only (the bytes a compact event holds,
/// without its padding), or the whole record if it does not decode.
fn compact_copy(b: &mut RecordBatch, data: &[u8], origin_ns: u64) {
    match Event::decode(data) {
        Ok(ev) => b.push(&data[..HEADER_LEN + ev.path.len()], origin_ns),
        Err(_) => b.push(data, origin_ns),
    }
}

impl Pipeline for Ringbuf {
    fn name(&self) -> &'static str {
        VARIANT.name
    }

    fn run(&self, input: Input, ctx: &Context) -> Result<RunReport, PipelineError> {
        check_knobs(VARIANT.name, &self.knobs)?;
        let source = input.into_single();
        // Typical paths are < 100 bytes: 256 B per record leaves room.
        let pool = BatchPool::new(
            self.knobs.channel_depth + self.knobs.workers + 1,
            self.knobs.batch_size * 256,
            self.knobs.batch_size,
        );
        run_batched(VARIANT.name, self.knobs, source, ctx, pool, compact_copy)
    }
}
