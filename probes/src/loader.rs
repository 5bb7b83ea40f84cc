//! Loads the committed BPF objects with aya, attaches them, and hands out the reader.
//!
//! ```ignore
//! let spec = ProbeSpec::new(Layout::Compact, Transport::Perf);
//! let mut probe = Probe::load(&spec)?;         // checks privileges, mounts tracefs, loads, attaches
//! let mut source = probe.take_source();        // Box<dyn RecordSource>
//! /* ... read ... */
//! let counters = probe.counters()?;            // kernel-side, per CPU
//! probe.detach();                              // or drop
//! ```
//! Loading errors carry aya's own (large) error values whole: they happen once,
//! at load time, never on a hot path, so `clippy::result_large_err` is allowed here.
//!
//! Needs root or CAP_BPF + CAP_PERFMON, BTF-capable loading (aya), and Linux 5.8+
//! for the ring buffer transport. RLIMIT_MEMLOCK is not raised (kernels since 5.11
//! account BPF memory to the cgroup instead).

#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData, PerCpuArray};
use aya::programs::raw_trace_point::RawTracePointLinkId;
use aya::programs::trace_point::TracePointLinkId;
use aya::programs::{RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader};

use crate::abi::{
    Layout, ProbeConfig, RawCounters, Syscall, FILTER_ALL, FILTER_CGROUP, FILTER_TGID, INLINE_TGIDS,
};
use crate::counters::{CpuCounters, KernelCounters};
use crate::perf::{PerfError, PerfRingOptions, PerfRings, PerfWakeup};
use crate::record::RecordSource;
use crate::ringbuf::{RingBufError, RingBufReader, RingBufWakeup};
use crate::sys;
use crate::units::{format_duration, parse_bytes, parse_duration};

/// The kernel-to-user transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// `BPF_MAP_TYPE_PERF_EVENT_ARRAY`: one ring per CPU.
    Perf,
    /// `BPF_MAP_TYPE_RINGBUF`: one ring shared by all CPUs.
    Ringbuf,
}

impl Transport {
    pub const ALL: &'static [Transport] = &[Transport::Perf, Transport::Ringbuf];
    pub fn name(self) -> &'static str {
        match self {
            Transport::Perf => "perf",
            Transport::Ringbuf => "ringbuf",
        }
    }
}
impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "perf" => Ok(Transport::Perf),
            "ringbuf" => Ok(Transport::Ringbuf),
            _ => Err(format!(
                "unknown transport {s:?}; expected one of: perf, ringbuf"
            )),
        }
    }
}

/// Where the probes attach. Both hooks read the same arguments and emit the
/// same records; they differ in what the kernel does before the program runs
/// (docs/tuning.md, "The probes' floor").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Hook {
    /// One program per syscall tracepoint (`syscalls/sys_enter_openat`, ...),
    /// called through the kernel's perf glue for syscall events, which first
    /// copies the arguments into a per-CPU record (`tracepoints`).
    #[default]
    Tracepoints,
    /// One program on `raw_syscalls/sys_enter` (and `sys_exit`), called
    /// directly with the registers on every system call; it picks the file
    /// syscalls by number (`raw-syscalls`). x86-64 only: the program reads
    /// the arguments from that architecture's `struct pt_regs`.
    RawSyscalls,
}

impl Hook {
    pub const ALL: &'static [Hook] = &[Hook::Tracepoints, Hook::RawSyscalls];
    pub fn name(self) -> &'static str {
        match self {
            Hook::Tracepoints => "tracepoints",
            Hook::RawSyscalls => "raw-syscalls",
        }
    }
}
impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
impl std::str::FromStr for Hook {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Hook::ALL
            .iter()
            .copied()
            .find(|h| h.name() == s)
            .ok_or_else(|| {
                format!("unknown hook {s:?}; expected one of: tracepoints, raw-syscalls")
            })
    }
}

/// When the kernel wakes the reader. One policy per transport; the spellings
/// below are also how captures record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// perf: wake every N samples (`events:N`). aya's fixed default is N = 1.
    Events(u32),
    /// perf: wake when this many bytes are pending (`watermark:BYTES`).
    Watermark(u64),
    /// ringbuf: no flags; the kernel wakes the reader when it has caught up (`adaptive`).
    Adaptive,
    /// ringbuf: `BPF_RB_NO_WAKEUP`; the reader drains on a timer (`no-wakeup/poll:1ms`).
    NoWakeupPoll(Duration),
    /// ringbuf: `BPF_RB_FORCE_WAKEUP`, a wakeup per record (`forced`).
    Forced,
}

