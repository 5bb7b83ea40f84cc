//! Where classified events go: Kafka (rdkafka), a file, or nowhere.
//!
//! Every sink counts what it accepted and what became of it, so the
//! [`crate::ledger::Ledger`] can check `produced = delivered + failed` and,
//! where the sink can be read back (Kafka topic, file), that what is there is
//! what was delivered: count and [`message::message_crc`] sum.

pub mod file;
pub mod kafka;
pub mod message;
pub mod null;

use std::collections::BTreeMap;
use std::time::Duration;

pub use file::FileSink;
pub use kafka::{KafkaConfig, KafkaSink};
pub use null::NullSink;

/// Why the pipeline dropped a classified event instead of producing it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The sink's queue stayed full for longer than its enqueue timeout
    /// (Kafka: librdkafka's producer queue, e.g. while the broker is down).
    QueueFull,
    /// The sink refused the message outright (too large, unknown topic, I/O error).
    Rejected,
}

impl DropReason {
    pub const ALL: &'static [DropReason] = &[DropReason::QueueFull, DropReason::Rejected];
    pub fn name(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Rejected => "rejected",
        }
    }
}

/// What was read back from the sink's storage after the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ReadBack {
    /// Events in the messages read back ([`message::events_in`]: a batch
    /// message counts its events). Older results called it `messages`.
    #[serde(alias = "messages")]
    pub events: u64,
    /// Wrapping sum of [`message::message_crc`] over the messages read back.
    pub crc_sum: u64,
}

/// A sink's own account of a run, taken by [`Sink::finish`]. Every count is
/// of events ([`message::events_in`]), so the ledger can set it against the
/// pipeline's: a version-1 message is one event, a batch message its count.
/// Checksums are over messages as they were sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SinkReport {
    /// What the sink is, as a user should read it (e.g. names the mock broker).
    pub label: String,
    /// Events in the messages the sink accepted (Kafka: enqueued in librdkafka).
    pub accepted: u64,
    /// Messages the sink accepted (equal to `accepted` without batching;
    /// absent in results written before batch messages, read as 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub messages: u64,
    /// Delivery reports that said delivered (null/file: written).
    pub delivered: u64,
    /// Delivery reports that said failed.
    pub failed: u64,
    /// Failed deliveries by error text.
    pub failed_by_error: BTreeMap<String, u64>,
    /// Accepted but with no delivery report when `finish` gave up waiting.
    pub unresolved: u64,
    /// Wrapping sum of [`message::message_crc`] over delivered messages.
    pub delivered_crc_sum: u64,
    /// What is actually stored (consumed back from the topic / re-read from
    /// the file); `None` when the sink keeps nothing (null).
    pub read_back: Option<ReadBack>,
    /// Why reading back failed, if it did.
    pub read_back_error: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Errors setting up or finishing a sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("kafka brokers {brokers}: {what}")]
    Kafka { brokers: String, what: String },
    #[error("kafka brokers {brokers}: topic {topic:?} does not exist (create it first: ci/kafka-up.sh does for the test topics)")]
    NoTopic { brokers: String, topic: String },
    #[error("sink file {path}: {source}")]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("sink file {path}: offset {offset}: {what}")]
    FileCorrupt {
        path: std::path::PathBuf,
        offset: u64,
        what: String,
    },
}

/// Which sink a run writes to, as the CLI names it: `null`, `file:PATH` or
/// `kafka` (with [`KafkaConfig`]; no brokers = the embedded mock cluster).
#[derive(Debug, Clone)]
pub enum SinkSpec {
    Null,
    File(std::path::PathBuf),
    Kafka(KafkaConfig),
}

impl SinkSpec {
    /// Parses `null`, `file:PATH` or `kafka`; `kafka` takes `brokers` and
    /// `topic` (the other producer settings keep their defaults).
    pub fn parse(s: &str, brokers: Option<String>, topic: Option<String>) -> Result<Self, String> {
        match s {
            "null" => Ok(SinkSpec::Null),
            "kafka" => Ok(SinkSpec::Kafka(KafkaConfig {
                brokers,
                topic: topic.unwrap_or_else(|| KafkaConfig::default().topic),
                ..Default::default()
            })),
            _ => match s.strip_prefix("file:") {
                Some(p) if !p.is_empty() => Ok(SinkSpec::File(p.into())),
                _ => Err(format!(
                    "unknown sink {s:?}; expected null, file:PATH or kafka"
                )),
            },
        }
    }

