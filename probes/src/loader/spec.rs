//! What to load: the transport, the hook, the wakeup policy, the filter,
//! and the [`ProbeSpec`] that gathers them, with dropbench's defaults.

use std::path::PathBuf;
use std::time::Duration;

use crate::abi::Layout;
use crate::perf::PerfWakeup;
use crate::ringbuf::RingBufWakeup;
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
    fn hook_names_round_trip_and_unknown_ones_are_refused() {
        for h in Hook::ALL {
            assert_eq!(h.to_string().parse::<Hook>().unwrap(), *h);
        }
        let e = "raw".parse::<Hook>().unwrap_err();
        assert!(e.contains("tracepoints, raw-syscalls"), "{e}");
    }
}
