//! The library API as the harness uses it: identity, pinning, exact op counts, errors, stop.

use loadgen::{CorpusSpec, Load, LoadConfig, OpMix, PathSource, Rate, RunEnd};
use std::time::Duration;

fn small_corpus(missing: f64) -> PathSource {
    PathSource::Generated(CorpusSpec {
        paths: 128,
        missing_share: missing,
        long_share: 0.05,
        seed: 3,
        parent_dir: None,
    })
}

fn cfg(rate: Rate, end: RunEnd) -> LoadConfig {
    let mut c = LoadConfig::new(rate, end);
    c.paths = small_corpus(0.1);
    c
}

fn task_status(tid: i32, key: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
        .expect("worker is a task of this process");
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn tids_are_the_workers_kernel_threads() {
    let mut c = cfg(Rate::PerSecond(1000.0), RunEnd::Ops(10));
    c.threads = 3;
    let mut load = Load::spawn(c).unwrap();
    assert_eq!(load.pid(), std::process::id() as i32);
    let tids = load.tids().to_vec();
    assert_eq!(tids.len(), 3);
    for (i, &tid) in tids.iter().enumerate() {
        assert!(tid > 0 && tid != load.pid());
        // The tid names a task of this process, and it is the worker thread.
        assert_eq!(
            std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                .unwrap()
                .trim(),
            format!("loadgen-{i}")
        );
        assert_eq!(task_status(tid, "Tgid:"), load.pid().to_string());
    }
    // Gated: nothing ran yet.
    assert_eq!(load.progress().ops, 0);
    load.release();
    let report = load.join().unwrap();
    assert_eq!(report.tids, tids);
    assert_eq!(report.ops, 10);
    assert_eq!(report.threads.iter().map(|t| t.ops).sum::<u64>(), 10);
}

#[test]
fn workers_are_pinned_and_reniced() {
    let mut c = cfg(Rate::PerSecond(100.0), RunEnd::Ops(4));
    c.threads = 2;
    c.cpus = Some(vec![0]);
    // Raising nice needs no privilege, so this runs anywhere.
    c.nice = Some(7);
    let load = Load::spawn(c).unwrap();
    for &tid in load.tids() {
        assert_eq!(task_status(tid, "Cpus_allowed_list:"), "0");
        // /proc/<tid>/stat: field 19 is nice; fields after the ")" of the name start at field 3.
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        assert_eq!(after_name.split(' ').nth(19 - 3), Some("7"), "{stat}");
    }
    let report = load.join().unwrap();
    assert!(report.threads.iter().all(|t| t.cpu == Some(0)));
}

#[test]
fn op_count_and_mix_are_exact() {
    for (rate, threads) in [
        (Rate::Max, 1),
        (Rate::Max, 3),
        (Rate::PerSecond(50_000.0), 3),
    ] {
        let mut c = cfg(rate, RunEnd::Ops(1000));
        c.threads = threads;
        c.mix = "openat=1,stat=2,lstat=1".parse::<OpMix>().unwrap();
        let r = Load::start(c).unwrap().join().unwrap();
        assert_eq!(r.ops, 1000, "{rate} x{threads}");
        let calls = |s: &str| r.syscalls.get(s).copied().unwrap_or(0);
        // Per thread the cycle (openat, stat, lstat, stat in some order) repeats, so each thread's
        // share is exact to within one cycle of 4.
        assert!(
            (250i64 - calls("openat") as i64).abs() <= 4 * threads as i64,
            "{:?}",
            r.syscalls
        );
        assert!(
            (500i64 - calls("stat") as i64).abs() <= 4 * threads as i64,
            "{:?}",
            r.syscalls
        );
        assert_eq!(calls("openat") + calls("stat") + calls("lstat"), 1000);
        assert_eq!(calls("statx") + calls("fstatat"), 0);
        // Every openat either failed or was closed.
        let open_fail = r
            .errors_by_syscall
            .get("openat")
            .map_or(0, |m| m.values().sum::<u64>());
        assert_eq!(calls("close") + open_fail, calls("openat"));
    }
}

#[test]
fn missing_paths_fail_with_enoent() {
    let mut c = LoadConfig::new(Rate::Max, RunEnd::Ops(500));
    c.paths = small_corpus(1.0);
    c.mix = "openat=1,stat=1,lstat=1,fstatat=1,statx=1".parse().unwrap();
    let r = Load::start(c).unwrap().join().unwrap();
    assert_eq!(r.errors.get("ENOENT"), Some(&500));
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.syscalls.get("close"), None);
    assert_eq!(r.corpus.missing, 128);

    let mut c = LoadConfig::new(Rate::Max, RunEnd::Ops(500));
    c.paths = small_corpus(0.0);
    let r = Load::start(c).unwrap().join().unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.syscalls.get("close"), r.syscalls.get("openat"));
    // Near-PATH_MAX paths are among them and worked.
    assert!(r.corpus.max_path_len >= 3840 && r.corpus.max_path_len <= 4095);
}

