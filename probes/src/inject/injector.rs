//! [`Injector`]: the injector loaded, its slots mapped, and its test runs.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use aya::maps::{MapData, PerCpuArray};
use aya::programs::RawTracePoint;
use aya::{Ebpf, EbpfLoader};

use crate::abi::{slot, RawCounters};
use crate::counters::CpuCounters;
use crate::loader::Transport;
use crate::pin::PinDir;
use crate::ring::mem::page_size;

use super::bpf::{check_privileges, classify_load_error, map_fd, test_run_on_cpu};
use super::spec::{object_bytes, InjectorSpec, PROGRAM};
use super::{InjectCounters, InjectError, SLOT_BYTES, SLOT_DATA_MAX};

/// ctx args[3] of db_inject: what one test run does.
const MODE_EMIT: u64 = 0;
const MODE_PROBE_SLOT: u64 = 1;

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
    pub(super) ebpf: Ebpf,
    pub(super) object: &'static str,
    prog: OwnedFd,
    pub(super) spec: InjectorSpec,
    pub(super) cpus: Vec<u32>,
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

    pub(super) fn want(&self, wants: Transport, what: &'static str) -> Result<(), InjectError> {
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
}

impl Drop for Injector {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.slots as *mut libc::c_void, self.slots_len) };
    }
}
