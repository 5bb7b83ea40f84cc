//! [`Probe`]: the committed object loaded, configured and attached, with its reader.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData, PerCpuArray};
use aya::programs::raw_trace_point::RawTracePointLinkId;
use aya::programs::trace_point::TracePointLinkId;
use aya::programs::{RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader};

use crate::abi::{ProbeConfig, RawCounters, FILTER_ALL, FILTER_CGROUP, FILTER_TGID, INLINE_TGIDS};
use crate::counters::KernelCounters;
use crate::perf::{PerfRingOptions, PerfRings};
use crate::record::RecordSource;
use crate::ringbuf::{RingBufError, RingBufReader};

use super::error::ProbeError;
use super::objects::tracepoints;
use super::privileges::{check_privileges, ensure_tracefs, online_cpus};
use super::spec::{Filter, Hook, ProbeSpec, Transport};
use super::stats::{counters_handle, counters_of, ProgramRunTime};

/// An attached program's link, of its hook's kind.
enum Link {
    Tracepoint(TracePointLinkId),
    Raw(RawTracePointLinkId),
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
    /// [`RunTimeStats`](super::RunTimeStats) were on while they ran).
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
