//! Fidelity of replay to a real program, judged over repeats
//! (`harness fidelity`, docs/fidelity.md).
//!
//! For each cell (variant, ring size, wakeup) and each repeat:
//! 1. the command is recorded: the cell's probes and wakeup, but rings large
//!    enough to lose nothing ([`FidelityPlan::reference_ring_bytes`]), read
//!    by `harness record`'s reader; this is the reference the replay gets.
//!    The cell's wakeup is kept because its cost lands on the traced program
//!    (one wakeup per event slows a directory walk several times over), so a
//!    reference recorded with another wakeup would carry another timing;
//! 2. the command runs live into the cell's rings, read by the cell's
//!    variant (the ledger and verdict of every live cell);
//! 3. the reference is replayed at its own timing into emulated rings of the
//!    cell's size and wakeup, read by the same variant: without the
//!    co-runner, and with it (the command's recorded CPU use taken from the
//!    same CPUs at the same moments, `replay::co_runner`).
//!
//! The order of 2 and 3 turns from repeat to repeat, so a host that slows
//! down over the run does not favour one side. Each side's lost % is then
//! summarised over the repeats ([`Spread`], zero-loss share with its Wilson
//! interval) and the sides compared by a rank-sum test; a cell holds when
//! replay's median is within [`TOLERANCE_PP`] points of live's, or inside
//! live's interquartile range where that is wider.
//!
//! Every side reads with the same variant: the results name it per side
//! ([`SideResult::reader`]), and a check refuses a plan where they differ.

use std::path::{Path, PathBuf};
use std::time::Duration;

use probes::abi::Layout;
use probes::Transport;
use serde::{Deserialize, Serialize};

use super::stats::{mann_whitney, wilson, RankSum, Spread};
use super::verdict::VerdictRule;
use crate::pipeline::Variant;
use crate::replay::Wakeup;

mod run;
pub use run::run;

/// Schema of `fidelity.json`.
pub const SCHEMA: &str = "dropbench.fidelity/1";
/// A cell holds when replay's median lost % is within this many percentage
/// points of live's (or inside live's interquartile range where that is wider).
pub const TOLERANCE_PP: f64 = 2.0;

/// Who reads a cell's rings, on every side.
#[derive(Debug, Clone, Copy)]
pub enum Reader {
    /// A pipeline variant.
    Variant(&'static Variant),
    /// `harness record`'s reader and writer ([`super::record::Recorder`]):
    /// live, `record` itself into the cell's rings; in replay,
    /// [`super::record::drain_to_capture`]. So recordings can be predicted too.
    Recorder,
}

impl Reader {
    /// A variant's name, or `recorder`.
    pub fn parse(name: &str) -> Result<Reader, crate::pipeline::PipelineError> {
        match name {
            "recorder" => Ok(Reader::Recorder),
            v => crate::pipeline::variant(v).map(Reader::Variant),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Reader::Variant(v) => v.name,
            Reader::Recorder => "recorder",
        }
    }

    fn supports(&self, layout: Layout, transport: Transport) -> bool {
        match self {
            Reader::Variant(v) => v.supports(layout, transport),
            Reader::Recorder => true,
        }
    }
}

/// One compared cell.
#[derive(Debug, Clone)]
pub struct FidelityCell {
    pub reader: Reader,
    /// Data bytes of one ring (perf: per CPU).
    pub ring_bytes: u64,
    pub wakeup: Wakeup,
}

impl FidelityCell {
    pub fn label(&self) -> String {
        format!(
            "{} {} {}",
            self.reader.name(),
            probes::units::format_bytes(self.ring_bytes),
            self.wakeup
        )
    }
}

/// Which replay sides run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CoRunnerSides {
    /// Replay without the co-runner only.
    Off,
    /// Replay with the co-runner only.
    On,
    /// Both, in turn within each repeat: the same cells in the same hour.
    Both,
}

/// What `harness fidelity` runs.
#[derive(Debug, Clone)]
pub struct FidelityPlan {
    /// Run with `sh -c` in a cgroup of its own.
    pub command: String,
    pub layout: Layout,
    pub transport: Transport,
    pub cells: Vec<FidelityCell>,
    pub repeats: usize,
    /// The reference recording's ring (perf: per CPU): large enough that
    /// nothing is lost (a reference that lost samples is reported).
    pub reference_ring_bytes: u64,
    pub co_runner: CoRunnerSides,
    /// A live run shorter than `rule.warmup_ns + rule.window_ns` is not judged.
    pub rule: VerdictRule,
    pub time_limit: Duration,
    /// Where the reference recordings go (each is removed after its replays).
    pub scratch: PathBuf,
}

