//! Several events per Kafka message: the `message_events` knob.
//!
//! librdkafka's cost is per message: the enqueue (a `rd_kafka_msg_new`, an
//! allocation and a copy, the partitioner, a queue lock) and the delivery
//! report cost ~2 us per message here whatever the ~100-byte payload
//! (docs/tuning.md, "Where the time goes"). A pipeline thread that packs its
//! events into batch values (docs/kafka-message-format.md, version 2) pays
//! that once per batch.
//!
//! Each thread keeps one open batch per lane ([`message::lane_of`]: a hash of
//! pid and tid), so one thread's events stay in one lane's messages, in
//! order, and reach one partition, as single-event messages do. A lane is
//! sent when it holds `message_events` events or [`MAX_BATCH_BYTES`], and
//! every open lane when the thread's drain ends ([`MessageBatches::send_all`]):
//! a batch waits for no timer, so batching adds no latency beyond the drain
//! it was read in. At low rates drains are small and so are the batches; at
//! high rates they fill.

use hdrhistogram::Histogram;
use probes::abi::Event;

use super::record_latency;
use crate::classify::Classification;
use crate::ledger::StageCounts;
use crate::sink::message::{self, LANES};
use crate::sink::Sink;

/// A lane is sent once its value reaches this size, whatever its count:
/// 256 KiB is a quarter of librdkafka's default `message.max.bytes` (1 MB),
/// 63 fixed4k-sized paths, or ~2 600 typical ~100-byte events.
pub const MAX_BATCH_BYTES: usize = 256 << 10;

/// Most events one batch value can count (its header's u16).
pub const MAX_MESSAGE_EVENTS: usize = u16::MAX as usize;

struct Lane {
    value: Vec<u8>,
    /// Each event's origin, for its latency when the batch is sent.
    origins: Vec<u64>,
}

/// One thread's open batches.
pub(crate) struct MessageBatches {
    max_events: usize,
    lanes: Vec<Lane>,
    /// Lanes that hold events, so a flush visits only those.
    open: Vec<usize>,
}

impl MessageBatches {
    /// Batches of up to `max_events` (2..=[`MAX_MESSAGE_EVENTS`]) events.
    pub fn new(max_events: usize) -> Self {
        MessageBatches {
            max_events: max_events.clamp(1, MAX_MESSAGE_EVENTS),
            lanes: (0..LANES)
                .map(|_| Lane {
                    value: Vec::new(),
                    origins: Vec::new(),
                })
                .collect(),
            open: Vec::with_capacity(LANES),
        }
    }

    /// Adds `ev`'s value to its lane; `Some(lane)` when that lane is now
    /// full and must be sent.
    #[inline]
    pub fn push(&mut self, ev: &Event<'_>, v: &Classification, origin_ns: u64) -> Option<usize> {
        let i = message::lane_of(ev);
        let lane = &mut self.lanes[i];
        if lane.origins.is_empty() {
            message::begin_batch(&mut lane.value);
            self.open.push(i);
        }
        message::append_value(ev, v, &mut lane.value);
        lane.origins.push(origin_ns);
        (lane.origins.len() >= self.max_events || lane.value.len() >= MAX_BATCH_BYTES).then_some(i)
    }

    /// Sends lane `i`'s batch (if it holds any): its events count as
    /// produced, or as dropped with the sink's reason, all together.
    pub fn send(
        &mut self,
        i: usize,
        sink: &dyn Sink,
        counts: &mut StageCounts,
        latency: &mut Histogram<u64>,
    ) {
        let lane = &mut self.lanes[i];
        let n = lane.origins.len();
        if n == 0 {
            return;
        }
        message::set_batch_count(&mut lane.value, n as u16);
        match sink.send(&message::lane_key(i), &lane.value) {
            Ok(()) => {
                counts.produced += n as u64;
                for &o in &lane.origins {
                    record_latency(latency, o);
                }
            }
            Err(r) => *counts.dropped.entry(r).or_default() += n as u64,
        }
        lane.origins.clear();
        if let Some(at) = self.open.iter().position(|&l| l == i) {
            self.open.swap_remove(at);
        }
    }

    /// Sends every open lane (the end of a drain, or of the run).
    pub fn send_all(
        &mut self,
        sink: &dyn Sink,
        counts: &mut StageCounts,
        latency: &mut Histogram<u64>,
    ) {
        while let Some(&i) = self.open.last() {
            self.send(i, sink, counts, latency);
        }
    }

