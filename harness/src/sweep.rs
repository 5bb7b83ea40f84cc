//! Sweep results: what `harness sweep` writes and `harness gate` reads.
//!
//! One file, `sweep.json`, schema [`SWEEP_SCHEMA`]. It holds the environment,
//! a summary of each capture, and one [`Series`] per configuration of the
//! matrix (variant x ring size x sink x capture). A series carries its
//! zero-loss rate and every probe of the search as a full run result in the
//! `dropbench.run/1` schema (docs/results-schema.md).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::results::{Environment, RunResult};

pub const SWEEP_SCHEMA: &str = "dropbench.sweep/1";

/// Identifies one configuration of the matrix; the gate matches series on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    pub variant: String,
    /// Capture file name (not the path: baselines move between machines).
    pub capture: String,
    pub layout: String,
    pub transport: String,
    pub ring_bytes: u64,
    pub wakeup: String,
    pub sink: String,
}

impl std::fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} [{} {} {} ring {} KiB, {}, sink {}]",
            self.variant,
            self.capture,
            self.layout,
            self.transport,
            self.ring_bytes >> 10,
            self.wakeup,
            self.sink
        )
    }
}

/// One configuration's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub key: SeriesKey,
    /// Highest offered rate (events/s) with nothing lost anywhere; `None` if even the lowest rate lost.
    pub zero_loss_rate: Option<f64>,
    /// Lowest rate that lost something; `None` if the highest rate tried was clean.
    pub first_lossy_rate: Option<f64>,
    /// False when any probe's ledger did not balance.
    pub valid: bool,
    pub problems: Vec<String>,
    /// Every probe of the search, in order.
    pub points: Vec<RunResult>,
}

/// What a capture holds, as printed before the sweep runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureDigest {
    pub file: String,
    pub probe: String,
    pub transport: String,
    pub samples: u64,
    pub lost: u64,
    pub seconds: f64,
    pub per_ring: Vec<(u32, u64)>,
    pub per_syscall: Vec<(String, u64)>,
}

/// The whole sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepResults {
    pub schema: String,
    pub started_unix_s: u64,
    pub environment: Environment,
    /// What stood in for the broker, in words (e.g. the embedded mock cluster).
    pub sink_note: String,
    pub captures: Vec<CaptureDigest>,
    pub series: Vec<Series>,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepFileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a sweep results file: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: schema {found:?}, expected {SWEEP_SCHEMA:?}")]
    Schema { path: String, found: String },
}