/// Which side a figure is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    Live,
    Replay,
    ReplayCoRunner,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Live => "live",
            Side::Replay => "replay",
            Side::ReplayCoRunner => "replay + co-runner",
        }
    }
}

/// One run of one side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideRun {
    pub repeat: usize,
    /// Samples offered to the rings (live: the kernel's emitted count).
    pub offered: u64,
    /// Refused by the rings.
    pub lost: u64,
    pub lost_pct: f64,
    /// Wall time of the run (live: the command's), s.
    pub seconds: f64,
    /// Why the run is left out of the figures, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_judged: Option<String>,
}

/// One side of a cell over the repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideResult {
    pub side: Side,
    /// The variant that read the rings (the same on every side of a cell).
    pub reader: String,
    pub runs: Vec<SideRun>,
    /// Lost % over the judged runs.
    pub lost_pct: Option<Spread>,
    /// Judged runs that lost nothing, of the judged runs.
    pub zero_loss_runs: usize,
    pub judged_runs: usize,
    /// Wilson 95 % interval of the zero-loss share.
    pub zero_loss_interval: (f64, f64),
}

impl SideResult {
    fn new(side: Side, reader: &str, runs: Vec<SideRun>) -> SideResult {
        let judged: Vec<f64> = runs
            .iter()
            .filter(|r| r.not_judged.is_none())
            .map(|r| r.lost_pct)
            .collect();
        let zero = judged.iter().filter(|&&p| p == 0.0).count();
        SideResult {
            side,
            reader: reader.to_string(),
            lost_pct: Spread::of(&judged),
            zero_loss_runs: zero,
            judged_runs: judged.len(),
            zero_loss_interval: wilson(zero as u64, judged.len() as u64, 1.96),
            runs,
        }
    }

    /// Lost % of the judged runs.
    pub fn judged(&self) -> Vec<f64> {
        self.runs
            .iter()
            .filter(|r| r.not_judged.is_none())
            .map(|r| r.lost_pct)
            .collect()
    }
}

/// How one replay side compares with live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub side: Side,
    /// Replay's median minus live's, percentage points.
    pub median_gap_pp: f64,
    /// Within [`TOLERANCE_PP`] of live's median, or inside live's IQR.
    pub holds: bool,
    /// Whether the two distributions differ (Mann-Whitney U).
    pub rank_sum: Option<RankSum>,
}

/// Judges `replay` against `live`.
pub fn agreement(live: &SideResult, replay: &SideResult) -> Option<Agreement> {
    let (l, r) = (live.lost_pct?, replay.lost_pct?);
    let gap = r.median - l.median;
    Some(Agreement {
        side: replay.side,
        median_gap_pp: gap,
        holds: gap.abs() <= TOLERANCE_PP || (l.q1..=l.q3).contains(&r.median),
        rank_sum: mann_whitney(&replay.judged(), &live.judged()),
    })
}

/// One cell's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub label: String,
    pub variant: String,
    pub layout: String,
    pub transport: String,
    pub ring_bytes: u64,
    pub wakeup: String,
    pub sides: Vec<SideResult>,
    pub agreement: Vec<Agreement>,
    /// Per repeat: samples the reference recorded, and the reference's own
    /// losses (anything above 0 is reported: the reference ring was too small).
    pub reference_samples: Vec<u64>,
    pub reference_lost: Vec<u64>,
    /// The command's run time live over its run time while the reference was
    /// recorded, median over repeats: how alike the two runs were.
    pub live_over_reference_time: Option<f64>,
}

/// Everything `harness fidelity` measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FidelityResults {
    pub schema: String,
    pub command: String,
    pub repeats: usize,
    pub reference_ring_bytes: u64,
    pub co_runner: CoRunnerSides,
    pub tolerance_pp: f64,
    pub host: String,
    pub kernel: String,
    pub cpus: usize,
    pub started_unix_s: u64,
    pub seconds: f64,
    pub cells: Vec<CellResult>,
}

