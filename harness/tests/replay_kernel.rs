//! Kernel-backed replay against the real kernel: the bundled captures pushed
//! through real perf event arrays and ring buffers by the injector, read by
//! dropbench's own reader, a pipeline variant, the example libbpf reader and
//! Debian's bpftool, with every sample accounted for. Needs root and eBPF:
//! ignored unless the privileged-tests feature is on. (What the mode says
//! without privileges or to bad input: tests/replay_run.rs.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;

use harness::capture::{Capture, Transport};
use harness::classify::Classifier;
use harness::experiment::kernel::{
    run_kernel_trial, search_ndr, KernelReader, KernelRun, KernelSetup, INCONCLUSIVE_TRIES,
};
use harness::experiment::search::ZeroLossSearch;
use harness::experiment::trial::RateShape;
use harness::experiment::verdict::{VerdictKind, VerdictRule};
use harness::replay::kernel::Observed;
use harness::replay::kernel::{self, ExecSpec, KernelOptions, KernelReport, Ready};
use harness::replay::{kernel_order, Bound, ConsumerReport, Pacing, ReplayOptions, Wakeup};
use harness::results::RunResult;
use harness::sink::{NullSink, SinkSpec};
use probes::record::{Batch, RecordRef, RecordSource};
use support::byo::{bpftool_installed, build_example_reader};
use support::cli::{assert_clear_error, cells, harness, ok, sweep, sweep_results};
use support::events::stored_len;
use support::fixture;
use support::root::require_bpf;

/// Runs that pin on bpffs (exec readers) one at a time: a test that kills a
/// run on purpose expects its stale directory to be found by its own next run.
static PINS: Mutex<()> = Mutex::new(());

/// `harness replay --kernel --speed 5 ARGS` of the compact fixture, which
/// must succeed; returns its stdout.
fn replay_kernel_ok(args: &[&str]) -> String {
    let out = harness()
        .args(["replay", "--kernel", "--speed", "5"])
        .args(args)
        .arg(fixture("compact-perf.pcapng"))
        .output()
        .unwrap();
    ok(&out)
}

fn opts(pacing: Pacing, transport: Transport, ring_bytes: u64, wakeup: Wakeup) -> KernelOptions {
    KernelOptions::new(ReplayOptions {
        stop_at_loss: None,
        pacing,
        bound: Bound::Loops(1),
        transport: Some(transport),
        ring_bytes: Some(ring_bytes),
        rings: None,
        wakeup: Some(wakeup),
        co_runner: None,
    })
}

/// What a test consumer saw: samples per ring (bytes), lost counts per ring.
#[derive(Default)]
struct Seen {
    samples: BTreeMap<u32, Vec<(u64, Vec<u8>)>>,
    lost: BTreeMap<u32, u64>,
}

/// A consumer that keeps everything it reads, per ring.
fn keep(seen: Arc<Mutex<Seen>>) -> impl FnOnce(probes::inject::InjectSource) -> ConsumerReport {
    move |src| {
        let mut s = Seen::default();
        let mut src = src;
        loop {
            let b = src
                .read_batch(4096, Duration::from_millis(20), &mut |r| match r {
                    RecordRef::Sample {
                        ring,
                        origin_ns,
                        data,
                    } => s
                        .samples
                        .entry(ring)
                        .or_default()
                        .push((origin_ns, data.to_vec())),
                    RecordRef::Lost { ring, count } => *s.lost.entry(ring).or_default() += count,
                })
                .unwrap();
            if b == Batch::Closed {
                break;
            }
        }
        let read = s.samples.values().map(|v| v.len() as u64).sum();
        let lost_seen = s.lost.values().sum();
        *seen.lock().unwrap() = s;
        ConsumerReport {
            variant: "keep".into(),
            read,
            lost_seen,
            bytes: 0,
            latency: harness::results::latency_histogram(),
            stages: vec![],
            end_ns: harness::host::monotonic_ns(),
            ledger: None,
            problems: vec![],
        }
    }
}