impl Wakeup {
    pub fn transport(&self) -> Transport {
        match self {
            Wakeup::Events(_) | Wakeup::Watermark(_) => Transport::Perf,
            _ => Transport::Ringbuf,
        }
    }

    /// The kernel's default for a transport: perf wakes on every event (as aya
    /// does), the ring buffer adaptively.
    pub fn default_for(t: Transport) -> Wakeup {
        match t {
            Transport::Perf => Wakeup::Events(1),
            Transport::Ringbuf => Wakeup::Adaptive,
        }
    }

    /// The perf reader's setting, for a perf policy.
    pub fn perf(&self) -> Option<PerfWakeup> {
        match *self {
            Wakeup::Events(n) => Some(PerfWakeup::Events(n)),
            Wakeup::Watermark(b) => Some(PerfWakeup::Watermark(b.min(u32::MAX as u64) as u32)),
            _ => None,
        }
    }

    /// The ring buffer reader's setting, for a ring buffer policy.
    pub fn ringbuf(&self) -> Option<RingBufWakeup> {
        match *self {
            Wakeup::Adaptive => Some(RingBufWakeup::Adaptive),
            Wakeup::NoWakeupPoll(poll) => Some(RingBufWakeup::NoWakeup { poll }),
            Wakeup::Forced => Some(RingBufWakeup::Forced),
            _ => None,
        }
    }

    /// Parses a policy given on the command line for `transport` with rings of
    /// `ring_bytes`: everything `FromStr` reads, plus `watermark:P%` of the
    /// ring, with the watermark checked against the ring size.
    pub fn parse(transport: Transport, ring_bytes: usize, s: &str) -> Result<Wakeup, String> {
        let bad = |why: &str| format!("bad wakeup policy {s:?} for {transport}: {why}");
        let w = match s
            .strip_prefix("watermark:")
            .and_then(|p| p.strip_suffix('%'))
        {
            Some(p) => {
                let p: f64 = p.parse().map_err(|_| bad("watermark:P% needs a number"))?;
                if !(p > 0.0 && p < 100.0) {
                    return Err(bad("the percentage must be in (0, 100)"));
                }
                Wakeup::Watermark((ring_bytes as f64 * p / 100.0) as u64)
            }
            None => s.parse::<Wakeup>()?,
        };
        if w.transport() != transport {
            return Err(bad(match transport {
                Transport::Perf => "perf takes events:N or watermark:BYTES|P%",
                Transport::Ringbuf => {
                    "the ring buffer takes adaptive, forced or no-wakeup:POLL (e.g. no-wakeup:1ms)"
                }
            }));
        }
        if let Wakeup::Watermark(b) = w {
            if b == 0 || b as usize >= ring_bytes {
                return Err(bad(&format!(
                    "the watermark ({b} bytes) must be between 1 and the ring size ({ring_bytes} bytes)"
                )));
            }
        }
        Ok(w)
    }
}

impl std::fmt::Display for Wakeup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wakeup::Events(n) => write!(f, "events:{n}"),
            Wakeup::Watermark(b) => write!(f, "watermark:{b}"),
            Wakeup::Adaptive => f.write_str("adaptive"),
            Wakeup::NoWakeupPoll(d) => write!(f, "no-wakeup/poll:{}", format_duration(*d)),
            Wakeup::Forced => f.write_str("forced"),
        }
    }
}

