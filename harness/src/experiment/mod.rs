//! The sweep as an experiment: trials at a rate, judged by a steady-state
//! rule, searched for the highest rate a design holds.
//!
//! - [`verdict`]: whether one trial held its rate (pure: progress samples in,
//!   verdict out).
//! - [`trial`]: one trial of a cell at a rate: a paced replay with a warm-up
//!   and a measured window, watched as it runs, judged by [`verdict`].
//! - [`live`]: the same trial through the real kernel: the load generator
//!   issues the capture's traffic, real probes fill real rings, the same
//!   variant reads them (root).
//! - [`run_folder`]: where a sweep keeps its plan, each finished series and
//!   its results, so it can be resumed, sharded and merged.
//! - [`plan`]: the config (TOML) parsed once into a typed plan and its cells.
//! - [`search`]: the searches over trials (NDR/PDR rates, minimum ring).
//! - [`burst`]: a capture's burst factor, which aims the rate searches.
//! - [`sweep`]: the scheduling: each cell's searches, its trials run.
//! - [`results`]: `sweep.json`, the sweep's results types.
//! - [`relayout`]: a capture rewritten into another event layout.

pub mod burst;
pub mod fidelity;
pub mod kernel;
pub mod live;
pub mod plan;
pub mod program;
pub mod record;
pub mod relayout;
pub mod results;
pub mod run_folder;
pub mod search;
pub mod stats;
pub mod sweep;
pub mod trial;
pub mod verdict;
