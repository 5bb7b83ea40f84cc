//! What the harness hands to the reporters: the computed results of one sweep.
//!
//! Everything here is already measured or derived by the harness (zero-loss
//! search, percentiles, ledger checks). The reporters only lay it out: they
//! sort for display and format numbers, and never compute statistics.
//!
//! The JSON form is serde's default for these types (field names as below;
//! `environment` is a list of `[key, value]` pairs so its order is kept).

use serde::{Deserialize, Serialize};

/// The results of one sweep: every pipeline variant's loss and latency at each
/// offered rate, and the highest rate at which it lost nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// Heading of the report, e.g. `dropbench sweep: fixed4k capture, perf vs ring buffer`.
    pub title: String,
    /// When the sweep finished, seconds since the Unix epoch (UTC). Shown as a
    /// date; the report itself never reads the clock, so output is reproducible.
    pub generated_unix_s: u64,
    /// Facts about the machine and run as `(key, value)` pairs, shown in this
    /// order: kernel, cpus, cpu model, hostname, dropbench version, sink
    /// kind/broker, etc.
    pub environment: Vec<(String, String)>,
    /// The capture that was replayed (path or name); `None` for a live sweep.
    pub capture: Option<String>,
    /// Free-form remarks shown under the title (e.g. "Kafka: librdkafka's
    /// in-process mock cluster, not a real broker").
    pub notes: Vec<String>,
    /// The rate the service must sustain, events/s (e.g. 600 000); charts draw a
    /// marker line there. `None`: no goal.
    #[serde(default)]
    pub goal_rate: Option<f64>,
    /// One entry per pipeline configuration, in the harness's order. Each
    /// names its own baseline ([`Series::baseline`]) for the summary's ratios.
    pub series: Vec<Series>,
    /// What is missing from these results (planned series that did not run,
    /// skipped cells, rates never measured), one remark per line.
    #[serde(default)]
    pub missing: Vec<String>,
    /// Draw the loss chart's y axis on a log scale (rates with no loss then
    /// cannot be placed and are left out of that chart).
    #[serde(default)]
    pub loss_log: bool,
    /// Set when the report compares these results with another run's.
    #[serde(default)]
    pub comparison: Option<Comparison>,
}

/// These results against a baseline run's, cell by cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The baseline's results file.
    pub baseline: String,
    /// How a regression is judged, in words.
    pub rule: String,
    pub rows: Vec<ComparisonRow>,
    /// Cells only the baseline has.
    pub only_in_baseline: Vec<String>,
    /// Cells only these results have.
    pub only_in_current: Vec<String>,
}

/// One cell present in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    pub cell: String,
    /// Zero-loss rates, events/s (`None`: none found).
    pub baseline_rate: Option<f64>,
    pub current_rate: Option<f64>,
    /// Relative change of the zero-loss rate, percent.
    pub change_pct: Option<f64>,
    /// Judged a regression by the harness (its rule is [`Comparison::rule`]).
    pub regressed: bool,
    /// The numbers behind the judgement.
    pub detail: String,
}

/// One pipeline configuration swept over offered rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Pipeline variant name (e.g. `seed-baseline`, `batched`, `zero-copy-sharded`).
    pub variant: String,
    /// Event layout (e.g. `fixed4k`, `compact`).
    pub layout: String,
    /// Kernel-to-user transport (e.g. `perf`, `ringbuf`).
    pub transport: String,
    /// Ring size in bytes (per CPU for perf, total for the BPF ring buffer).
    pub ring_bytes: u64,
    /// Index (in [`SweepReport::series`]) of the series this one's
    /// "× baseline" ratio is taken against; `None`: no baseline.
    #[serde(default)]
    pub baseline: Option<usize>,
    /// Reader wakeup policy (e.g. `every 64 events`, `watermark 50%`,
    /// `no-wakeup, poll 1 ms`); empty if not recorded.
    #[serde(default)]
    pub wakeup: String,
    /// The capture this series replayed (file name) when a sweep covers several;
    /// empty when it is the report's `capture` or a live run.
    #[serde(default)]
    pub capture: String,
    /// How the cell ran: emulated rings, the kernel's rings, or live
    /// (`replay` when not recorded).
    #[serde(default)]
    pub mode: crate::Mode,
    /// The partial-drop rate (loss within the sweep's PDR threshold), events/s.
    #[serde(default)]
    pub pdr: Option<f64>,
    /// Where the pipeline's output went (e.g. `kafka (mock cluster)`, `null`, `file`).
    pub sink: String,
    /// Highest offered rate with zero loss, events/s, as found by the harness's
    /// search. `None`: events were lost even at the lowest rate tried.
    pub zero_loss_rate: Option<f64>,
    /// False if the figures can't be trusted (e.g. the ledger did not balance);
    /// `problems` says why. Reports mark such a series visibly.
    pub valid: bool,
    /// Human-readable reasons the run is suspect, one per line; may be non-empty
    /// for a valid series (warnings).
    pub problems: Vec<String>,
    /// One entry per offered rate that was run, in any order (reports sort by rate).
    pub points: Vec<Point>,
    /// The trial at the zero-loss rate (or, without one, the lowest rate):
    /// `(seconds since its first record, bytes waiting in the rings)`.
    #[serde(default)]
    pub occupancy: Vec<(f64, f64)>,
    /// CPU per pipeline stage over that trial, in pipeline order.
    #[serde(default)]
    pub cpu_per_stage: Vec<StageCpu>,
}

