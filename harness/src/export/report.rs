//! The HTML report's model, built from a results file alone (and a
//! baseline's, for the comparison section), and the report written from it.
//! The sweep calls [`write`] on the sweep.json it has just written, so a
//! report re-rendered later from the same file is the same report.

use std::path::{Path, PathBuf};

use super::Exporter;
use crate::experiment::plan::SweepConfig;
use crate::experiment::results::{CellKey, SweepResults};
use crate::gate::judge::{bracket, loss_by_rate, lost_anywhere};
use crate::gate::{load_baseline, load_current, Loaded, Measure};

/// The report's model of a results file, for `reports` to render.
pub struct ReportModel {
    /// The rate the plan aimed for, drawn on the charts.
    pub goal_rate: Option<f64>,
}

impl Exporter for ReportModel {
    type Output = reports::SweepReport;
    fn export(&self, results: &SweepResults) -> reports::SweepReport {
        to_report(results, self.goal_rate)
    }
}

/// The allowed fall of a cell's NDR before the comparison calls it a
/// regression: the gate's default (`harness gate --max-drop`).
pub const COMPARE_MAX_DROP: f64 = 0.25;

/// Reads `results` (and `baseline`) and writes the report into `out`
/// (default: `report/` beside the results file).
pub fn write(
    results: &Path,
    baseline: Option<&Path>,
    out: Option<&Path>,
    loss_log: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    let loaded = load_current(results)?;
    let baseline = baseline.map(load_baseline).transpose()?;
    let out = out.map_or_else(
        || {
            loaded
                .file
                .parent()
                .unwrap_or(Path::new("."))
                .join("report")
        },
        Path::to_path_buf,
    );
    write_loaded(&loaded, baseline.as_ref(), &out, loss_log)
}

fn write_loaded(
    loaded: &Loaded,
    baseline: Option<&Loaded>,
    out: &Path,
    loss_log: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    // The goal rate is the plan's (kept beside the results); without the
    // plan, the default plan's. Only that key is read: the plan's captures
    // need not exist where the report is rendered.
    let plan_text = loaded.plan().and_then(|p| std::fs::read_to_string(p).ok());
    let plan_goal = plan_text
        .as_deref()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .map(|t| t.get("goal_rate").and_then(|g| g.as_float()));
    let goal = match plan_goal {
        Some(g) => g,
        None => SweepConfig::default().goal_rate,
    };
    let mut report = ReportModel { goal_rate: goal }.export(&loaded.results);
    report.loss_log = loss_log;
    // The plan that ran, as its settings (plan.toml beside the results).
    if let Some(t) = plan_text {
        let settings: Vec<&str> = t
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        report
            .environment
            .push(("plan that ran".into(), settings.join("; ")));
    }
    if let Some(b) = baseline {
        report.comparison = Some(compare(
            &loaded.results,
            &b.results,
            &b.file.display().to_string(),
        ));
    }
    Ok(reports::write_report(out, &report)?)
}

/// The series each ratio is taken against: the seed's design on the same
/// capture, ring and mode (the console table and the HTML use this one rule).
pub fn baseline_of(r: &SweepResults, key: &CellKey) -> Option<usize> {
    r.series.iter().position(|b| {
        b.key.variant == "seed-baseline"
            && b.key.capture == key.capture
            && b.key.ring_total_bytes == key.ring_total_bytes
            && b.key.mode == key.mode
    })
}

fn cell(k: &CellKey) -> String {
    format!(
        "{} · {} · {} {} · ring {} KiB · {}",
        k.variant,
        k.capture,
        k.layout,
        k.transport,
        k.ring_total_bytes >> 10,
        k.mode
    )
}

