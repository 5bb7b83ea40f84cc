//! What a run cost, stage by stage: the per-stage table of CPU time, ns per
//! event and share of the machine (docs/tuning.md, "Where the time goes").
//!
//! - [`CostWatch`] brackets a run: the process's CPU (every thread: ours,
//!   librdkafka's, the mock cluster's), the broker's CPU when its process is
//!   known ([`BrokerProcess`]), the wall time, and the process's peak RSS
//!   (reset at the start).
//! - [`stage_table`] splits that into stages, in pipeline order: `producer`,
//!   `reader`, (`hand-off`), `decode`, `classify`, `serialize`, `sink client`,
//!   (`broker`). Threads that do one stage are measured by their own CPU
//!   clock; stages that share a thread by the sampled stage clocks
//!   ([`super::clocks`]); the sink client by what is left of the process.

use std::time::Instant;

use super::clocks::{StageClocks, StageEstimate};
use super::StageCpu;
use crate::ledger::StageCounts;
use crate::results::{CpuTime, StageResult};
use crate::sink::kafka::MOCK_LABEL;

/// The stages' names, in pipeline order.
pub const PRODUCER: &str = "producer";
pub const READER: &str = "reader";
pub const HAND_OFF: &str = "hand-off";
pub const DECODE: &str = "decode";
pub const CLASSIFY: &str = "classify";
pub const SERIALIZE: &str = "serialize";
pub const SINK_CLIENT: &str = "sink client";
pub const BROKER: &str = "broker";
/// Every stage the table can have, in pipeline order.
pub const STAGE_ORDER: &[&str] = &[
    PRODUCER,
    READER,
    HAND_OFF,
    DECODE,
    CLASSIFY,
    SERIALIZE,
    SINK_CLIENT,
    BROKER,
];

/// The Kafka broker's process on this machine, whose CPU the table charges
/// to the `broker` stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerProcess {
    pub pid: u32,
}

impl BrokerProcess {
    /// The broker's pid: `DROPBENCH_BROKER_PID` (or the benchmark's
    /// `DROPBENCH_BENCH_BROKER_PID`), else the pid file `ci/kafka-up.sh`
    /// writes (`$DROPBENCH_KAFKA_DIR/tansu.pid`, else `target/kafka/tansu.pid`
    /// under the working directory or the source tree). `None` unless it
    /// names a running process.
    pub fn locate() -> Option<BrokerProcess> {
        let from_env = ["DROPBENCH_BROKER_PID", "DROPBENCH_BENCH_BROKER_PID"]
            .iter()
            .find_map(|k| std::env::var(k).ok());
        let text = from_env.or_else(|| {
            let mut files = Vec::new();
            if let Ok(d) = std::env::var("DROPBENCH_KAFKA_DIR") {
                files.push(std::path::PathBuf::from(d).join("tansu.pid"));
            }
            files.push("target/kafka/tansu.pid".into());
            files.push(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/kafka/tansu.pid"),
            );
            files.iter().find_map(|f| std::fs::read_to_string(f).ok())
        })?;
        let b = BrokerProcess {
            pid: text.trim().parse().ok()?,
        };
        b.cpu_ns().map(|_| b)
    }

    /// CPU the process has used so far (user + system), from /proc/PID/stat.
    pub fn cpu_ns(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        stat_cpu_ticks(&stat).map(|t| t * 1_000_000_000 / hz)
    }
}

/// utime + stime (fields 14 and 15, clock ticks) of a /proc/PID/stat line.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: count
    // from the last ')'. What follows starts at field 3, so field 14 is
    // index 11 and field 15 index 12.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Brackets one run: started before its producer, stopped once the pipeline
/// has drained (before the sink's final flush and read-back, which are the
/// check's cost, not the pipeline's).
#[derive(Debug)]
pub struct CostWatch {
    wall: Instant,
    process: CpuTime,
    broker: Option<(BrokerProcess, u64)>,
    rss_reset: bool,
}

/// What a [`CostWatch`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub wall_ns: u64,
    /// Every thread of this process.
    pub process_ns: u64,
    /// The broker process's CPU and pid, when it is known.
    pub broker: Option<(BrokerProcess, u64)>,
    /// Peak RSS over the run; `None` when the peak could not be reset.
    pub peak_rss_bytes: Option<u64>,
    /// Online CPUs (the share's denominator is wall x CPUs).
    pub cpus: u32,
}

impl CostWatch {
    /// Resets the process's peak RSS and reads the clocks.
    pub fn start() -> CostWatch {
        let rss_reset = crate::host::reset_peak_rss();
        let broker = BrokerProcess::locate().and_then(|b| Some((b, b.cpu_ns()?)));
        CostWatch {
            wall: Instant::now(),
            process: CpuTime::process(),
            broker,
            rss_reset,
        }
    }

