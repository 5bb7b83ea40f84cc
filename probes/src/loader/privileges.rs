//! What the machine must give the probes: privileges, a mounted tracefs,
//! and the list of online CPUs.

use std::path::Path;

use crate::sys;

use super::error::ProbeError;

/// Checks that this process may load BPF and open perf events.
pub fn check_privileges() -> Result<(), ProbeError> {
    let caps = sys::effective_caps();
    let has = |c: u32| caps & (1u64 << c) != 0;
    if has(sys::CAP_SYS_ADMIN) || (has(sys::CAP_BPF) && has(sys::CAP_PERFMON)) {
        Ok(())
    } else {
        Err(ProbeError::Privileges { caps })
    }
}

/// Makes sure tracefs is mounted at `path`, mounting it if needed (docs/tuning.md:
/// fresh machines here do not have it mounted).
pub fn ensure_tracefs(path: &Path) -> Result<(), ProbeError> {
    if path.join("events").is_dir() {
        return Ok(());
    }
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default();
    let target = c(path);
    // SAFETY: valid NUL-terminated strings; no data argument.
    let r = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(ProbeError::Tracefs {
            path: path.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    if !path.join("events").is_dir() {
        return Err(ProbeError::Tracefs {
            path: path.to_path_buf(),
            source: std::io::Error::other("mounted, but it has no events/ directory"),
        });
    }
    Ok(())
}

/// Online CPUs.
pub fn online_cpus() -> Result<Vec<u32>, ProbeError> {
    aya::util::online_cpus().map_err(|(what, source)| ProbeError::Cpus { what, source })
}
