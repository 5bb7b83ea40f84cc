//! [`InjectCounters`]: the probes' counters, plus what perf has not reported yet.

use crate::counters::KernelCounters;
use crate::loader::Transport;

/// The injector's counters: the probes' counters plus, per CPU, the perf drops
/// no reader has been told of yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct InjectCounters {
    /// Per online CPU. `seen` = `emitted` = events injected on that CPU.
    pub kernel: KernelCounters,
    /// Per online CPU (same order): perf -ENOSPC failures since the CPU's last
    /// successful output, which no PERF_RECORD_LOST has reported yet. Always 0
    /// for the ring buffer.
    pub lost_pending: Vec<u64>,
}

impl InjectCounters {
    /// Drops a reader of this run can never be told of: perf drops still
    /// pending, plus failures that touch no ring (-ENOENT: a CPU with no perf
    /// event; other errors). For the ring buffer, 0: its reader takes every
    /// failure from these counters.
    pub fn lost_unreportable(&self, transport: Transport) -> u64 {
        match transport {
            Transport::Perf => {
                let t = self.kernel.total();
                self.lost_pending.iter().sum::<u64>() + t.fail_noent + t.fail_other
            }
            Transport::Ringbuf => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::CpuCounters;

    #[test]
    fn unreportable_losses_are_pending_plus_noent_for_perf_only() {
        let mut c = InjectCounters::default();
        c.kernel.cpus.push(CpuCounters {
            cpu: 0,
            fail_nospc: 5,
            fail_noent: 2,
            ..Default::default()
        });
        c.lost_pending.push(3);
        assert_eq!(c.lost_unreportable(Transport::Perf), 5);
        assert_eq!(c.lost_unreportable(Transport::Ringbuf), 0);
    }
}
