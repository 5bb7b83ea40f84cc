//! The probes' kernel-side counters: one `db_counters` per CPU.

use serde::Serialize;

use crate::abi::{slot, RawCounters};

/// Counters of one CPU, named.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CpuCounters {
    pub cpu: u32,
    /// Tracepoint hits before filtering.
    pub seen: u64,
    /// Dropped by the tgid/cgroup filter.
    pub filtered: u64,
    /// Output attempts (passed the filter).
    pub emitted: u64,
    /// Output helper returned 0: the record is in the ring.
    pub output_ok: u64,
    /// perf: -ENOSPC (ring full).
    pub fail_nospc: u64,
    /// perf: -ENOENT (no perf event fd for this CPU).
    pub fail_noent: u64,
    /// ring buffer: -EAGAIN (no room to reserve).
    pub fail_again: u64,
    pub fail_other: u64,
    /// The user path could not be read (the event is still emitted, with an empty path).
    pub path_fault: u64,
}

impl CpuCounters {
    pub fn from_raw(cpu: u32, r: &RawCounters) -> Self {
        CpuCounters {
            cpu,
            seen: r.v[slot::SEEN],
            filtered: r.v[slot::FILTERED],
            emitted: r.v[slot::EMITTED],
            output_ok: r.v[slot::OUTPUT_OK],
            fail_nospc: r.v[slot::FAIL_NOSPC],
            fail_noent: r.v[slot::FAIL_NOENT],
            fail_again: r.v[slot::FAIL_AGAIN],
            fail_other: r.v[slot::FAIL_OTHER],
            path_fault: r.v[slot::PATH_FAULT],
        }
    }
    /// Every failed output, whatever the error.
    pub fn failed(&self) -> u64 {
        self.fail_nospc + self.fail_noent + self.fail_again + self.fail_other
    }
}

/// All CPUs' counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KernelCounters {
    pub cpus: Vec<CpuCounters>,
}

impl KernelCounters {
    pub fn total(&self) -> CpuCounters {
        let mut t = CpuCounters {
            cpu: u32::MAX,
            ..Default::default()
        };
        for c in &self.cpus {
            t.seen += c.seen;
            t.filtered += c.filtered;
            t.emitted += c.emitted;
            t.output_ok += c.output_ok;
            t.fail_nospc += c.fail_nospc;
            t.fail_noent += c.fail_noent;
            t.fail_again += c.fail_again;
            t.fail_other += c.fail_other;
            t.path_fault += c.path_fault;
        }
        t
    }
    pub fn cpu(&self, cpu: u32) -> Option<&CpuCounters> {
        self.cpus.iter().find(|c| c.cpu == cpu)
    }
}
