//! Live cells: the same cell as a replay, through the real kernel. Privileged
//! (root); under CI=true a skip is a failure. Without privileges a live cell
//! is one clear line and a non-zero exit, and the sweep skips live series
//! with the reason.

use std::path::Path;
use std::process::{Command, Output};

use harness::results::RunResult;
use harness::sweep::SweepResults;

mod support;

use support::root::privileged;

fn harness() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_harness"));
    c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    c
}

/// Root with an empty capability bounding set: no CAP_BPF, CAP_PERFMON or CAP_SYS_ADMIN.
fn unprivileged() -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--inh-caps=-all",
        "--ambient-caps=-all",
        "--bounding-set=-all",
        "--",
    ])
    .arg(env!("CARGO_BIN_EXE_harness"))
    .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    c
}

fn stdout_ok(out: &Output) -> String {
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "stdout:\n{s}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s
}

/// A sweep config with a replay and a live series of `compact`, short trials
/// from 5 k/s up to `hi`.
fn live_config(dir: &Path, hi: f64) -> std::path::PathBuf {
    let cfg = dir.join("live.toml");
    std::fs::write(
        &cfg,
        format!(
            "captures = [\"fixtures/captures/fixed4k-perf.pcapng\"]\n\
             variants = [\"compact\"]\nsink = \"null\"\nmodes = [\"replay\", \"live\"]\n\
             warmup = \"100ms\"\nwindow = \"300ms\"\nlo = 5000.0\nhi = {hi:.1}\nresolution = 0.25\n"
        ),
    )
    .unwrap();
    cfg
}

/// Serialises the tests that attach probes (they share the tracepoints).
static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_live_cell_balances_its_ledger_against_the_kernel_counters() {
    if !privileged("a live cell") {
        return;
    }
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
        let stdout = stdout_ok(&out);
        assert!(stdout.contains("verdict"), "{stdout}");
        let r = RunResult::read(&json).unwrap();
        assert_eq!(r.kind, "live");
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
        assert_eq!(r.trial.as_ref().unwrap().mode, "live");
        assert!(r.verdict.is_some());
        assert!(!r.progress.is_empty(), "the trial was watched");
    }
}

#[test]
fn a_sweep_runs_live_cells_beside_replay_cells() {
    if !privileged("a live sweep") {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let cfg = live_config(dir.path(), 20_000.0);
    let root = dir.path().join("results");
    let out = harness()
        .args(["sweep", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&root)
        .output()
        .unwrap();
    let stdout = stdout_ok(&out);
    assert!(
        stdout.contains(" live "),
        "the table names the mode: {stdout}"
    );
    let r = SweepResults::read(&root.join("latest/sweep.json")).unwrap();
    let modes: Vec<&str> = r.series.iter().map(|s| s.key.mode.as_str()).collect();
    assert_eq!(modes, ["replay", "live"]);
    let live = &r.series[1];
    assert!(live.valid, "{:?}", live.problems);
    assert!(!live.verdict_rule.is_empty());
    for p in &live.points {
        assert_eq!(p.kind, "live");
        assert!(p.valid, "{:?}", p.problems);
    }
    assert!(r.skipped.is_empty());
}

#[test]
fn without_privileges_live_is_one_line_and_the_sweep_skips_it() {
    if !privileged("dropping capabilities with setpriv") {
        return;
    }
    let out = unprivileged()
        .args(["live", "--variant", "compact"])
        .output()
        .expect("setpriv (util-linux) is installed by ci/test.sh");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("needs root or CAP_BPF + CAP_PERFMON"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"));

    let dir = tempfile::tempdir().unwrap();
    let cfg = live_config(dir.path(), 10_000.0);
    let root = dir.path().join("results");
    let out = unprivileged()
        .args(["sweep", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&root)
        .output()
        .unwrap();
    let stdout = stdout_ok(&out);
    assert!(stdout.contains("skipped"), "{stdout}");
    let r = SweepResults::read(&root.join("latest/sweep.json")).unwrap();
    assert_eq!(r.series.len(), 1, "the replay series ran");
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].key.mode, "live");
    assert!(
        r.skipped[0].reason.contains("CAP_BPF"),
        "{:?}",
        r.skipped[0]
    );
}
