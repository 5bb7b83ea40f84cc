//! The injector: recorded events pushed through the real kernel rings.
//!
//! `bpf/inject.bpf.c` is a `raw_tp` program that userspace runs with
//! `BPF_PROG_TEST_RUN` + `BPF_F_TEST_RUN_ON_CPU` on a chosen CPU. Each run
//! emits a batch of events from the `slots` array (a `BPF_F_MMAPABLE` array
//! this side has mmapped, so staging an event costs no syscall) with the same
//! output helper the probes use: `bpf_perf_event_output(BPF_F_CURRENT_CPU)`
//! into a perf event array, or `bpf_ringbuf_output` with the wakeup's flags.
//! It keeps the probes' per-CPU counters (injected = seen = emitted, output ok,
//! failed by errno), the ground truth of what reached the rings whoever reads
//! them.
//!
//! ```ignore
//! let mut inj = Injector::load(&InjectorSpec::new(Transport::Perf, 8 << 20, Wakeup::Events(64)))?;
//! let source = inj.open_reader()?;              // dropbench's own reader, as a live run sets it up
//! inj.stage(0, 0, &event_bytes, &[], event_len)?; // CPU index 0, slot 0
//! inj.inject(0, 1)?;                            // one BPF_PROG_TEST_RUN on that CPU
//! let k = inj.counters()?;                      // per CPU: injected, ok, failed, pending
//! ```
//! Or pin the rings ([`Injector::pin`]) for an outside reader, which (for perf)
//! stores its own perf events in the pinned perf event array.
//!
//! Needs root or CAP_BPF + CAP_PERFMON, `bpf_loop` (Linux 5.17) and
//! `BPF_F_TEST_RUN_ON_CPU` for raw_tp (5.10). Loading errors carry aya's own
//! (large) error values whole: they happen once, at load time, so
//! `clippy::result_large_err` is allowed here as in the loader.

#![allow(clippy::result_large_err)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aya::maps::{Map, MapData, PerCpuArray};
use aya::programs::RawTracePoint;
use aya::{Ebpf, EbpfLoader};

use crate::abi::{slot, RawCounters, FIXED4K_LEN};
use crate::counters::{CpuCounters, KernelCounters};
use crate::loader::{counters_handle, counters_of, Transport, Wakeup};
use crate::perf::{PerfError, PerfMem, PerfRingOptions, PerfRings};
use crate::pin::{PinDir, PinError};
use crate::record::{Batch, RecordRef, RecordSource, ShardedSource, SourceError};
use crate::ring::mem::page_size;
use crate::ringbuf::{RingBufError, RingBufReader};

/// Bytes of event a slot holds: `DB_INJECT_DATA_MAX` in inject.bpf.c. The
/// largest event is 4144 bytes ([`FIXED4K_LEN`]); a perf capture stores it with
/// perf's 4 pad bytes (4148); 4152 is the next multiple of 8.
pub const SLOT_DATA_MAX: usize = 4152;
/// A slot: `len` (u32), `ret` (i32), then the data. 4160 bytes, 8-aligned, so
/// the kernel's array (which rounds values up to 8) packs slots back to back.
pub const SLOT_BYTES: usize = 8 + SLOT_DATA_MAX;
const _: () = assert!(SLOT_DATA_MAX >= FIXED4K_LEN + 4 && SLOT_DATA_MAX.is_multiple_of(8));

/// Slots per CPU unless told otherwise: the most events one test run emits.
/// 256 x 4160 B = 1 MiB per CPU of mmapped staging. At the paced rates that
/// matter (600 k events/s) a batch holds tens of events (see
/// harness/src/replay/kernel.rs); 256 only binds under `max` pacing, where it
/// amortises the syscall and IPI over 256 events.
pub const DEFAULT_SLOTS_PER_CPU: u32 = 256;

/// ctx args[3] of db_inject: what one test run does.
const MODE_EMIT: u64 = 0;
const MODE_PROBE_SLOT: u64 = 1;

