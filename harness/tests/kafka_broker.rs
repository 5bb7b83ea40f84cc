//! The Kafka sink against a real Kafka-protocol broker (tansu) on loopback.
//!
//! `ci/kafka-up.sh` starts the shared broker and exports
//! `DROPBENCH_TEST_BROKERS`; the broker-kill test starts its own tansu so that
//! killing it cannot hurt the other tests. The tests that need a broker (or
//! tansu) are ignored unless the `broker-tests` feature is on (`ci/test.sh`
//! turns it on after starting the broker); with it on, a missing broker fails
//! them.

mod support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::classify::Classifier;
use harness::ledger::{KernelCounts, Ledger};
use harness::pipeline::memory::{MemoryRecord, MemorySource};
use harness::pipeline::{variant, Context, Input};
use harness::sink::{KafkaConfig, KafkaSink, Sink};
use probes::abi::{EventHeader, Kind, Layout, Syscall};
use probes::record::{Batch, RecordRef, RecordSource, ShardedSource, SourceError};
use support::cli::{harness, ok, results_dir, sweep};
use support::events::{encode, header};

/// The shared broker's address; the broker-tests feature is on, so its
/// absence is a failure.
fn brokers() -> String {
    match std::env::var("DROPBENCH_TEST_BROKERS") {
        Ok(b) if !b.is_empty() => b,
        _ => panic!(
            "the broker-tests feature is on but DROPBENCH_TEST_BROKERS is not set \
             (run `source ci/kafka-up.sh`, or test without the feature)"
        ),
    }
}

fn events(rings: usize, n: usize) -> Vec<Vec<MemoryRecord>> {
    let paths = [
        "/etc/shadow",
        "/usr/lib/libc.so.6",
        "/tmp/x",
        "/home/a/.bashrc",
    ];
    let mut out = vec![Vec::new(); rings];
    let mut buf = Vec::new();
    for i in 0..n {
        let (pid, tid) = (7 + (i % 13) as u32, 9 + (i % 5) as u32);
        let h = EventHeader {
            flags: (i % 3) as u32,
            ..header(i as u64, pid, tid, Syscall::Openat, Kind::Enter)
        };
        let path = format!("{}/{i}", paths[i % paths.len()]);
        encode(&mut buf, Layout::Fixed4k, None, &h, path.as_bytes());
        out[i % rings].push(MemoryRecord::Sample(buf.clone()));
    }
    out
}

fn run_into(
    sink: Arc<KafkaSink>,
    src: Box<dyn RecordSource>,
    name: &str,
    kernel: Option<KernelCounts>,
) -> Ledger {
    let v = variant(name).unwrap();
    let ctx = Context::new(Arc::new(Classifier::default_rules()), sink.clone());
    let report = (v.build)((v.knobs)())
        .run(Input::Single(src), &ctx)
        .unwrap();
    Ledger {
        kernel,
        stages: report.stages,
        sink: sink.finish(Duration::from_secs(60)).unwrap(),
    }
}

#[test]
#[cfg_attr(
    not(feature = "broker-tests"),
    ignore = "needs a Kafka broker (source ci/kafka-up.sh)"
)]
fn produce_then_consume_back_counts_and_checksums_match() {
    let brokers = brokers();
    let sink = Arc::new(
        KafkaSink::new(KafkaConfig {
            brokers: Some(brokers),
            topic: "dropbench-test-roundtrip".into(),
            ..Default::default()
        })
        .unwrap(),
    );
    assert!(!sink.is_mock());
    let src = MemorySource::new(events(2, 20_000));
    let ledger = run_into(
        sink,
        Box::new(src),
        "batched",
        Some(KernelCounts {
            emitted: 20_000,
            accepted: 20_000,
            lost: 0,
            lost_unreported: 0,
        }),
    );
    println!("{}", ledger.render());
    assert_eq!(ledger.check(), vec![], "{}", ledger.render());
    assert_eq!(ledger.sink.delivered, 20_000);
    assert_eq!(ledger.sink.read_back.as_ref().unwrap().events, 20_000);
}