    pub fn stop(&self) -> Cost {
        Cost {
            wall_ns: self.wall.elapsed().as_nanos() as u64,
            process_ns: CpuTime::process().since(self.process).total_ns(),
            broker: self
                .broker
                .and_then(|(b, before)| Some((b, b.cpu_ns()?.saturating_sub(before)))),
            peak_rss_bytes: if self.rss_reset {
                crate::host::current_hwm()
            } else {
                None
            },
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
        }
    }
}

/// Where the messages went, as the stage table needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// A Kafka broker outside this process.
    Kafka,
    /// librdkafka's mock cluster, inside this process.
    MockKafka,
    /// null or file: no client threads of its own.
    Local,
}

impl SinkKind {
    /// From a sink's label (`SinkReport::label`): the Kafka sink's label names
    /// the mock cluster by [`MOCK_LABEL`].
    pub fn of_label(label: &str) -> SinkKind {
        if label.contains(MOCK_LABEL) {
            SinkKind::MockKafka
        } else if label.starts_with("kafka") {
            SinkKind::Kafka
        } else {
            SinkKind::Local
        }
    }
}

/// Everything the table is made from.
#[derive(Debug, Clone)]
pub struct StageFigures {
    /// The replay producer's (or kernel injector's) thread CPU.
    pub producer: CpuTime,
    pub offered: u64,
    pub accepted: u64,
    pub lost: u64,
    pub counts: StageCounts,
    pub cpu: StageCpu,
    pub clocks: StageClocks,
    pub cost: Cost,
    pub sink: SinkKind,
    /// Messages the sink delivered, and failed or left unresolved.
    pub delivered: u64,
    pub undelivered: u64,
}

fn ns(d: std::time::Duration) -> u64 {
    d.as_nanos() as u64
}

/// The stages of one run in pipeline order, each with its CPU, ns per
/// event read and share of the machine.
///
/// - `reader`: the reader threads' CPU; in a variant that processes events
///   in its readers (no workers), less the sampled stages' estimate.
/// - `hand-off` (variants with workers): the workers' CPU less the sampled
///   stages' estimate: channel receive, batch return, latency bookkeeping.
/// - `decode`, `classify`, `serialize`: the sampled estimates. If the sampled
///   stages add up to more than the threads that ran them used, the send
///   lap's waiting comes off first ([`StageEstimate::fitted`]).
/// - `sink client`: the sampled send (enqueue) on our threads plus everything
///   else the process used: librdkafka's threads (and the mock cluster's).
/// - `broker`: the broker process's CPU, for a real Kafka broker whose pid
///   is known.
pub fn stage_table(f: &StageFigures) -> Vec<StageResult> {
    let events = f.counts.read;
    let inline = f.cpu.workers.is_zero();
    // The threads the sampled stages ran on.
    let host_ns = ns(if inline { f.cpu.reader } else { f.cpu.workers });
    let est: StageEstimate = f.clocks.estimate().fitted(host_ns as f64);
    let host_rest = (host_ns as f64 - est.total()).max(0.0) as u64;
    let ours = f.producer.total_ns() + ns(f.cpu.reader) + ns(f.cpu.workers);
    let rest_of_process = f.cost.process_ns.saturating_sub(ours);
    let c = &f.counts;
    let sent_ok = c.produced;
    let mut out =
        vec![
            stage(
                PRODUCER,
                f.offered,
                f.accepted,
                f.lost,
                f.producer.total_ns(),
            ),
            stage(
                READER,
                c.read,
                c.read,
                0,
                if inline { host_rest } else { ns(f.cpu.reader) },
            )
            .noted(inline.then_some(
                "reader threads' CPU less the sampled decode, classify, serialize and send",
            )),
        ];
    if !inline {
        out.push(stage(HAND_OFF, c.read, c.read, 0, host_rest).noted(Some(
            "worker threads' CPU less the sampled stages: channel, batch return, bookkeeping",
        )));
    }
    let sampled = Some("sampled: 1 event in 64 timed, scaled to every event");
    out.push(
        stage(
            DECODE,
            c.read,
            c.decoded,
            c.decode_errors,
            est.decode as u64,
        )
        .noted(sampled),
    );
    out.push(stage(CLASSIFY, c.decoded, c.classified, 0, est.classify as u64).noted(sampled));
    out.push(
        stage(
            SERIALIZE,
            c.classified,
            c.classified,
            0,
            est.serialize as u64,
        )
        .noted(sampled),
    );
    out.push(
        stage(
            SINK_CLIENT,
            c.classified,
            sent_ok,
            c.dropped_total(),
            est.send as u64 + rest_of_process,
        )
        .noted(Some(match f.sink {
            SinkKind::Kafka => "sampled enqueue on our threads + librdkafka's own threads (process CPU less every thread above)",
            SinkKind::MockKafka => "sampled enqueue on our threads + librdkafka's threads, including its in-process mock cluster (no real broker)",
            SinkKind::Local => "sampled send on our threads + the rest of the process (process CPU less every thread above)",
        })),
    );
    if let (SinkKind::Kafka, Some((b, broker_ns))) = (f.sink, f.cost.broker) {
        out.push(
            stage(BROKER, sent_ok, f.delivered, f.undelivered, broker_ns)
                .noted(Some(&format!("broker process {} (/proc/PID/stat)", b.pid))),
        );
    }
    set_rates(&mut out, events, f.cost.wall_ns, f.cost.cpus);
    out
}

