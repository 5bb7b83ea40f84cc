//! One trial of one cell on one side: `BINARY replay ... --json FILE`, and
//! the figures a comparison reads from the results file it writes
//! (`dropbench.run/1`, read as plain JSON so that older builds' files are
//! read alike).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cells::CompareCell;

/// How a trial is paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrialKind {
    /// `--max`: offered more than the pipeline can take; it reads at its
    /// saturated throughput.
    Saturated,
    /// `--rate R`: the loss at a fixed offered rate with the cell's ring.
    AtRate(f64),
}

/// What one trial measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrialFigures {
    /// Events/s the pipeline read.
    pub throughput: f64,
    /// Events the producer offered, and those the rings lost.
    pub offered: u64,
    pub lost: u64,
    /// Events read.
    pub read: u64,
    /// Pipeline CPU (every stage but the producer) per event read, ns.
    pub cpu_ns_per_event: f64,
    /// CPU per event read by stage, ns.
    pub stage_ns: Vec<(String, f64)>,
    /// The layout and sink the run reports, for the sides' mismatch check.
    pub layout: String,
    pub sink: String,
}

impl TrialFigures {
    /// Lost over offered.
    pub fn loss(&self) -> f64 {
        if self.offered == 0 {
            0.0
        } else {
            self.lost as f64 / self.offered as f64
        }
    }

    /// Reads a `dropbench.run/1` file's figures.
    pub fn from_json(text: &str) -> Result<TrialFigures, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let num = |p: &str| {
            v.pointer(p)
                .and_then(|x| x.as_f64())
                .ok_or_else(|| format!("no number at {p}"))
        };
        let read = num("/counts/read")? as u64;
        let mut stage_ns = Vec::new();
        let mut cpu = 0.0;
        if let Some(stages) = v.pointer("/stages").and_then(|s| s.as_array()) {
            for s in stages {
                let name = s.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                let ns = ["user_ns", "sys_ns"]
                    .iter()
                    .filter_map(|k| s.pointer(&format!("/cpu/{k}")).and_then(|x| x.as_f64()))
                    .sum::<f64>();
                let per = ns / read.max(1) as f64;
                if name != "producer" {
                    cpu += per;
                }
                stage_ns.push((name.to_string(), per));
            }
        }
        // The rings' losses (`counts.lost`): what a replay's results file counts as lost.
        let lost = num("/counts/lost")? as u64;
        Ok(TrialFigures {
            throughput: num("/rates/read_per_s")?,
            offered: num("/counts/offered")? as u64,
            lost,
            read,
            cpu_ns_per_event: cpu,
            stage_ns,
            layout: v
                .pointer("/config/layout")
                .and_then(|x| x.as_str())
                .unwrap_or("")
                .to_string(),
            sink: v
                .pointer("/config/extra/sink")
                .and_then(|x| x.as_str())
                .unwrap_or("")
                .to_string(),
        })
    }
}

/// The command line of one trial (also printed to reproduce it).
pub fn trial_args(
    cell: &CompareCell,
    kind: TrialKind,
    length: Duration,
    json: &Path,
) -> Vec<String> {
    let mut a = vec![
        "replay".to_string(),
        cell.capture.display().to_string(),
        "--variant".into(),
        cell.variant.clone(),
        "--duration".into(),
        probes::units::format_duration(length),
        "--transport".into(),
        cell.transport.clone(),
        "--ring-bytes".into(),
        cell.ring_bytes.to_string(),
        "--wakeup".into(),
        cell.wakeup.clone(),
        "--sink".into(),
        cell.sink.clone(),
    ];
    if let Some(r) = cell.rings {
        a.extend(["--rings".into(), r.to_string()]);
    }
    if let Some(b) = &cell.brokers {
        a.extend(["--brokers".into(), b.clone()]);
    }
    for k in &cell.knobs {
        a.extend(["--knob".into(), k.clone()]);
    }
    match kind {
        TrialKind::Saturated => a.push("--max".into()),
        TrialKind::AtRate(r) => a.extend(["--rate".into(), format!("{r:.0}")]),
    }
    a.extend(["--json".into(), json.display().to_string()]);
    a
}

/// Runs one trial; the error is the trial's last error line.
pub fn run_trial(
    binary: &Path,
    cell: &CompareCell,
    extra_knobs: &[String],
    kind: TrialKind,
    length: Duration,
    scratch: &Path,
) -> Result<TrialFigures, String> {
    let json: PathBuf = scratch.join(format!("trial-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&json);
    let mut args = trial_args(cell, kind, length, &json);
    for k in extra_knobs {
        args.extend(["--knob".into(), k.clone()]);
    }
    let out = Command::new(binary)
        .args(&args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .or_else(|| stderr.lines().find(|l| !l.trim().is_empty()))
            .unwrap_or("exited without a message")
            .trim_start_matches("error: ")
            .to_string();
        return Err(line);
    }
    let text = std::fs::read_to_string(&json)
        .map_err(|e| format!("no results file {}: {e}", json.display()))?;
    TrialFigures::from_json(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_a_run_result() {
        let text = r#"{"schema":"dropbench.run/1","counts":{"offered":1000,"lost":10,"read":990},
            "rates":{"read_per_s":990.0},
            "stages":[{"name":"producer","cpu":{"user_ns":5000,"sys_ns":0}},
                      {"name":"reader","cpu":{"user_ns":990,"sys_ns":990}},
                      {"name":"classify","cpu":{"user_ns":1980,"sys_ns":0}}],
            "config":{"layout":"fixed4k","extra":{"sink":"null"}}}"#;
        let f = TrialFigures::from_json(text).unwrap();
        assert_eq!(f.throughput, 990.0);
        assert!((f.loss() - 0.01).abs() < 1e-12);
        assert!((f.cpu_ns_per_event - 4.0).abs() < 1e-9, "{f:?}");
        assert_eq!(f.layout, "fixed4k");
        assert!(TrialFigures::from_json("{}").is_err());
        assert!(TrialFigures::from_json("nope").is_err());
    }
}