/// Why a fidelity run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum FidelityError {
    #[error("fidelity: {0}")]
    Plan(String),
    #[error("fidelity: recording the reference of {cell}: {source:#}")]
    Reference { cell: String, source: anyhow::Error },
    #[error("fidelity: {cell}: {source}")]
    Live {
        cell: String,
        source: super::live::LiveError,
    },
    #[error("fidelity: {cell}: replay: {source}")]
    Replay {
        cell: String,
        source: crate::pipeline::replayed::ReplayedError,
    },
    #[error("fidelity: {0}")]
    Capture(#[from] crate::capture::CaptureError),
}

impl FidelityPlan {
    /// Refuses plans whose sides could not read alike.
    pub fn check(&self) -> Result<(), FidelityError> {
        if self.repeats < 3 {
            return Err(FidelityError::Plan(format!(
                "--repeats {}: a distribution needs at least 3 runs per side (10 for the issue's figures)",
                self.repeats
            )));
        }
        for c in &self.cells {
            if !c.reader.supports(self.layout, self.transport) {
                return Err(FidelityError::Plan(format!(
                    "variant {} cannot read {} events from {}",
                    c.reader.name(),
                    self.layout,
                    self.transport
                )));
            }
            if c.ring_bytes > self.reference_ring_bytes {
                return Err(FidelityError::Plan(format!(
                    "the reference ring ({}) must be at least the cell's ({})",
                    probes::units::format_bytes(self.reference_ring_bytes),
                    probes::units::format_bytes(c.ring_bytes)
                )));
            }
        }
        Ok(())
    }

    /// The replay sides this plan runs.
    pub fn replay_sides(&self) -> Vec<Side> {
        match self.co_runner {
            CoRunnerSides::Off => vec![Side::Replay],
            CoRunnerSides::On => vec![Side::ReplayCoRunner],
            CoRunnerSides::Both => vec![Side::Replay, Side::ReplayCoRunner],
        }
    }
}

