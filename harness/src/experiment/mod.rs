//! The sweep as an experiment: trials at a rate, judged by a steady-state
//! rule, searched for the highest rate a design holds.
//!
//! - [`verdict`]: whether one trial held its rate (pure: progress samples in,
//!   verdict out).
//! - [`trial`]: one trial of a cell at a rate: a paced replay with a warm-up
//!   and a measured window, watched as it runs, judged by [`verdict`].

pub mod trial;
pub mod verdict;
