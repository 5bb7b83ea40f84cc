//! Loads the committed BPF objects with aya, attaches them, and hands out the reader.
//!
//! ```ignore
//! let spec = ProbeSpec::new(Layout::Compact, Transport::Perf);
//! let mut probe = Probe::load(&spec)?;         // checks privileges, mounts tracefs, loads, attaches
//! let mut source = probe.take_source();        // Box<dyn RecordSource>
//! /* ... read ... */
//! let counters = probe.counters()?;            // kernel-side, per CPU
//! probe.detach();                              // or drop
//! ```
//! Loading errors carry aya's own (large) error values whole: they happen once,
//! at load time, never on a hot path, so `clippy::result_large_err` is allowed here.
//!
//! Needs root or CAP_BPF + CAP_PERFMON, BTF-capable loading (aya), and Linux 5.8+
//! for the ring buffer transport. RLIMIT_MEMLOCK is not raised (kernels since 5.11
//! account BPF memory to the cgroup instead).
//!
//! The module is split by job:
//! - `spec`: what to load ([`ProbeSpec`], [`Transport`], [`Hook`], [`Wakeup`], [`Filter`]).
//! - `objects`: which committed object and which tracepoints ([`object_bytes`], [`tracepoints`]).
//! - `privileges`: what the machine must give ([`check_privileges`], [`ensure_tracefs`], [`online_cpus`]).
//! - `stats`: what the kernel counts ([`RunTimeStats`], [`ProgramRunTime`], the counters map).
//! - `error`: [`ProbeError`].
//! - `probe`: [`Probe`], which loads, attaches and hands out the reader.

#![allow(clippy::result_large_err)]

mod error;
mod objects;
mod privileges;
mod probe;
mod spec;
mod stats;

pub use error::ProbeError;
pub use objects::{object_bytes, tracepoints};
pub use privileges::{check_privileges, ensure_tracefs, online_cpus};
pub use probe::Probe;
pub use spec::{default_wakeup, Filter, Hook, ProbeSpec, Transport, Wakeup, DEFAULT_RING_BYTES};
pub(crate) use stats::{counters_handle, counters_of};
pub use stats::{ProgramRunTime, RunTimeStats};