impl std::str::FromStr for Wakeup {
    type Err = String;
    /// `events:N`, `watermark:BYTES`, `adaptive`, `forced`, and `no-wakeup`
    /// (1 ms poll), `no-wakeup:POLL`, `no-wakeup/poll:POLL` or `poll:POLL`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("bad wakeup policy {s:?}; expected events:N, watermark:BYTES, adaptive, no-wakeup:POLL or forced")
        };
        if let Some(n) = s.strip_prefix("events:") {
            return match n.parse::<u32>() {
                Ok(n) if n > 0 => Ok(Wakeup::Events(n)),
                _ => Err(bad()),
            };
        }
        if let Some(b) = s.strip_prefix("watermark:") {
            return parse_bytes(b).map(Wakeup::Watermark).map_err(|_| bad());
        }
        if let Some(d) = s
            .strip_prefix("no-wakeup/poll:")
            .or_else(|| s.strip_prefix("no-wakeup:"))
            .or_else(|| s.strip_prefix("poll:"))
        {
            return match parse_duration(d) {
                Ok(d) if !d.is_zero() => Ok(Wakeup::NoWakeupPoll(d)),
                _ => Err(bad()),
            };
        }
        match s {
            "adaptive" => Ok(Wakeup::Adaptive),
            "forced" => Ok(Wakeup::Forced),
            "no-wakeup" => Ok(Wakeup::NoWakeupPoll(Duration::from_millis(1))),
            _ => Err(bad()),
        }
    }
}

/// Which tasks the probes trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    All,
    /// Only these tgids (processes).
    Tgids(Vec<u32>),
    /// Only tasks in this cgroup v2 directory (its inode number is the cgroup id).
    Cgroup(PathBuf),
}

/// Everything needed to load and attach the probes.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    pub layout: Layout,
    pub transport: Transport,
    /// Perf: data bytes per CPU. Ring buffer: the one ring's bytes. A power-of-two number of pages.
    pub ring_bytes: usize,
    pub wakeup: Wakeup,
    pub filter: Filter,
    /// Also emit exit events (carrying the return value).
    pub emit_exit: bool,
    /// Which tracepoints the programs attach to.
    pub hook: Hook,
    /// Where tracefs is (or should be mounted).
    pub tracefs: PathBuf,
}

/// The default ring size: 8 MiB per perf CPU ring, or for the one ring buffer.
pub const DEFAULT_RING_BYTES: usize = 8 << 20;

/// dropbench's default wakeup for a transport with rings of `ring_bytes`
/// (unlike [`Wakeup::default_for`], the kernel's own default):
/// - perf: a watermark at half of *this* ring (`ring_bytes / 2`), the policy
///   that held 0.92 M ops/s with 64-byte events (docs/tuning.md). Half keeps
///   the other half free for the samples that arrive while the reader wakes
///   up; for any ring of at least one page it is between 1 and the ring size.
/// - ring buffer: no wakeups, drained every 1 ms (the best ring-buffer setting
///   measured). A poll interval is a time, not a size: docs/tuning.md says
///   how small a ring 1 ms of events fills at a given rate.
pub fn default_wakeup(transport: Transport, ring_bytes: usize) -> Wakeup {
    match transport {
        Transport::Perf => Wakeup::Watermark((ring_bytes / 2) as u64),
        Transport::Ringbuf => Wakeup::NoWakeupPoll(Duration::from_millis(1)),
    }
}

