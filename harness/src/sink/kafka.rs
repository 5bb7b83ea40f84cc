//! The Kafka sink, through rdkafka (librdkafka built from source).
//!
//! - Producer: a [`ThreadedProducer`] (its own thread serves delivery reports)
//!   with batch size, linger, compression, acks and idempotence from
//!   [`KafkaConfig`]. Every delivery report is counted: delivered (with a CRC of
//!   the message, see [`super::message::message_crc`]) or failed (by error).
//! - Brokers: `--brokers` for a user's cluster. With none configured the sink
//!   starts librdkafka's in-process mock cluster (`test.mock.num.brokers`) and
//!   its label says so: "embedded mock Kafka (librdkafka MockCluster), not a real broker".
//! - Start: the sink fetches metadata within `connect_timeout`; a broker that
//!   does not answer is a [`SinkError::Kafka`] naming the brokers, not a hang.
//!   The topic must exist (auto-created topics are slow and unreliable on
//!   tansu, see docs/tuning.md, "Kafka"); a missing one is [`SinkError::NoTopic`].
//! - End: [`Sink::finish`] flushes, then consumes back, on each partition,
//!   the offset range this run's delivery reports span, counting and
//!   checksumming what is really stored there. (Runs sharing a topic must not
//!   overlap in time: their ranges would interleave.)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::message::{events_in, message_crc};
use super::{DropReason, ReadBack, Sink, SinkError, SinkReport};

/// How the sink's label names the embedded broker, wherever it is used.
pub const MOCK_LABEL: &str = "embedded mock Kafka (librdkafka MockCluster), not a real broker";

/// Producer and broker settings. `Default` is tuned for throughput on loopback.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port[,host:port]`; `None` starts the embedded mock cluster.
    pub brokers: Option<String>,
    pub topic: String,
    /// Partitions of the topic the sink creates on the mock cluster.
    pub mock_partitions: i32,
    /// `batch.num.messages`.
    pub batch_size: u32,
    /// `linger.ms`.
    pub linger_ms: u32,
    /// `compression.type`: none, gzip, snappy, lz4, zstd.
    pub compression: String,
    /// `acks`: 0, 1 or all.
    pub acks: String,
    /// `enable.idempotence` (librdkafka then requires acks=all).
    pub idempotence: bool,
    /// `message.timeout.ms`: how long a message may wait for delivery before
    /// its report says failed. Bounds how long a dead broker can hold a run.
    pub message_timeout: Duration,
    /// How long `send` retries while librdkafka's queue is full before it
    /// drops the message with [`DropReason::QueueFull`].
    pub enqueue_timeout: Duration,
    /// Bound on the metadata request at start (broker down -> error, not a hang).
    pub connect_timeout: Duration,
    /// `queue.buffering.max.messages`.
    pub queue_messages: u32,
    /// Consume the topic back in `finish`.
    pub consume_back: bool,
    /// Any other librdkafka producer property.
    pub extra: Vec<(String, String)>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: None,
            topic: "dropbench-events".into(),
            mock_partitions: 4,
            // 10 k messages of ~100 B = ~1 MB batches, librdkafka's max.
            batch_size: 10_000,
            // linger 5 ms gave 0.75 M msg/s on tansu; untuned linger costs 10x (docs/tuning.md, "Kafka").
            linger_ms: 5,
            compression: "lz4".into(),
            acks: "1".into(),
            idempotence: false,
            message_timeout: Duration::from_secs(30),
            enqueue_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            // 35 MiB ring / 4144 B = ~8.9 k events; 500 k queued messages is
            // ~1 s at the 600 k/s goal, ~50 MB of ~100 B messages.
            queue_messages: 500_000,
            consume_back: true,
            extra: Vec::new(),
        }
    }
}

/// Waiter for one synchronous send.
#[derive(Default)]
struct DeliverySlot {
    done: Mutex<bool>,
    cv: Condvar,
}