/// Errors from loading and running the injector. Each names the CPU, map or
/// program concerned, and the ones a machine without the feature hits say
/// which capability or kernel feature is missing.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("kernel-backed replay needs root or CAP_BPF + CAP_PERFMON to load its injector, a raw_tp BPF program (effective capabilities: {caps:#x}); emulated replay (without --kernel) needs no privileges")]
    Privileges { caps: u64 },
    #[error("loading the injector {object}: {source}; emulated replay (without --kernel) does not need it")]
    Load {
        object: &'static str,
        source: aya::EbpfError,
    },
    #[error("this kernel has no bpf_loop helper (Linux 5.17+), which the injector ({object}) needs to emit a batch per test run; use emulated replay (without --kernel)")]
    NoBpfLoop { object: &'static str },
    #[error("the kernel refused the injector's raw_tp program {program} in {object}: {source}; use emulated replay (without --kernel)")]
    Verify {
        program: &'static str,
        object: &'static str,
        source: aya::programs::ProgramError,
    },
    #[error("BPF_PROG_TEST_RUN of the raw_tp injector on cpu {cpu} was refused: {source} (it needs Linux 5.10+ for BPF_F_TEST_RUN_ON_CPU); use emulated replay (without --kernel)")]
    TestRun { cpu: u32, source: io::Error },
    #[error("map {map} is missing or of the wrong type in {object}")]
    MissingMap {
        map: &'static str,
        object: &'static str,
    },
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
    #[error("mmap of the injector's {map} map ({bytes} bytes): {source} (BPF_F_MMAPABLE arrays need Linux 5.5+)")]
    Mmap {
        map: &'static str,
        bytes: usize,
        source: io::Error,
    },
    #[error("listing CPUs ({what}): {source}")]
    Cpus {
        what: &'static str,
        source: io::Error,
    },
    #[error("slots per CPU must be between 1 and {max}, got {got}")]
    Slots { got: u32, max: u32 },
    #[error("an event of {len} bytes does not fit a slot ({SLOT_DATA_MAX} bytes, the largest event plus perf's padding)")]
    TooLarge { len: usize },
    #[error("wakeup policy {wakeup} does not fit transport {transport}")]
    WakeupMismatch {
        wakeup: Wakeup,
        transport: Transport,
    },
    #[error("{what} is for the {wants} transport, not {transport}")]
    WrongTransport {
        what: &'static str,
        wants: Transport,
        transport: Transport,
    },
    #[error(transparent)]
    Perf(#[from] PerfError),
    #[error(transparent)]
    RingBuf(#[from] RingBufError),
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error(transparent)]
    Probe(#[from] crate::ProbeError),
}

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
            aya::include_bytes_aligned!("../bpf/obj/inject_perf.bpf.o"),
        ),
        Transport::Ringbuf => (
            "inject_ringbuf.bpf.o",
            aya::include_bytes_aligned!("../bpf/obj/inject_ringbuf.bpf.o"),
        ),
    }
}

const PROGRAM: &str = "db_inject";

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

/// Where an injector's maps are pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pins {
    pub dir: PathBuf,
    /// The perf event array or the ring buffer.
    pub events: PathBuf,
    /// The per-CPU `db_counters` array (`DB_CNT_*` slots).
    pub counters: PathBuf,
}

/// A loaded injector with its staging slots mapped.
pub struct Injector {
    ebpf: Ebpf,
    object: &'static str,
    prog: OwnedFd,
    spec: InjectorSpec,
    cpus: Vec<u32>,
    slots: *mut u8,
    slots_len: usize,
    /// Per slot: how far its data may hold non-zero bytes.
    dirty: Vec<u32>,
    rb_flags: u64,
    runs: u64,
}

// SAFETY: the slot mapping is owned by this value and only touched through
// &mut self (the kernel writes `ret` only during a test run this value makes).
unsafe impl Send for Injector {}

