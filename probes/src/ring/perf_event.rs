//! Opening the kernel's perf rings, with the wakeup policy as a first-class knob.
//!
//! aya 0.13 opens perf buffers with `wakeup_events = 1`: the kernel wakes the
//! reader on every sample, and on these VMs that alone cut a traced loop from
//! 0.87 M to 0.11 M ops/s (docs/tuning.md). So dropbench opens the
//! `PERF_COUNT_SW_BPF_OUTPUT` events itself, with `wakeup_events = N` or a byte
//! watermark, maps them ([`super::perf::PerfRing::open`]), and stores their fds
//! in the program's `BPF_MAP_TYPE_PERF_EVENT_ARRAY`.
//!
//! Minimum kernel: 4.4 (`PERF_COUNT_SW_BPF_OUTPUT`); the tracepoint probes need 4.7.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::mem::{page_size, MemError};

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_BPF_OUTPUT: u64 = 10;
const PERF_SAMPLE_RAW: u64 = 1 << 10;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
/// `perf_event_attr.watermark`: bit 14 of the flags word.
const ATTR_FLAG_WATERMARK: u64 = 1 << 14;
/// `_IO('$', 0)`.
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;

/// `struct perf_event_attr`, the PERF_ATTR_SIZE_VER0 (64-byte) prefix, which
/// is all a BPF output event needs. The kernel accepts any published size.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    /// `wakeup_events`, or `wakeup_watermark` when the watermark flag is set.
    wakeup: u32,
    bp_type: u32,
    config1: u64,
}
const _: () = assert!(std::mem::size_of::<PerfEventAttr>() == 64);

/// Errors from opening perf rings. Each carries the CPU.
#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    #[error("perf ring size {bytes} bytes is not a power-of-two multiple of the {page}-byte page")]
    BadSize { bytes: usize, page: usize },
    #[error("wakeup_events and watermark are both set; choose one wakeup policy")]
    ConflictingWakeup,
    #[error("wakeup_events must be at least 1")]
    ZeroWakeupEvents,
    #[error("watermark {watermark} bytes must be between 1 and the ring size {ring} bytes")]
    BadWatermark { watermark: usize, ring: usize },
    #[error("perf_event_open(PERF_COUNT_SW_BPF_OUTPUT) on cpu {cpu}: {source}")]
    Open { cpu: u32, source: io::Error },
    #[error("perf ring on cpu {cpu}: {source}")]
    Mmap { cpu: u32, source: MemError },
    #[error("enabling the perf event on cpu {cpu}: {source}")]
    Enable { cpu: u32, source: io::Error },
    #[error("storing the perf fd of cpu {cpu} in map {map}: {source}")]
    MapUpdate {
        map: String,
        cpu: u32,
        source: io::Error,
    },
}

/// When the kernel wakes the reader. Exactly one policy; the builder rejects both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerfWakeup {
    /// Wake after every N samples (aya's fixed default is N = 1).
    Events(u32),
    /// Wake when this many bytes are pending.
    Watermark(u32),
}

impl std::fmt::Display for PerfWakeup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PerfWakeup::Events(n) => write!(f, "events:{n}"),
            PerfWakeup::Watermark(b) => write!(f, "watermark:{b}"),
        }
    }
}

/// Options for the per-CPU perf rings.
#[derive(Debug, Clone)]
pub struct PerfRingOptions {
    /// Data area per CPU, bytes: a power-of-two number of pages.
    pub data_bytes: usize,
    wakeup_events: Option<u32>,
    watermark: Option<u32>,
}

impl PerfRingOptions {
    /// `data_bytes` per CPU must be 2^n pages (the kernel requires it).
    pub fn new(data_bytes: usize) -> Result<Self, PerfError> {
        let page = page_size();
        if data_bytes < page || !data_bytes.is_power_of_two() {
            return Err(PerfError::BadSize {
                bytes: data_bytes,
                page,
            });
        }
        Ok(PerfRingOptions {
            data_bytes,
            wakeup_events: None,
            watermark: None,
        })
    }
    pub fn wakeup_events(mut self, n: u32) -> Result<Self, PerfError> {
        if self.watermark.is_some() {
            return Err(PerfError::ConflictingWakeup);
        }
        if n == 0 {
            return Err(PerfError::ZeroWakeupEvents);
        }
        self.wakeup_events = Some(n);
        Ok(self)
    }
    pub fn watermark(mut self, bytes: u32) -> Result<Self, PerfError> {
        if self.wakeup_events.is_some() {
            return Err(PerfError::ConflictingWakeup);
        }
        if bytes == 0 || bytes as usize >= self.data_bytes {
            return Err(PerfError::BadWatermark {
                watermark: bytes as usize,
                ring: self.data_bytes,
            });
        }
        self.watermark = Some(bytes);
        Ok(self)
    }
    pub fn with_wakeup(self, w: PerfWakeup) -> Result<Self, PerfError> {
        match w {
            PerfWakeup::Events(n) => self.wakeup_events(n),
            PerfWakeup::Watermark(b) => self.watermark(b),
        }
    }
    /// The policy in force: an unset policy is one wakeup per sample, as the kernel defaults.
    pub fn wakeup(&self) -> PerfWakeup {
        match (self.wakeup_events, self.watermark) {
            (_, Some(b)) => PerfWakeup::Watermark(b),
            (Some(n), None) => PerfWakeup::Events(n),
            (None, None) => PerfWakeup::Events(1),
        }
    }
}

/// `perf_event_open` of a BPF output event on `cpu` with the options' wakeup.
pub(super) fn open_output_event(opts: &PerfRingOptions, cpu: u32) -> Result<OwnedFd, PerfError> {
    let mut attr = PerfEventAttr {
        type_: PERF_TYPE_SOFTWARE,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: PERF_COUNT_SW_BPF_OUTPUT,
        sample_period: 1,
        sample_type: PERF_SAMPLE_RAW,
        ..Default::default()
    };
    match opts.wakeup() {
        PerfWakeup::Events(n) => attr.wakeup = n,
        PerfWakeup::Watermark(b) => {
            attr.flags |= ATTR_FLAG_WATERMARK;
            attr.wakeup = b;
        }
    }
    // SAFETY: attr is a valid perf_event_attr of the size it declares.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            -1i32,
            cpu as i32,
            -1i32,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(PerfError::Open {
            cpu,
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: fd was just returned by the kernel and is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `PERF_EVENT_IOC_ENABLE`, once the ring is mapped.
pub(super) fn enable(fd: &OwnedFd, cpu: u32) -> Result<(), PerfError> {
    // SAFETY: ioctl on our own perf fd.
    if unsafe { libc::ioctl(fd.as_raw_fd(), PERF_EVENT_IOC_ENABLE, 0) } < 0 {
        return Err(PerfError::Enable {
            cpu,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_options_reject_conflicting_wakeups() {
        let o = PerfRingOptions::new(1 << 20).unwrap();
        assert!(matches!(
            o.clone().wakeup_events(4).unwrap().watermark(4096),
            Err(PerfError::ConflictingWakeup)
        ));
        assert!(matches!(
            o.clone().watermark(4096).unwrap().wakeup_events(4),
            Err(PerfError::ConflictingWakeup)
        ));
        assert!(matches!(
            PerfRingOptions::new(3 << 12),
            Err(PerfError::BadSize { .. })
        ));
        assert!(matches!(
            o.watermark(1 << 20),
            Err(PerfError::BadWatermark { .. })
        ));
    }
}
