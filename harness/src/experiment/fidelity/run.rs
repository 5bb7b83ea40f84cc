//! Running a fidelity plan: for each cell and repeat, the reference
//! recording, the live run and the replays (see the module docs of
//! [`super`]), and the cell's figures from them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::super::live::{run_live_trial, CommandTraffic, LiveSetup, LiveTraffic};
use super::super::stats::Spread;
use super::{
    agreement, CellResult, FidelityCell, FidelityError, FidelityPlan, FidelityResults, Reader,
    Side, SideResult, SideRun, SCHEMA, TOLERANCE_PP,
};
use crate::capture::{Capture, Loading};
use crate::classify::Classifier;
use crate::replay::{Bound, Pacing, ReplayOptions, Wakeup};
use crate::results::CommandOutcome;
use crate::sink::SinkSpec;

/// The wakeup in the reference ring that behaves as `w` does in the cell's:
/// the same events or bytes (a watermark is in bytes, so it is kept in bytes,
/// not as a share of the larger ring).
fn reference_wakeup(w: Wakeup) -> String {
    w.to_string()
}

/// `harness record --run` of the plan's command into `path`.
fn record_args(
    plan: &FidelityPlan,
    path: &Path,
    ring_bytes: u64,
    wakeup: Wakeup,
) -> super::super::record::RecordArgs {
    super::super::record::RecordArgs {
        output: path.to_path_buf(),
        layout: plan.layout,
        transport: plan.transport,
        ring_bytes,
        wakeup: Some(reference_wakeup(wakeup)),
        duration: None,
        filter: None,
        no_exit: false,
        hook: probes::loader::Hook::Tracepoints,
        run: Some(plan.command.clone()),
        load_rate: None,
        load_duration: None,
        load_mix: None,
        load_cpus: None,
        tracefs: PathBuf::from("/sys/kernel/tracing"),
        json: None,
        quiet: true,
    }
}

/// Records the command once for `cell` into `path` (see the module docs).
fn record_reference(
    plan: &FidelityPlan,
    cell: &FidelityCell,
    path: &Path,
) -> anyhow::Result<(super::super::record::RecordSummary, Capture)> {
    let args = record_args(plan, path, plan.reference_ring_bytes, cell.wakeup);
    let summary = super::super::record::record(&args)?;
    let capture = Capture::open(path, Loading::Preload)?;
    Ok((summary, capture))
}

impl SideRun {
    /// A run that offered `offered` samples and lost `lost` of them.
    fn counted(
        repeat: usize,
        offered: u64,
        lost: u64,
        seconds: f64,
        not_judged: Option<String>,
    ) -> SideRun {
        SideRun {
            repeat,
            offered,
            lost,
            lost_pct: if offered == 0 {
                0.0
            } else {
                100.0 * lost as f64 / offered as f64
            },
            seconds,
            not_judged,
        }
    }
}

/// One live run of `cell` read by `harness record`'s reader: `record` itself
/// into the cell's rings.
fn live_recorder_run(
    plan: &FidelityPlan,
    cell: &FidelityCell,
    repeat: usize,
) -> Result<(SideRun, u64), FidelityError> {
    let path = plan.scratch.join(format!("live-{repeat}.pcapng"));
    let args = record_args(plan, &path, cell.ring_bytes, cell.wakeup);
    let summary = super::super::record::record(&args).map_err(|source| FidelityError::Reference {
        cell: cell.label(),
        source,
    });
    let _ = std::fs::remove_file(&path);
    let summary = summary?;
    let k = summary.kernel.total();
    let ran_ns = summary.command.as_ref().map_or(0, |c| c.ran_ns);
    let not_judged = summary
        .command
        .as_ref()
        .and_then(|c| c.unjudged_reason(plan.rule.warmup_ns + plan.rule.window_ns))
        .or_else(|| (!summary.balanced).then(|| "the recording does not balance".to_string()));
    Ok((
        SideRun::counted(repeat, k.emitted, k.failed(), summary.seconds, not_judged),
        ran_ns,
    ))
}

