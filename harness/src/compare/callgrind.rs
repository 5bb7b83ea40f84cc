//! Instruction counts per event and stage, from callgrind.
//!
//! `harness count` makes one deterministic pass of a variant over a fixed
//! input (`pipeline::count`). Run under `valgrind --tool=callgrind`, its
//! profile gives every function's callers' view: each `calls=` line is
//! followed by the instructions that call spent, callees included. The
//! stage markers (`pipeline::stage`) are called once per event, so their
//! summed call costs are each stage's instructions; the ring filling
//! (`count::fill_rings`) is the harness's own work, not the variant's.
//!
//! The process also loads the capture, compiles the classifier's rules and
//! starts threads, once. Two passes of `events` and `2 * events` cancel
//! that: per event = (count(2N) - count(N)) / N, for the total and for
//! each stage. What the variant spends outside the markers (reading the
//! ring, copying, handing off) is `rest`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::pipeline::count::FILL_MARKER;
use crate::pipeline::stage::MARKERS;

/// One profile's figures: the program's total and each marker's inclusive
/// instructions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub total: u64,
    pub inclusive: BTreeMap<String, u64>,
}

/// Why a profile could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum CallgrindError {
    #[error("valgrind: {0}")]
    Run(String),
    #[error("callgrind profile {path}: {what}")]
    Parse { path: String, what: String },
}

/// Whether `name` is `marker` (a Rust symbol may carry its `::h<hash>`).
fn is_marker(name: &str, marker: &str) -> bool {
    name == marker
        || name
            .strip_prefix(marker)
            .is_some_and(|rest| rest.starts_with("::h"))
}

/// Reads a callgrind profile written with `--compress-strings=no` (names in
/// full on every line): the `totals:` (or `summary:`) line, and the summed
/// call costs of every marker in `markers`.
pub fn parse(text: &str, markers: &[&str], origin: &str) -> Result<Profile, CallgrindError> {
    let bad = |what: String| CallgrindError::Parse {
        path: origin.to_string(),
        what,
    };
    let mut p = Profile::default();
    let mut total = None;
    // The callee of the `calls=` line just read, when it is a marker.
    let mut callee: Option<&str> = None;
    let mut after_calls = false;
    for (n, line) in text.lines().enumerate() {
        if let Some(t) = line
            .strip_prefix("totals:")
            .or_else(|| line.strip_prefix("summary:"))
        {
            let v = t.split_whitespace().next().unwrap_or("");
            total = Some(
                v.parse::<u64>()
                    .map_err(|_| bad(format!("line {}: totals {v:?}", n + 1)))?,
            );
        } else if let Some(name) = line.strip_prefix("cfn=") {
            callee = markers.iter().copied().find(|m| is_marker(name.trim(), m));
        } else if line.starts_with("calls=") {
            after_calls = true;
        } else if after_calls {
            after_calls = false;
            if let Some(m) = callee {
                let ir = line
                    .split_whitespace()
                    .last()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| bad(format!("line {}: a call's cost {line:?}", n + 1)))?;
                *p.inclusive.entry(m.to_string()).or_default() += ir;
            }
        }
    }
    p.total = total.ok_or_else(|| bad("no totals: line (not a callgrind profile?)".into()))?;
    Ok(p)
}

/// Instructions per event, in total and by stage.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PerEvent {
    pub total: f64,
    /// `decode`, `classify`, `serialize`, `rest`.
    pub stages: BTreeMap<String, f64>,
}

/// Per event from two profiles of `n` and `2n` events.
pub fn per_event(small: &Profile, large: &Profile, n: u64) -> PerEvent {
    let d = |a: u64, b: u64| (b as f64 - a as f64) / n as f64;
    let get = |p: &Profile, m: &str| p.inclusive.get(m).copied().unwrap_or(0);
    let fill = d(get(small, FILL_MARKER), get(large, FILL_MARKER));
    let total = d(small.total, large.total) - fill;
    let mut stages: BTreeMap<String, f64> = BTreeMap::new();
    for (marker, stage) in MARKERS {
        *stages.entry(stage.to_string()).or_default() += d(get(small, marker), get(large, marker));
    }
    let named: f64 = stages.values().sum();
    stages.insert("rest".into(), total - named);
    PerEvent { total, stages }
}