/// The comparison section: each cell's NDR now and in the baseline, judged
/// on the search's brackets as the gate does.
pub fn compare(cur: &SweepResults, base: &SweepResults, base_name: &str) -> reports::Comparison {
    let same = |a: &CellKey, b: &CellKey| {
        a.variant == b.variant
            && a.capture == b.capture
            && a.layout == b.layout
            && a.transport == b.transport
            && a.ring_total_bytes == b.ring_total_bytes
            && a.wakeup == b.wakeup
            && a.mode == b.mode
    };
    let mut rows = Vec::new();
    let mut only_in_current = Vec::new();
    for c in &cur.series {
        let Some(b) = base.series.iter().find(|b| same(&b.key, &c.key)) else {
            only_in_current.push(cell(&c.key));
            continue;
        };
        let (cb, bb) = (bracket(c, Measure::Ndr), bracket(b, Measure::Ndr));
        let floor = bb.lo * (1.0 - COMPARE_MAX_DROP);
        rows.push(reports::ComparisonRow {
            cell: cell(&c.key),
            baseline_rate: b.zero_loss_rate,
            current_rate: c.zero_loss_rate,
            change_pct: match (b.zero_loss_rate, c.zero_loss_rate) {
                (Some(b), Some(c)) if b > 0.0 => Some((c / b - 1.0) * 100.0),
                _ => None,
            },
            regressed: !c.valid || cb.hi < floor,
            detail: if c.valid {
                format!("NDR {cb} vs baseline {bb}")
            } else {
                "invalid: the ledger did not balance".into()
            },
        });
    }
    let only_in_baseline = base
        .series
        .iter()
        .filter(|b| !cur.series.iter().any(|c| same(&b.key, &c.key)))
        .map(|b| cell(&b.key))
        .collect();
    reports::Comparison {
        baseline: base_name.to_string(),
        rule: format!(
            "A cell regressed when even the top of its NDR bracket (the first failing rate) is more than {:.0}% under the bottom of the baseline's (the rate that held), or its ledger did not balance.",
            COMPARE_MAX_DROP * 100.0
        ),
        rows,
        only_in_baseline,
        only_in_current,
    }
}

