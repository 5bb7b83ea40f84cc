//! Live cells: the same cell as a replay, through the real kernel. Needs root
//! and eBPF: ignored unless the privileged-tests feature is on. (Without
//! privileges, a live cell is one clear line and the sweep skips live series
//! with the reason: tests/sweep_cli.rs.)

mod support;

use harness::results::RunResult;
use support::cli::{cells, harness, ok, sweep, sweep_results};
use support::root::require_bpf;

/// Serialises the tests that attach probes (they share the tracepoints).
static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn a_live_cell_balances_its_ledger_against_the_kernel_counters() {
    require_bpf();
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    for variant in ["batched", "ringbuf"] {
        let json = dir.path().join(format!("{variant}.json"));
        let out = harness()
            .args(["live", "--variant", variant, "--rate", "10000"])
            .args(["--warmup", "100ms", "--window", "400ms", "--json"])
            .arg(&json)
            .output()
            .unwrap();
        let stdout = ok(&out);
        assert!(stdout.contains("verdict"), "{stdout}");
        let r = RunResult::read(&json).unwrap();
        assert_eq!(r.kind, harness::results::RunKind::Live);
        assert!(r.valid, "{variant}: {:?}", r.problems);
        let ledger = r.ledger.as_ref().unwrap();
        let k = ledger.kernel.unwrap();
        let (emitted, accepted, lost) = (k.emitted, k.accepted, k.lost);
        assert!(emitted > 1000, "{variant}: the load was traced: {emitted}");
        assert_eq!(emitted, accepted + lost, "{variant}");
        assert_eq!(
            ledger.stages.read, accepted,
            "{variant}: everything the kernel put in the rings was read"
        );
        assert_eq!(r.trial.as_ref().unwrap().mode, harness::results::Mode::Live);
        assert!(r.verdict.is_some());
        assert!(!r.progress.is_empty(), "the trial was watched");
    }
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn a_sweep_runs_live_cells_beside_replay_cells() {
    require_bpf();
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // A replay and a live series of `compact`, short trials from 5 k/s up.
    let plan = "captures = [\"fixtures/captures/fixed4k-perf.pcapng\"]\n\
                variants = [\"compact\"]\nsink = \"null\"\nmodes = [\"replay\", \"live\"]\n\
                warmup = \"100ms\"\nwindow = \"300ms\"\nlo = 5000.0\nhi = 20000.0\nresolution = 0.25\n";
    let stdout = ok(&sweep(harness(), dir.path(), plan).output().unwrap());
    assert!(
        stdout.contains(" live "),
        "the table names the mode: {stdout}"
    );
    let r = sweep_results(dir.path());
    assert_eq!(cells(&r), [("compact", "replay"), ("compact", "live")]);
    let live = &r.series[1];
    assert!(live.valid, "{:?}", live.problems);
    assert!(!live.verdict_rule.is_empty());
    for p in &live.points {
        assert_eq!(p.kind, harness::results::RunKind::Live);
        assert!(p.valid, "{:?}", p.problems);
    }
    assert!(r.skipped.is_empty());
}