/// One live run of `cell`.
fn live_run(
    plan: &FidelityPlan,
    cell: &FidelityCell,
    repeat: usize,
    mean_sample_len: u64,
) -> Result<(SideRun, u64), FidelityError> {
    let variant = match cell.reader {
        Reader::Variant(v) => v,
        Reader::Recorder => return live_recorder_run(plan, cell, repeat),
    };
    let traffic = CommandTraffic {
        command: plan.command.clone(),
        exits: true,
        time_limit: plan.time_limit,
        profile: false,
    };
    let sink = SinkSpec::Null;
    let setup = LiveSetup {
        variant,
        knobs: (variant.knobs)(),
        traffic: LiveTraffic::Command(&traffic),
        mean_sample_len,
        layout: plan.layout,
        transport: plan.transport,
        ring_bytes: cell.ring_bytes,
        wakeup: cell.wakeup,
        sink: &sink,
        classifier: Arc::new(Classifier::default_rules()),
        rule: plan.rule,
        load_cpu: None,
        load_threads: 1,
        run_time_stats: false,
    };
    let err = |source| FidelityError::Live {
        cell: cell.label(),
        source,
    };
    let t = run_live_trial(&setup, 0.0, sink.open().map_err(|e| err(e.into()))?).map_err(err)?;
    let k = t.kernel.total();
    let ran_ns = t.command.as_ref().map_or(t.duration_ns, |c| c.ran_ns);
    let not_judged = t
        .command
        .as_ref()
        .and_then(|c: &CommandOutcome| c.unjudged_reason(plan.rule.warmup_ns + plan.rule.window_ns))
        .or_else(|| (!t.ledger.is_balanced()).then(|| "the ledger does not balance".to_string()));
    Ok((
        SideRun::counted(
            repeat,
            k.emitted,
            k.failed(),
            t.duration_ns as f64 / 1e9,
            not_judged,
        ),
        ran_ns,
    ))
}

/// One replay of the reference into `cell`'s rings.
fn replay_run(
    plan: &FidelityPlan,
    cell: &FidelityCell,
    capture: &Capture,
    repeat: usize,
    co_runner: bool,
) -> Result<SideRun, FidelityError> {
    let opts = ReplayOptions {
        pacing: Pacing::Original,
        bound: Bound::Loops(1),
        transport: None,
        ring_bytes: Some(cell.ring_bytes),
        rings: None,
        wakeup: Some(cell.wakeup),
        stop_at_loss: None,
        co_runner: match (co_runner, &capture.cpu_profile) {
            (true, Some(p)) => Some(Arc::new(p.clone())),
            _ => None,
        },
    };
    let not_judged = (co_runner && capture.cpu_profile.is_none())
        .then(|| "the reference holds no CPU profile".to_string());
    let replay_err = |source| FidelityError::Replay {
        cell: cell.label(),
        source,
    };
    let rep = match cell.reader {
        Reader::Variant(v) => {
            crate::pipeline::replayed::run_replayed(
                v,
                (v.knobs)(),
                capture,
                &opts,
                Arc::new(Classifier::default_rules()),
                SinkSpec::Null
                    .open()
                    .map_err(|e| FidelityError::Plan(e.to_string()))?,
                Duration::from_secs(10),
            )
            .map_err(replay_err)?
            .replay
        }
        Reader::Recorder => {
            let path = plan.scratch.join(format!("replayed-{repeat}.pcapng"));
            let mut meta = capture.meta.clone();
            meta.ring_bytes = cell.ring_bytes;
            meta.wakeup = cell.wakeup;
            crate::replay::run(capture, &opts, |src| {
                super::super::record::drain_to_capture(src, &path, &meta)
            })
            .map_err(|e| replay_err(e.into()))?
        }
    };
    if !rep.consumer.problems.is_empty() {
        return Err(FidelityError::Plan(format!(
            "{}: {}",
            cell.label(),
            rep.consumer.problems.join("; ")
        )));
    }
    let rep = &rep;
    Ok(SideRun::counted(
        repeat,
        rep.offered,
        rep.lost,
        rep.last_write_ns.saturating_sub(rep.start_ns) as f64 / 1e9,
        not_judged,
    ))
}