/// The report's view of a sweep, from its results alone.
pub fn to_report(r: &SweepResults, goal_rate: Option<f64>) -> reports::SweepReport {
    let e = &r.environment;
    let profile = crate::gate::profile_of(r).unwrap_or_else(|| "not recorded".into());
    let mut environment = vec![
        ("kernel".into(), e.kernel.clone()),
        ("cpus".into(), e.cpus.to_string()),
        ("cpu model".into(), e.cpu_model.clone()),
        ("hostname".into(), e.hostname.clone()),
        ("dropbench".into(), e.version.clone()),
        ("build profile".into(), profile),
        ("build".into(), r.build.clone()),
        ("sink".into(), r.sink_note.clone()),
        ("plan".into(), r.plan_hash.clone()),
    ];
    environment.retain(|(_, v)| !v.is_empty());
    let mut missing = Vec::new();
    if r.series.is_empty() {
        missing.push("No series finished: there is nothing to chart.".to_string());
    }
    if r.planned_series > r.series.len() {
        missing.push(format!(
            "{} of the plan's {} series are not in these results (a shard, an interrupted run, or skipped cells).",
            r.planned_series - r.series.len(),
            r.planned_series
        ));
    }
    for s in &r.skipped {
        missing.push(format!("{}: skipped: {}", s.key, s.reason));
    }
    for s in &r.series {
        if s.points.is_empty() {
            missing.push(format!("{}: no rate was measured", s.key));
        }
    }
    if r.series.len() == 1 {
        missing.push("A single cell: there is nothing to compare it with.".into());
    }
    let one_capture = r.series.iter().all(|s| {
        r.series
            .first()
            .is_some_and(|f| f.key.capture == s.key.capture)
    });
    reports::SweepReport {
        title: "dropbench sweep: highest zero-loss rate per pipeline variant".into(),
        generated_unix_s: r.started_unix_s,
        environment,
        capture: r.captures.first().map(|c| {
            format!(
                "{} ({} {}, {} samples)",
                c.file, c.layout, c.transport, c.samples
            )
        }),
        notes: {
            let mut n = vec![
                "Each point is a trial: a paced replay of the capture into emulated kernel rings that drop samples as the kernel does, read by the variant, into the sink.".to_string(),
                "A rate holds when, over the trial, nothing was lost anywhere (ring, pipeline, sink), the replay offered what its schedule asked, and over the measured window the pipeline kept pace with the offer and its backlog did not grow (a short trial that merely ended before the buffers filled does not count).".to_string(),
            ];
            let mut rules: Vec<String> = r
                .series
                .iter()
                .map(|s| format!("{} (pacing: {})", s.verdict_rule, s.shape))
                .collect();
            rules.dedup();
            n.extend(rules);
            n
        },
        goal_rate,
        series: r
            .series
            .iter()
            .map(|s| reports::Series {
                variant: s.key.variant.clone(),
                layout: s.key.layout.clone(),
                transport: s.key.transport.clone(),
                // Per CPU for perf, whole for the ring buffer (as the model
                // says): the trial's own ring size; the key holds the total.
                ring_bytes: s
                    .points
                    .first()
                    .map_or(s.key.ring_total_bytes, |p| p.config.ring_bytes),
                baseline: baseline_of(r, &s.key),
                mode: s.key.mode,
                pdr: s.pdr,
                wakeup: s.key.wakeup.clone(),
                // Empty when every cell replayed the same capture (the
                // report's own), so the summary has no column repeating it.
                capture: if one_capture {
                    String::new()
                } else {
                    s.key.capture.clone()
                },
                sink: if s.key.broker.is_empty() {
                    s.key.sink.clone()
                } else {
                    format!("{} ({})", s.key.sink, s.key.broker)
                },
                zero_loss_rate: s.zero_loss_rate,
                valid: s.valid,
                problems: s.problems.clone(),
                occupancy: chosen_trial(s).map_or(Vec::new(), |p| {
                    p.progress
                        .iter()
                        .map(|x| (x.t_ns as f64 / 1e9, x.ring_bytes as f64))
                        .collect()
                }),
                cpu_per_stage: chosen_trial(s).map_or(Vec::new(), |p| {
                    p.stages
                        .iter()
                        .map(|st| reports::StageCpu {
                            stage: st.name.clone(),
                            seconds: st.cpu.total_ns() as f64 / 1e9,
                            ns_per_event: st.ns_per_event,
                            share: st.cpu_share,
                        })
                        .collect()
                }),
                points: s
                    .points
                    .iter()
                    .map(|p| {
                        let interval = p.config.target_rate.and_then(|r| {
                            loss_by_rate(s)
                                .into_iter()
                                .find(|(at, _)| *at == r)
                                .map(|(_, x)| (x.lo * 100.0, x.hi * 100.0))
                        });
                        let lat = p.latency.clone().unwrap_or_default();
                        let lost = lost_anywhere(p);
                        reports::Point {
                            rate: p.config.target_rate.unwrap_or(p.rates.offered_per_s),
                            offered: p.counts.offered,
                            delivered: p
                                .ledger
                                .as_ref()
                                .map(|l| l.sink.delivered)
                                .unwrap_or(p.counts.read),
                            // Lost anywhere: in the ring and in every stage.
                            lost,
                            lost_pct: if p.counts.offered == 0 {
                                0.0
                            } else {
                                100.0 * lost as f64 / p.counts.offered as f64
                            },
                            lost_pct_interval: interval,
                            throughput: p.rates.read_per_s,
                            p50_ns: lat.p50_ns,
                            p99_ns: lat.p99_ns,
                            p999_ns: lat.p999_ns,
                            high_water_bytes: p
                                .rings
                                .iter()
                                .map(|r| r.high_water_bytes)
                                .max()
                                .unwrap_or(0),
                        }
                    })
                    .collect(),
            })
            .collect(),
        missing,
        loss_log: false,
        comparison: None,
    }
}

/// The trial the occupancy chart and CPU table show: the first at the
/// series' zero-loss rate, or its lowest rate when none held.
fn chosen_trial(s: &crate::experiment::results::CellOutcome) -> Option<&crate::results::RunResult> {
    let at = |r: f64| s.points.iter().find(|p| p.config.target_rate == Some(r));
    s.zero_loss_rate.and_then(at).or_else(|| {
        s.points.iter().min_by(|a, b| {
            let rate = |p: &crate::results::RunResult| p.config.target_rate.unwrap_or(f64::MAX);
            rate(a).total_cmp(&rate(b))
        })
    })
}
