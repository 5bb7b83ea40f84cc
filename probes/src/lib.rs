//! dropbench probes: the BPF side of the harness.
//!
//! - [`abi`]: the event ABI shared with `bpf/dropbench_abi.h`.
//! - [`record`]: the record type and [`record::RecordSource`] trait every reader implements.
//! - [`loader`]: loads the committed BPF objects with aya, mounts tracefs if needed, attaches, detaches.
//! - [`ring`]: the perf and BPF ring buffer record formats, ring memory, and the
//!   readers (one drain each, for the kernel's rings and emulated ones alike),
//!   behind a waiter (epoll live, the emulated wakeup in replay).
//! - [`counters`]: the kernel-side per-CPU counters.
//! - [`inject`]: the injector of kernel-backed replay: recorded events emitted
//!   into real rings by a BPF program run with `BPF_PROG_TEST_RUN`.
//! - [`pin`]: private, temporary pins on bpffs for an outside reader.
//!
//! The BPF programs are C (`bpf/dropbench.bpf.c`), compiled by `bpf/build.sh`
//! into the committed `bpf/obj/*.bpf.o`, so users never need clang.

pub mod abi;
pub mod counters;
pub mod inject;
pub mod loader;
pub mod pin;
pub mod record;
pub mod ring;
mod sys;
pub mod units;

pub use loader::{Filter, Hook, Probe, ProbeError, ProbeSpec, Transport, Wakeup};
/// The readers, at their short paths.
pub use ring::{perf, ringbuf};