/// Runs `plan`, calling `progress` after every run with a line to show.
pub fn run(
    plan: &FidelityPlan,
    mut progress: impl FnMut(&str),
) -> Result<FidelityResults, FidelityError> {
    plan.check()?;
    probes::loader::check_privileges().map_err(|e| FidelityError::Live {
        cell: "every cell".into(),
        source: super::super::live::LiveError::Privileges(Box::new(e)),
    })?;
    std::fs::create_dir_all(&plan.scratch)
        .map_err(|e| FidelityError::Plan(format!("{}: {e}", plan.scratch.display())))?;
    let t0 = std::time::Instant::now();
    let started_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let replay_sides = plan.replay_sides();
    let mut cells = Vec::new();
    for cell in &plan.cells {
        let label = cell.label();
        let mut live = Vec::new();
        let mut replays: Vec<Vec<SideRun>> = vec![Vec::new(); replay_sides.len()];
        let (mut ref_samples, mut ref_lost, mut time_ratio) = (Vec::new(), Vec::new(), Vec::new());
        for repeat in 0..plan.repeats {
            let path = plan.scratch.join(format!("reference-{repeat}.pcapng"));
            let (summary, capture) =
                record_reference(plan, cell, &path).map_err(|source| FidelityError::Reference {
                    cell: label.clone(),
                    source,
                })?;
            let _ = std::fs::remove_file(&path);
            let ref_ns = summary.command.as_ref().map_or(0, |c| c.ran_ns);
            ref_samples.push(summary.samples);
            ref_lost.push(summary.lost_reported + summary.lost_unreported);
            // Live first on even repeats, replays first on odd ones.
            let mut order: Vec<Option<usize>> = std::iter::once(None)
                .chain((0..replay_sides.len()).map(Some))
                .collect();
            let turn = repeat % order.len();
            order.rotate_left(turn);
            for step in order {
                match step {
                    None => {
                        let (run, ran_ns) = live_run(
                            plan,
                            cell,
                            repeat,
                            super::super::trial::mean_sample_len(&capture),
                        )?;
                        if ref_ns > 0 {
                            time_ratio.push(ran_ns as f64 / ref_ns as f64);
                        }
                        progress(&format!(
                            "{label:<34} repeat {:>2}  live                {:>7.3} % of {}{}",
                            repeat + 1,
                            run.lost_pct,
                            run.offered,
                            run.not_judged
                                .as_deref()
                                .map(|w| format!("  NOT JUDGED: {w}"))
                                .unwrap_or_default()
                        ));
                        live.push(run);
                    }
                    Some(i) => {
                        let side = replay_sides[i];
                        let run =
                            replay_run(plan, cell, &capture, repeat, side == Side::ReplayCoRunner)?;
                        progress(&format!(
                            "{label:<34} repeat {:>2}  {:<19} {:>7.3} % of {}",
                            repeat + 1,
                            side.name(),
                            run.lost_pct,
                            run.offered
                        ));
                        replays[i].push(run);
                    }
                }
            }
        }
        let reader = cell.reader.name();
        let live = SideResult::new(Side::Live, reader, live);
        let mut sides = vec![live];
        for (side, runs) in replay_sides.iter().zip(replays) {
            sides.push(SideResult::new(*side, reader, runs));
        }
        let agreement = sides[1..]
            .iter()
            .filter_map(|r| agreement(&sides[0], r))
            .collect();
        cells.push(CellResult {
            label,
            variant: reader.to_string(),
            layout: plan.layout.to_string(),
            transport: plan.transport.to_string(),
            ring_bytes: cell.ring_bytes,
            wakeup: cell.wakeup.to_string(),
            sides,
            agreement,
            reference_samples: ref_samples,
            reference_lost: ref_lost,
            live_over_reference_time: Spread::of(&time_ratio).map(|s| s.median),
        });
    }
    let (kernel, host) = crate::host::uname();
    Ok(FidelityResults {
        schema: SCHEMA.into(),
        command: plan.command.clone(),
        repeats: plan.repeats,
        reference_ring_bytes: plan.reference_ring_bytes,
        co_runner: plan.co_runner,
        tolerance_pp: TOLERANCE_PP,
        host,
        kernel,
        cpus: crate::host::cpus() as usize,
        started_unix_s,
        seconds: t0.elapsed().as_secs_f64(),
        cells,
    })
}