impl ProbeSpec {
    /// Defaults: [`DEFAULT_RING_BYTES`] rings and [`default_wakeup`] for them.
    /// Changing `ring_bytes` afterwards does not move the wakeup: set it from
    /// [`default_wakeup`] again (or choose one).
    pub fn new(layout: Layout, transport: Transport) -> Self {
        let ring_bytes = DEFAULT_RING_BYTES;
        ProbeSpec {
            layout,
            transport,
            ring_bytes,
            wakeup: default_wakeup(transport, ring_bytes),
            filter: Filter::All,
            emit_exit: true,
            hook: Hook::default(),
            tracefs: PathBuf::from("/sys/kernel/tracing"),
        }
    }

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
            aya::include_bytes_aligned!("../bpf/obj/fixed4k_perf.bpf.o"),
        ),
        (Layout::Fixed4k, Transport::Ringbuf) => (
            "fixed4k_ringbuf.bpf.o",
            aya::include_bytes_aligned!("../bpf/obj/fixed4k_ringbuf.bpf.o"),
        ),
        (Layout::Compact, Transport::Perf) => (
            "compact_perf.bpf.o",
            aya::include_bytes_aligned!("../bpf/obj/compact_perf.bpf.o"),
        ),
        (Layout::Compact, Transport::Ringbuf) => (
            "compact_ringbuf.bpf.o",
            aya::include_bytes_aligned!("../bpf/obj/compact_ringbuf.bpf.o"),
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

/// An attached program's link, of its hook's kind.
enum Link {
    Tracepoint(TracePointLinkId),
    Raw(RawTracePointLinkId),
}

/// Errors from loading and attaching the probes.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("recording needs root or CAP_BPF + CAP_PERFMON (effective capabilities: {caps:#x}); run as root, e.g. with sudo")]
    Privileges { caps: u64 },
    #[error("tracefs is not mounted at {path} and mounting it failed: {source}")]
    Tracefs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tracepoint {category}/{name} does not exist on this kernel (looked in {path})")]
    MissingTracepoint {
        category: &'static str,
        name: String,
        path: PathBuf,
    },
    #[error("loading BPF object {object}: {source}")]
    Load {
        object: &'static str,
        source: aya::EbpfError,
    },
    #[error("program {program} is missing from {object}")]
    MissingProgram {
        program: String,
        object: &'static str,
    },
    #[error("attaching {program} to {category}/{tracepoint}: {source}")]
    Attach {
        program: String,
        category: &'static str,
        tracepoint: String,
        source: aya::programs::ProgramError,
    },
    #[error("detaching {program}: {source}")]
    Detach {
        program: String,
        source: aya::programs::ProgramError,
    },
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
    #[error("map {map} is missing or of the wrong type in {object}")]
    MissingMap {
        map: &'static str,
        object: &'static str,
    },
    #[error("wakeup policy {wakeup} does not fit transport {transport}")]
    WakeupMismatch {
        wakeup: Wakeup,
        transport: Transport,
    },
    #[error("cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("listing CPUs ({what}): {source}")]
    Cpus {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(
        "turning on the kernel's BPF run-time statistics (BPF_ENABLE_STATS, Linux 5.8+): {source}"
    )]
    RunTimeStats { source: std::io::Error },
    #[error("reading program {program}'s info: {source}")]
    ProgramInfo {
        program: String,
        source: aya::programs::ProgramError,
    },
    #[error(transparent)]
    Perf(#[from] PerfError),
    #[error(transparent)]
    RingBuf(#[from] RingBufError),
}

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

/// Loaded and attached probes.
pub struct Probe {
    ebpf: Ebpf,
    object: &'static str,
    spec: ProbeSpec,
    cpus: Vec<u32>,
    links: Vec<(String, Link)>,
    source: Option<Reader>,
    stop: Arc<AtomicBool>,
}

/// The reader a probe opened, kept concrete so it can be handed out whole
/// or split per ring.
enum Reader {
    Perf(PerfRings),
    Ringbuf(RingBufReader),
}

impl Probe {
    /// Checks privileges and tracefs, loads the object, configures it, opens the
    /// reader, and attaches every tracepoint. Readers are ready before the first
    /// tracepoint fires, so nothing is lost to a missing fd.
    pub fn load(spec: &ProbeSpec) -> Result<Probe, ProbeError> {
        check_privileges()?;
        ensure_tracefs(&spec.tracefs)?;
        if spec.wakeup.transport() != spec.transport {
            return Err(ProbeError::WakeupMismatch {
                wakeup: spec.wakeup,
                transport: spec.transport,
            });
        }
        for (_, category, name) in tracepoints(spec.hook, spec.emit_exit) {
            let p = spec.tracefs.join("events").join(category).join(&name);
            if !p.is_dir() {
                return Err(ProbeError::MissingTracepoint {
                    category,
                    name,
                    path: p,
                });
            }
        }
        let cpus = online_cpus()?;
        let nr_cpus =
            aya::util::nr_cpus().map_err(|(what, source)| ProbeError::Cpus { what, source })?;
        let (object, bytes) = spec.object();

        let mut loader = EbpfLoader::new();
        match spec.transport {
            Transport::Perf => loader.set_max_entries("events", nr_cpus as u32),
            Transport::Ringbuf => loader.set_max_entries("events", spec.ring_bytes as u32),
        };
        let mut ebpf = loader
            .load(bytes)
            .map_err(|source| ProbeError::Load { object, source })?;

        // Config first, so the programs see it from their first run.
        let cgroup_id = match &spec.filter {
            Filter::Cgroup(p) => {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata(p)
                    .map_err(|source| ProbeError::Cgroup {
                        path: p.clone(),
                        source,
                    })?
                    .ino()
            }
            _ => 0,
        };
        let ringbuf_flags = spec.wakeup.ringbuf().map_or(0, |w| w.output_flags());
        // A few targets go inline in the config (compared without a hash
        // lookup); more all go to the hash, and ntgids = 0 says so.
        let (mut ntgids, mut tgids) = (0, [0u32; INLINE_TGIDS]);
        if let Filter::Tgids(t) = &spec.filter {
            if t.len() <= INLINE_TGIDS {
                ntgids = t.len() as u32;
                tgids[..t.len()].copy_from_slice(t);
            }
        }
        let cfg = ProbeConfig {
            filter_mode: match spec.filter {
                Filter::All => FILTER_ALL,
                Filter::Tgids(_) => FILTER_TGID,
                Filter::Cgroup(_) => FILTER_CGROUP,
            },
            emit_exit: spec.emit_exit as u32,
            cgroup_id,
            ringbuf_flags,
            ntgids,
            tgids,
            _pad: 0,
        };
        {
            let map = ebpf.map_mut("config").ok_or(ProbeError::MissingMap {
                map: "config",
                object,
            })?;
            let mut arr: Array<&mut MapData, ProbeConfig> =
                Array::try_from(map).map_err(|source| ProbeError::Map {
                    map: "config",
                    source,
                })?;
            arr.set(0, cfg, 0).map_err(|source| ProbeError::Map {
                map: "config",
                source,
            })?;
        }
        let mut probe_targets = Vec::new();
        if let Filter::Tgids(t) = &spec.filter {
            probe_targets.extend_from_slice(t);
        }
        let stop = Arc::new(AtomicBool::new(false));

        let source: Reader = match (spec.transport, spec.wakeup.perf(), spec.wakeup.ringbuf()) {
            (Transport::Perf, Some(w), _) => {
                let opts = PerfRingOptions::new(spec.ring_bytes)?.with_wakeup(w)?;
                let mut rings = PerfRings::open(&opts, &cpus)?;
                let fd = match ebpf.map("events") {
                    Some(Map::PerfEventArray(m)) => {
                        use std::os::fd::{AsFd, AsRawFd};
                        m.fd().as_fd().as_raw_fd()
                    }
                    _ => {
                        return Err(ProbeError::MissingMap {
                            map: "events",
                            object,
                        })
                    }
                };
                rings.install(&RawFdRef(fd), "events")?;
                rings.set_stop(stop.clone());
                Reader::Perf(rings)
            }
            (Transport::Ringbuf, _, Some(w)) => {
                let fd = match ebpf.map("events") {
                    Some(Map::RingBuf(m)) => {
                        use std::os::fd::AsFd;
                        m.fd()
                            .as_fd()
                            .try_clone_to_owned()
                            .map_err(|source| ProbeError::RingBuf(RingBufError::Dup { source }))?
                    }
                    _ => {
                        return Err(ProbeError::MissingMap {
                            map: "events",
                            object,
                        })
                    }
                };
                let counters = counters_handle(&ebpf, object)?;
                // The same total `record` and the ledger use: every failed output.
                let online = cpus.clone();
                let mut rb = RingBufReader::open(fd, spec.ring_bytes, w)?.with_lost_counter(
                    Box::new(move || {
                        counters_of(&counters, &online)
                            .map(|k| k.total().failed())
                            .unwrap_or(0)
                    }),
                );
                rb.set_stop(stop.clone());
                Reader::Ringbuf(rb)
            }
            (t, _, _) => {
                return Err(ProbeError::WakeupMismatch {
                    wakeup: spec.wakeup,
                    transport: t,
                })
            }
        };

        let mut probe = Probe {
            ebpf,
            object,
            spec: spec.clone(),
            cpus,
            links: Vec::new(),
            source: Some(source),
            stop,
        };
        for tgid in probe_targets {
            probe.add_target(tgid)?;
        }
        probe.attach()?;
        Ok(probe)
    }

    fn attach(&mut self) -> Result<(), ProbeError> {
        let hook = self.spec.hook;
        for (program, category, tp) in tracepoints(hook, self.spec.emit_exit) {
            let object = self.object;
            let err = |source| ProbeError::Attach {
                program: program.clone(),
                category,
                tracepoint: tp.clone(),
                source,
            };
            let prog =
                self.ebpf
                    .program_mut(&program)
                    .ok_or_else(|| ProbeError::MissingProgram {
                        program: program.clone(),
                        object,
                    })?;
            let link = match hook {
                Hook::Tracepoints => {
                    let prog: &mut TracePoint = prog.try_into().map_err(err)?;
                    prog.load().map_err(err)?;
                    Link::Tracepoint(prog.attach(category, &tp).map_err(err)?)
                }
                Hook::RawSyscalls => {
                    let prog: &mut RawTracePoint = prog.try_into().map_err(err)?;
                    prog.load().map_err(err)?;
                    Link::Raw(prog.attach(&tp).map_err(err)?)
                }
            };
            self.links.push((program, link));
        }
        Ok(())
    }

    /// Puts a tgid in the targets hash (with [`Filter::Tgids`], set at load:
    /// the hash is read only when there are more targets than fit inline).
    fn add_target(&mut self, tgid: u32) -> Result<(), ProbeError> {
        let object = self.object;
        let map = self.ebpf.map_mut("targets").ok_or(ProbeError::MissingMap {
            map: "targets",
            object,
        })?;
        let mut h: BpfHashMap<&mut MapData, u32, u8> =
            BpfHashMap::try_from(map).map_err(|source| ProbeError::Map {
                map: "targets",
                source,
            })?;
        h.insert(tgid, 1, 0).map_err(|source| ProbeError::Map {
            map: "targets",
            source,
        })
    }

    /// The reader, once. Later calls return `None`.
    pub fn take_source(&mut self) -> Option<Box<dyn RecordSource>> {
        self.source.take().map(|r| match r {
            Reader::Perf(p) => Box::new(p) as Box<dyn RecordSource>,
            Reader::Ringbuf(r) => Box::new(r),
        })
    }

    /// The reader split into one source per ring (one per CPU for perf; the
    /// ring buffer is one ring), for per-ring pipelines. Once, like
    /// [`Probe::take_source`]: either call takes the reader.
    pub fn take_shards(&mut self) -> Option<Vec<Box<dyn RecordSource>>> {
        use crate::record::ShardedSource;
        self.source.take().map(|r| match r {
            Reader::Perf(p) => Box::new(p).into_shards(),
            Reader::Ringbuf(r) => vec![Box::new(r) as Box<dyn RecordSource>],
        })
    }

    /// Tells the reader to return [`crate::record::Batch::Closed`] once it has drained
    /// everything. Detach first, so nothing more arrives.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    pub fn spec(&self) -> &ProbeSpec {
        &self.spec
    }
    pub fn cpus(&self) -> &[u32] {
        &self.cpus
    }
    pub fn object_name(&self) -> &'static str {
        self.object
    }
    /// The kernel-side counters, per online CPU.
    pub fn counters(&self) -> Result<KernelCounters, ProbeError> {
        let map = self.ebpf.map("counters").ok_or(ProbeError::MissingMap {
            map: "counters",
            object: self.object,
        })?;
        let arr: PerCpuArray<&MapData, RawCounters> =
            PerCpuArray::try_from(map).map_err(|source| ProbeError::Map {
                map: "counters",
                source,
            })?;
        counters_of(&arr, &self.cpus).map_err(|source| ProbeError::Map {
            map: "counters",
            source,
        })
    }

    /// The programs' run counts and run time so far (zero unless
    /// [`RunTimeStats`] were on while they ran).
    pub fn program_run_time(&self) -> Result<ProgramRunTime, ProbeError> {
        let mut total = ProgramRunTime::default();
        for (name, _) in &self.links {
            let Some(p) = self.ebpf.program(name) else {
                continue;
            };
            let info = p.info().map_err(|source| ProbeError::ProgramInfo {
                program: name.clone(),
                source,
            })?;
            total.runs += info.run_count();
            total.run_ns += info.run_time().as_nanos() as u64;
        }
        Ok(total)
    }

    /// Detaches every tracepoint. Records already in the rings stay readable.
    pub fn detach(&mut self) -> Result<(), ProbeError> {
        for (program, link) in self.links.drain(..) {
            let Some(p) = self.ebpf.program_mut(&program) else {
                continue;
            };
            let err = |source| ProbeError::Detach {
                program: program.clone(),
                source,
            };
            match link {
                Link::Tracepoint(link) => {
                    let tp: &mut TracePoint = p.try_into().map_err(err)?;
                    tp.detach(link).map_err(err)?;
                }
                Link::Raw(link) => {
                    let tp: &mut RawTracePoint = p.try_into().map_err(err)?;
                    tp.detach(link).map_err(err)?;
                }
            }
        }
        Ok(())
    }
}