impl Injector {
    /// Checks privileges, loads the injector for `spec`, maps its slots, and
    /// makes one empty test run on every online CPU, so a kernel that refuses
    /// any of it says so now, not mid-run.
    pub fn load(spec: &InjectorSpec) -> Result<Injector, InjectError> {
        check_privileges()?;
        if spec.wakeup.transport() != spec.transport {
            return Err(InjectError::WakeupMismatch {
                wakeup: spec.wakeup,
                transport: spec.transport,
            });
        }
        // 2^20 slots per CPU (4 GiB of staging) is far beyond any useful batch.
        let max = 1 << 20;
        if spec.slots_per_cpu == 0 || spec.slots_per_cpu > max {
            return Err(InjectError::Slots {
                got: spec.slots_per_cpu,
                max,
            });
        }
        let cpus = aya::util::online_cpus()
            .map_err(|(what, source)| InjectError::Cpus { what, source })?;
        let nr_cpus =
            aya::util::nr_cpus().map_err(|(what, source)| InjectError::Cpus { what, source })?;
        let (object, bytes) = object_bytes(spec.transport);
        let nslots = spec.slots_per_cpu as usize * cpus.len();

        let mut loader = EbpfLoader::new();
        loader.set_max_entries("slots", nslots as u32);
        match spec.transport {
            Transport::Perf => loader.set_max_entries("events", nr_cpus as u32),
            Transport::Ringbuf => loader.set_max_entries("events", spec.ring_bytes as u32),
        };
        let mut ebpf = loader
            .load(bytes)
            .map_err(|source| InjectError::Load { object, source })?;

        let prog: &mut RawTracePoint = ebpf
            .program_mut(PROGRAM)
            .ok_or(InjectError::MissingMap {
                map: PROGRAM,
                object,
            })?
            .try_into()
            .map_err(|source| InjectError::Verify {
                program: PROGRAM,
                object,
                source,
            })?;
        prog.load()
            .map_err(|source| classify_load_error(object, source))?;
        let prog = prog
            .fd()
            .and_then(|fd| {
                fd.as_fd()
                    .try_clone_to_owned()
                    .map_err(aya::programs::ProgramError::IOError)
            })
            .map_err(|source| InjectError::Verify {
                program: PROGRAM,
                object,
                source,
            })?;

        let slots_len = (nslots * SLOT_BYTES).next_multiple_of(page_size());
        let slots_fd = map_fd(&ebpf, "slots", object)?;
        // SAFETY: mapping an mmapable array map's value area, shared, with its page-rounded size.
        let slots = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                slots_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                slots_fd,
                0,
            )
        };
        if slots == libc::MAP_FAILED {
            return Err(InjectError::Mmap {
                map: "slots",
                bytes: slots_len,
                source: io::Error::last_os_error(),
            });
        }
        let rb_flags = spec.wakeup.ringbuf().map_or(0, |w| w.output_flags());
        let inj = Injector {
            ebpf,
            object,
            prog,
            spec: spec.clone(),
            cpus,
            slots: slots as *mut u8,
            slots_len,
            dirty: vec![0; nslots],
            rb_flags,
            runs: 0,
        };
        for idx in 0..inj.cpus.len() {
            inj.test_run(idx, [0, 0, rb_flags, MODE_EMIT])?;
        }
        Ok(inj)
    }

    /// The online CPUs, in the order the `cpu_index` arguments count them.
    pub fn cpus(&self) -> &[u32] {
        &self.cpus
    }
    pub fn spec(&self) -> &InjectorSpec {
        &self.spec
    }
    pub fn object_name(&self) -> &'static str {
        self.object
    }
    pub fn slots_per_cpu(&self) -> usize {
        self.spec.slots_per_cpu as usize
    }
    /// Test runs made that emitted at least one event.
    pub fn runs(&self) -> u64 {
        self.runs
    }

    fn slot_ptr(&self, cpu_index: usize, i: usize) -> *mut u8 {
        assert!(cpu_index < self.cpus.len() && i < self.slots_per_cpu());
        let k = cpu_index * self.slots_per_cpu() + i;
        // SAFETY: k < nslots, so the slot lies inside the mapping.
        unsafe { self.slots.add(k * SLOT_BYTES) }
    }

    /// Writes an event into slot `i` of CPU `cpu_index`: `head`, then `tail`,
    /// then zeros up to `len` bytes (a capture stores events with their
    /// trailing zeros trimmed). Only the bytes an earlier event left are
    /// cleared, not the whole slot.
    pub fn stage(
        &mut self,
        cpu_index: usize,
        i: usize,
        head: &[u8],
        tail: &[u8],
        len: usize,
    ) -> Result<(), InjectError> {
        if len > SLOT_DATA_MAX {
            return Err(InjectError::TooLarge { len });
        }
        let p = self.slot_ptr(cpu_index, i);
        let k = cpu_index * self.slots_per_cpu() + i;
        let h = head.len().min(len);
        let t = tail.len().min(len - h);
        let written = h + t;
        let dirty = self.dirty[k] as usize;
        // SAFETY: the slot is ours between test runs; every range is within its data.
        unsafe {
            std::ptr::write_unaligned(p as *mut u32, len as u32);
            let data = p.add(8);
            std::ptr::copy_nonoverlapping(head.as_ptr(), data, h);
            std::ptr::copy_nonoverlapping(tail.as_ptr(), data.add(h), t);
            if dirty > written {
                std::ptr::write_bytes(data.add(written), 0, dirty.min(len) - written);
            }
        }
        // Non-zero bytes may remain in [0, written) and, past len, in [len, dirty).
        self.dirty[k] = if dirty > len { dirty } else { written } as u32;
        Ok(())
    }

    /// The output helper's return value for slot `i` of CPU `cpu_index` in the
    /// last test run that emitted it: 0 or -errno.
    pub fn result(&self, cpu_index: usize, i: usize) -> i32 {
        // SAFETY: `ret` is the i32 at offset 4 of the slot.
        unsafe { std::ptr::read_volatile(self.slot_ptr(cpu_index, i).add(4) as *const i32) }
    }

    /// Emits slots `0..n` of CPU `cpu_index` in one test run on that CPU.
    /// Returns how many outputs succeeded.
    pub fn inject(&mut self, cpu_index: usize, n: usize) -> Result<u32, InjectError> {
        assert!(n <= self.slots_per_cpu());
        if n == 0 {
            return Ok(0);
        }
        let first = (cpu_index * self.slots_per_cpu()) as u64;
        let ok = self.test_run(cpu_index, [first, n as u64, self.rb_flags, MODE_EMIT])?;
        self.runs += 1;
        Ok(ok)
    }

    fn want(&self, wants: Transport, what: &'static str) -> Result<(), InjectError> {
        if self.spec.transport == wants {
            Ok(())
        } else {
            Err(InjectError::WrongTransport {
                what,
                wants,
                transport: self.spec.transport,
            })
        }
    }

    fn test_run(&self, cpu_index: usize, args: [u64; 4]) -> Result<u32, InjectError> {
        let cpu = self.cpus[cpu_index];
        test_run_on_cpu(self.prog.as_raw_fd(), cpu, &args)
            .map_err(|source| InjectError::TestRun { cpu, source })
    }

    /// Perf only: whether each online CPU's slot of the perf event array holds
    /// a perf event (an outside reader has stored its own), checked in the
    /// kernel without emitting anything.
    pub fn perf_slots_filled(&self) -> Result<Vec<bool>, InjectError> {
        self.want(Transport::Perf, "probing the perf event array's slots")?;
        (0..self.cpus.len())
            .map(|idx| Ok(self.test_run(idx, [0, 0, 0, MODE_PROBE_SLOT])? == 1))
            .collect()
    }

    /// The counters, per online CPU.
    pub fn counters(&self) -> Result<InjectCounters, InjectError> {
        let map = self.ebpf.map("counters").ok_or(InjectError::MissingMap {
            map: "counters",
            object: self.object,
        })?;
        let arr: PerCpuArray<&MapData, RawCounters> =
            PerCpuArray::try_from(map).map_err(|source| InjectError::Map {
                map: "counters",
                source,
            })?;
        let vals = arr.get(&0, 0).map_err(|source| InjectError::Map {
            map: "counters",
            source,
        })?;
        let mut out = InjectCounters::default();
        for &c in &self.cpus {
            let raw = vals.get(c as usize).copied().unwrap_or_default();
            out.kernel.cpus.push(CpuCounters::from_raw(c, &raw));
            out.lost_pending.push(raw.v[slot::LOST_PENDING]);
        }
        Ok(out)
    }

    /// Opens dropbench's own reader on the rings, exactly as a live run does:
    /// perf events per online CPU (opened by [`PerfRings`], with the wakeup)
    /// stored in the perf event array, or the ring buffer mapped, with the
    /// injector's failure count as its lost-sample counter.
    pub fn open_reader(&self) -> Result<InjectSource, InjectError> {
        let stop = Arc::new(AtomicBool::new(false));
        match (self.spec.wakeup.perf(), self.spec.wakeup.ringbuf()) {
            (Some(w), _) => {
                let opts = PerfRingOptions::new(self.spec.ring_bytes)?.with_wakeup(w)?;
                let mut rings = PerfRings::open(&opts, &self.cpus)?;
                rings.install(&Fd(map_fd(&self.ebpf, "events", self.object)?), "events")?;
                rings.set_stop(stop.clone());
                Ok(InjectSource {
                    inner: Source::Perf(rings),
                    stop,
                })
            }
            (_, Some(w)) => {
                let fd = dup(map_fd(&self.ebpf, "events", self.object)?, "events")?;
                let counters = counters_handle(&self.ebpf, self.object)?;
                let cpus = self.cpus.clone();
                // The same total `record` and the ledger use: every failed output.
                let mut rb = RingBufReader::open(fd, self.spec.ring_bytes, w)?.with_lost_counter(
                    Box::new(move || {
                        counters_of(&counters, &cpus)
                            .map(|k| k.total().failed())
                            .unwrap_or(0)
                    }),
                );
                rb.set_stop(stop.clone());
                Ok(InjectSource {
                    inner: Source::Ringbuf(rb),
                    stop,
                })
            }
            (None, None) => Err(InjectError::WakeupMismatch {
                wakeup: self.spec.wakeup,
                transport: self.spec.transport,
            }),
        }
    }

    /// Pins the rings (`events`) and the counters (`counters`) in `dir`, 0600,
    /// for an outside reader.
    pub fn pin(&self, dir: &mut PinDir) -> Result<Pins, InjectError> {
        let map = |name: &'static str| {
            self.ebpf.map(name).ok_or(InjectError::MissingMap {
                map: name,
                object: self.object,
            })
        };
        let events = dir.pin("events", map("events")?)?;
        let counters = dir.pin("counters", map("counters")?)?;
        Ok(Pins {
            dir: dir.path().to_path_buf(),
            events,
            counters,
        })
    }

    /// Ring buffer only: a read-only view of the ring's positions, to tell
    /// when an outside reader has caught up.
    pub fn ringbuf_watch(&self) -> Result<RingBufWatch, InjectError> {
        self.want(Transport::Ringbuf, "watching the ring buffer's positions")?;
        let fd = map_fd(&self.ebpf, "events", self.object)?;
        let len = 2 * page_size();
        // SAFETY: the consumer and producer pages, read-only (the kernel allows
        // a read-only mapping of both; only the consumer page may be writable).
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(InjectError::Mmap {
                map: "events",
                bytes: len,
                source: io::Error::last_os_error(),
            });
        }
        Ok(RingBufWatch {
            base: base as *const u8,
            len,
        })
    }
}