impl FidelityPlan {
    /// The fidelity runs a sweep plan asks for: one per entry of `programs`,
    /// over the plan's variants (those that read compact events from perf;
    /// outside readers have no live side here) x ring sizes x perf wakeups.
    /// A plan's ring size is a cell's total: perf splits it over the CPUs,
    /// as a sweep cell does (a power of two per CPU, a page at least).
    pub fn of_sweep(plan: &super::plan::Plan, scratch: &Path) -> Vec<(String, FidelityPlan)> {
        let cpus = u64::from(crate::host::cpus()).max(1);
        let per_cpu = |total: u64| {
            let per = (total / cpus).max(4096);
            1u64 << (63 - per.leading_zeros())
        };
        let mut cells = Vec::new();
        for v in plan.variants.iter().filter(|v| v.exec.is_none()) {
            if !v.variant.supports(Layout::Compact, Transport::Perf) {
                continue;
            }
            for &total in &plan.ring_bytes {
                for &wakeup in &plan.perf_wakeups {
                    cells.push(FidelityCell {
                        reader: Reader::Variant(v.variant),
                        ring_bytes: per_cpu(total),
                        wakeup,
                    });
                }
            }
        }
        plan.programs
            .iter()
            .map(|p| {
                let largest = cells.iter().map(|c| c.ring_bytes).max().unwrap_or(0);
                (
                    p.name.clone(),
                    FidelityPlan {
                        command: p.run.clone(),
                        layout: Layout::Compact,
                        transport: Transport::Perf,
                        cells: cells.clone(),
                        repeats: plan.program_repeats,
                        reference_ring_bytes: (64u64 << 20).max(largest),
                        co_runner: CoRunnerSides::Both,
                        // The trial rule of a rate search does not fit a
                        // command: it runs at its own pace, as long as it
                        // takes. A run shorter than 250 ms is not judged
                        // (as `harness fidelity`'s default window).
                        rule: VerdictRule {
                            warmup_ns: 0,
                            window_ns: 250_000_000,
                            ..plan.rule
                        },
                        time_limit: Duration::from_secs(600),
                        scratch: scratch.join(format!("references-{}", p.name)),
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(side: Side, pcts: &[f64]) -> SideResult {
        let runs = pcts
            .iter()
            .enumerate()
            .map(|(i, &p)| SideRun {
                repeat: i,
                offered: 1000,
                lost: (p * 10.0) as u64,
                lost_pct: p,
                seconds: 1.0,
                not_judged: None,
            })
            .collect();
        SideResult::new(side, "batched", runs)
    }

    #[test]
    fn a_cell_holds_within_two_points_or_inside_lives_iqr() {
        let live = side(Side::Live, &[10.0, 12.0, 14.0, 20.0, 31.0]);
        // Median 14; IQR 12..20.
        let near = side(Side::Replay, &[13.0, 15.0, 15.5, 16.0, 9.0]);
        let a = agreement(&live, &near).unwrap();
        assert!(a.holds && (a.median_gap_pp - 1.0).abs() < 1e-9, "{a:?}");
        let in_iqr = side(Side::Replay, &[18.0, 19.0, 19.5, 25.0, 2.0]);
        let a = agreement(&live, &in_iqr).unwrap();
        assert!(a.holds && a.median_gap_pp > TOLERANCE_PP, "{a:?}");
        let far = side(Side::ReplayCoRunner, &[0.0, 0.0, 1.0, 3.0, 4.0]);
        let a = agreement(&live, &far).unwrap();
        assert!(!a.holds, "{a:?}");
        assert_eq!(a.side, Side::ReplayCoRunner);
        assert!(a.rank_sum.unwrap().p < 0.05);
    }

    #[test]
    fn a_sweep_plan_names_programs_over_its_variants_rings_and_perf_wakeups() {
        use crate::experiment::plan::{parse_config_str, Plan};
        let text = "sink = \"null\"\nvariants = [\"compact\", \"batched\", \"ringbuf\"]\n\
                    ring_bytes = [\"64KiB\", \"8MiB\"]\nperf_wakeup = [\"events:1\", \"watermark:4096\"]\n\
                    program_repeats = 4\n\
                    [[programs]]\nname = \"walk\"\nrun = \"du -s /usr/share\"\n";
        let plan = Plan::from_config(parse_config_str(text, "t.toml").unwrap(), "t.toml").unwrap();
        let runs = FidelityPlan::of_sweep(&plan, Path::new("/tmp/x"));
        assert_eq!(runs.len(), 1);
        let (name, fp) = &runs[0];
        assert_eq!(name, "walk");
        assert_eq!(fp.command, "du -s /usr/share");
        assert_eq!(fp.repeats, 4);
        // ringbuf reads only the ring buffer: compact and batched, 2 rings, 2 wakeups.
        assert_eq!(fp.cells.len(), 8);
        assert!(fp.cells.iter().all(|c| c.reader.name() != "ringbuf"));
        // A cell's total is split over the CPUs, as a sweep cell's is.
        let cpus = u64::from(crate::host::cpus());
        let per = |t: u64| 1u64 << (63 - (t / cpus).max(4096).leading_zeros());
        let mut sizes: Vec<u64> = fp.cells.iter().map(|c| c.ring_bytes).collect();
        sizes.dedup();
        assert!(
            sizes.contains(&per(64 << 10)) && sizes.contains(&per(8 << 20)),
            "{sizes:?}"
        );
        assert!(fp.check().is_ok());
        assert_eq!(fp.scratch, Path::new("/tmp/x/references-walk"));
        // No programs, no runs.
        let none =
            Plan::from_config(parse_config_str("sink = \"null\"\n", "t").unwrap(), "t").unwrap();
        assert!(FidelityPlan::of_sweep(&none, Path::new("/tmp")).is_empty());
    }

    #[test]
    fn unjudged_runs_are_left_out_and_zero_loss_runs_counted() {
        let mut s = side(Side::Live, &[0.0, 0.0, 5.0, 0.0]);
        s.runs[2].not_judged = Some("`x` exited with status 1".into());
        let s = SideResult::new(Side::Live, "batched", s.runs);
        assert_eq!((s.judged_runs, s.zero_loss_runs), (3, 3));
        assert_eq!(s.lost_pct.unwrap().max, 0.0);
        let (lo, hi) = s.zero_loss_interval;
        assert!(lo > 0.3 && hi == 1.0, "{lo} {hi}");
        // Nothing judged on a side: no figures, no agreement.
        let mut none = side(Side::Replay, &[1.0]);
        none.runs[0].not_judged = Some("no".into());
        let none = SideResult::new(Side::Replay, "batched", none.runs);
        assert!(none.lost_pct.is_none());
        assert!(agreement(&s, &none).is_none());
    }
}