/// The kernel's books of a run: per CPU injected = ok + failed, and the
/// run's result is valid (its problems list the broken equations).
fn assert_books(k: &KernelReport, what: &str) {
    for c in &k.injection.counters.kernel.cpus {
        assert_eq!(c.emitted, c.output_ok + c.failed(), "{what}: cpu {}", c.cpu);
        assert_eq!(c.seen, c.emitted, "{what}: cpu {}", c.cpu);
    }
    let r = k.to_run_result();
    assert!(r.valid, "{what}: {:?}", r.problems);
    assert_eq!(r.kind, harness::results::RunKind::KernelReplay);
    assert_eq!(r.counts.offered, r.counts.accepted + r.counts.lost);
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn the_rings_receive_the_capture_byte_for_byte_on_its_recorded_cpus() {
    require_bpf();
    let capture = Capture::load(&fixture("compact-perf.pcapng")).unwrap();
    let cpus = probes::loader::online_cpus().unwrap().len() as u32;
    for transport in [Transport::Perf, Transport::Ringbuf] {
        let wakeup = match transport {
            Transport::Perf => Wakeup::Events(64),
            Transport::Ringbuf => Wakeup::Adaptive,
        };
        let o = opts(Pacing::Speed(5.0), transport, 8 << 20, wakeup);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let k = kernel::run(&capture, &o, keep(seen.clone())).unwrap();
        assert_books(&k, &format!("{transport}"));
        assert_eq!(
            k.replay.lost, 0,
            "{transport}: an 8 MiB ring at 100 k/s loses nothing"
        );
        let seen = seen.lock().unwrap();
        // What the probe wrote for each sample: the stored bytes, cut to the
        // event's own length. perf adds its 4-byte alignment padding back on
        // output, but does not write it (perf_output_skip): those bytes are
        // whatever the ring held before, in the recording as in the replay.
        let own = |r: &harness::capture::StoredRecord| {
            let mut b = capture.trimmed(r).to_vec();
            b.resize(r.orig as usize, 0);
            b.truncate(harness::replay::event_len(
                capture.trimmed(r),
                r.orig as usize,
            ));
            b
        };
        // Received bytes cut to the event's own length, after checking that
        // the sample is as long as the transport makes it.
        let cut = |d: &[u8]| {
            let len = harness::replay::event_len(d, d.len());
            assert_eq!(
                d.len(),
                stored_len(transport, len),
                "{transport}: sample length"
            );
            d[8..len].to_vec()
        };
        let samples = kernel_order(&capture);
        match transport {
            Transport::Perf => {
                for cpu in 0..cpus {
                    let want: Vec<Vec<u8>> = samples
                        .iter()
                        .filter(|r| r.ring % cpus == cpu)
                        .map(|r| own(r)[8..].to_vec())
                        .collect();
                    let got: Vec<Vec<u8>> =
                        seen.samples[&cpu].iter().map(|(_, d)| cut(d)).collect();
                    assert_eq!(got.len(), want.len(), "cpu {cpu}");
                    assert!(
                        got == want,
                        "cpu {cpu}: the ring holds the capture's bytes, in order"
                    );
                }
            }
            Transport::Ringbuf => {
                let mut want: Vec<Vec<u8>> = samples.iter().map(|r| own(r)[8..].to_vec()).collect();
                let mut got: Vec<Vec<u8>> = seen.samples[&0].iter().map(|(_, d)| cut(d)).collect();
                want.sort();
                got.sort();
                assert!(
                    got == want,
                    "the ring buffer holds the capture's events, exactly"
                );
            }
        }
        // ts_ns is each sample's due time: the reader's origin, rising on each ring.
        for v in seen.samples.values() {
            assert!(v
                .iter()
                .all(|(o, d)| u64::from_le_bytes(d[..8].try_into().unwrap()) == *o));
            if transport == Transport::Perf {
                assert!(v.windows(2).all(|w| w[0].0 <= w[1].0));
            }
        }
    }
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn a_tiny_ring_loses_a_roomy_one_does_not_and_both_balance_per_cpu() {
    require_bpf();
    let capture = Capture::load(&fixture("fixed4k-perf.pcapng")).unwrap();
    for transport in [Transport::Perf, Transport::Ringbuf] {
        // 16 KiB holds three fixed4k events; with a wakeup that never comes
        // (perf: every 64 events) the reader drains only on its timeout.
        // 32 MiB holds 8000, more than a CPU's share of the capture.
        for (ring, tiny) in [(16u64 << 10, true), (32 << 20, false)] {
            let wakeup = match (transport, tiny) {
                (Transport::Perf, _) => Wakeup::Events(64),
                (Transport::Ringbuf, true) => Wakeup::NoWakeupPoll(Duration::from_millis(50)),
                (Transport::Ringbuf, false) => Wakeup::Adaptive,
            };
            let what = format!("{transport} {ring} bytes");
            let o = opts(Pacing::Speed(5.0), transport, ring, wakeup);
            let seen = Arc::new(Mutex::new(Seen::default()));
            let k = kernel::run(&capture, &o, keep(seen.clone())).unwrap();
            assert_books(&k, &what);
            let c = &k.injection.counters;
            let total = c.kernel.total();
            assert_eq!(total.emitted, 10_012, "{what}: every sample injected");
            if tiny {
                assert!(total.failed() > 0, "{what}: {total:?}");
            } else {
                assert_eq!(total.failed(), 0, "{what}: {total:?}");
            }
            let seen = seen.lock().unwrap();
            match transport {
                Transport::Perf => {
                    for (idx, cpu) in c.kernel.cpus.iter().enumerate() {
                        let read = seen.samples.get(&cpu.cpu).map_or(0, |v| v.len() as u64);
                        let reported = seen.lost.get(&cpu.cpu).copied().unwrap_or(0);
                        assert_eq!(read, cpu.output_ok, "{what}: cpu {} read = ok", cpu.cpu);
                        assert_eq!(
                            cpu.failed(),
                            cpu.fail_nospc,
                            "{what}: perf fails with ENOSPC"
                        );
                        assert_eq!(
                            reported + c.lost_pending[idx],
                            cpu.fail_nospc,
                            "{what}: cpu {}: PERF_RECORD_LOST + not yet reported = failed",
                            cpu.cpu
                        );
                        if tiny {
                            assert!(
                                reported > 0,
                                "{what}: cpu {}: losses were reported",
                                cpu.cpu
                            );
                        }
                    }
                }
                Transport::Ringbuf => {
                    let read: u64 = seen.samples.values().map(|v| v.len() as u64).sum();
                    assert_eq!(read, total.output_ok, "{what}");
                    assert_eq!(total.failed(), total.fail_again, "{what}: EAGAIN only");
                    assert_eq!(seen.lost.values().sum::<u64>(), total.failed(), "{what}");
                }
            }
        }
    }
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn a_kernel_replay_stops_once_its_rings_have_lost_more_than_its_limit() {
    require_bpf();
    let capture = Capture::load(&fixture("fixed4k-perf.pcapng")).unwrap();
    for transport in [Transport::Perf, Transport::Ringbuf] {
        // 16 KiB holds three fixed4k events and the reader drains only on its
        // timeout (as in the test above): most of the capture is refused.
        let wakeup = match transport {
            Transport::Perf => Wakeup::Events(64),
            Transport::Ringbuf => Wakeup::NoWakeupPoll(Duration::from_millis(50)),
        };
        let with = |stop| {
            let mut o = opts(Pacing::Speed(5.0), transport, 16 << 10, wakeup);
            o.replay.stop_at_loss = stop;
            let seen = Arc::new(Mutex::new(Seen::default()));
            let k = kernel::run(&capture, &o, keep(seen)).unwrap();
            assert_books(&k, &format!("{transport}"));
            k
        };
        let stop = harness::replay::StopAtLoss {
            lost: 100,
            after: Duration::ZERO,
        };
        let k = with(Some(stop));
        let total = k.injection.counters.kernel.total();
        assert!(k.replay.stopped_at_loss, "{transport}: {total:?}");
        // It stops after the test run that took it past the limit: at most
        // one run's worth of samples past it.
        let slots = probes::inject::DEFAULT_SLOTS_PER_CPU as u64;
        assert!(
            total.failed() > 100 && total.failed() <= 100 + slots,
            "{transport}: {total:?}"
        );
        assert!(total.emitted < 10_012, "{transport}: {total:?}");
        assert_eq!(k.replay.offered, total.emitted, "{transport}");
        // A limit it never reaches changes nothing.
        let far = harness::replay::StopAtLoss {
            lost: u64::MAX,
            ..stop
        };
        let k = with(Some(far));
        let total = k.injection.counters.kernel.total();
        assert!(!k.replay.stopped_at_loss, "{transport}");
        assert_eq!(total.emitted, 10_012, "{transport}: {total:?}");
        assert!(total.failed() > 100, "{transport}: {total:?}");
    }
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn a_pipeline_variant_reads_the_kernel_rings_through_the_same_ledger() {
    require_bpf();
    let capture = Capture::load(&fixture("fixed4k-perf.pcapng")).unwrap();
    for (name, transport, wakeup) in [
        ("batched", Transport::Perf, Wakeup::Events(64)),
        (
            "ringbuf",
            Transport::Ringbuf,
            Wakeup::NoWakeupPoll(Duration::from_millis(1)),
        ),
    ] {
        let v = harness::pipeline::variant(name).unwrap();
        let sink = harness::sink::SinkSpec::parse("null", None, None)
            .unwrap()
            .open()
            .unwrap();
        let classifier = Arc::new(harness::classify::Classifier::default_rules());
        let o = opts(Pacing::Speed(5.0), transport, 16 << 20, wakeup);
        let (run, injection) = harness::pipeline::replayed::run_kernel(
            v,
            (v.knobs)(),
            &capture,
            &o,
            classifier,
            sink,
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(
            run.ledger.check().is_empty(),
            "{name}: {:?}",
            run.ledger.check()
        );
        assert_eq!(run.ledger.kernel, Some(injection.kernel_counts()), "{name}");
        let t = injection.counters.kernel.total();
        assert_eq!(t.emitted, 10_012, "{name}");
        assert_eq!(run.run.stages.read, t.output_ok, "{name}: read = output ok");
        assert_eq!(
            run.run.stages.produced + run.run.stages.dropped_total(),
            t.output_ok
        );
    }
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn replay_kernel_on_the_command_line_writes_a_valid_kernel_replay_result() {
    require_bpf();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let stdout = replay_kernel_ok(&["--json", json.to_str().unwrap()]);
    assert!(
        stdout.contains("events per run (BPF_PROG_TEST_RUN"),
        "{stdout}"
    );
    assert!(stdout.contains("kernel    cpu 0"), "{stdout}");
    let r = RunResult::read(&json).unwrap();
    assert_eq!(r.kind, harness::results::RunKind::KernelReplay);
    assert!(r.valid, "{:?}", r.problems);
    assert_eq!(r.counts.offered, 12_051);
    assert_eq!(r.counts.read, r.counts.accepted);
    let k = r.config.extra.kernel.as_ref().unwrap();
    assert!(k["test_runs"].as_u64().unwrap() > 0);
    let cpus = k["counters"]["kernel"]["cpus"].as_array().unwrap();
    let injected: u64 = cpus.iter().map(|c| c["emitted"].as_u64().unwrap()).sum();
    assert_eq!(injected, 12_051);
}

/// `byo-reader: events N lost L ...` -> the named numbers.
fn reader_line(path: &Path) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let line = text
        .lines()
        .find(|l| l.starts_with("byo-reader:"))
        .unwrap_or_else(|| panic!("the reader printed no summary: {text:?}"));
    let words: Vec<&str> = line["byo-reader:".len()..].split_whitespace().collect();
    words
        .chunks(2)
        .map(|kv| (kv[0].to_string(), kv[1].parse().unwrap()))
        .collect()
}

/// For a test of the example reader: the exec runs' lock, a temporary
/// directory, and the reader built in it; `None` to skip (it does not build).
fn example_reader() -> Option<(
    std::sync::MutexGuard<'static, ()>,
    tempfile::TempDir,
    PathBuf,
)> {
    require_bpf();
    let guard = PINS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let reader = build_example_reader(dir.path())?;
    Some((guard, dir, reader))
}

fn exec_spec(command: String) -> ExecSpec {
    ExecSpec {
        drain: Duration::from_secs(1),
        ..ExecSpec::new(command)
    }
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn the_example_libbpf_reader_reads_every_output_and_the_books_balance() {
    let Some((_g, dir, reader)) = example_reader() else {
        return;
    };
    let capture = Capture::load(&fixture("fixed4k-perf.pcapng")).unwrap();
    // perf with a ring too small for the rate (losses, reported by
    // PERF_RECORD_LOST), and a roomy ring buffer.
    for (transport, ring, wakeup) in [
        (Transport::Perf, 16u64 << 10, Wakeup::Events(64)),
        (Transport::Ringbuf, 16 << 20, Wakeup::Adaptive),
    ] {
        let out = dir.path().join(format!("{transport}.out"));
        let spec = exec_spec(format!("exec {} > {}", reader.display(), out.display()));
        let o = opts(Pacing::Speed(5.0), transport, ring, wakeup);
        let k = kernel::run_exec(&capture, &o, &spec).unwrap();
        assert_books(&k, &format!("{transport}"));
        let e = k.injection.exec.as_ref().unwrap();
        assert_eq!(
            e.status, "exit 0",
            "{transport}: it drains and exits on SIGTERM"
        );
        assert!(!e.pins.exists(), "{transport}: the pins are removed");
        let r = reader_line(&out);
        let t = k.injection.counters.kernel.total();
        assert_eq!(t.emitted, 10_012);
        assert_eq!(
            r["events"], t.output_ok,
            "{transport}: the reader read every output"
        );
        assert_eq!(
            r["bad"], 0,
            "{transport}: every sample is a dropbench event"
        );
        assert_eq!(
            (r["kernel_ok"], r["kernel_failed"]),
            (t.output_ok, t.failed())
        );
        if transport == Transport::Perf {
            assert!(
                t.failed() > 0,
                "a 16 KiB perf ring at 5x the capture's rate loses"
            );
            let pending: u64 = k.injection.counters.lost_pending.iter().sum();
            assert_eq!(
                r["lost"] + pending,
                t.fail_nospc,
                "PERF_RECORD_LOST + pending = failed"
            );
        } else {
            assert_eq!(t.failed(), 0);
        }
    }
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn bpftool_event_pipe_prints_exactly_the_successful_outputs() {
    require_bpf();
    let _g = PINS.lock().unwrap_or_else(|e| e.into_inner());
    if !bpftool_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let capture = Capture::load(&fixture("fixed4k-perf.pcapng")).unwrap();
    let cpus = probes::loader::online_cpus().unwrap();
    // All CPUs (ready when bpftool has filled every slot), then CPU 0 only: the
    // other CPUs' slots stay empty and their outputs fail with ENOENT.
    for only_cpu0 in [false, true] {
        let out = dir.path().join(format!("bpftool-{only_cpu0}.out"));
        let which = if only_cpu0 { " cpu 0 index 0" } else { "" };
        let mut spec = exec_spec(format!(
            "exec stdbuf -oL bpftool map event_pipe pinned \"$DROPBENCH_PIN_EVENTS\"{which} > {}",
            out.display()
        ));
        if only_cpu0 {
            spec.ready = Ready::After(Duration::from_millis(500));
        }
        // 100 k/s of 4 KiB events into bpftool's own 64 KiB rings, each
        // printed as ~12 KB of hex: most outputs fail, and bpftool reports them.
        let o = opts(
            Pacing::Speed(10.0),
            Transport::Perf,
            1 << 20,
            Wakeup::Events(1),
        );
        let k = kernel::run_exec(&capture, &o, &spec).unwrap();
        assert_books(&k, "bpftool");
        let text = std::fs::read_to_string(&out).unwrap();
        let printed = text.lines().filter(|l| l.starts_with("== @")).count() as u64;
        let lost: u64 = text
            .lines()
            .filter_map(|l| {
                l.strip_prefix("lost ")?
                    .strip_suffix(" events")?
                    .parse::<u64>()
                    .ok()
            })
            .sum();
        let c = &k.injection.counters;
        let t = c.kernel.total();
        assert!(t.output_ok > 0);
        assert_eq!(
            printed, t.output_ok,
            "bpftool printed every successful output"
        );
        assert_eq!(lost + c.lost_pending.iter().sum::<u64>(), t.fail_nospc);
        if only_cpu0 && cpus.len() > 1 {
            for cpu in &c.kernel.cpus[1..] {
                assert_eq!(
                    cpu.output_ok, 0,
                    "cpu {}: no perf event in its slot",
                    cpu.cpu
                );
                assert_eq!(
                    cpu.fail_noent, cpu.emitted,
                    "cpu {}: every output ENOENT",
                    cpu.cpu
                );
                assert!(cpu.emitted > 0);
            }
        } else {
            assert_eq!(t.fail_noent, 0);
        }
    }
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn pins_are_private_documented_in_the_environment_and_removed() {
    require_bpf();
    let _g = PINS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (modes, env) = (dir.path().join("modes"), dir.path().join("env"));
    let capture = Capture::load(&fixture("compact-perf.pcapng")).unwrap();
    let spec = ExecSpec {
        drain: Duration::from_millis(10),
        ..ExecSpec::new(format!(
            "stat -c %a \"$DROPBENCH_PIN_EVENTS\" \"$DROPBENCH_PIN_COUNTERS\" \"$DROPBENCH_PIN_DIR\" > {}; \
             env | grep ^DROPBENCH_ | sort > {}; touch \"$DROPBENCH_READY_FILE\"; exec sleep 60",
            modes.display(),
            env.display()
        ))
    };
    let o = opts(
        Pacing::Speed(5.0),
        Transport::Ringbuf,
        16 << 20,
        Wakeup::Adaptive,
    );
    let k = kernel::run_exec(&capture, &o, &spec).unwrap();
    let e = k.injection.exec.as_ref().unwrap();
    assert_eq!(e.status, "signal 15", "stopped with SIGTERM");
    assert_eq!(std::fs::read_to_string(&modes).unwrap(), "600\n600\n700\n");
    let env = std::fs::read_to_string(&env).unwrap();
    // The program inherits this process's environment too (under ci/test.sh it
    // holds DROPBENCH_TEST_BROKERS): count only what dropbench set for it.
    let vars: BTreeMap<&str, &str> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| std::env::var_os(k).is_none())
        .collect();
    for v in [
        "DROPBENCH_PIN_DIR",
        "DROPBENCH_PIN_EVENTS",
        "DROPBENCH_PIN_COUNTERS",
        "DROPBENCH_TRANSPORT",
        "DROPBENCH_RING_BYTES",
        "DROPBENCH_WAKEUP",
        "DROPBENCH_CPUS",
        "DROPBENCH_LAYOUT",
        "DROPBENCH_ABI_VERSION",
        "DROPBENCH_HEADER_BYTES",
        "DROPBENCH_EVENT_MAX_BYTES",
        "DROPBENCH_READY_FILE",
    ] {
        assert!(vars.contains_key(v), "{v} missing from {env}");
    }
    assert_eq!(
        vars.len(),
        12,
        "the documented variables and no others: {env}"
    );
    assert_eq!(vars["DROPBENCH_TRANSPORT"], "ringbuf");
    assert_eq!(vars["DROPBENCH_RING_BYTES"], "16777216");
    assert_eq!(vars["DROPBENCH_LAYOUT"], "compact");
    assert_eq!(vars["DROPBENCH_EVENT_MAX_BYTES"], "4144");
    assert_eq!(Path::new(vars["DROPBENCH_PIN_DIR"]), e.pins);
    assert!(!e.pins.exists(), "removed when the run ended");
}

/// Starts `harness replay --kernel` with an exec reader that writes its pin
/// directory and its own pid into `dir`, and a run long enough to interrupt.
fn start_long_exec_run(dir: &Path) -> (std::process::Child, PathBuf, u32) {
    let (pins, pid) = (dir.join("pins"), dir.join("pid"));
    let child = harness()
        .args(["replay", "--kernel", "--rate", "1000", "--loops", "100", "--variant"])
        .arg(format!(
            "exec:echo $$ > {}; echo \"$DROPBENCH_PIN_DIR\" > {}; touch \"$DROPBENCH_READY_FILE\"; exec sleep 600",
            pid.display(),
            pins.display()
        ))
        .arg(fixture("compact-perf.pcapng"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !(pins.exists() && std::fs::read_to_string(&pins).is_ok_and(|s| s.ends_with('\n'))) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the reader never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pin_dir = PathBuf::from(std::fs::read_to_string(&pins).unwrap().trim());
    let reader_pid = std::fs::read_to_string(&pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pin_dir.join("events").exists());
    (child, pin_dir, reader_pid)
}

fn gone(pid: u32) -> bool {
    let t = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        // A zombie still has /proc/PID until its parent reaps it.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if state.contains(") Z") || t.elapsed() > Duration::from_secs(10) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    state.is_empty() || state.contains(") Z")
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn ctrl_c_stops_the_reader_and_removes_the_pins() {
    require_bpf();
    let _g = PINS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (child, pin_dir, reader_pid) = start_long_exec_run(dir.path());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("interrupted"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!pin_dir.exists(), "Ctrl-C removed {}", pin_dir.display());
    assert!(gone(reader_pid), "the reader was stopped");
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn a_killed_runs_stale_pins_are_found_removed_and_reported() {
    require_bpf();
    let _g = PINS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (mut child, pin_dir, reader_pid) = start_long_exec_run(dir.path());
    child.kill().unwrap(); // SIGKILL: no handler, no Drop
    child.wait().unwrap();
    assert!(pin_dir.exists(), "a SIGKILLed run leaves its pins");
    assert!(
        gone(reader_pid),
        "its reader got SIGTERM when dropbench died"
    );
    let stdout = replay_kernel_ok(&[
        "--variant",
        "exec:touch \"$DROPBENCH_READY_FILE\"; exec sleep 60",
    ]);
    let line = format!("removed stale pins {}", pin_dir.display());
    assert!(stdout.contains(&line), "{stdout}");
    assert!(!pin_dir.exists());
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn bad_kernel_replay_input_gets_one_clear_line() {
    require_bpf();
    let cap = fixture("compact-perf.pcapng");
    let run = |args: &[&str]| {
        harness()
            .arg("replay")
            .args(args)
            .arg(&cap)
            .output()
            .unwrap()
    };
    assert_clear_error(
        &run(&["--kernel", "--rings", "99"]),
        1,
        "one per online CPU",
    );
    assert_clear_error(
        &run(&[
            "--kernel",
            "--variant",
            "exec:true",
            "--bpffs",
            env!("CARGO_MANIFEST_DIR"),
        ]),
        1,
        "is not a bpffs mount and not an empty directory",
    );
    let _g = PINS.lock().unwrap_or_else(|e| e.into_inner());
    let base = Path::new(probes::pin::DEFAULT_BPFFS).join(probes::pin::BASE_DIR);
    for (reader, needle) in [
        ("exec:exec sleep 60", "did not signal ready within"),
        ("exec:exit 7", "exited (exit 7) before it was ready"),
    ] {
        let child = harness()
            .args([
                "replay",
                "--kernel",
                "--exec-timeout",
                "300ms",
                "--variant",
                reader,
            ])
            .arg(&cap)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        assert_clear_error(&child.wait_with_output().unwrap(), 1, needle);
        // The failed run left no pin directory behind (its name starts with its pid).
        let left: Vec<_> = std::fs::read_dir(&base)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            !left
                .iter()
                .any(|n: &String| n.starts_with(&format!("{pid}-"))),
            "pins left behind: {left:?}"
        );
    }
}

/// A short steady-state rule: 100 ms warm-up, 400 ms window.
fn short_rule() -> VerdictRule {
    VerdictRule {
        warmup_ns: 100_000_000,
        window_ns: 400_000_000,
        ..VerdictRule::default()
    }
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn a_kernel_trial_at_a_low_rate_is_clean_sampled_and_balances_against_the_kernel_counters() {
    require_bpf();
    let capture = Capture::load(&fixture("compact-perf.pcapng")).unwrap();
    let classifier = Arc::new(Classifier::default_rules());
    // compact reads perf rings woken every 64 events; ringbuf polls its ring
    // buffer every 1 ms: the rings' bytes come from each kind's own positions.
    for (name, wakeup) in [
        ("compact", Wakeup::Events(64)),
        ("ringbuf", Wakeup::NoWakeupPoll(Duration::from_millis(1))),
    ] {
        let variant = harness::pipeline::variant(name).unwrap();
        let setup = KernelSetup {
            reader: KernelReader::Variant {
                variant,
                knobs: (variant.knobs)(),
                sink: &SinkSpec::Null,
                classifier: classifier.clone(),
            },
            capture: &capture,
            transport: variant.transport,
            ring_bytes: 1 << 20,
            wakeup,
            rule: short_rule(),
            shape: RateShape::Uniform,
            stop_at_loss: None,
        };
        // A trial the producer could not offer (a busy machine: other tests
        // run beside this one) says nothing: run it again, as the sweep does.
        let mut t = run_kernel_trial(&setup, 5_000.0, Arc::new(NullSink::new())).unwrap();
        for _ in 1..INCONCLUSIVE_TRIES {
            if !t.inconclusive() {
                break;
            }
            t = run_kernel_trial(&setup, 5_000.0, Arc::new(NullSink::new())).unwrap();
        }
        assert!(
            t.clean(),
            "{name}: {:?}: {}",
            t.verdict.kind,
            t.verdict.reason
        );
        assert_eq!(t.injection.observed, Observed::Consumption);
        // The progress samples, every 10 ms over the 500 ms trial.
        let s = &t.run.replay().samples;
        assert!(s.len() >= 40, "{name}: {} samples", s.len());
        assert!(s.windows(2).all(|w| w[0].t_ns < w[1].t_ns
            && w[0].offered <= w[1].offered
            && w[0].accepted <= w[1].accepted
            && w[0].done <= w[1].done));
        assert!(s
            .iter()
            .all(|p| p.done <= p.accepted && p.accepted <= p.offered));
        assert!(
            s.iter().any(|p| p.ring_bytes > 0),
            "{name}: the rings' positions show what waits in them"
        );
        assert!(
            t.verdict.window.points >= 30,
            "{name}: {:?}",
            t.verdict.window
        );
        // The rate was offered: ~2 500 events in 0.5 s at 5 000/s.
        let k = t.injection.kernel_counts();
        assert!((2_400..=2_600).contains(&k.emitted), "{name}: {k:?}");
        assert_eq!((k.accepted, k.lost), (k.emitted, 0), "{name}");
        // The ledger's kernel line is the injector's counters, and it balances
        // down to the sink.
        let KernelRun::Variant(run) = &t.run else {
            panic!("a dropbench variant's run")
        };
        assert_eq!(run.ledger.kernel, Some(k), "{name}");
        assert!(
            run.ledger.check().is_empty(),
            "{name}: {:?}",
            run.ledger.check()
        );
        assert_eq!(run.ledger.stages.read, k.accepted, "{name}");
        assert_eq!(run.ledger.sink.delivered, k.accepted, "{name}");
        let r = t.to_run_result(&capture, "null");
        assert!(r.valid, "{name}: {:?}", r.problems);
        assert_eq!(r.kind, harness::results::RunKind::KernelReplay);
        assert_eq!(r.variant, name);
        let info = r.trial.as_ref().unwrap();
        assert_eq!(
            (info.mode.name(), info.shape.as_str()),
            ("kernel", "uniform")
        );
        assert_eq!(r.progress.len(), s.len());
        assert_eq!(r.verdict.as_ref().unwrap().kind, VerdictKind::Clean);
    }
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn exec_readers_get_a_zero_loss_rate_from_the_kernel_backed_search() {
    let Some((_g, dir, reader)) = example_reader() else {
        return;
    };
    let bpftool_ok = bpftool_installed();
    let capture = Capture::load(&fixture("compact-perf.pcapng")).unwrap();
    let out = dir.path().join("reader.out");
    let mut readers = vec![
        (
            format!("exec {} > {}", reader.display(), out.display()),
            Transport::Ringbuf,
            Wakeup::Adaptive,
        ),
        (
            format!("exec {} > {}", reader.display(), out.display()),
            Transport::Perf,
            Wakeup::Events(16),
        ),
    ];
    if bpftool_ok {
        readers.push((
            "exec bpftool map event_pipe pinned \"$DROPBENCH_PIN_EVENTS\" > /dev/null".into(),
            Transport::Perf,
            Wakeup::Events(1),
        ));
    } else {
        eprintln!("bpftool is not installed: its search is skipped");
    }
    // Small and short: from 4 000/s up to 16 000/s, 3 probes at most.
    let search = ZeroLossSearch {
        lo: 4_000.0,
        hi: 16_000.0,
        resolution: 0.5,
        max_trials: 3,
    };
    for (command, transport, wakeup) in readers {
        let what = format!("{command} ({transport})");
        let setup = KernelSetup {
            reader: KernelReader::Exec(ExecSpec {
                drain: Duration::from_millis(300),
                ..ExecSpec::new(command)
            }),
            capture: &capture,
            transport,
            ring_bytes: 1 << 20,
            wakeup,
            rule: short_rule(),
            shape: RateShape::Uniform,
            stop_at_loss: None,
        };
        let found = search_ndr(&setup, &search, || Arc::new(NullSink::new())).unwrap();
        let ndr = found.outcome.zero_loss_rate;
        assert!(
            ndr.is_some_and(|r| r >= 4_000.0),
            "{what}: {:?}",
            found.outcome
        );
        let clean = found
            .trials
            .iter()
            .find(|t| Some(t.rate) == ndr && t.clean());
        let t = clean.unwrap_or_else(|| panic!("{what}: no clean trial at the NDR"));
        let k = t.injection.kernel_counts();
        assert_eq!((k.lost, k.accepted), (0, k.emitted), "{what}");
        let observed = match transport {
            Transport::Ringbuf => Observed::Consumption,
            Transport::Perf => Observed::Loss,
        };
        assert_eq!(t.injection.observed, observed, "{what}");
        let s = &t.run.replay().samples;
        assert!(s.len() >= 40, "{what}: {} samples", s.len());
        assert!(
            s.windows(2)
                .all(|w| w[0].t_ns < w[1].t_ns && w[0].accepted <= w[1].accepted),
            "{what}"
        );
        if transport == Transport::Ringbuf {
            // The reader's consumption, from the ring's consumer position: it
            // keeps up, so by the end it has taken most of what was injected.
            let last = s.last().unwrap();
            assert!(
                last.done > 0 && last.done <= last.accepted,
                "{what}: {last:?}"
            );
            assert!(t.rule_name().contains("consumer position"), "{what}");
        } else {
            assert!(s.iter().all(|p| p.done == p.accepted && p.ring_bytes == 0));
            assert!(
                t.rule_name()
                    .contains("judged on loss and the kernel counters only"),
                "{what}: {}",
                t.rule_name()
            );
        }
        for t in &found.trials {
            let r = t.to_run_result(&capture, "exec");
            assert!(r.valid, "{what} at {}: {:?}", t.rate, r.problems);
            assert_eq!(
                r.trial.as_ref().unwrap().mode,
                harness::results::Mode::Kernel
            );
            assert!(r.variant.starts_with("exec:"), "{}", r.variant);
        }
        if setup.reader_name().contains("reader >") {
            // The example reader's own report of its last trial agrees with
            // that trial's kernel counters.
            let last = found.trials.last().unwrap().injection.kernel_counts();
            let r = reader_line(&out);
            assert_eq!(
                (r["events"], r["kernel_ok"]),
                (last.accepted, last.accepted),
                "{what}"
            );
        }
    }
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn a_sweep_runs_kernel_backed_cells_beside_replayed_ones() {
    require_bpf();
    let _pins = PINS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "captures = [{:?}]\nvariants = [\"compact\", \"ringbuf\"]\n\
         modes = [\"replay\", \"kernel\"]\nsink = \"null\"\nwarmup = \"100ms\"\n\
         window = \"300ms\"\nlo = 5000.0\nhi = 20000.0\nmax_trials = 3\n",
        fixture("fixed4k-perf.pcapng")
    );
    let stdout = ok(&sweep(harness(), dir.path(), &plan).output().unwrap());
    let r = sweep_results(dir.path());
    assert_eq!(
        cells(&r),
        [
            ("compact", "replay"),
            ("compact", "kernel"),
            ("ringbuf", "replay"),
            ("ringbuf", "kernel")
        ]
    );
    for s in r
        .series
        .iter()
        .filter(|s| s.key.mode == harness::results::Mode::Kernel)
    {
        assert!(s.valid, "{:?}", s.problems);
        // 5 k/s of compact events is far below what either reader holds.
        assert!(s.zero_loss_rate.is_some_and(|z| z >= 5000.0), "{s:?}");
        for p in &s.points {
            assert_eq!(
                p.trial.as_ref().unwrap().mode,
                harness::results::Mode::Kernel
            );
            assert!(p.counts.offered > 0);
            assert!(p.ledger.as_ref().is_some_and(|l| l.kernel.is_some()));
        }
    }
    assert!(
        stdout.contains(" kernel "),
        "the table names the mode:\n{stdout}"
    );
}