impl Injector {
    /// A watch on how much the rings hold: the ring buffer's positions, or
    /// the perf rings of `reader` (dropbench's own). An outside reader's perf
    /// rings are its own mappings, out of sight: `None` for perf without `reader`.
    pub fn ring_watch(
        &self,
        reader: Option<&InjectSource>,
    ) -> Result<Option<RingWatch>, InjectError> {
        match (self.spec.transport, reader.map(|r| &r.inner)) {
            (Transport::Ringbuf, _) => Ok(Some(RingWatch::Ringbuf(self.ringbuf_watch()?))),
            (Transport::Perf, Some(Source::Perf(p))) => Ok(Some(RingWatch::Perf(
                p.rings().iter().map(|r| r.mem().clone()).collect(),
            ))),
            (Transport::Perf, _) => Ok(None),
        }
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.slots as *mut libc::c_void, self.slots_len) };
    }
}

/// The ring buffer's consumer and producer positions, read-only.
pub struct RingBufWatch {
    base: *const u8,
    len: usize,
}

// SAFETY: a read-only mapping owned by this value.
unsafe impl Send for RingBufWatch {}

impl RingBufWatch {
    /// Bytes committed or reserved that the reader has not consumed yet.
    pub fn backlog(&self) -> u64 {
        self.producer_pos().saturating_sub(self.consumer_pos())
    }

