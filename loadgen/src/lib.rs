//! Paced openat/stat load at controlled, repeatable rates: the stimulus of every dropbench live run.
//!
//! - [`LoadConfig`]: rate ([`Rate::PerSecond`] or [`Rate::Max`]), end ([`RunEnd`]), threads, CPU
//!   pinning, op mix ([`OpMix`]), paths ([`PathSource`]: a generated corpus or a list file), burst size.
//!   [`LoadConfig::validate`] names the bad value of a bad config.
//! - [`Load::start`] spawns the workers and returns at once with [`Load::pid`] and [`Load::tids`] for
//!   a BPF tgid/tid filter; [`Load::spawn`] + [`Load::release`] gate the first op until probes are
//!   attached. [`Load::stop`] ends a run early, [`Load::join`] gives the [`LoadReport`].
//!
//! Pacing is open loop on an absolute schedule ([`schedule`]): slot `k` is due `k / rate` after the
//! start, computed exactly in integers, so a run neither drifts nor overflows. A late worker does not
//! skip slots: it issues them back to back until it catches up. Each op is exactly one libc call
//! ([`ops`] lists the syscall each one reaches).

pub mod config;
pub mod corpus;
mod error;
mod load;
pub mod ops;
mod pacer;
pub mod schedule;

pub use config::{CorpusSpec, LoadConfig, OpMix, PathSource, Rate, RunEnd};
pub use corpus::{Corpus, CorpusSummary};
pub use error::LoadError;
pub use load::{Lateness, Load, LoadReport, Progress, StopHandle, ThreadReport, PACED_END_GRACE};
pub use ops::OpKind;
pub use pacer::now_ns;
