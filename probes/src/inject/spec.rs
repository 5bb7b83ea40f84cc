//! What to load: the transport, ring and wakeup, the slots, and the
//! committed injector object.

use crate::loader::{Transport, Wakeup};

use super::DEFAULT_SLOTS_PER_CPU;

/// What to load.
#[derive(Debug, Clone)]
pub struct InjectorSpec {
    pub transport: Transport,
    /// Perf: data bytes per CPU of dropbench's own reader (an outside reader
    /// picks its own). Ring buffer: the ring's bytes. A power-of-two number of pages.
    pub ring_bytes: usize,
    pub wakeup: Wakeup,
    /// The most events one test run emits on one CPU.
    pub slots_per_cpu: u32,
}

impl InjectorSpec {
    pub fn new(transport: Transport, ring_bytes: usize, wakeup: Wakeup) -> Self {
        InjectorSpec {
            transport,
            ring_bytes,
            wakeup,
            slots_per_cpu: DEFAULT_SLOTS_PER_CPU,
        }
    }
}

/// The committed injector object for a transport (rebuilt by `probes/bpf/build.sh`).
pub fn object_bytes(transport: Transport) -> (&'static str, &'static [u8]) {
    match transport {
        Transport::Perf => (
            "inject_perf.bpf.o",
            aya::include_bytes_aligned!("../../bpf/obj/inject_perf.bpf.o"),
        ),
        Transport::Ringbuf => (
            "inject_ringbuf.bpf.o",
            aya::include_bytes_aligned!("../../bpf/obj/inject_ringbuf.bpf.o"),
        ),
    }
}

/// The injector's one program.
pub(super) const PROGRAM: &str = "db_inject";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_objects_hold_the_injector() {
        for t in Transport::ALL {
            let (name, bytes) = object_bytes(*t);
            assert!(
                bytes
                    .windows(PROGRAM.len())
                    .any(|w| w == PROGRAM.as_bytes()),
                "{PROGRAM} missing from {name}"
            );
        }
    }
}
