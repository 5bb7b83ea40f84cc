//! The raw `bpf(2)` calls and map-fd plumbing the injector needs and aya
//! does not wrap the way it needs them.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use aya::maps::Map;
use aya::Ebpf;

use super::spec::PROGRAM;
use super::InjectError;

/// Checks that this process may load the injector (a tracing-class raw_tp
/// program) and open perf events.
pub(super) fn check_privileges() -> Result<(), InjectError> {
    let caps = crate::sys::effective_caps();
    let has = |c: u32| caps & (1u64 << c) != 0;
    if has(crate::sys::CAP_SYS_ADMIN) || (has(crate::sys::CAP_BPF) && has(crate::sys::CAP_PERFMON))
    {
        Ok(())
    } else {
        Err(InjectError::Privileges { caps })
    }
}

/// A verifier refusal that names bpf_loop (helper 181) means the kernel lacks it.
pub(super) fn classify_load_error(
    object: &'static str,
    source: aya::programs::ProgramError,
) -> InjectError {
    if let aya::programs::ProgramError::LoadError { verifier_log, .. } = &source {
        let log = verifier_log.to_string();
        if log.contains("unknown func bpf_loop") || log.contains("invalid func unknown#181") {
            return InjectError::NoBpfLoop { object };
        }
    }
    InjectError::Verify {
        program: PROGRAM,
        object,
        source,
    }
}

pub(super) fn map_fd(
    ebpf: &Ebpf,
    name: &'static str,
    object: &'static str,
) -> Result<RawFd, InjectError> {
    let fd = match ebpf.map(name) {
        Some(Map::PerfEventArray(m)) => m.fd().as_fd().as_raw_fd(),
        Some(Map::RingBuf(m)) => m.fd().as_fd().as_raw_fd(),
        Some(Map::Array(m)) => m.fd().as_fd().as_raw_fd(),
        _ => return Err(InjectError::MissingMap { map: name, object }),
    };
    Ok(fd)
}

pub(super) fn dup(fd: RawFd, map: &'static str) -> Result<OwnedFd, InjectError> {
    // SAFETY: fd is a live map fd owned by the Ebpf for the duration of this call.
    let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    b.try_clone_to_owned().map_err(|e| InjectError::Map {
        map,
        source: aya::maps::MapError::SyscallError(aya::sys::SyscallError {
            call: "dup",
            io_error: e,
        }),
    })
}

/// `BPF_PROG_TEST_RUN` (cmd 10) of a raw_tp program on `cpu`, with `args` as
/// the context (the tracepoint's u64 arguments). Returns the program's return value.
pub(super) fn test_run_on_cpu(prog_fd: RawFd, cpu: u32, args: &[u64; 4]) -> io::Result<u32> {
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    const BPF_F_TEST_RUN_ON_CPU: u32 = 1;
    /// The `test` member of `union bpf_attr` (include/uapi/linux/bpf.h).
    #[repr(C)]
    #[derive(Default)]
    struct TestAttr {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
        flags: u32,
        cpu: u32,
        batch_size: u32,
        _pad: u32,
    }
    const _: () = assert!(std::mem::size_of::<TestAttr>() == 80);
    let mut attr = TestAttr {
        prog_fd: prog_fd as u32,
        ctx_size_in: std::mem::size_of_val(args) as u32,
        ctx_in: args.as_ptr() as u64,
        flags: BPF_F_TEST_RUN_ON_CPU,
        cpu,
        ..Default::default()
    };
    // SAFETY: attr is a valid bpf_attr prefix; ctx_in points at live memory of ctx_size_in bytes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestAttr,
            std::mem::size_of::<TestAttr>() as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(attr.retval)
    }
}
