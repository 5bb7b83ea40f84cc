//! Which committed BPF object a spec loads, and which tracepoints its
//! programs attach to.

use crate::abi::{Layout, Syscall};

use super::spec::{Hook, ProbeSpec, Transport};

impl ProbeSpec {
    /// The committed object for this layout and transport.
    pub fn object(&self) -> (&'static str, &'static [u8]) {
        object_bytes(self.layout, self.transport)
    }
}

/// The committed BPF objects (rebuilt by `probes/bpf/build.sh`).
pub fn object_bytes(layout: Layout, transport: Transport) -> (&'static str, &'static [u8]) {
    match (layout, transport) {
        (Layout::Fixed4k, Transport::Perf) => (
            "fixed4k_perf.bpf.o",
            aya::include_bytes_aligned!("../../bpf/obj/fixed4k_perf.bpf.o"),
        ),
        (Layout::Fixed4k, Transport::Ringbuf) => (
            "fixed4k_ringbuf.bpf.o",
            aya::include_bytes_aligned!("../../bpf/obj/fixed4k_ringbuf.bpf.o"),
        ),
        (Layout::Compact, Transport::Perf) => (
            "compact_perf.bpf.o",
            aya::include_bytes_aligned!("../../bpf/obj/compact_perf.bpf.o"),
        ),
        (Layout::Compact, Transport::Ringbuf) => (
            "compact_ringbuf.bpf.o",
            aya::include_bytes_aligned!("../../bpf/obj/compact_ringbuf.bpf.o"),
        ),
    }
}

/// The tracepoints a hook attaches: (program, category, tracepoint), as
/// tracefs names them (`events/CATEGORY/TRACEPOINT`).
pub fn tracepoints(hook: Hook, emit_exit: bool) -> Vec<(String, &'static str, String)> {
    let mut v = Vec::new();
    match hook {
        Hook::Tracepoints => {
            for s in Syscall::ALL {
                v.push((
                    format!("db_enter_{}", s.name()),
                    "syscalls",
                    format!("sys_enter_{}", s.name()),
                ));
                if emit_exit {
                    v.push((
                        format!("db_exit_{}", s.name()),
                        "syscalls",
                        format!("sys_exit_{}", s.name()),
                    ));
                }
            }
        }
        Hook::RawSyscalls => {
            v.push((
                "db_raw_enter".to_string(),
                "raw_syscalls",
                "sys_enter".to_string(),
            ));
            if emit_exit {
                v.push((
                    "db_raw_exit".to_string(),
                    "raw_syscalls",
                    "sys_exit".to_string(),
                ));
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_hook_attaches_its_exit_tracepoints_only_when_asked() {
        assert_eq!(tracepoints(Hook::RawSyscalls, false).len(), 1);
        assert_eq!(tracepoints(Hook::RawSyscalls, true).len(), 2);
        assert_eq!(
            tracepoints(Hook::Tracepoints, true).len(),
            2 * tracepoints(Hook::Tracepoints, false).len()
        );
    }

    #[test]
    fn every_program_is_in_every_object() {
        for layout in Layout::ALL {
            for t in Transport::ALL {
                let (name, bytes) = object_bytes(*layout, *t);
                for hook in Hook::ALL {
                    for (prog, _, _) in tracepoints(*hook, true) {
                        assert!(
                            bytes.windows(prog.len()).any(|w| w == prog.as_bytes()),
                            "{prog} missing from {name}"
                        );
                    }
                }
            }
        }
    }
}