/// One pipeline stage's CPU over a series' chosen trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StageCpuForm")]
pub struct StageCpu {
    /// `producer`, `reader`, `decode`, `classify`, `serialize`, `sink client`, `broker`...
    pub stage: String,
    /// CPU seconds over the trial.
    pub seconds: f64,
    /// CPU ns per event read; 0 when not recorded.
    pub ns_per_event: f64,
    /// Share of all CPUs over the trial (0..=1); 0 when not recorded.
    pub share: f64,
}

/// What `cpu_per_stage` entries have been written as: this struct, or the
/// older `[stage, seconds]` pairs.
#[derive(Deserialize)]
#[serde(untagged)]
enum StageCpuForm {
    Full {
        stage: String,
        seconds: f64,
        #[serde(default)]
        ns_per_event: f64,
        #[serde(default)]
        share: f64,
    },
    Pair(String, f64),
}

impl From<StageCpuForm> for StageCpu {
    fn from(f: StageCpuForm) -> StageCpu {
        match f {
            StageCpuForm::Full {
                stage,
                seconds,
                ns_per_event,
                share,
            } => StageCpu {
                stage,
                seconds,
                ns_per_event,
                share,
            },
            StageCpuForm::Pair(stage, seconds) => StageCpu {
                stage,
                seconds,
                ns_per_event: 0.0,
                share: 0.0,
            },
        }
    }
}

/// The outcome of replaying at one offered rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Offered rate, events/s (the pace the replay driver aimed for).
    pub rate: f64,
    /// Events offered to the ring during the run.
    pub offered: u64,
    /// Events that reached the sink.
    pub delivered: u64,
    /// Events lost anywhere (ring full, dropped in the pipeline).
    pub lost: u64,
    /// `lost` as a percentage of `offered` (0..=100), as computed by the harness.
    pub lost_pct: f64,
    /// The 95% interval of `lost_pct` (pooled over the trials at this rate),
    /// as the harness computed it; `None` when not recorded.
    #[serde(default)]
    pub lost_pct_interval: Option<(f64, f64)>,
    /// Delivered events per second of run time.
    pub throughput: f64,
    /// Median latency from an event's origin to the sink, ns (0 if nothing was delivered).
    pub p50_ns: u64,
    /// 99th percentile latency, ns (0 if nothing was delivered).
    pub p99_ns: u64,
    /// 99.9th percentile latency, ns (0 if nothing was delivered).
    pub p999_ns: u64,
    /// Most bytes the ring held at any moment during the run.
    pub high_water_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_cpu_reads_its_own_form_and_the_older_pairs() {
        let full: Vec<StageCpu> = serde_json::from_str(
            r#"[{"stage":"decode","seconds":0.5,"ns_per_event":12.5,"share":0.01}]"#,
        )
        .unwrap();
        assert_eq!(full[0].ns_per_event, 12.5);
        assert_eq!(
            serde_json::from_value::<Vec<StageCpu>>(serde_json::to_value(&full).unwrap()).unwrap(),
            full
        );
        let old: Vec<StageCpu> = serde_json::from_str(r#"[["reader", 0.25]]"#).unwrap();
        assert_eq!(
            old,
            vec![StageCpu {
                stage: "reader".into(),
                seconds: 0.25,
                ns_per_event: 0.0,
                share: 0.0
            }]
        );
    }
}
