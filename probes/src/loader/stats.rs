//! What the kernel counts about the probes: the programs' own per-CPU
//! `counters` map, and the kernel's BPF run-time statistics.

use aya::maps::{Map, MapData, PerCpuArray};
use aya::Ebpf;

use crate::abi::RawCounters;
use crate::counters::{CpuCounters, KernelCounters};

use super::error::ProbeError;

/// The kernel's BPF run-time statistics, on while this lives
/// (`BPF_ENABLE_STATS`, as `bpftool prog profile` does). With them on the
/// kernel times every run of every BPF program: two clock reads a run, tens
/// of ns, so only the commands that report the probes' cost turn them on.
pub struct RunTimeStats {
    _fd: std::os::fd::OwnedFd,
}

impl RunTimeStats {
    pub fn enable() -> Result<RunTimeStats, ProbeError> {
        aya::sys::enable_stats(aya::sys::Stats::RunTime)
            .map(|fd| RunTimeStats { _fd: fd })
            .map_err(|e| ProbeError::RunTimeStats { source: e.io_error })
    }
}

/// What the probe's programs cost the traced threads, summed over the
/// programs (counted only while [`RunTimeStats`] are on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProgramRunTime {
    /// Program runs (one per traced syscall entry or exit, filtered or not).
    pub runs: u64,
    /// CPU time inside the programs, in ns.
    pub run_ns: u64,
}

impl ProgramRunTime {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &ProgramRunTime) -> ProgramRunTime {
        ProgramRunTime {
            runs: self.runs.saturating_sub(earlier.runs),
            run_ns: self.run_ns.saturating_sub(earlier.run_ns),
        }
    }
}

/// A second handle on the counters map (a dup of its fd), for the ring buffer
/// reader's lost-sample accounting.
pub(crate) fn counters_handle(
    ebpf: &Ebpf,
    object: &'static str,
) -> Result<PerCpuArray<MapData, RawCounters>, ProbeError> {
    use std::os::fd::AsFd;
    let map = ebpf.map("counters").ok_or(ProbeError::MissingMap {
        map: "counters",
        object,
    })?;
    let fd = match map {
        Map::PerCpuArray(m) => {
            m.fd()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| ProbeError::Map {
                    map: "counters",
                    source: aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                        call: "dup",
                        io_error: e,
                    }),
                })?
        }
        _ => {
            return Err(ProbeError::MissingMap {
                map: "counters",
                object,
            })
        }
    };
    let data = MapData::from_fd(fd).map_err(|source| ProbeError::Map {
        map: "counters",
        source,
    })?;
    PerCpuArray::try_from(Map::PerCpuArray(data)).map_err(|source| ProbeError::Map {
        map: "counters",
        source,
    })
}

/// The `counters` map's values for `cpus`.
pub(crate) fn counters_of<T: std::borrow::Borrow<MapData>>(
    arr: &PerCpuArray<T, RawCounters>,
    cpus: &[u32],
) -> Result<KernelCounters, aya::maps::MapError> {
    let vals = arr.get(&0, 0)?;
    Ok(KernelCounters {
        cpus: cpus
            .iter()
            .filter_map(|&c| vals.get(c as usize).map(|r| CpuCounters::from_raw(c, r)))
            .collect(),
    })
}