#[test]
fn stop_ends_a_long_run_early() {
    let c = cfg(Rate::Max, RunEnd::Duration(Duration::from_secs(3600)));
    let load = Load::start(c).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    load.stop_handle().stop();
    let r = load.join().unwrap();
    assert!(r.stopped_early);
    assert!(r.ops > 0);

    // A paced worker asleep between far-apart slots sees the stop too.
    let mut c = cfg(
        Rate::PerSecond(0.5),
        RunEnd::Duration(Duration::from_secs(3600)),
    );
    c.burst = 1;
    let load = Load::start(c).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    load.stop();
    let r = load.join().unwrap();
    assert!(r.stopped_early);
    assert_eq!(
        r.ops, 1,
        "slot 0 is due at the start; slot 1 only after 2 s"
    );
}

#[test]
fn timed_paced_run_accounts_for_every_slot() {
    let mut c = cfg(
        Rate::PerSecond(4000.0),
        RunEnd::Duration(Duration::from_millis(300)),
    );
    c.threads = 2;
    c.burst = 4;
    let r = Load::start(c).unwrap().join().unwrap();
    // 4000 ops/s over 0.3 s = 1200 slots, each either issued or missed (if the machine stalled).
    assert_eq!(r.slots_scheduled, Some(1200));
    assert_eq!(r.ops + r.slots_missed, 1200);
    let late = r.lateness_ns.as_ref().unwrap();
    assert_eq!(late.samples, r.ops);
    assert!(late.p50 <= late.p99 && late.p99 <= late.max);
    // The JSON the harness reads carries the same figures.
    let json: serde_json::Value = serde_json::to_value(&r).unwrap();
    assert_eq!(json["ops"], r.ops);
    assert_eq!(json["config"]["threads"], 2);
}

#[test]
fn dropping_an_unjoined_load_stops_it() {
    let c = cfg(Rate::Max, RunEnd::Duration(Duration::from_secs(3600)));
    let load = Load::spawn(c).unwrap();
    let dir = load.corpus().dir().unwrap().to_path_buf();
    drop(load);
    assert!(!dir.exists(), "corpus removed once the workers are gone");
}

#[test]
fn each_worker_reports_the_cpu_its_syscalls_took() {
    // 20 000 ops flat out cost at least ~1 µs of CPU each (a syscall and a
    // path walk), so each of two threads used well over 1 ms; an idle thread
    // would report ~0.
    let mut c = cfg(Rate::Max, RunEnd::Ops(20_000));
    c.threads = 2;
    let r = Load::start(c).unwrap().join().unwrap();
    assert_eq!(r.threads.len(), 2);
    for t in &r.threads {
        assert!(t.ops > 0, "{t:?}");
        assert!(t.cpu_ns > 1_000_000, "{t:?}");
        // No more CPU than the run's wall time (one thread is on one CPU at a time).
        assert!(
            t.cpu_ns <= r.elapsed_ns + 10_000_000,
            "{t:?} in {} ns",
            r.elapsed_ns
        );
    }
}