struct RawFdRef(std::os::fd::RawFd);
impl std::os::fd::AsRawFd for RawFdRef {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakeup_parsing_accepts_each_policy_and_rejects_mismatches() {
        let mb8 = 8 << 20;
        assert_eq!(
            Wakeup::parse(Transport::Perf, mb8, "events:64").unwrap(),
            Wakeup::Events(64)
        );
        assert_eq!(
            Wakeup::parse(Transport::Perf, mb8, "watermark:50%").unwrap(),
            Wakeup::Watermark(4 << 20)
        );
        assert_eq!(
            Wakeup::parse(Transport::Perf, mb8, "watermark:1m").unwrap(),
            Wakeup::Watermark(1 << 20)
        );
        assert!(Wakeup::parse(Transport::Perf, mb8, "watermark:8m")
            .unwrap_err()
            .contains("ring size"));
        assert!(Wakeup::parse(Transport::Perf, mb8, "events:0").is_err());
        assert!(Wakeup::parse(Transport::Perf, mb8, "adaptive").is_err());
        assert_eq!(
            Wakeup::parse(Transport::Ringbuf, mb8, "no-wakeup:1ms").unwrap(),
            Wakeup::NoWakeupPoll(Duration::from_millis(1))
        );
        assert_eq!(
            Wakeup::parse(Transport::Ringbuf, mb8, "forced").unwrap(),
            Wakeup::Forced
        );
        assert!(Wakeup::parse(Transport::Ringbuf, mb8, "events:1").is_err());
        assert!(Wakeup::parse(Transport::Ringbuf, mb8, "no-wakeup:0ms").is_err());
    }

