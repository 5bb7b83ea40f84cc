//! The typed plan through `harness sweep`: axes crossed with variants and
//! their knobs, cells a variant cannot run skipped with the reason (or
//! refused when asked for by name), and the minimum-ring search, on the
//! bundled capture with tiny trials. Nothing here depends on how fast this
//! machine is: only the shape of the answers is checked.

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

/// Tiny trials over the bundled capture into the null sink, evenly spaced
/// (a whole pass over the capture's shape would take seconds at 5 k/s).
const TINY: &str = "captures = [\"fixtures/captures/fixed4k-perf.pcapng\"]\nsink = \"null\"\n\
                    shape = \"uniform\"\nwarmup = \"50ms\"\nwindow = \"100ms\"\n\
                    lo = 5000.0\nhi = 5000.0\nresolution = 1.0\nmax_trials = 1\n";

fn sweep(dir: &Path, config: &str) -> (Output, PathBuf) {
    let cfg = dir.join("plan.toml");
    std::fs::write(&cfg, format!("{TINY}{config}")).unwrap();
    let root = dir.join("r");
    let out = harness()
        .args(["sweep", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&root)
        .output()
        .unwrap();
    (out, root.join("latest/sweep.json"))
}

#[test]
fn axes_and_knobs_make_the_cells_and_unrunnable_ones_are_skipped_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = sweep(
        dir.path(),
        "layouts = [\"fixed4k\", \"compact\"]\n\
         variants = [\"seed-baseline\", \"compact\", { name = \"batched\", workers = 1 }]\n",
    );
    let stdout = ok(&out);
    let r = SweepResults::read(&json).unwrap();
    let cells: Vec<(String, String, String)> = r
        .series
        .iter()
        .map(|s| {
            (
                s.key.variant.clone(),
                s.key.layout.clone(),
                s.key.knobs.clone(),
            )
        })
        .collect();
    let cell = |v: &str, l: &str, k: &str| (v.to_string(), l.to_string(), k.to_string());
    assert_eq!(
        cells,
        [
            cell("seed-baseline", "fixed4k", ""),
            cell("seed-baseline", "compact", ""),
            cell("compact", "compact", ""),
            cell("batched", "fixed4k", "workers=1"),
            cell("batched", "compact", "workers=1"),
        ],
        "{stdout}"
    );
    assert_eq!(r.planned_series, 5);
    for s in &r.series {
        assert!(s.valid, "{}: {:?}", s.key, s.problems);
        assert!(!s.points.is_empty(), "{}", s.key);
    }
    // compact on fixed4k came from the cross product: skipped, with why.
    assert_eq!(r.skipped.len(), 1, "{:?}", r.skipped);
    let skip = &r.skipped[0];
    assert_eq!(
        (skip.key.variant.as_str(), skip.key.layout.as_str()),
        ("compact", "fixed4k")
    );
    assert!(
        skip.reason.contains("cannot read fixed4k"),
        "{}",
        skip.reason
    );
    assert!(stdout.contains("skipped"), "{stdout}");

    // Asked for by name, the same cell is an error: key, line, exit 2.
    let (out, _) = sweep(
        dir.path(),
        "\n[[variants]]\nname = \"compact\"\nlayouts = [\"fixed4k\"]\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // TINY is 9 lines; the blank line is 10, the header 11, `layouts` 13.
    for needle in [
        "line 13",
        "variants: compact: layouts",
        "cannot read fixed4k",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from {err}");
    }
    assert_eq!(err.lines().count(), 1, "{err}");
    // An unknown knob, too.
    let (out, _) = sweep(
        dir.path(),
        "variants = [{ name = \"batched\", workerz = 2 }]\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("line 10") && err.contains("workerz"), "{err}");
}

#[test]
fn the_minimum_ring_search_reports_its_size_and_bracket() {
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = sweep(
        dir.path(),
        "variants = [\"compact\"]\n\
         min_ring = { rate = 5000.0, loss = 0.0, lo = \"64KiB\", hi = \"1MiB\" }\n",
    );
    let stdout = ok(&out);
    assert!(stdout.contains("minimum ring at 5000/s"), "{stdout}");
    assert!(stdout.contains("min ring"), "the table's column: {stdout}");
    let r = SweepResults::read(&json).unwrap();
    let s = &r.series[0];
    assert!(s.valid, "{:?}", s.problems);
    let m = s.min_ring.as_ref().expect("min_ring in sweep.json");
    assert_eq!((m.rate, m.loss), (5000.0, 0.0));
    // hi first, then lo, then bisection over 64, 128, ..., 1024 KiB: at most 2 + 3.
    assert!(!m.steps.is_empty() && m.steps.len() <= 5, "{m:?}");
    assert_eq!(m.steps[0].ring_bytes, 1 << 20);
    for st in &m.steps {
        assert!(st.ring_bytes.is_power_of_two());
        assert!((64 << 10..=1 << 20).contains(&st.ring_bytes), "{st:?}");
        assert_eq!(st.holds, st.loss == 0.0, "{st:?}");
    }
    let held = |b: u64| m.steps.iter().any(|st| st.ring_bytes == b && st.holds);
    let failed = |b: u64| m.steps.iter().any(|st| st.ring_bytes == b && !st.holds);
    match (m.ring_bytes, m.failing_below) {
        // The bracket is two neighbouring powers of two, each tried.
        (Some(r), Some(b)) => {
            assert!(held(r) && failed(b) && b * 2 == r && !m.at_lo, "{m:?}")
        }
        (Some(r), None) => assert!(held(r) && r == 64 << 10 && m.at_lo, "{m:?}"),
        (None, _) => assert!(m.reached_hi && failed(1 << 20), "{m:?}"),
    }
    // Its trials ran at other sizes: the rate search's points are the cell's own.
    for p in &s.points {
        assert_eq!(p.config.target_rate, Some(5000.0));
    }
}
