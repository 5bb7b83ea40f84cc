//! `harness compare`: exit codes and messages. Most sides here are stand-in
//! harness binaries (shell scripts that answer `--version` and `replay` with
//! a results file of chosen figures), so every verdict is known in advance;
//! one test compares the real binary with itself made slower by a knob.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::cli::{assert_clear_error, harness, text};

/// A stand-in harness: `--version` says so, `replay` writes a results file
/// whose saturated throughput cycles through `throughputs` (one per run),
/// with `layout`, and `replay` fails with `fail` when given.
fn fake(dir: &Path, name: &str, throughputs: &[u32], layout: &str, fail: Option<&str>) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let list = throughputs
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let fail = fail
        .map(|f| format!("echo 'error: {f}' >&2; exit 1"))
        .unwrap_or_default();
    let script = format!(
        r#"#!/bin/sh
if [ "$1" = --version ]; then echo "harness 9.9.9"; exit 0; fi
if [ "$1" = replay ] && [ "$2" = --help ]; then echo "  --json <JSON>"; exit 0; fi
if [ "$1" != replay ]; then echo "error: no such command $1" >&2; exit 2; fi
{fail}
json=""
while [ $# -gt 0 ]; do
  if [ "$1" = --json ]; then json="$2"; shift; fi
  shift
done
state="$(dirname "$0")/runs"
n=$(cat "$state" 2>/dev/null || echo 0)
echo $((n + 1)) > "$state"
set -- {list}
i=$((n % $#))
shift $i
printf '{{"counts":{{"offered":100000,"lost":0,"read":100000}},"rates":{{"read_per_s":%s}},"stages":[{{"name":"producer","cpu":{{"user_ns":1,"sys_ns":0}}}},{{"name":"reader","cpu":{{"user_ns":200000000,"sys_ns":0}}}}],"config":{{"layout":"{layout}","extra":{{"sink":"null (discards messages)"}}}}}}' "$1" > "$json"
"#
    );
    let p = d.join("harness");
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn compare(dir: &Path, baseline: &Path, candidate: &Path) -> std::process::Output {
    harness()
        .args([
            "compare",
            "--config",
            "ci/sweep-ci.toml",
            "--variants",
            "batched",
        ])
        .args(["--pairs", "8", "--trial", "100ms", "--seed", "7"])
        .arg("--baseline")
        .arg(baseline)
        .arg("--candidate")
        .arg(candidate)
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap()
}

#[test]
fn equal_builds_pass_with_exit_0_and_write_their_results_and_page() {
    let d = tempfile::tempdir().unwrap();
    let b = fake(d.path(), "b", &[500_000], "fixed4k", None);
    let c = fake(d.path(), "c", &[500_000], "fixed4k", None);
    let out = compare(d.path(), &b, &c);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("compare passed: 3 checks"), "{stdout}");
    assert!(stdout.contains("throughput"), "{stdout}");
    let json = std::fs::read_to_string(d.path().join("out/compare.json")).unwrap();
    let r: harness::compare::CompareResults = serde_json::from_str(&json).unwrap();
    assert_eq!(r.cells.len(), 1);
    assert_eq!(r.cells[0].pairs.len(), 8);
    assert_eq!(r.seed, 7);
    let html = std::fs::read_to_string(d.path().join("out/compare.html")).unwrap();
    assert!(html.contains("<td>pass</td>"), "{html}");
}

#[test]
fn a_slower_candidate_fails_with_exit_1_and_a_reproduce_command() {
    let d = tempfile::tempdir().unwrap();
    let b = fake(d.path(), "b", &[500_000, 520_000], "fixed4k", None);
    let c = fake(d.path(), "c", &[400_000, 416_000], "fixed4k", None);
    let out = compare(d.path(), &b, &c);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("FAILED throughput drop < 10% (default) on batched"),
        "{stderr}"
    );
    assert!(
        stderr.contains("reproduce: cargo run --release -p harness -- compare --baseline"),
        "{stderr}"
    );
    assert!(stderr.contains("--seed 7"), "{stderr}");
    assert!(
        stderr.contains("error: compare failed: 1 of 3 checks regressed"),
        "{stderr}"
    );
}

#[test]
fn a_bimodal_candidate_is_inconclusive_with_exit_3() {
    let d = tempfile::tempdir().unwrap();
    let b = fake(d.path(), "b", &[500_000], "fixed4k", None);
    let c = fake(d.path(), "c", &[375_000, 625_000], "fixed4k", None);
    let out = compare(d.path(), &b, &c);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("UNDECIDED throughput"), "{stderr}");
    assert!(stderr.contains("compare inconclusive"), "{stderr}");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let good = fake(d.path(), "good", &[500_000], "fixed4k", None);
    // An unknown revision.
    let out = harness()
        .args([
            "compare",
            "--baseline",
            "no-such-revision-xyz",
            "--candidate",
        ])
        .arg(&good)
        .output()
        .unwrap();
    assert_clear_error(&out, 2, "not a file and not a commit of this repository");
    // A baseline binary that is not dropbench.
    let not = d.path().join("not-harness");
    std::fs::write(&not, "#!/bin/sh\necho hello\n").unwrap();
    std::fs::set_permissions(&not, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = compare(d.path(), &not, &good);
    assert_clear_error(&out, 2, "is not dropbench's harness");
    // A cell one side cannot run.
    let cannot = fake(
        d.path(),
        "cannot",
        &[500_000],
        "fixed4k",
        Some("unknown pipeline variant \"batched\""),
    );
    let out = compare(d.path(), &cannot, &good);
    assert_clear_error(
        &out,
        2,
        "the baseline cannot run it: unknown pipeline variant",
    );
    // Sides that run the cell on different layouts.
    let compact = fake(d.path(), "compact", &[500_000], "compact", None);
    let out = compare(d.path(), &good, &compact);
    assert_clear_error(&out, 2, "the sides differ in layout");
    // A variant not in the plan, and too few pairs.
    let out = harness()
        .args([
            "compare",
            "--config",
            "ci/sweep-ci.toml",
            "--variants",
            "nope",
        ])
        .arg("--baseline")
        .arg(&good)
        .arg("--candidate")
        .arg(&good)
        .output()
        .unwrap();
    assert_clear_error(&out, 2, "nope is not a variant of the plan");
    let out = harness()
        .args(["compare", "--pairs", "3", "--baseline"])
        .arg(&good)
        .output()
        .unwrap();
    assert_clear_error(&out, 2, "--pairs 3");
    // A compare rule that does not parse.
    let rules = d.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nkind = \"throughput\"\nvariant = \"*\"\nthreshold = \"10%\"\n",
    )
    .unwrap();
    let out = harness()
        .args(["compare", "--rules"])
        .arg(&rules)
        .arg("--baseline")
        .arg(&good)
        .output()
        .unwrap();
    assert_clear_error(&out, 2, "needs compare = true");
}

/// The real binary against itself with 50 us of extra work per event in the
/// candidate's batched variant: about 20 k events/s at most, against
/// hundreds of thousands. Any host finds that.
#[test]
fn the_real_binary_made_slower_by_a_knob_fails() {
    let d = tempfile::tempdir().unwrap();
    let copy = d.path().join("harness-copy");
    std::fs::copy(env!("CARGO_BIN_EXE_harness"), &copy).unwrap();
    let rules = d.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nkind = \"throughput\"\ncompare = true\nvariant = \"*\"\nthreshold = \"10%\"\n",
    )
    .unwrap();
    let out = harness()
        .args([
            "compare",
            "--config",
            "ci/sweep-ci.toml",
            "--variants",
            "batched",
        ])
        .args([
            "--pairs",
            "6",
            "--trial",
            "200ms",
            "--candidate-knob",
            "extra_work=50us",
        ])
        .arg("--rules")
        .arg(&rules)
        .arg("--baseline")
        .arg(&copy)
        .arg("--candidate")
        .arg(&copy)
        .arg("--out")
        .arg(d.path().join("out"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("FAILED rule 1: throughput drop < 10%"),
        "{stderr}"
    );
}