/// Counts delivery reports. Runs on the producer's poll thread.
#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    crc_sum: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    /// (lowest, highest) delivered offset per partition: the range the
    /// read-back reads. Watermarks would not do: tansu 0.6's high watermark can
    /// lag the last batch it stored (measured: 7742 reported, 7999 messages
    /// readable), which would both cut this run short and let the previous
    /// run's tail in. Only the poll thread takes this lock: uncontended.
    offsets: Mutex<BTreeMap<i32, (i64, i64)>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    /// 0 for an asynchronous send, else `Arc::into_raw` of a [`DeliverySlot`].
    type DeliveryOpaque = usize;

    fn delivery(&self, r: &DeliveryResult<'_>, opaque: usize) {
        match r {
            Ok(m) => {
                let payload = m.payload().unwrap_or(&[]);
                self.delivered.fetch_add(events_in(payload), Relaxed);
                let crc = message_crc(m.key().unwrap_or(&[]), payload);
                self.crc_sum.fetch_add(crc as u64, Relaxed);
                let mut offs = self.offsets.lock().unwrap_or_else(|p| p.into_inner());
                let r = offs
                    .entry(m.partition())
                    .or_insert((m.offset(), m.offset()));
                *r = (r.0.min(m.offset()), r.1.max(m.offset()));
            }
            Err((e, m)) => {
                let events = events_in(m.payload().unwrap_or(&[]));
                self.failed.fetch_add(events, Relaxed);
                let mut errs = self.errors.lock().unwrap_or_else(|p| p.into_inner());
                *errs.entry(e.to_string()).or_default() += events;
            }
        }
        release_slot(opaque, true);
    }
}

/// Takes back the reference `send_sync` leaked into the opaque, optionally
/// waking its waiter.
fn release_slot(opaque: usize, wake: bool) {
    if opaque == 0 {
        return;
    }
    // SAFETY: a non-zero opaque is always `Arc::into_raw` of a DeliverySlot made
    // in `send_sync`, and librdkafka hands each opaque back exactly once
    // (delivery report or failed enqueue), so the count is released once.
    let slot = unsafe { Arc::from_raw(opaque as *const DeliverySlot) };
    if wake {
        *slot.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        slot.cv.notify_all();
    }
}

pub struct KafkaSink {
    producer: ThreadedProducer<Deliveries>,
    cfg: KafkaConfig,
    /// The bootstrap servers actually used (the mock's when embedded).
    bootstrap: String,
    label: String,
    partitions: Vec<i32>,
    /// Events in the messages enqueued (a batch message counts its own),
    /// and the messages.
    accepted: AtomicU64,
    messages: AtomicU64,
    rejected: Mutex<BTreeMap<String, u64>>,
}

fn kerr(brokers: &str, what: impl std::fmt::Display) -> SinkError {
    SinkError::Kafka {
        brokers: brokers.to_owned(),
        what: what.to_string(),
    }
}

