//! `harness sweep` with your own readers: `--variant exec:'COMMAND'` runs
//! the example libbpf reader and Debian's `bpftool map event_pipe` on the
//! kernel's pinned rings beside one of dropbench's variants, each through the
//! same zero-loss search, results file and report. Privileged where it runs
//! readers (root; under CI=true a skip fails); the plan's checks need nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;

use support::byo::{bpftool_installed, build_example_reader};
use support::root::may_load_bpf;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/captures")
        .join(name)
}

/// The small, fast plan every run here shares: kernel mode, short evenly
/// spaced trials of the compact capture, a narrow rate range.
fn write_plan(dir: &Path, modes: &str) -> PathBuf {
    let cfg = dir.join("plan.toml");
    std::fs::write(
        &cfg,
        format!(
            "captures = [{:?}]\nmodes = [{modes}]\nsink = \"null\"\nshape = \"uniform\"\n\
             warmup = \"100ms\"\nwindow = \"300ms\"\nlo = 2000.0\nhi = 8000.0\nmax_trials = 3\n",
            fixture("compact-perf.pcapng")
        ),
    )
    .unwrap();
    cfg
}

fn sweep(cfg: &Path, out: &Path, variants: &[String]) -> (Output, u32) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
    cmd.args(["sweep", "--config"])
        .arg(cfg)
        .arg("--out")
        .arg(out);
    for v in variants {
        cmd.arg("--variant").arg(v);
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

#[test]
fn the_example_reader_and_bpftool_get_an_ndr_from_harness_sweep_beside_a_variant() {
    if !may_load_bpf("loading BPF") || !bpftool_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(reader) = build_example_reader(dir.path()) else {
        return;
    };
    let libbpf = format!("exec:exec {}", reader.display());
    // bpftool prints every event as hex: to /dev/null (that it prints
    // exactly the successful outputs is tests/replay_kernel.rs's).
    let bpftool =
        "exec:exec bpftool map event_pipe pinned $DROPBENCH_PIN_EVENTS >/dev/null".to_string();
    let variants = vec!["batched".to_string(), libbpf.clone(), bpftool.clone()];
    let cfg = write_plan(dir.path(), "\"kernel\"");
    let results = dir.path().join("results");
    let (out, pid) = sweep(&cfg, &results, &variants);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = harness::sweep::SweepResults::read(&results.join("latest/sweep.json")).unwrap();
    let names: Vec<(&str, &str)> = r
        .series
        .iter()
        .map(|s| (s.key.variant.as_str(), s.key.mode.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("batched", "kernel"),
            (libbpf.as_str(), "kernel"),
            (bpftool.as_str(), "kernel")
        ]
    );
    for s in &r.series {
        assert!(s.valid, "{}: {:?}", s.key, s.problems);
        // 2 k/s of compact events is far below what any of them holds.
        assert!(
            s.zero_loss_rate.is_some_and(|z| z >= 2000.0),
            "{}: no NDR: {s:?}",
            s.key
        );
        for p in &s.points {
            assert_eq!(p.trial.as_ref().unwrap().mode, "kernel");
            assert_eq!(p.variant, s.key.variant);
            assert!(p.counts.offered > 0);
            let exec = &p.config.extra["kernel"]["exec"];
            if s.key.variant.starts_with("exec:") {
                // The reader ran on pins that are gone now.
                let pins = exec["pins"].as_str().unwrap();
                assert!(!Path::new(pins).exists(), "{pins} was left behind");
                assert_eq!(exec["command"], s.key.variant["exec:".len()..]);
            } else {
                assert!(exec.is_null(), "{exec}");
            }
        }
    }
    // No pin directory of that run is left on bpffs.
    let base = Path::new(probes::pin::DEFAULT_BPFFS).join(probes::pin::BASE_DIR);
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(&format!("{pid}-")), "left behind: {name}");
        }
    }
    // The report the sweep wrote names each reader beside the built-in variant.
    let html = std::fs::read_to_string(results.join("latest/report/index.html")).unwrap();
    for v in &variants {
        assert!(
            html.contains(&reports::escape(v)),
            "the report does not name {v}"
        );
    }
    // The NDR-per-variant chart has a bar for each, labelled `N. name`
    // (long names cut to the label column).
    let chart = std::fs::read_to_string(results.join("latest/report/zero-loss-rate.svg")).unwrap();
    for label in ["1. batched", "2. exec:exec", "3. exec:exec"] {
        assert!(chart.contains(label), "the NDR chart has no {label:?}");
    }
    assert!(
        stdout.contains("exec:exec"),
        "the table names the readers:\n{stdout}"
    );
}

#[test]
fn an_exec_reader_without_kernel_mode_is_one_clear_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_plan(dir.path(), "\"replay\"");
    let (out, _) = sweep(
        &cfg,
        &dir.path().join("results"),
        &["batched".into(), "exec:./my-agent --fast, quiet".into()],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.trim();
    assert_eq!(line.lines().count(), 1, "{stderr}");
    for needle in [
        "variants",
        "exec:./my-agent --fast, quiet",
        "kernel mode",
        "modes",
    ] {
        assert!(line.contains(needle), "{needle:?} missing from {line}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Asked for on the command line, kernel mode makes the same plan valid
    // (without privileges its cells are skipped with the reason, not an error).
    if probes::loader::check_privileges().is_err() {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
        let out = cmd
            .args(["sweep", "--config"])
            .arg(&cfg)
            .args(["--modes", "kernel", "--variant", "exec:./my-agent"])
            .arg("--out")
            .arg(dir.path().join("results"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(stdout.contains("skipped"), "{stdout}");
    }
}