/// Batch messages (`message_events`): the broker holds fewer messages, and
/// every count of the ledger, read back included, is still of events.
#[test]
#[cfg_attr(
    not(feature = "broker-tests"),
    ignore = "needs a Kafka broker (source ci/kafka-up.sh)"
)]
fn batch_messages_round_trip_through_a_real_broker_event_for_event() {
    let brokers = brokers();
    let topic = format!("dropbench-test-batches-{}", std::process::id());
    harness::sink::kafka::create_topic(&brokers, &topic, 4, Duration::from_secs(10)).unwrap();
    let sink = Arc::new(
        KafkaSink::new(KafkaConfig {
            brokers: Some(brokers.clone()),
            topic: topic.clone(),
            ..Default::default()
        })
        .unwrap(),
    );
    let v = variant("batched").unwrap();
    let knobs = harness::pipeline::Knobs {
        message_events: 64,
        ..(v.knobs)()
    };
    let ctx = Context::new(Arc::new(Classifier::default_rules()), sink.clone());
    let report = (v.build)(knobs)
        .run(
            Input::Single(Box::new(MemorySource::new(events(2, 20_000)))),
            &ctx,
        )
        .unwrap();
    let ledger = Ledger {
        kernel: Some(KernelCounts {
            emitted: 20_000,
            accepted: 20_000,
            lost: 0,
            lost_unreported: 0,
        }),
        stages: report.stages,
        sink: sink.finish(Duration::from_secs(60)).unwrap(),
    };
    let _ = harness::sink::kafka::delete_topic(&brokers, &topic, Duration::from_secs(10));
    println!("{}", ledger.render());
    assert_eq!(ledger.check(), vec![], "{}", ledger.render());
    assert_eq!(ledger.sink.delivered, 20_000);
    assert_eq!(ledger.sink.read_back.as_ref().unwrap().events, 20_000);
    // 20 000 events in at most 64 a message: at least 313 messages, and far
    // fewer than one per event (drains end batches early, lanes split them).
    let m = ledger.sink.messages;
    assert!((313..5_000).contains(&m), "{m} messages");
}

#[test]
fn broker_down_at_start_is_a_clear_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let e = KafkaSink::new(KafkaConfig {
        brokers: Some(addr.clone()),
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .err()
    .expect("nothing listens there");
    let msg = e.to_string();
    assert!(
        msg.contains(&addr) && msg.contains("is the broker running"),
        "{msg}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "broker-tests"),
    ignore = "needs a Kafka broker (source ci/kafka-up.sh)"
)]
fn missing_topic_is_a_clear_error() {
    let brokers = brokers();
    let e = KafkaSink::new(KafkaConfig {
        brokers: Some(brokers),
        topic: "dropbench-no-such-topic".into(),
        ..Default::default()
    })
    .err()
    .expect("topic does not exist");
    assert!(
        e.to_string()
            .contains("\"dropbench-no-such-topic\" does not exist"),
        "{e}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "broker-tests"),
    ignore = "needs a Kafka broker (source ci/kafka-up.sh)"
)]
fn topics_are_created_and_deleted_through_the_admin_api() {
    let brokers = brokers();
    let topic = format!("dropbench-test-admin-{}", std::process::id());
    let t = Duration::from_secs(10);
    harness::sink::kafka::create_topic(&brokers, &topic, 2, t).unwrap();
    let cfg = KafkaConfig {
        brokers: Some(brokers.clone()),
        topic: topic.clone(),
        ..Default::default()
    };
    let sink = KafkaSink::new(cfg.clone()).unwrap();
    assert_eq!(sink.partitions(), &[0, 1]);
    drop(sink);
    harness::sink::kafka::delete_topic(&brokers, &topic, t).unwrap();
    let e = KafkaSink::new(cfg).err().expect("deleted");
    assert!(e.to_string().contains("does not exist"), "{e}");
}

#[test]
#[cfg_attr(
    not(feature = "broker-tests"),
    ignore = "needs a Kafka broker (source ci/kafka-up.sh)"
)]
fn a_sweep_into_a_real_broker_deletes_every_trial_topic_it_made() {
    let brokers = brokers();
    let t = Duration::from_secs(10);
    let before = harness::sink::kafka::topics(&brokers, "dropbench-sweep-", t).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A few short trials of one variant, each into its own topic.
    let plan = format!(
        "captures = [{:?}]\nvariants = [\"compact\"]\nsink = \"kafka\"\nbrokers = {brokers:?}\n\
         window = \"300ms\"\nwarmup = \"100ms\"\nlo = 5000.0\nhi = 20000.0\nmax_trials = 3\nedge_trials = 1\n",
        support::fixture("fixed4k-perf.pcapng")
    );
    ok(&sweep(harness(), dir.path(), &plan).output().unwrap());
    // The trials wrote to the broker (one topic each, named in their results)...
    let results =
        std::fs::read_to_string(results_dir(dir.path()).join("latest/sweep.json")).unwrap();
    let made = results.matches("topic dropbench-sweep-").count();
    assert!(made >= 2, "trial topics named in the results: {made}");
    // ...and none of those topics is left.
    let after = harness::sink::kafka::topics(&brokers, "dropbench-sweep-", t).unwrap();
    let left: Vec<_> = after.iter().filter(|n| !before.contains(n)).collect();
    assert!(left.is_empty(), "topics the sweep left behind: {left:?}");
}