impl KafkaSink {
    /// Connects (or starts the embedded mock cluster) and checks the topic exists.
    pub fn new(cfg: KafkaConfig) -> Result<Self, SinkError> {
        let shown = cfg.brokers.clone().unwrap_or_else(|| MOCK_LABEL.to_owned());
        let mut cc = ClientConfig::new();
        match &cfg.brokers {
            Some(b) => cc.set("bootstrap.servers", b),
            // librdkafka replaces bootstrap.servers with a mock cluster owned
            // by this producer, living exactly as long as it.
            None => cc.set("test.mock.num.brokers", "1"),
        };
        cc.set("batch.num.messages", cfg.batch_size.to_string())
            .set("linger.ms", cfg.linger_ms.to_string())
            .set("compression.type", &cfg.compression)
            .set("acks", &cfg.acks)
            .set("enable.idempotence", cfg.idempotence.to_string())
            .set(
                "message.timeout.ms",
                cfg.message_timeout.as_millis().to_string(),
            )
            .set(
                "queue.buffering.max.messages",
                cfg.queue_messages.to_string(),
            )
            // Fail fast on a broker that is not there instead of retrying forever.
            .set("socket.connection.setup.timeout.ms", "3000")
            .set("reconnect.backoff.max.ms", "1000");
        for (k, v) in &cfg.extra {
            cc.set(k, v);
        }
        let producer: ThreadedProducer<Deliveries> = cc
            .create_with_context(Deliveries::default())
            .map_err(|e| kerr(&shown, format!("creating the producer: {e}")))?;
        let (bootstrap, label) = match &cfg.brokers {
            Some(b) => (b.clone(), format!("kafka {b} topic {}", cfg.topic)),
            None => {
                let mock = producer
                    .client()
                    .mock_cluster()
                    .ok_or_else(|| kerr(&shown, "librdkafka did not start its mock cluster"))?;
                mock.create_topic(&cfg.topic, cfg.mock_partitions, 1)
                    .map_err(|e| kerr(&shown, format!("creating topic {}: {e}", cfg.topic)))?;
                (
                    mock.bootstrap_servers(),
                    format!("kafka: {MOCK_LABEL}, topic {}", cfg.topic),
                )
            }
        };
        // All topics (None): asking for one topic by name may auto-create it.
        let md = producer
            .client()
            .fetch_metadata(None, cfg.connect_timeout)
            .map_err(|e| {
                kerr(
                    &shown,
                    format!(
                        "no answer to a metadata request within {:?} ({e}); is the broker running?",
                        cfg.connect_timeout
                    ),
                )
            })?;
        let topic = md
            .topics()
            .iter()
            .find(|t| t.name() == cfg.topic)
            .ok_or_else(|| SinkError::NoTopic {
                brokers: shown.clone(),
                topic: cfg.topic.clone(),
            })?;
        let partitions: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
        if partitions.is_empty() {
            return Err(kerr(
                &shown,
                format!("topic {} has no partitions", cfg.topic),
            ));
        }
        Ok(KafkaSink {
            producer,
            cfg,
            bootstrap,
            label,
            partitions,
            accepted: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            rejected: Mutex::new(BTreeMap::new()),
        })
    }

    /// Whether this sink runs on the embedded mock cluster.
    pub fn is_mock(&self) -> bool {
        self.cfg.brokers.is_none()
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The topic's partitions, from the metadata at start.
    pub fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    fn enqueue(&self, key: &[u8], value: &[u8], opaque: usize) -> Result<(), DropReason> {
        let events = events_in(value);
        let mut rec = BaseRecord::with_opaque_to(&self.cfg.topic, opaque)
            .key(key)
            .payload(value);
        let mut deadline = None;
        loop {
            match self.producer.send(rec) {
                Ok(()) => {
                    self.accepted.fetch_add(events, Relaxed);
                    self.messages.fetch_add(1, Relaxed);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    let d =
                        *deadline.get_or_insert_with(|| Instant::now() + self.cfg.enqueue_timeout);
                    if Instant::now() >= d {
                        release_slot(back.delivery_opaque, false);
                        return Err(DropReason::QueueFull);
                    }
                    // The poll thread frees queue space as reports come in;
                    // 100 us is ~60 events at 600 k/s, well inside a ring.
                    std::thread::sleep(Duration::from_micros(100));
                    rec = back;
                }
                Err((e, back)) => {
                    release_slot(back.delivery_opaque, false);
                    let mut r = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
                    *r.entry(e.to_string()).or_default() += 1;
                    return Err(DropReason::Rejected);
                }
            }
        }
    }

    /// Reads back, on each partition, the offsets this run's delivery reports
    /// span, counting and checksumming what the broker really holds there.
    fn consume_back(&self, timeout: Duration) -> Result<ReadBack, String> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", "dropbench-read-back")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("socket.connection.setup.timeout.ms", "3000")
            .create()
            .map_err(|e| format!("creating the read-back consumer: {e}"))?;
        let deadline = Instant::now() + timeout;
        // Fail fast on a broker that is gone rather than poll until the deadline.
        consumer
            .fetch_metadata(Some(&self.cfg.topic), self.cfg.connect_timeout)
            .map_err(|e| format!("broker does not answer: {e}"))?;
        let mut tpl = TopicPartitionList::new();
        let mut ends = BTreeMap::new();
        let ranges = self
            .producer
            .context()
            .offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (&p, &(first, last)) in &ranges {
            tpl.add_partition_offset(&self.cfg.topic, p, Offset::Offset(first))
                .map_err(|e| format!("partition {p}: {e}"))?;
            ends.insert(p, last + 1);
        }
        let mut rb = ReadBack::default();
        if ends.is_empty() {
            return Ok(rb);
        }
        consumer
            .assign(&tpl)
            .map_err(|e| format!("assigning partitions: {e}"))?;
        // Give up if nothing arrives for this long (a broker that died after the check).
        let idle_limit = self.cfg.connect_timeout.max(Duration::from_secs(5));
        let mut last_progress = Instant::now();
        while !ends.is_empty() {
            if last_progress.elapsed() >= idle_limit {
                return Err(format!(
                    "read back {} events, then nothing for {idle_limit:?} with partitions {:?} unfinished",
                    rb.events,
                    ends.keys().collect::<Vec<_>>()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "read back {} events, then timed out after {timeout:?} with partitions {:?} unfinished",
                    rb.events,
                    ends.keys().collect::<Vec<_>>()
                ));
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    last_progress = Instant::now();
                    let Some(&end) = ends.get(&m.partition()) else {
                        continue;
                    };
                    if m.offset() < end {
                        let payload = m.payload().unwrap_or(&[]);
                        rb.events += events_in(payload);
                        let crc = message_crc(m.key().unwrap_or(&[]), payload);
                        rb.crc_sum = rb.crc_sum.wrapping_add(crc as u64);
                    }
                    if m.offset() + 1 >= end {
                        ends.remove(&m.partition());
                    }
                }
                Some(Err(e)) => tracing::debug!("read-back: {e}"),
                None => {}
            }
        }
        Ok(rb)
    }
}