    /// Opens the sink. For Kafka this connects (or starts the mock cluster)
    /// and checks the topic, so a broker that is down fails here.
    pub fn open(&self) -> Result<std::sync::Arc<dyn Sink>, SinkError> {
        Ok(match self {
            SinkSpec::Null => std::sync::Arc::new(NullSink::new()),
            SinkSpec::File(p) => std::sync::Arc::new(FileSink::create(p)?),
            SinkSpec::Kafka(k) => std::sync::Arc::new(KafkaSink::new(k.clone())?),
        })
    }

    /// What a user reads in output: names the embedded mock broker as such.
    pub fn describe(&self) -> String {
        match self {
            SinkSpec::Null => "null (discards messages)".into(),
            SinkSpec::File(p) => format!("file {}", p.display()),
            SinkSpec::Kafka(k) => {
                // The producer settings go with every result, so a figure
                // says which settings it was measured with.
                let settings = format!(
                    "linger.ms {}, batch.num.messages {}, compression {}, acks {}",
                    k.linger_ms, k.batch_size, k.compression, k.acks
                );
                match &k.brokers {
                    Some(b) => format!("kafka {b} topic {} ({settings})", k.topic),
                    None => format!(
                        "kafka: {}, topic {} ({settings})",
                        kafka::MOCK_LABEL,
                        k.topic
                    ),
                }
            }
        }
    }
}

/// How far a sink has got, read while a run goes on (the trial's steady-state
/// verdict watches `done` grow against what the rings took).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkProgress {
    /// Events in the messages accepted so far.
    pub accepted: u64,
    /// Events whose message's fate is known: delivered or failed (null/file/memory:
    /// every accepted message, at once).
    pub done: u64,
}

/// A destination for serialized messages. Shared by all of a pipeline's
/// threads (`Arc<dyn Sink>`), so every method takes `&self`.
pub trait Sink: Send + Sync {
    /// Progress so far; cheap (a few relaxed loads), callable from any thread at any time.
    fn progress(&self) -> SinkProgress;

    /// Hands one message to the sink without waiting for it to be stored.
    fn send(&self, key: &[u8], value: &[u8]) -> Result<(), DropReason>;

    /// Hands one message to the sink and waits until it is stored or has
    /// failed (the seed's synchronous publish). A failed delivery still
    /// returns `Ok`: it was produced, and the failure is counted by the sink.
    fn send_sync(&self, key: &[u8], value: &[u8]) -> Result<(), DropReason> {
        self.send(key, value)
    }

    /// Waits up to `timeout` for outstanding deliveries, reads back what was
    /// stored where possible, and reports.
    fn finish(&self, timeout: Duration) -> Result<SinkReport, SinkError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_specs_parse_and_name_the_mock_broker() {
        assert!(matches!(
            SinkSpec::parse("null", None, None),
            Ok(SinkSpec::Null)
        ));
        match SinkSpec::parse("file:/tmp/x.bin", None, None) {
            Ok(SinkSpec::File(p)) => assert_eq!(p, std::path::Path::new("/tmp/x.bin")),
            other => panic!("{other:?}"),
        }
        let mock = SinkSpec::parse("kafka", None, Some("t1".into())).unwrap();
        assert_eq!(
            mock.describe(),
            "kafka: embedded mock Kafka (librdkafka MockCluster), not a real broker, topic t1 \
             (linger.ms 5, batch.num.messages 10000, compression lz4, acks 1)"
        );
        let real = SinkSpec::parse("kafka", Some("127.0.0.1:9092".into()), None).unwrap();
        assert_eq!(
            real.describe(),
            "kafka 127.0.0.1:9092 topic dropbench-events \
             (linger.ms 5, batch.num.messages 10000, compression lz4, acks 1)"
        );
        let e = SinkSpec::parse("file:", None, None).unwrap_err();
        assert!(e.contains("unknown sink \"file:\""), "{e}");
        assert!(SinkSpec::parse("kafak", None, None).is_err());
    }
}