    /// Events waiting in open lanes.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.lanes.iter().map(|l| l.origins.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Category, ClassifierRuleKind, Sensitivity};
    use crate::sink::message::{decode_batch, events_in};
    use crate::sink::{DropReason, SinkProgress, SinkReport};
    use probes::abi::{encode_event, EventHeader, Layout};
    use std::sync::Mutex;

    /// Keeps what it is sent; refuses everything when `refuse`.
    #[derive(Default)]
    struct Keep {
        sent: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
        refuse: bool,
    }
    impl Sink for Keep {
        fn progress(&self) -> SinkProgress {
            SinkProgress::default()
        }
        fn send(&self, key: &[u8], value: &[u8]) -> Result<(), DropReason> {
            if self.refuse {
                return Err(DropReason::QueueFull);
            }
            self.sent
                .lock()
                .unwrap()
                .push((key.to_vec(), value.to_vec()));
            Ok(())
        }
        fn finish(&self, _: std::time::Duration) -> Result<SinkReport, crate::sink::SinkError> {
            Ok(SinkReport::default())
        }
    }

    const V: Classification = Classification {
        category: Category::Temp,
        sensitivity: Sensitivity::Low,
        rule: 1,
        rule_kind: ClassifierRuleKind::Prefix,
    };

    fn raw(pid: u32, path: &[u8]) -> Vec<u8> {
        let h = EventHeader {
            pid,
            tid: pid,
            syscall: 1,
            kind: 1,
            ..Default::default()
        };
        let mut r = Vec::new();
        encode_event(Layout::Compact, &h, path, &mut r);
        r
    }

    #[test]
    fn a_lane_is_sent_when_full_and_the_rest_at_the_end_of_the_drain() {
        let sink = Keep::default();
        let (mut counts, mut lat) = (StageCounts::default(), crate::results::latency_histogram());
        let mut b = MessageBatches::new(4);
        // Two threads, ten events each, interleaved.
        let (a, c) = (raw(100, b"/a"), raw(200, b"/c"));
        let (ea, ec) = (Event::decode(&a).unwrap(), Event::decode(&c).unwrap());
        let mut full = 0;
        for _ in 0..10 {
            for ev in [&ea, &ec] {
                if let Some(l) = b.push(ev, &V, 1) {
                    full += 1;
                    b.send(l, &sink, &mut counts, &mut lat);
                }
            }
        }
        assert_eq!(full, 4, "4 + 4 events per thread filled a lane twice");
        assert_eq!(b.pending(), 4);
        b.send_all(&sink, &mut counts, &mut lat);
        assert_eq!(b.pending(), 0);
        assert_eq!(counts.produced, 20);
        assert_eq!(lat.len(), 20);
        let sent = sink.sent.lock().unwrap();
        assert_eq!(sent.len(), 6);
        let total: u64 = sent.iter().map(|(_, v)| events_in(v)).sum();
        assert_eq!(total, 20);
        // Every message holds one thread's events, under its lane's key.
        for (k, v) in sent.iter() {
            let evs = decode_batch(v).unwrap();
            assert!(evs.iter().all(|e| e.pid == evs[0].pid));
            let lane = if evs[0].pid == 100 {
                message::lane_of(&ea)
            } else {
                message::lane_of(&ec)
            };
            assert_eq!(k[..], message::lane_key(lane)[..]);
        }
    }

    #[test]
    fn a_refused_batch_drops_all_its_events_with_the_reason() {
        let sink = Keep {
            refuse: true,
            ..Default::default()
        };
        let (mut counts, mut lat) = (StageCounts::default(), crate::results::latency_histogram());
        let mut b = MessageBatches::new(100);
        let r = raw(7, b"/x");
        let ev = Event::decode(&r).unwrap();
        for _ in 0..5 {
            assert_eq!(b.push(&ev, &V, 1), None);
        }
        b.send_all(&sink, &mut counts, &mut lat);
        assert_eq!(counts.produced, 0);
        assert_eq!(counts.dropped.get(&DropReason::QueueFull), Some(&5));
    }

    #[test]
    fn a_lane_of_long_paths_is_sent_at_the_byte_bound() {
        let mut b = MessageBatches::new(MAX_MESSAGE_EVENTS);
        let r = raw(9, &[b'p'; 4000]);
        let ev = Event::decode(&r).unwrap();
        let per = message::VALUE_HEADER_LEN + 4000;
        let want = (MAX_BATCH_BYTES - message::BATCH_HEADER_LEN).div_ceil(per);
        let mut pushed = 0;
        while b.push(&ev, &V, 1).is_none() {
            pushed += 1;
            assert!(pushed < 1000);
        }
        assert_eq!(pushed + 1, want);
    }
}
