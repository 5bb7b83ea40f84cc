//! [`InjectError`]: what loading and running the injector can fail with.

use std::io;

use crate::loader::{Transport, Wakeup};
use crate::perf::PerfError;
use crate::pin::PinError;
use crate::ringbuf::RingBufError;

use super::SLOT_DATA_MAX;

/// Errors from loading and running the injector. Each names the CPU, map or
/// program concerned, and the ones a machine without the feature hits say
/// which capability or kernel feature is missing.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("kernel-backed replay needs root or CAP_BPF + CAP_PERFMON to load its injector, a raw_tp BPF program (effective capabilities: {caps:#x}); emulated replay (without --kernel) needs no privileges")]
    Privileges { caps: u64 },
    #[error("loading the injector {object}: {source}; emulated replay (without --kernel) does not need it")]
    Load {
        object: &'static str,
        source: aya::EbpfError,
    },
    #[error("this kernel has no bpf_loop helper (Linux 5.17+), which the injector ({object}) needs to emit a batch per test run; use emulated replay (without --kernel)")]
    NoBpfLoop { object: &'static str },
    #[error("the kernel refused the injector's raw_tp program {program} in {object}: {source}; use emulated replay (without --kernel)")]
    Verify {
        program: &'static str,
        object: &'static str,
        source: aya::programs::ProgramError,
    },
    #[error("BPF_PROG_TEST_RUN of the raw_tp injector on cpu {cpu} was refused: {source} (it needs Linux 5.10+ for BPF_F_TEST_RUN_ON_CPU); use emulated replay (without --kernel)")]
    TestRun { cpu: u32, source: io::Error },
    #[error("map {map} is missing or of the wrong type in {object}")]
    MissingMap {
        map: &'static str,
        object: &'static str,
    },
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
    #[error("mmap of the injector's {map} map ({bytes} bytes): {source} (BPF_F_MMAPABLE arrays need Linux 5.5+)")]
    Mmap {
        map: &'static str,
        bytes: usize,
        source: io::Error,
    },
    #[error("listing CPUs ({what}): {source}")]
    Cpus {
        what: &'static str,
        source: io::Error,
    },
    #[error("slots per CPU must be between 1 and {max}, got {got}")]
    Slots { got: u32, max: u32 },
    #[error("an event of {len} bytes does not fit a slot ({SLOT_DATA_MAX} bytes, the largest event plus perf's padding)")]
    TooLarge { len: usize },
    #[error("wakeup policy {wakeup} does not fit transport {transport}")]
    WakeupMismatch {
        wakeup: Wakeup,
        transport: Transport,
    },
    #[error("{what} is for the {wants} transport, not {transport}")]
    WrongTransport {
        what: &'static str,
        wants: Transport,
        transport: Transport,
    },
    #[error(transparent)]
    Perf(#[from] PerfError),
    #[error(transparent)]
    RingBuf(#[from] RingBufError),
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error(transparent)]
    Probe(#[from] crate::ProbeError),
}
