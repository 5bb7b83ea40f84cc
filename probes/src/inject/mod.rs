//! The injector: recorded events pushed through the real kernel rings.
//!
//! `bpf/inject.bpf.c` is a `raw_tp` program that userspace runs with
//! `BPF_PROG_TEST_RUN` + `BPF_F_TEST_RUN_ON_CPU` on a chosen CPU. Each run
//! emits a batch of events from the `slots` array (a `BPF_F_MMAPABLE` array
//! this side has mmapped, so staging an event costs no syscall) with the same
//! output helper the probes use: `bpf_perf_event_output(BPF_F_CURRENT_CPU)`
//! into a perf event array, or `bpf_ringbuf_output` with the wakeup's flags.
//! It keeps the probes' per-CPU counters (injected = seen = emitted, output ok,
//! failed by errno), the ground truth of what reached the rings whoever reads
//! them.
//!
//! ```ignore
//! let mut inj = Injector::load(&InjectorSpec::new(Transport::Perf, 8 << 20, Wakeup::Events(64)))?;
//! let source = inj.open_reader()?;              // dropbench's own reader, as a live run sets it up
//! inj.stage(0, 0, &event_bytes, &[], event_len)?; // CPU index 0, slot 0
//! inj.inject(0, 1)?;                            // one BPF_PROG_TEST_RUN on that CPU
//! let k = inj.counters()?;                      // per CPU: injected, ok, failed, pending
//! ```
//! Or pin the rings ([`Injector::pin`]) for an outside reader, which (for perf)
//! stores its own perf events in the pinned perf event array.
//!
//! Needs root or CAP_BPF + CAP_PERFMON, `bpf_loop` (Linux 5.17) and
//! `BPF_F_TEST_RUN_ON_CPU` for raw_tp (5.10). Loading errors carry aya's own
//! (large) error values whole: they happen once, at load time, so
//! `clippy::result_large_err` is allowed here as in the loader.
//!
//! The module is split by job:
//! - `spec`: what to load ([`InjectorSpec`]) and the committed objects ([`object_bytes`]).
//! - `injector`: [`Injector`]: loading, staging events in the slots, test runs, counters, pins.
//! - `source`: [`InjectSource`], dropbench's own reader of the injector's rings.
//! - `watch`: [`RingWatch`] and [`RingBufWatch`], how much the rings hold.
//! - `counters`: [`InjectCounters`].
//! - `bpf`: the raw `bpf(2)` calls and map fds aya does not wrap as needed.
//! - `error`: [`InjectError`].

#![allow(clippy::result_large_err)]

mod bpf;
mod counters;
mod error;
mod injector;
mod source;
mod spec;
mod watch;

pub use counters::InjectCounters;
pub use error::InjectError;
pub use injector::{Injector, Pins};
pub use source::InjectSource;
pub use spec::{object_bytes, InjectorSpec};
pub use watch::{RingBufWatch, RingWatch};

use crate::abi::FIXED4K_LEN;

/// Bytes of event a slot holds: `DB_INJECT_DATA_MAX` in inject.bpf.c. The
/// largest event is 4144 bytes ([`FIXED4K_LEN`]); a perf capture stores it with
/// perf's 4 pad bytes (4148); 4152 is the next multiple of 8.
pub const SLOT_DATA_MAX: usize = 4152;
/// A slot: `len` (u32), `ret` (i32), then the data. 4160 bytes, 8-aligned, so
/// the kernel's array (which rounds values up to 8) packs slots back to back.
pub const SLOT_BYTES: usize = 8 + SLOT_DATA_MAX;
const _: () = assert!(SLOT_DATA_MAX >= FIXED4K_LEN + 4 && SLOT_DATA_MAX.is_multiple_of(8));

/// Slots per CPU unless told otherwise: the most events one test run emits.
/// 256 x 4160 B = 1 MiB per CPU of mmapped staging. At the paced rates that
/// matter (600 k events/s) a batch holds tens of events (see
/// harness/src/replay/kernel.rs); 256 only binds under `max` pacing, where it
/// amortises the syscall and IPI over 256 events.
pub const DEFAULT_SLOTS_PER_CPU: u32 = 256;
