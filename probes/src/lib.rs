//! dropbench probes: the BPF side of the harness.
//!
//! - [`abi`]: the event ABI shared with `bpf/dropbench_abi.h`.
//! - [`record`]: the record type and [`record::RecordSource`] trait every reader implements.
//! - [`loader`]: loads the committed BPF objects with aya, mounts tracefs if needed, attaches, detaches.
//! - [`perf`]: the per-CPU perf buffer reader with a selectable wakeup policy.
//! - [`ringbuf`]: the BPF ring buffer reader (adaptive, no-wakeup + timer poll, forced).
//! - [`counters`]: the kernel-side per-CPU counters.
//!
//! The BPF programs are C (`bpf/dropbench.bpf.c`), compiled by `bpf/build.sh`
//! into the committed `bpf/obj/*.bpf.o`, so users never need clang.

pub mod abi;
pub mod counters;
pub mod loader;
pub mod perf;
pub mod record;
pub mod ringbuf;
mod sys;
pub mod units;

pub use loader::{Filter, Probe, ProbeError, ProbeSpec, Transport, Wakeup};
