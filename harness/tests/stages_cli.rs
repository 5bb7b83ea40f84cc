//! `harness stages`: one trial per variant at a rate, the per-stage table
//! printed and written as stages.json; bad input is one line and exit 2.

mod support;

use harness::cmd::stages::{StagesResults, STAGES_SCHEMA};
use support::cli::{assert_clear_error, harness, ok};

/// The stages whose CPU comes from threads or samples that must have run.
const MEASURED: [&str; 5] = ["producer", "reader", "decode", "classify", "serialize"];

#[test]
fn stages_prints_the_table_and_writes_every_stage_with_its_cost() {
    let dir = tempfile::tempdir().unwrap();
    let out = harness()
        .args([
            "stages",
            "--rate",
            "20k",
            "--variant",
            "batched",
            "--sink",
            "null",
            "--seconds",
            "1",
            "--capture",
        ])
        .arg(support::fixture("fixed4k-perf.pcapng"))
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = ok(&out);

    // The table: a header naming every stage, one row for batched.
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("variant "));
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no table header in {stdout}"));
    for stage in MEASURED.iter().chain(&["hand-off", "sink client"]) {
        assert!(header.contains(stage), "{stage} missing from {header}");
    }
    assert!(
        !header.contains("broker"),
        "a null sink has no broker: {header}"
    );
    let row = lines.next().unwrap_or_default();
    assert!(row.starts_with("batched "), "{stdout}");
    // Every stage column is `ns (share%)`, then the total, RSS and verdict.
    assert_eq!(row.matches("%)").count(), 7, "{row}");
    assert!(row.ends_with("clean"), "{row}");

    // stages.json in a new run folder, the same runs.
    let folder = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("stages.json").is_file())
        .expect("a run folder with stages.json");
    let r: StagesResults =
        serde_json::from_slice(&std::fs::read(folder.join("stages.json")).unwrap()).unwrap();
    assert_eq!(r.schema, STAGES_SCHEMA);
    assert_eq!(r.rate, 20_000.0);
    assert_eq!(r.runs.len(), 1);
    let run = &r.runs[0];
    assert_eq!(run.variant, "batched");
    assert!(run.counts.read > 0);
    let names: Vec<&str> = run.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "producer",
            "reader",
            "hand-off",
            "decode",
            "classify",
            "serialize",
            "sink client"
        ]
    );
    for s in &run.stages {
        if MEASURED.contains(&s.name.as_str()) {
            assert!(s.ns_per_event > 0.0, "{}: {s:?}", s.name);
            assert!(s.cpu_share > 0.0 && s.cpu_share < 1.0, "{}: {s:?}", s.name);
        }
        // ns per event is the stage's CPU over the events read.
        let want = s.cpu.total_ns() as f64 / run.counts.read as f64;
        assert!(
            (s.ns_per_event - want).abs() < 1e-6 * want.max(1.0),
            "{s:?}"
        );
    }
    assert!(run.peak_rss_bytes.is_some_and(|b| b > 1 << 20), "{run:?}");
}

#[test]
fn a_bad_rate_is_one_line_and_exit_2() {
    for rate in ["fast", "0", "max"] {
        let out = harness()
            .args(["stages", "--rate", rate, "--sink", "null"])
            .output()
            .unwrap();
        let line = assert_clear_error(&out, 2, "--rate");
        assert!(line.contains(rate), "{line}");
        assert!(
            out.stdout.is_empty(),
            "nothing ran: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // An unknown variant too.
    let out = harness()
        .args(["stages", "--rate", "20k", "--variant", "nope"])
        .output()
        .unwrap();
    assert_clear_error(&out, 2, "nope");
}