impl SweepResults {
    pub fn read(path: &Path) -> Result<SweepResults, SweepFileError> {
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| SweepFileError::Io {
            path: p.clone(),
            source,
        })?;
        let r: SweepResults =
            serde_json::from_slice(&bytes).map_err(|source| SweepFileError::Parse {
                path: p.clone(),
                source,
            })?;
        if r.schema != SWEEP_SCHEMA {
            return Err(SweepFileError::Schema {
                path: p,
                found: r.schema,
            });
        }
        Ok(r)
    }

    /// Writes atomically (temp file + rename), so an interrupted run never leaves half a file.
    pub fn write(&self, path: &Path) -> Result<(), SweepFileError> {
        let p = path.display().to_string();
        let io = |source| SweepFileError::Io {
            path: p.clone(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self).expect("sweep results serialize");
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// How the gate judged one series.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Within the allowed drop (ratio = current / baseline zero-loss rate).
    Holds { ratio: f64 },
    /// Improved past the allowed drop in the other direction (a new baseline is due).
    Improved { ratio: f64 },
    /// Zero-loss rate fell by more than allowed, or went from some rate to none.
    Regressed {
        baseline: Option<f64>,
        current: Option<f64>,
    },
    /// The current run's ledger did not balance: its figures mean nothing.
    Invalid { problems: Vec<String> },
    /// In the baseline, not in this run.
    Missing,
    /// In this run, not in the baseline.
    New,
}

impl Verdict {
    pub fn fails(&self) -> bool {
        matches!(
            self,
            Verdict::Regressed { .. } | Verdict::Invalid { .. } | Verdict::Missing
        )
    }
}

/// Compares `current` to `baseline`: a series fails when its zero-loss rate
/// dropped by more than `max_drop` (0.10 = 10%), lost its zero-loss rate
/// altogether, is invalid, or is missing.
pub fn judge(
    baseline: &SweepResults,
    current: &SweepResults,
    max_drop: f64,
) -> Vec<(SeriesKey, Verdict)> {
    let mut out = Vec::new();
    for b in &baseline.series {
        let v = match current.series.iter().find(|c| c.key == b.key) {
            None => Verdict::Missing,
            Some(c) if !c.valid => Verdict::Invalid {
                problems: c.problems.clone(),
            },
            Some(c) => match (b.zero_loss_rate, c.zero_loss_rate) {
                (None, None) => Verdict::Holds { ratio: 1.0 },
                (None, Some(_)) => Verdict::Improved {
                    ratio: f64::INFINITY,
                },
                (Some(_), None) => Verdict::Regressed {
                    baseline: b.zero_loss_rate,
                    current: None,
                },
                (Some(br), Some(cr)) => {
                    let ratio = cr / br;
                    if ratio < 1.0 - max_drop {
                        Verdict::Regressed {
                            baseline: Some(br),
                            current: Some(cr),
                        }
                    } else if ratio > 1.0 / (1.0 - max_drop) {
                        Verdict::Improved { ratio }
                    } else {
                        Verdict::Holds { ratio }
                    }
                }
            },
        };
        out.push((b.key.clone(), v));
    }
    for c in &current.series {
        if !baseline.series.iter().any(|b| b.key == c.key) {
            out.push((
                c.key.clone(),
                if c.valid {
                    Verdict::New
                } else {
                    Verdict::Invalid {
                        problems: c.problems.clone(),
                    }
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: &str) -> SeriesKey {
        SeriesKey {
            variant: v.into(),
            capture: "c.pcapng".into(),
            layout: "fixed4k".into(),
            transport: "perf".into(),
            ring_bytes: 1 << 20,
            wakeup: "events:1".into(),
            sink: "null".into(),
        }
    }
    fn series(v: &str, rate: Option<f64>, valid: bool) -> Series {
        Series {
            key: key(v),
            zero_loss_rate: rate,
            first_lossy_rate: None,
            valid,
            problems: if valid { vec![] } else { vec!["ledger".into()] },
            points: vec![],
        }
    }
    fn results(s: Vec<Series>) -> SweepResults {
        SweepResults {
            schema: SWEEP_SCHEMA.into(),
            started_unix_s: 0,
            environment: Environment::detect(),
            sink_note: String::new(),
            captures: vec![],
            series: s,
        }
    }

    #[test]
    fn gate_verdicts() {
        let base = results(vec![
            series("a", Some(100_000.0), true),
            series("b", Some(100_000.0), true),
            series("c", Some(100_000.0), true),
            series("d", Some(100_000.0), true),
            series("gone", Some(1.0), true),
            series("e", None, true),
        ]);
        let cur = results(vec![
            series("a", Some(95_000.0), true),   // -5%: holds at 10%
            series("b", Some(85_000.0), true),   // -15%: regressed
            series("c", None, true),             // lost its zero-loss rate
            series("d", Some(200_000.0), false), // faster, but the ledger did not balance
            series("e", Some(5.0), true),
            series("new", Some(1.0), true),
        ]);
        let v: std::collections::BTreeMap<String, Verdict> = judge(&base, &cur, 0.10)
            .into_iter()
            .map(|(k, v)| (k.variant, v))
            .collect();
        assert!(matches!(v["a"], Verdict::Holds { ratio } if (ratio - 0.95).abs() < 1e-9));
        assert_eq!(
            v["b"],
            Verdict::Regressed {
                baseline: Some(100_000.0),
                current: Some(85_000.0)
            }
        );
        assert_eq!(
            v["c"],
            Verdict::Regressed {
                baseline: Some(100_000.0),
                current: None
            }
        );
        assert!(matches!(v["d"], Verdict::Invalid { .. }));
        assert_eq!(v["gone"], Verdict::Missing);
        assert!(matches!(v["e"], Verdict::Improved { .. }));
        assert_eq!(v["new"], Verdict::New);
        let failing: Vec<_> = v
            .iter()
            .filter(|(_, x)| x.fails())
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(failing, ["b", "c", "d", "gone"]);
    }

    #[test]
    fn results_round_trip_and_reject_other_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        let r = results(vec![series("a", Some(1.0), true)]);
        r.write(&p).unwrap();
        assert_eq!(SweepResults::read(&p).unwrap(), r);
        let mut other = r.clone();
        other.schema = "dropbench.run/1".into();
        std::fs::write(&p, serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(matches!(
            SweepResults::read(&p),
            Err(SweepFileError::Schema { .. })
        ));
        std::fs::write(&p, b"{not json").unwrap();
        assert!(matches!(
            SweepResults::read(&p),
            Err(SweepFileError::Parse { .. })
        ));
    }
}