    /// How far the reader has consumed (bytes since the ring was created,
    /// records with their 8-byte headers, each rounded up to 8).
    pub fn consumer_pos(&self) -> u64 {
        // SAFETY: consumer_pos is the first u64 of the consumer page.
        unsafe { (*(self.base as *const AtomicU64)).load(Ordering::Acquire) }
    }

    /// How far the injector has written (same units).
    pub fn producer_pos(&self) -> u64 {
        // SAFETY: producer_pos is the first u64 of the producer page, the second page.
        unsafe { (*(self.base.add(page_size()) as *const AtomicU64)).load(Ordering::Acquire) }
    }
}

/// Bytes the injector's rings hold that their reader has not consumed yet,
/// read from the rings' own positions while the reader drains them.
pub enum RingWatch {
    /// Each CPU's `data_head - data_tail`, summed.
    Perf(Vec<Arc<PerfMem>>),
    /// `producer_pos - consumer_pos`.
    Ringbuf(RingBufWatch),
}

impl RingWatch {
    pub fn used_bytes(&self) -> u64 {
        match self {
            RingWatch::Perf(mems) => mems.iter().map(|m| m.used()).sum(),
            RingWatch::Ringbuf(w) => w.backlog(),
        }
    }
}

impl Drop for RingBufWatch {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

/// dropbench's own reader of the injector's rings: the live readers, so a
/// pipeline reads them exactly as in a live run.
pub struct InjectSource {
    inner: Source,
    stop: Arc<AtomicBool>,
}

enum Source {
    Perf(PerfRings),
    Ringbuf(RingBufReader),
}

impl InjectSource {
    /// Set it once nothing more will be injected: the reader drains what is
    /// left, then returns [`Batch::Closed`].
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }
}

