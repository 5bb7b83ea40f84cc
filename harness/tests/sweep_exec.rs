//! `harness sweep` with your own readers: `--variant exec:'COMMAND'` runs
//! the example libbpf reader and Debian's `bpftool map event_pipe` on the
//! kernel's pinned rings beside one of dropbench's variants, each through the
//! same zero-loss search, results file and report. Needs root and eBPF:
//! ignored unless the privileged-tests feature is on. (The plan's checks,
//! which need nothing: tests/sweep_cli.rs.)

mod support;

use std::path::Path;

use support::byo::{bpftool_installed, build_example_reader};
use support::cli::{cells, harness, ok, results_dir, sweep, sweep_results};
use support::root::require_bpf;

/// The small, fast plan: kernel mode, short evenly spaced trials of the
/// compact capture, a narrow rate range.
fn plan() -> String {
    format!(
        "captures = [{:?}]\nmodes = [\"kernel\"]\nsink = \"null\"\nshape = \"uniform\"\n\
         warmup = \"100ms\"\nwindow = \"300ms\"\nlo = 2000.0\nhi = 8000.0\nmax_trials = 3\n",
        support::fixture("compact-perf.pcapng")
    )
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn the_example_reader_and_bpftool_get_an_ndr_from_harness_sweep_beside_a_variant() {
    require_bpf();
    if !bpftool_installed() {
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
    let mut cmd = sweep(harness(), dir.path(), &plan());
    for v in &variants {
        cmd.arg("--variant").arg(v);
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = ok(&child.wait_with_output().unwrap());
    let r = sweep_results(dir.path());
    assert_eq!(
        cells(&r),
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
            assert_eq!(
                p.trial.as_ref().unwrap().mode,
                harness::results::Mode::Kernel
            );
            assert_eq!(p.variant, s.key.variant);
            assert!(p.counts.offered > 0);
            let exec = &p.config.extra.kernel.as_ref().unwrap()["exec"];
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
    let html =
        std::fs::read_to_string(results_dir(dir.path()).join("latest/report/index.html")).unwrap();
    for v in &variants {
        assert!(
            html.contains(&reports::escape(v)),
            "the report does not name {v}"
        );
    }
    // The NDR-per-variant chart has a bar for each, labelled `N. name`
    // (long names cut to the label column).
    let chart =
        std::fs::read_to_string(results_dir(dir.path()).join("latest/report/zero-loss-rate.svg"))
            .unwrap();
    for label in ["1. batched", "2. exec:exec", "3. exec:exec"] {
        assert!(chart.contains(label), "the NDR chart has no {label:?}");
    }
    assert!(
        stdout.contains("exec:exec"),
        "the table names the readers:\n{stdout}"
    );
}
