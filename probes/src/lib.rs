//! dropbench probes: the BPF side of the harness.
//!
//! - [`abi`]: the event ABI shared with `bpf/dropbench_abi.h`.
//! - [`record`]: the record type and [`record::RecordSource`] trait every reader implements.
//! - [`loader`]: loads the committed BPF objects with aya, mounts tracefs if needed, attaches, detaches.
//! - [`perf`]: the per-CPU perf buffer reader with a selectable wakeup policy.
//! - [`ringbuf`]: the BPF ring buffer reader (adaptive, no-wakeup + timer poll, forced).
//! - [`counters`]: the kernel-side per-CPU counters.

pub mod abi;
pub mod record;
