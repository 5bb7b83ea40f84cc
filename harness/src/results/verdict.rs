//! A trial's verdict as results files hold it: its kind, the reason in words
//! and what the measured window showed. Judging a trial is
//! `experiment::verdict`'s work; this is only what it writes down.

use serde::{Deserialize, Serialize};

/// Why a trial passed or failed. Serialized in kebab-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictKind {
    Clean,
    Lost,
    Behind,
    BacklogGrowing,
    ProducerShort,
    Unbalanced,
    /// The window held too few progress samples to judge.
    Unmeasured,
}

impl VerdictKind {
    pub fn name(self) -> &'static str {
        match self {
            VerdictKind::Clean => "clean",
            VerdictKind::Lost => "lost",
            VerdictKind::Behind => "behind",
            VerdictKind::BacklogGrowing => "backlog-growing",
            VerdictKind::ProducerShort => "producer-short",
            VerdictKind::Unbalanced => "unbalanced",
            VerdictKind::Unmeasured => "unmeasured",
        }
    }
}

impl std::fmt::Display for VerdictKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the window measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Window actually covered (first to last sample in it).
    pub span_ns: u64,
    /// Progress samples in the window.
    pub points: u32,
    /// Samples offered in the window.
    pub offered: u64,
    /// Fitted rate at which the rings took samples (events/s).
    pub intake_per_s: f64,
    /// Fitted rate at which the pipeline finished samples (events/s).
    pub done_per_s: f64,
    /// Backlog (records) at the window's start and end, on the fitted line.
    pub backlog_start: f64,
    pub backlog_end: f64,
    /// The most bytes the rings held at a sample in the window.
    pub ring_bytes_max: u64,
}

/// One trial's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub kind: VerdictKind,
    /// The numbers behind it, in words.
    pub reason: String,
    pub window: WindowStats,
}

impl Verdict {
    pub fn clean(&self) -> bool {
        self.kind == VerdictKind::Clean
    }

    /// The trial says nothing about the pipeline: the producer could not
    /// offer the rate (a busy machine), or the window was not sampled.
    pub fn inconclusive(&self) -> bool {
        matches!(
            self.kind,
            VerdictKind::ProducerShort | VerdictKind::Unmeasured
        )
    }
}
