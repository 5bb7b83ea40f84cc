//! `harness sweep` and `harness gate` end to end, on the bundled capture.
//! Nothing here depends on how fast this machine is: the gate is checked
//! against the run's own results and against a baseline made twice as fast.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use harness::sweep::SweepResults;

fn harness() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_harness"));
    c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    c
}

fn ok(out: &Output) -> String {
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "stdout:\n{s}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s
}

fn sweep(out: &Path, extra: &[&str]) -> Output {
    harness()
        .args(["sweep", "--config", "ci/sweep-ci.toml", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn sweep_writes_results_and_report_and_gate_judges_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let stdout = ok(&sweep(&out, &["--variants", "seed-baseline,compact"]));
    // The capture summary: counts per CPU and syscall, and rate over time.
    assert!(stdout.contains("fixed4k-perf.pcapng"), "{stdout}");
    assert!(
        stdout.contains("newfstatat") && stdout.contains("openat"),
        "per-syscall counts: {stdout}"
    );
    assert!(stdout.contains("zero-loss"), "{stdout}");

    let results = SweepResults::read(&out.join("sweep.json")).unwrap();
    assert_eq!(results.series.len(), 2);
    for s in &results.series {
        assert!(s.valid, "{}: {:?}", s.key, s.problems);
        assert!(!s.points.is_empty());
        let z = s
            .zero_loss_rate
            .expect("5 k events/s is clean for every variant");
        // The search's answer is one of the rates it probed, and it was clean.
        let p = s
            .points
            .iter()
            .find(|p| p.config.target_rate == Some(z))
            .expect("zero-loss rate was probed");
        assert_eq!(p.counts.lost, 0);
        assert!(p.ledger.is_some(), "every point carries its ledger");
    }
    let html = std::fs::read_to_string(out.join("report/index.html")).unwrap();
    assert!(
        html.contains("seed-baseline") && html.contains("<svg"),
        "the report names the variants and has charts"
    );

    // The gate passes against the run's own results...
    let gate = |baseline: &Path| {
        harness()
            .args(["gate", "--results"])
            .arg(out.join("sweep.json"))
            .arg("--baseline")
            .arg(baseline)
            .output()
            .unwrap()
    };
    let same = gate(&out.join("sweep.json"));
    assert!(ok(&same).contains("gate passed"));

    // ...and fails, with one clear line, against a baseline twice as fast.
    let mut faster = results.clone();
    for s in &mut faster.series {
        s.zero_loss_rate = s.zero_loss_rate.map(|r| r * 2.0);
    }
    let fast_path: PathBuf = dir.path().join("faster.json");
    faster.write(&fast_path).unwrap();
    let failed = gate(&fast_path);
    assert_eq!(failed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("gate failed: 2 of 2 series regressed"),
        "{err}"
    );
    assert!(!err.contains("panicked"));

    // --update writes a baseline the gate then accepts.
    let base = dir.path().join("baselines/new.json");
    ok(&harness()
        .args(["gate", "--update", "--results"])
        .arg(out.join("sweep.json"))
        .arg("--baseline")
        .arg(&base)
        .output()
        .unwrap());
    assert!(ok(&gate(&base)).contains("gate passed"));
}

#[test]
fn bad_sweep_input_gets_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "ring_bytes = [\"12 parsecs\"]\n").unwrap();
    for (args, needle) in [
        (
            vec![
                "sweep".to_string(),
                "--config".into(),
                cfg.display().to_string(),
            ],
            "bad byte unit",
        ),
        (
            vec!["sweep".into(), "--variants".into(), "warp-drive".into()],
            "warp-drive",
        ),
        (
            vec![
                "sweep".into(),
                "--capture".into(),
                "/nonexistent/x.pcapng".into(),
            ],
            "/nonexistent/x.pcapng",
        ),
        (
            vec![
                "gate".into(),
                "--results".into(),
                "/nonexistent/r.json".into(),
                "--baseline".into(),
                "/nonexistent/b.json".into(),
            ],
            "/nonexistent/r.json",
        ),
    ] {
        let out = harness().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    std::fs::write(&cfg, "unknown_knob = 1\n").unwrap();
    let out = harness()
        .args(["sweep", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown field"),
        "unknown config keys are rejected"
    );
}