/// Hands out a memory source's records at most `per_call` at a time with a
/// pause in between, so a run lasts long enough to kill the broker during it.
struct Paced {
    inner: Box<dyn RecordSource>,
    per_call: usize,
    pause: Duration,
}

impl RecordSource for Paced {
    fn rings(&self) -> u32 {
        self.inner.rings()
    }
    fn read_batch(
        &mut self,
        max: usize,
        _timeout: Duration,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<Batch, SourceError> {
        std::thread::sleep(self.pause);
        self.inner
            .read_batch(max.min(self.per_call), Duration::ZERO, f)
    }
}

struct Broker {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu() -> Option<PathBuf> {
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tansu");
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("tansu"))
        .chain([home])
        .find(|p| p.is_file())
}

/// Starts a private tansu on a free port and creates `topic`.
fn private_broker(topic: &str) -> (Broker, String) {
    let bin = tansu().expect(
        "the broker-tests feature is on but tansu is not installed \
         (cargo install tansu --locked --features dynostore,libsql)",
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("tansu.log")).unwrap();
    let child = Command::new(&bin)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let broker = Broker { child, _dir: dir };
    // Up to 30 s for the listener (a cold start takes well under 1 s here).
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "private tansu did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = Command::new(&bin)
        .args([
            "topic",
            "create",
            "--broker",
            &url,
            "--partitions",
            "2",
            topic,
        ])
        .status()
        .unwrap();
    assert!(st.success(), "tansu topic create {topic}");
    (broker, format!("127.0.0.1:{port}"))
}

#[test]
#[cfg_attr(
    not(feature = "broker-tests"),
    ignore = "needs tansu (cargo install tansu)"
)]
fn broker_killed_mid_run_counts_every_failure_and_the_run_ends() {
    let (mut broker, addr) = private_broker("dropbench-test-kill");
    let sink = Arc::new(
        KafkaSink::new(KafkaConfig {
            brokers: Some(addr),
            topic: "dropbench-test-kill".into(),
            // Small bounds so the dead broker costs seconds, not minutes:
            // a message fails 2 s after it was queued, and a send gives up
            // after waiting 0.5 s for room in a 5 k-message queue.
            message_timeout: Duration::from_secs(2),
            enqueue_timeout: Duration::from_millis(500),
            queue_messages: 5_000,
            connect_timeout: Duration::from_secs(2),
            ..Default::default()
        })
        .unwrap(),
    );
    // 15 k events at 50 per 2 ms = ~25 k/s: the run lasts ~0.6 s unhindered.
    let total = 15_000;
    let src = Paced {
        inner: Box::new(MemorySource::new(events(1, total))),
        per_call: 50,
        pause: Duration::from_millis(2),
    };
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(250));
        broker.child.kill().unwrap();
        broker.child.wait().unwrap();
        broker
    });
    let ledger = run_into(
        sink,
        Box::new(src),
        "zero-copy-sharded",
        Some(KernelCounts {
            emitted: total as u64,
            accepted: total as u64,
            lost: 0,
            lost_unreported: 0,
        }),
    );
    drop(killer.join().unwrap());
    println!("{}", ledger.render());
    let s = &ledger.stages;
    let k = &ledger.sink;
    // Nothing vanished: every event is produced or dropped with a reason, and
    // every produced message has a delivery report.
    assert_eq!(s.classified, total as u64);
    assert_eq!(s.classified, s.produced + s.dropped_total());
    assert_eq!(k.accepted, k.delivered + k.failed);
    assert_eq!(k.unresolved, 0);
    assert!(
        k.failed + s.dropped_total() > 0,
        "the kill must cost something"
    );
    assert!(
        k.delivered > 0,
        "some messages went through before the kill"
    );
    // The only broken equations are the ones the dead broker makes
    // uncheckable: reading the topic back.
    let bad = ledger.check();
    assert!(!bad.is_empty());
    assert!(bad.iter().all(|b| b.check.starts_with("read")), "{bad:?}");
    assert!(ledger.banner().unwrap().contains("INVALID"));
}

#[test]
fn sharded_memory_source_splits_per_ring() {
    // Guards the helper the Kafka tests rely on.
    let shards = Box::new(MemorySource::new(events(3, 30))).into_shards();
    assert_eq!(shards.len(), 3);
}
