//! The same cell run in more than one mode, side by side: emulated replay,
//! kernel-backed replay (the capture injected into the kernel's real rings)
//! and live (the real probes under generated load). The HTML's "Replay,
//! kernel and live" table and the NDR-by-mode chart both read these.

use crate::format;
use crate::model::{Series, SweepReport};

/// How a cell ran, in the order the table and chart show them. Results
/// files spell it in lowercase (`replay`, `kernel`, `live`); the harness's
/// results schema uses this type.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Emulated rings fed by a paced replay (no root).
    #[default]
    Replay,
    /// The capture injected into the kernel's real rings by a BPF program
    /// (`BPF_PROG_TEST_RUN`), read by the variant (root).
    Kernel,
    /// The load generator through the real probes and rings (root).
    Live,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Replay, Mode::Kernel, Mode::Live];

    /// As results files spell it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Replay => "replay",
            Mode::Kernel => "kernel",
            Mode::Live => "live",
        }
    }

    /// What the mode runs on, for legends.
    pub fn describe(self) -> &'static str {
        match self {
            Mode::Replay => "replay (emulated rings)",
            Mode::Kernel => "kernel (injected into the real rings)",
            Mode::Live => "live (real probes and load)",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown mode {s:?}; expected replay, live or kernel"))
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One cell (variant, capture, layout, transport, ring, wakeup and sink)
/// and the series that ran it in each mode.
pub struct ModeCell<'a> {
    /// `N. variant`, numbered over the cells.
    pub head: String,
    /// The fields that tell the cells apart (empty when only the variant does).
    pub detail: String,
    /// The series per mode, in [`Mode::ALL`]'s order.
    by_mode: [Option<&'a Series>; 3],
}

impl<'a> ModeCell<'a> {
    pub fn series(&self, mode: Mode) -> Option<&'a Series> {
        self.by_mode[mode as usize]
    }

    /// The mode's zero-loss rate: `None` when the mode did not run or found none.
    pub fn ndr(&self, mode: Mode) -> Option<f64> {
        self.series(mode).and_then(|s| s.zero_loss_rate)
    }

    /// `mode`'s zero-loss rate over live's, when both have one.
    pub fn ratio_to_live(&self, mode: Mode) -> Option<f64> {
        match (self.ndr(mode), self.ndr(Mode::Live)) {
            (Some(a), Some(l)) if l > 0.0 => Some(a / l),
            _ => None,
        }
    }
}

/// Whether two series ran the same cell (their modes aside).
fn same_cell(a: &Series, b: &Series) -> bool {
    a.variant == b.variant
        && a.capture == b.capture
        && a.layout == b.layout
        && a.transport == b.transport
        && a.ring_bytes == b.ring_bytes
        && a.wakeup == b.wakeup
        && a.sink == b.sink
}

/// The cells that ran in at least two modes, in the report's order of
/// their first series. A cell shows the modes it has.
pub fn mode_cells(report: &SweepReport) -> Vec<ModeCell<'_>> {
    let mut cells: Vec<[Option<&Series>; 3]> = Vec::new();
    for s in &report.series {
        let mode = s.mode;
        // A second series of a cell in the same mode (e.g. other knobs)
        // starts a cell of its own.
        let slot = cells
            .iter_mut()
            .find(|c| c[mode as usize].is_none() && c.iter().flatten().any(|o| same_cell(o, s)));
        match slot {
            Some(c) => c[mode as usize] = Some(s),
            None => {
                let mut c = [None; 3];
                c[mode as usize] = Some(s);
                cells.push(c);
            }
        }
    }
    cells.retain(|c| c.iter().flatten().count() >= 2);
    let firsts: Vec<Series> = cells
        .iter()
        .filter_map(|c| c.iter().flatten().next().map(|s| (*s).clone()))
        .collect();
    format::series_label_parts(&firsts)
        .into_iter()
        .zip(cells)
        .map(|((head, detail), by_mode)| ModeCell {
            head,
            detail,
            by_mode,
        })
        .collect()
}