impl Sink for KafkaSink {
    fn progress(&self) -> super::SinkProgress {
        let ctx = self.producer.context();
        super::SinkProgress {
            accepted: self.accepted.load(Relaxed),
            done: ctx.delivered.load(Relaxed) + ctx.failed.load(Relaxed),
        }
    }

    fn send(&self, key: &[u8], value: &[u8]) -> Result<(), DropReason> {
        self.enqueue(key, value, 0)
    }

    fn send_sync(&self, key: &[u8], value: &[u8]) -> Result<(), DropReason> {
        let slot = Arc::new(DeliverySlot::default());
        let opaque = Arc::into_raw(slot.clone()) as usize;
        self.enqueue(key, value, opaque)?;
        // The report comes within message.timeout.ms; wait a little longer
        // than that so a lost report cannot hang the worker forever.
        let limit = Instant::now() + self.cfg.message_timeout + Duration::from_secs(5);
        let mut done = slot.done.lock().unwrap_or_else(|p| p.into_inner());
        while !*done && Instant::now() < limit {
            done = slot
                .cv
                .wait_timeout(done, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }

    fn finish(&self, timeout: Duration) -> Result<SinkReport, SinkError> {
        let started = Instant::now();
        // A flush that times out leaves messages in flight: counted as unresolved.
        let _ = self.producer.flush(timeout);
        let ctx = self.producer.context();
        let (accepted, delivered, failed) = (
            self.accepted.load(Relaxed),
            ctx.delivered.load(Relaxed),
            ctx.failed.load(Relaxed),
        );
        let mut report = SinkReport {
            label: self.label.clone(),
            accepted,
            messages: self.messages.load(Relaxed),
            delivered,
            failed,
            failed_by_error: ctx.errors.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            // In events, as the other counts (librdkafka's in-flight count is of messages).
            unresolved: accepted.saturating_sub(delivered + failed),
            delivered_crc_sum: ctx.crc_sum.load(Relaxed),
            read_back: None,
            read_back_error: None,
        };
        if self.cfg.consume_back {
            let left = timeout
                .saturating_sub(started.elapsed())
                .max(Duration::from_secs(10));
            match self.consume_back(left) {
                Ok(rb) => report.read_back = Some(rb),
                Err(e) => report.read_back_error = Some(e),
            }
        }
        Ok(report)
    }
}

impl KafkaSink {
    /// Messages refused at enqueue, by error text.
    pub fn rejected_by_error(&self) -> BTreeMap<String, u64> {
        self.rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Creates `topic` with `partitions` partitions (replication 1) through the
/// Kafka admin API, as `tansu topic create` or `kafka-topics.sh --create` do.
/// An existing topic is an error naming it.
pub fn create_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<(), SinkError> {
    let admin = admin_client(brokers)?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().request_timeout(Some(timeout));
    let results = block_on(admin.create_topics([&new], &opts))
        .map_err(|e| kerr(brokers, format!("creating topic {topic}: {e}")))?;
    topic_results(brokers, "creating", results)
}

/// The broker's topics whose names start with `prefix`, sorted.
pub fn topics(brokers: &str, prefix: &str, timeout: Duration) -> Result<Vec<String>, SinkError> {
    let md = admin_client(brokers)?
        .inner()
        .fetch_metadata(None, timeout)
        .map_err(|e| kerr(brokers, format!("listing topics: {e}")))?;
    let mut names: Vec<String> = md
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    Ok(names)
}

/// Deletes `topic` through the Kafka admin API.
pub fn delete_topic(brokers: &str, topic: &str, timeout: Duration) -> Result<(), SinkError> {
    let admin = admin_client(brokers)?;
    let opts = AdminOptions::new().request_timeout(Some(timeout));
    let results = block_on(admin.delete_topics(&[topic], &opts))
        .map_err(|e| kerr(brokers, format!("deleting topic {topic}: {e}")))?;
    topic_results(brokers, "deleting", results)
}

fn admin_client(brokers: &str) -> Result<AdminClient<DefaultClientContext>, SinkError> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("socket.connection.setup.timeout.ms", "3000")
        .create()
        .map_err(|e| kerr(brokers, format!("creating the admin client: {e}")))
}

fn topic_results(
    brokers: &str,
    doing: &str,
    results: Vec<rdkafka::admin::TopicResult>,
) -> Result<(), SinkError> {
    for r in results {
        if let Err((topic, code)) = r {
            return Err(kerr(brokers, format!("{doing} topic {topic}: {code}")));
        }
    }
    Ok(())
}

/// Runs one future to completion on this thread. The admin futures resolve
/// from librdkafka's own thread, which wakes us; the 100 ms park bound is a
/// safety net, not a poll loop.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock_cfg(topic: &str) -> KafkaConfig {
        KafkaConfig {
            topic: topic.into(),
            mock_partitions: 3,
            linger_ms: 1,
            ..Default::default()
        }
    }

    #[test]
    fn mock_cluster_round_trip_counts_and_checksums() {
        let sink = KafkaSink::new(mock_cfg("unit-rt")).unwrap();
        assert!(sink.label().contains(MOCK_LABEL));
        let mut want = 0u64;
        for i in 0..500u32 {
            let k = i.to_be_bytes();
            let v = format!("value-{i}");
            want += message_crc(&k, v.as_bytes()) as u64;
            if i % 100 == 0 {
                sink.send_sync(&k, v.as_bytes()).unwrap();
            } else {
                sink.send(&k, v.as_bytes()).unwrap();
            }
        }
        let r = sink.finish(Duration::from_secs(20)).unwrap();
        assert_eq!(
            (r.accepted, r.delivered, r.failed, r.unresolved),
            (500, 500, 0, 0)
        );
        assert_eq!(r.delivered_crc_sum, want);
        assert_eq!(
            r.read_back,
            Some(ReadBack {
                events: 500,
                crc_sum: want
            }),
            "{:?}",
            r.read_back_error
        );
    }

    #[test]
    fn unreachable_broker_is_a_clear_error_not_a_hang() {
        // Port 1 on loopback: nothing listens there.
        let cfg = KafkaConfig {
            brokers: Some("127.0.0.1:1".into()),
            connect_timeout: Duration::from_secs(2),
            ..Default::default()
        };
        let e = KafkaSink::new(cfg).err().expect("no broker on port 1");
        assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
        assert!(e.to_string().contains("is the broker running"), "{e}");
    }
}
