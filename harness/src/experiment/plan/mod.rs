//! The sweep's plan: the config as TOML ([`SweepConfig`], kept as text in
//! the run folder's `plan.toml`), checked and parsed once into a typed
//! [`Plan`], and the cells it makes with the captures ([`Plan::cells`]).
//!
//! A [`Plan`] is built only by [`Plan::parse`] or [`Plan::from_config`], both
//! fallible: every duration, byte size, wakeup, sink, shape, loading, mode,
//! variant and knob is parsed there, and every error names the key (and the
//! line, when there is a text). Nothing downstream parses a string again.
//!
//! - `config`: the TOML schema, its defaults, a key's line in a text;
//! - `check`: a config checked into a [`Plan`], or a [`PlanError`];
//! - `cells`: the variants as the plan runs them and the cells it makes.

mod cells;
mod check;
mod config;

pub(crate) use cells::ring_split;
pub use cells::PlannedCell;
pub use check::PlanError;
pub use config::{
    parse_config_str, MinRingConfig, OneOrMany, ProgramEntry, SweepConfig, VariantEntry,
    VariantSettings,
};

use std::path::PathBuf;
use std::time::Duration;

use crate::capture::Loading;
use crate::experiment::search::{MinRingSearch, ZeroLossSearch};
use crate::experiment::trial::RateShape;
use crate::experiment::verdict::VerdictRule;
use crate::pipeline::{Knobs, Variant};
use crate::replay::kernel::{ExecSpec, Ready};
use crate::replay::Wakeup;
use crate::sink::SinkSpec;
use probes::abi::Layout;
use probes::Transport;

pub use crate::results::Mode;

/// An outside program that reads the kernel's pinned rings in a plan's
/// kernel cells (`exec:COMMAND`, or a table with `exec`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExecReader {
    /// Its series go by `exec:<name>`: the table's `name`, else the command.
    pub name: String,
    pub command: String,
    pub ready: Ready,
    pub ready_timeout: Duration,
    pub drain: Duration,
}

impl ExecReader {
    /// The prefix that marks an exec reader among variant names.
    pub const PREFIX: &'static str = "exec:";

    /// The name its series carry as their variant.
    pub fn series_name(&self) -> String {
        format!("{}{}", Self::PREFIX, self.name)
    }

    /// How a kernel trial runs it.
    pub fn spec(&self) -> ExecSpec {
        ExecSpec {
            ready: self.ready,
            ready_timeout: self.ready_timeout,
            drain: self.drain,
            ..ExecSpec::new(self.command.clone())
        }
    }
}

/// A variant as the plan runs it.
#[derive(Debug, Clone)]
pub struct PlanVariant {
    /// The dropbench variant; [`EXEC_READER`](crate::experiment::kernel::EXEC_READER)
    /// for an outside reader.
    pub variant: &'static Variant,
    /// The outside reader, for an `exec:` entry.
    pub exec: Option<ExecReader>,
    pub knobs: Knobs,
    /// The knobs set away from the variant's defaults (`workers=4`), empty if none.
    pub knobs_label: String,
    /// Layouts and transports asked of this variant by name (checked: it can read them).
    pub layouts: Vec<Layout>,
    pub transports: Vec<Transport>,
}

/// The sweep's plan, every value parsed and checked.
#[derive(Debug, Clone)]
pub struct Plan {
    config: SweepConfig,
    pub(crate) captures: Vec<PathBuf>,
    pub(crate) variants: Vec<PlanVariant>,
    pub(crate) layouts: Vec<Layout>,
    pub(crate) transports: Vec<Transport>,
    pub(crate) ring_bytes: Vec<u64>,
    pub(crate) perf_wakeups: Vec<Wakeup>,
    pub(crate) ringbuf_wakeups: Vec<Wakeup>,
    pub(crate) sink: SinkSpec,
    pub(crate) rule: VerdictRule,
    pub(crate) shape: RateShape,
    pub(crate) loading: Loading,
    pub(crate) modes: Vec<Mode>,
    pub(crate) live_load_threads: usize,
    pub(crate) search: ZeroLossSearch,
    pub(crate) trials: usize,
    pub(crate) edge_trials: usize,
    pub(crate) pdr_loss: f64,
    pub(crate) goal_rate: Option<f64>,
    pub(crate) min_ring: Option<MinRingSearch>,
    pub(crate) programs: Vec<config::ProgramEntry>,
    pub(crate) program_repeats: usize,
}

impl Plan {
    /// The config this plan was built from (as `plan.toml` keeps it).
    pub fn config(&self) -> &SweepConfig {
        &self.config
    }

    pub fn into_config(self) -> SweepConfig {
        self.config
    }

    /// The rate the report marks as the goal.
    pub fn goal_rate(&self) -> Option<f64> {
        self.goal_rate
    }

    /// How captures are held.
    pub fn loading(&self) -> Loading {
        self.loading
    }

    pub fn captures(&self) -> &[PathBuf] {
        &self.captures
    }

    pub fn sink(&self) -> &SinkSpec {
        &self.sink
    }

    /// The real commands to run live against their replays (`programs`).
    pub fn programs(&self) -> &[config::ProgramEntry] {
        &self.programs
    }
}