/// Every marker a profile is searched for.
pub fn all_markers() -> Vec<&'static str> {
    MARKERS
        .iter()
        .map(|(m, _)| *m)
        .chain([FILL_MARKER])
        .collect()
}

/// Runs `binary count ARGS... --events N` under callgrind and reads the profile.
pub fn profile(
    binary: &Path,
    count_args: &[String],
    events: u64,
    scratch: &Path,
) -> Result<Profile, CallgrindError> {
    let out = scratch.join(format!("callgrind.{events}.{}.out", std::process::id()));
    let run = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .args([
            "--dump-instr=no",
            "--compress-strings=no",
            "--compress-pos=no",
        ])
        .arg(binary)
        .arg("count")
        .args(count_args)
        .args(["--events", &events.to_string()])
        .output()
        .map_err(|e| CallgrindError::Run(format!("could not start valgrind: {e}")))?;
    if !run.status.success() {
        let stderr = String::from_utf8_lossy(&run.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
            .unwrap_or("")
            .to_string();
        return Err(CallgrindError::Run(format!(
            "{} count {}: {}",
            binary.display(),
            count_args.join(" "),
            last
        )));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| CallgrindError::Parse {
        path: out.display().to_string(),
        what: e.to_string(),
    })?;
    let _ = std::fs::remove_file(&out);
    parse(&text, &all_markers(), &out.display().to_string())
}

/// Whether valgrind can be run here.
pub fn available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = "\
version: 1
creator: callgrind-3.22.0
events: Ir
summary: 1000
fn=main
10 50
cfn=harness::pipeline::stage::decode
calls=4 20
20 100
cfn=harness::pipeline::stage::classify::h0123abcd
calls=4 30
30 400
cfn=harness::pipeline::stage::classify_other
calls=1 30
30 7
fn=worker
cfn=harness::pipeline::stage::classify
calls=2 30
31 200
totals: 1000
";

    #[test]
    fn call_costs_of_the_markers_are_summed_over_their_callers() {
        let p = parse(PROFILE, &all_markers(), "t").unwrap();
        assert_eq!(p.total, 1000);
        assert_eq!(p.inclusive["harness::pipeline::stage::decode"], 100);
        // A hash suffix is the same function; a longer name is not.
        assert_eq!(p.inclusive["harness::pipeline::stage::classify"], 600);
        assert!(!p
            .inclusive
            .contains_key("harness::pipeline::stage::serialize"));
    }

    #[test]
    fn per_event_is_the_difference_of_two_passes() {
        let mk = |total, dec, fill| Profile {
            total,
            inclusive: [
                ("harness::pipeline::stage::decode".to_string(), dec),
                (FILL_MARKER.to_string(), fill),
            ]
            .into(),
        };
        // Fixed cost 5000; per event 30 of which decode 10 and filling 5.
        let small = mk(5000 + 100 * 30, 1000, 500);
        let large = mk(5000 + 200 * 30, 2000, 1000);
        let e = per_event(&small, &large, 100);
        assert_eq!(e.total, 25.0);
        assert_eq!(e.stages["decode"], 10.0);
        assert_eq!(e.stages["rest"], 15.0);
    }

    #[test]
    fn a_file_that_is_not_a_profile_is_an_error() {
        let e = parse("hello\n", &all_markers(), "x.out").unwrap_err();
        assert!(e.to_string().contains("x.out"), "{e}");
        let e = parse("calls=1 2\nnot-a-number\ntotals: 3\n", &["a"], "y").unwrap();
        assert_eq!(e.total, 3);
    }
}