    #[test]
    fn default_wakeup_follows_the_ring_size() {
        assert_eq!(
            default_wakeup(Transport::Perf, 1 << 20),
            Wakeup::Watermark(512 << 10)
        );
        assert_eq!(
            default_wakeup(Transport::Perf, 4096),
            Wakeup::Watermark(2048)
        );
        assert_eq!(
            default_wakeup(Transport::Ringbuf, 1 << 20),
            Wakeup::NoWakeupPoll(Duration::from_millis(1))
        );
        for t in Transport::ALL {
            let s = ProbeSpec::new(Layout::Fixed4k, *t);
            assert_eq!(s.ring_bytes, DEFAULT_RING_BYTES);
            assert_eq!(s.wakeup, default_wakeup(*t, DEFAULT_RING_BYTES));
            assert_eq!(s.wakeup.transport(), *t);
        }
    }

    #[test]
    fn wakeup_display_round_trips() {
        for w in [
            Wakeup::Events(64),
            Wakeup::Watermark(4096),
            Wakeup::Adaptive,
            Wakeup::NoWakeupPoll(Duration::from_micros(250)),
            Wakeup::Forced,
        ] {
            assert_eq!(w.to_string().parse::<Wakeup>().unwrap(), w);
        }
        assert_eq!(
            "no-wakeup".parse::<Wakeup>().unwrap(),
            Wakeup::NoWakeupPoll(Duration::from_millis(1))
        );
        assert_eq!(
            Wakeup::Watermark(4096).perf(),
            Some(PerfWakeup::Watermark(4096))
        );
        assert_eq!(Wakeup::Forced.perf(), None);
        assert_eq!(
            Wakeup::NoWakeupPoll(Duration::from_millis(2)).ringbuf(),
            Some(RingBufWakeup::NoWakeup {
                poll: Duration::from_millis(2)
            })
        );
    }

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

    #[test]
    fn hook_names_round_trip_and_unknown_ones_are_refused() {
        for h in Hook::ALL {
            assert_eq!(h.to_string().parse::<Hook>().unwrap(), *h);
        }
        let e = "raw".parse::<Hook>().unwrap_err();
        assert!(e.contains("tracepoints, raw-syscalls"), "{e}");
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