/// Fills each stage's `ns_per_event` (its CPU over `events`) and `cpu_share`
/// (its CPU over `wall_ns` x `cpus`) from its CPU time.
pub(crate) fn set_rates(stages: &mut [StageResult], events: u64, wall_ns: u64, cpus: u32) {
    let capacity = wall_ns as f64 * cpus.max(1) as f64;
    for s in stages {
        let cpu = s.cpu.total_ns() as f64;
        s.ns_per_event = if events == 0 {
            0.0
        } else {
            cpu / events as f64
        };
        s.cpu_share = if capacity > 0.0 { cpu / capacity } else { 0.0 };
    }
}

fn stage(name: &str, records_in: u64, records_out: u64, dropped: u64, cpu_ns: u64) -> StageResult {
    StageResult {
        name: name.into(),
        records_in,
        records_out,
        dropped,
        cpu: CpuTime {
            user_ns: cpu_ns,
            sys_ns: 0,
        },
        ..Default::default()
    }
}

trait Noted {
    fn noted(self, note: Option<&str>) -> Self;
}

impl Noted for StageResult {
    fn noted(mut self, note: Option<&str>) -> Self {
        self.note = note.map(str::to_string);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn figures(inline: bool, sink: SinkKind) -> StageFigures {
        let mut clocks = StageClocks::default();
        clocks.events = 1000;
        // 10 samples over 1000 events: decode 10, classify 100, serialize
        // 20, send 30 ns each -> 10 000, 100 000, 20 000, 30 000 ns in all.
        for _ in 0..10 {
            clocks.record(
                super::super::clocks::Lap {
                    decode: 10,
                    classify: 100,
                    serialize: 20,
                    send: 30,
                },
                0,
            );
        }
        let busy = Duration::from_nanos(400_000);
        StageFigures {
            producer: CpuTime {
                user_ns: 150_000,
                sys_ns: 50_000,
            },
            offered: 1000,
            accepted: 1000,
            lost: 0,
            counts: StageCounts {
                read: 1000,
                decoded: 1000,
                classified: 1000,
                produced: 1000,
                ..Default::default()
            },
            cpu: StageCpu {
                reader: busy,
                workers: if inline { Duration::ZERO } else { busy },
            },
            clocks,
            cost: Cost {
                wall_ns: 1_000_000,
                process_ns: 1_500_000,
                broker: Some((BrokerProcess { pid: 7 }, 90_000)),
                peak_rss_bytes: Some(1 << 20),
                cpus: 2,
            },
            sink,
            delivered: 1000,
            undelivered: 0,
        }
    }

    fn by_name<'a>(t: &'a [StageResult], name: &str) -> &'a StageResult {
        t.iter().find(|s| s.name == name).expect(name)
    }

    #[test]
    fn an_inline_variant_s_reader_is_its_threads_less_the_sampled_stages() {
        let t = stage_table(&figures(true, SinkKind::Kafka));
        let names: Vec<&str> = t.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                PRODUCER,
                READER,
                DECODE,
                CLASSIFY,
                SERIALIZE,
                SINK_CLIENT,
                BROKER
            ]
        );
        // 400 000 - (10 000 + 100 000 + 20 000 + 30 000).
        assert_eq!(by_name(&t, READER).cpu.total_ns(), 240_000);
        assert_eq!(by_name(&t, CLASSIFY).cpu.total_ns(), 100_000);
        // Send 30 000 + the process's 1 500 000 less producer 200 000 and reader 400 000.
        assert_eq!(by_name(&t, SINK_CLIENT).cpu.total_ns(), 930_000);
        assert_eq!(by_name(&t, BROKER).cpu.total_ns(), 90_000);
        // Per event: 1000 events read. Share: wall 1 ms x 2 CPUs.
        assert_eq!(by_name(&t, PRODUCER).ns_per_event, 200.0);
        assert_eq!(by_name(&t, PRODUCER).cpu_share, 0.1);
        // The process's CPU is all there, plus the broker's.
        let sum: u64 = t.iter().map(|s| s.cpu.total_ns()).sum();
        assert_eq!(sum, 1_500_000 + 90_000);
    }

    #[test]
    fn a_variant_with_workers_has_a_hand_off_and_a_whole_reader() {
        let mut f = figures(false, SinkKind::Kafka);
        f.cost.process_ns = 2_000_000;
        let t = stage_table(&f);
        assert_eq!(by_name(&t, READER).cpu.total_ns(), 400_000);
        assert_eq!(by_name(&t, HAND_OFF).cpu.total_ns(), 240_000);
        // 30 000 + 2 000 000 - 200 000 - 400 000 - 400 000.
        assert_eq!(by_name(&t, SINK_CLIENT).cpu.total_ns(), 1_030_000);
    }

    #[test]
    fn no_broker_stage_without_a_real_broker_and_the_mock_is_named() {
        for sink in [SinkKind::MockKafka, SinkKind::Local] {
            let t = stage_table(&figures(true, sink));
            assert!(t.iter().all(|s| s.name != BROKER), "{sink:?}");
            let note = by_name(&t, SINK_CLIENT).note.clone().unwrap();
            assert_eq!(note.contains("mock cluster"), sink == SinkKind::MockKafka);
        }
        let mut f = figures(true, SinkKind::Kafka);
        f.cost.broker = None;
        assert!(stage_table(&f).iter().all(|s| s.name != BROKER));
    }

    #[test]
    fn estimates_larger_than_their_threads_lose_the_send_wait_first() {
        let mut f = figures(true, SinkKind::Local);
        // The sampled stages add up to 160 000 ns, 30 000 of it send; the
        // readers used 140 000: the 20 000 over comes out of send alone.
        f.cpu.reader = Duration::from_nanos(140_000);
        let t = stage_table(&f);
        assert_eq!(by_name(&t, READER).cpu.total_ns(), 0);
        assert_eq!(by_name(&t, CLASSIFY).cpu.total_ns(), 100_000);
        assert_eq!(by_name(&t, DECODE).cpu.total_ns(), 10_000);
        // The readers used 65 000: send is gone and the other 130 000 are
        // halved to fit.
        f.cpu.reader = Duration::from_nanos(65_000);
        let t = stage_table(&f);
        assert_eq!(by_name(&t, CLASSIFY).cpu.total_ns(), 50_000);
        assert_eq!(by_name(&t, DECODE).cpu.total_ns(), 5_000);
    }

    #[test]
    fn nothing_read_gives_zero_per_event_not_a_division_by_zero() {
        let mut f = figures(true, SinkKind::Local);
        f.counts = StageCounts::default();
        f.cost.wall_ns = 0;
        for s in stage_table(&f) {
            assert_eq!((s.ns_per_event, s.cpu_share), (0.0, 0.0), "{}", s.name);
        }
    }

    #[test]
    fn proc_stat_cpu_is_utime_plus_stime_even_with_spaces_in_the_name() {
        let stat =
            "4242 (tansu broker) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 70 0 0 20 0 9 0 100 0 0";
        assert_eq!(stat_cpu_ticks(stat), Some(320));
        assert_eq!(stat_cpu_ticks("4242 (x) S 1"), None);
        assert_eq!(stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_s_own_stat_parses_and_sink_labels_classify() {
        let me = BrokerProcess {
            pid: std::process::id(),
        };
        assert!(me.cpu_ns().is_some());
        assert_eq!(
            SinkKind::of_label(&format!("kafka {MOCK_LABEL} topic t")),
            SinkKind::MockKafka
        );
        assert_eq!(
            SinkKind::of_label("kafka 127.0.0.1:19092 topic t"),
            SinkKind::Kafka
        );
        assert_eq!(
            SinkKind::of_label("null (discards messages)"),
            SinkKind::Local
        );
    }

    #[test]
    fn a_watch_measures_this_process_and_its_peak_rss() {
        let w = CostWatch {
            wall: Instant::now(),
            process: CpuTime::process(),
            broker: None,
            rss_reset: crate::host::reset_peak_rss(),
        };
        // 16 MiB touched after the reset is in the peak.
        let big = vec![1u8; 16 << 20];
        let mut x = 0u64;
        for i in (0..big.len()).step_by(4096) {
            x = x.wrapping_add(big[i] as u64);
        }
        std::hint::black_box(x);
        let c = w.stop();
        assert!(c.wall_ns > 0 && c.process_ns > 0 && c.cpus >= 1);
        if w.rss_reset {
            assert!(c.peak_rss_bytes.is_some_and(|b| b >= 16 << 20), "{c:?}");
        } else {
            assert_eq!(c.peak_rss_bytes, None);
        }
        drop(big);
    }
}
