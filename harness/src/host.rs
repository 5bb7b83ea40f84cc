//! Facts about the host this process runs on: its clocks, CPU model, kernel
//! and hostname, the memory it may still use and its own peak resident
//! memory. A leaf: it imports nothing from the rest of the crate, so the
//! results schema, captures and the replay driver can all ask it.

use std::path::Path;

/// (CLOCK_REALTIME, CLOCK_MONOTONIC) in ns, read back to back.
pub fn clock_pair() -> (u64, u64) {
    (
        clock_ns(libc::CLOCK_REALTIME),
        clock_ns(libc::CLOCK_MONOTONIC),
    )
}

/// Reads a clock in ns. CLOCK_MONOTONIC is the clock of `bpf_ktime_get_ns()`.
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_MONOTONIC in ns.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// The CPU model from /proc/cpuinfo, or "unknown".
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The kernel release and the hostname (`uname`), or "unknown" for both.
pub fn uname() -> (String, String) {
    // SAFETY: uname fills a zeroed struct; the fields are NUL-terminated.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::uname(&mut u) } == 0;
    let field = |f: &[libc::c_char]| {
        let b: Vec<u8> = f
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&b).into_owned()
    };
    if ok {
        (field(&u.release), field(&u.nodename))
    } else {
        ("unknown".into(), "unknown".into())
    }
}

/// The CPUs this process may run on (at least 1).
pub fn cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// Bytes of memory this process may still use: the least of the machine's
/// available memory, its cgroup's limit less what the cgroup uses (v2 and v1),
/// and its address-space limit (`ulimit -v`) less what it has mapped. `None`
/// when none of these can be read.
pub fn memory_budget() -> Option<u64> {
    let mut budget: Option<u64> = None;
    let mut take = |b: Option<u64>| {
        if let Some(b) = b {
            budget = Some(budget.map_or(b, |x| x.min(b)));
        }
    };
    take(meminfo_available());
    take(cgroup_headroom());
    take(address_space_headroom());
    budget
}

fn meminfo_available() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&s, "MemAvailable:")
}

/// `name` followed by a number of KiB in a /proc file, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The cgroup memory limit less its usage, for this process's own cgroup.
fn cgroup_headroom() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut best: Option<u64> = None;
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(id), Some(ctrl), Some(rel)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let rel = rel.trim_start_matches('/');
        let (limit, usage) = if id == "0" && ctrl.is_empty() {
            // cgroup v2: wherever it is mounted.
            ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
                .iter()
                .map(|m| Path::new(m).join(rel))
                .find(|d| d.join("memory.max").exists())
                .map(|d| (d.join("memory.max"), d.join("memory.current")))?
        } else if ctrl.split(',').any(|c| c == "memory") {
            let d = Path::new("/sys/fs/cgroup/memory").join(rel);
            (
                d.join("memory.limit_in_bytes"),
                d.join("memory.usage_in_bytes"),
            )
        } else {
            continue;
        };
        // "max" (v2) or a huge number (v1) means no limit.
        let Some(limit) = read_u64(&limit).filter(|&l| l < 1 << 60) else {
            continue;
        };
        let left = limit.saturating_sub(read_u64(&usage).unwrap_or(0));
        best = Some(best.map_or(left, |b| b.min(left)));
    }
    best
}

/// `RLIMIT_AS` less the address space already mapped.
fn address_space_headroom() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } != 0
        || lim.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let mapped = kib_field(&status, "VmSize:").unwrap_or(0);
    Some(lim.rlim_cur.saturating_sub(mapped))
}

/// This process's peak resident memory so far, in bytes: `VmHWM`, or the
/// highest it reached before a [`reset_peak_rss`], whichever is more.
pub fn peak_rss_bytes() -> Option<u64> {
    let hwm = current_hwm()?;
    Some(hwm.max(PEAK_BEFORE_RESET.load(std::sync::atomic::Ordering::Relaxed)))
}

/// `VmHWM` as the kernel has it now (since the last reset), in bytes.
pub fn current_hwm() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_field(&status, "VmHWM:")
}

/// The process's peak before the last [`reset_peak_rss`] (so
/// [`peak_rss_bytes`] still answers for the whole process).
static PEAK_BEFORE_RESET: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Resets `VmHWM` to the current RSS (writing `5` to `/proc/self/clear_refs`),
/// so [`current_hwm`] then measures from here. False if the kernel refused;
/// the process-wide peak is kept either way.
pub fn reset_peak_rss() -> bool {
    if let Some(h) = current_hwm() {
        PEAK_BEFORE_RESET.fetch_max(h, std::sync::atomic::Ordering::Relaxed);
    }
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kib_fields_are_read_in_bytes() {
        let s = "MemTotal:  100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(kib_field(s, "MemAvailable:"), Some(2048 * 1024));
        assert_eq!(kib_field(s, "VmHWM:"), None);
    }

    #[test]
    fn this_process_has_a_budget_and_a_peak() {
        assert!(memory_budget().is_some_and(|b| b > 0));
        assert!(peak_rss_bytes().is_some_and(|b| b > 1 << 20));
    }

    #[test]
    fn the_clocks_and_the_machine_are_read() {
        let (wall, mono) = clock_pair();
        assert!(wall > 1_600_000_000_000_000_000 && mono > 0);
        assert!(monotonic_ns() >= mono);
        assert!(cpus() >= 1);
        assert!(!uname().0.is_empty() && !cpu_model().is_empty());
    }
}