impl RecordSource for InjectSource {
    fn rings(&self) -> u32 {
        match &self.inner {
            Source::Perf(p) => RecordSource::rings(p),
            Source::Ringbuf(r) => r.rings(),
        }
    }
    fn read_batch(
        &mut self,
        max: usize,
        timeout: Duration,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> Result<Batch, SourceError> {
        match &mut self.inner {
            Source::Perf(p) => p.read_batch(max, timeout, f),
            Source::Ringbuf(r) => r.read_batch(max, timeout, f),
        }
    }
}

impl ShardedSource for InjectSource {
    fn into_shards(self: Box<Self>) -> Vec<Box<dyn RecordSource>> {
        match self.inner {
            Source::Perf(p) => Box::new(p).into_shards(),
            Source::Ringbuf(r) => vec![Box::new(r)],
        }
    }
}

/// Checks that this process may load the injector (a tracing-class raw_tp
/// program) and open perf events.
fn check_privileges() -> Result<(), InjectError> {
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
fn classify_load_error(object: &'static str, source: aya::programs::ProgramError) -> InjectError {
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

fn map_fd(ebpf: &Ebpf, name: &'static str, object: &'static str) -> Result<RawFd, InjectError> {
    let fd = match ebpf.map(name) {
        Some(Map::PerfEventArray(m)) => m.fd().as_fd().as_raw_fd(),
        Some(Map::RingBuf(m)) => m.fd().as_fd().as_raw_fd(),
        Some(Map::Array(m)) => m.fd().as_fd().as_raw_fd(),
        _ => return Err(InjectError::MissingMap { map: name, object }),
    };
    Ok(fd)
}

fn dup(fd: RawFd, map: &'static str) -> Result<OwnedFd, InjectError> {
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

struct Fd(RawFd);
impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// `BPF_PROG_TEST_RUN` (cmd 10) of a raw_tp program on `cpu`, with `args` as
/// the context (the tracepoint's u64 arguments). Returns the program's return value.
fn test_run_on_cpu(prog_fd: RawFd, cpu: u32, args: &[u64; 4]) -> io::Result<u32> {
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
