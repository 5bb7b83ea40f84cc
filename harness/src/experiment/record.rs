//! Recording: attach the probes and capture what the kernel emits into pcapng
//! (`harness record`, and the reference recordings of `harness fidelity`).
//!
//! Two threads, so the capture never becomes the reason samples are lost:
//! the reader drains the kernel rings into pooled batch buffers as fast as it
//! can, and a writer thread turns batches into pcapng blocks. The reader only
//! blocks on the writer when every pooled buffer is full (counted and reported
//! as `reader_waits`); at the default 64 x 4 MiB of buffering that is a quarter
//! of a second of the seed's 600 k x 4 KB/s, and much more with compact events.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{bounded, Receiver, Sender};
use probes::abi::Layout;
use probes::loader::{default_wakeup, Filter, Hook, Probe, ProbeSpec, Transport, Wakeup};
use probes::record::{Batch, RecordRef};
use probes::ringbuf::RingBufError;
use probes::units::{parse_bytes, parse_duration};

use crate::capture::{CaptureError, CaptureMeta, CaptureWriter, RingStats};

#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// Output capture file (pcapng).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Event layout: fixed4k or compact (`--probe`, its old name, still works).
    #[arg(long, alias = "probe", default_value = "fixed4k")]
    pub layout: Layout,
    /// Transport: perf or ringbuf.
    #[arg(long, default_value = "perf")]
    pub transport: Transport,
    /// Ring size: perf data bytes per CPU, or the ring buffer's size. A power-of-two number of pages.
    #[arg(long, default_value = "8m", value_parser = parse_bytes)]
    pub ring_bytes: u64,
    /// Wakeup policy. perf: events:N | watermark:BYTES | watermark:P%.
    /// ringbuf: adaptive | no-wakeup:POLL | forced. Default: a watermark at half of
    /// --ring-bytes (perf) or no-wakeup:1ms (ringbuf).
    #[arg(long)]
    pub wakeup: Option<String>,
    /// Stop after this long (e.g. 10s). Default: until Ctrl-C, or until the load ends.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// What to trace: all | tgid:PID[,PID..] | cgroup:/sys/fs/cgroup/PATH | load (the load generator, default with --load-rate).
    #[arg(long)]
    pub filter: Option<String>,
    /// Do not emit exit events.
    #[arg(long)]
    pub no_exit: bool,
    /// Where the probes attach: tracepoints (one per syscall) or raw-syscalls
    /// (raw_syscalls/sys_enter and sys_exit, x86-64). The records are the same.
    #[arg(long, default_value = "tracepoints")]
    pub hook: Hook,
    /// Trace this command (run with `sh -c`, its whole process tree, in a
    /// cgroup of its own) and stop when it exits. The capture also gets its
    /// tasks' CPU use per CPU over time (docs/fidelity.md), which replay's
    /// co-runner follows.
    #[arg(long, conflicts_with_all = ["filter", "load_rate"])]
    pub run: Option<String>,
    /// Drive the load generator in-process at this rate (ops/s, e.g. 200k, or max).
    #[arg(long)]
    pub load_rate: Option<String>,
    /// The load's duration (default: --duration, else 5s).
    #[arg(long, value_parser = parse_duration)]
    pub load_duration: Option<Duration>,
    /// The load's op mix, e.g. openat=1,stat=1 (loadgen's names).
    #[arg(long)]
    pub load_mix: Option<String>,
    /// Pin the load's threads to these CPUs, e.g. 0 or 0,1.
    #[arg(long, value_delimiter = ',')]
    pub load_cpus: Option<Vec<usize>>,
    /// Where tracefs is (mounted there if missing).
    #[arg(long, default_value = "/sys/kernel/tracing")]
    pub tracefs: PathBuf,
    /// Write the run summary as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress lines (a recording run by another command).
    #[arg(skip)]
    pub quiet: bool,
}

/// Size of one batch buffer handed from the reader to the writer.
const BATCH_BYTES: usize = 4 << 20;
/// Batch buffers in the pool: 64 x 4 MiB = 256 MiB of slack between reader and writer.
const POOL: usize = 64;

/// A batch of records packed back to back: [ring u32][lost u64][origin u64][len u32][bytes].
struct PackedBatch {
    buf: Vec<u8>,
    records: u64,
}

impl PackedBatch {
    fn push(&mut self, r: RecordRef<'_>) {
        let (ring, lost, origin, data): (u32, u64, u64, &[u8]) = match r {
            RecordRef::Sample {
                ring,
                origin_ns,
                data,
            } => (ring, 0, origin_ns, data),
            RecordRef::Lost { ring, count } => (ring, count, 0, &[]),
        };
        self.buf.extend_from_slice(&ring.to_ne_bytes());
        self.buf.extend_from_slice(&lost.to_ne_bytes());
        self.buf.extend_from_slice(&origin.to_ne_bytes());
        self.buf
            .extend_from_slice(&(data.len() as u32).to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.records += 1;
    }

    fn for_each<E>(&self, mut f: impl FnMut(RecordRef<'_>) -> Result<(), E>) -> Result<(), E> {
        let b = &self.buf;
        // Fixed-size slices of a buffer `push` wrote: the conversions cannot fail.
        let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap_or_default());
        let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap_or_default());
        let mut o = 0;
        while o < b.len() {
            let ring = u32_at(o);
            let lost = u64_at(o + 4);
            let origin_ns = u64_at(o + 12);
            let len = u32_at(o + 20) as usize;
            o += 24;
            if lost > 0 {
                f(RecordRef::Lost { ring, count: lost })?;
            } else {
                f(RecordRef::Sample {
                    ring,
                    origin_ns,
                    data: &b[o..o + len],
                })?;
            }
            o += len;
        }
        Ok(())
    }
}

/// What `record` prints and writes as JSON.
#[derive(Debug, serde::Serialize)]
pub struct RecordSummary {
    pub output: PathBuf,
    pub layout: Layout,
    pub transport: Transport,
    pub ring_bytes: u64,
    pub wakeup: String,
    pub seconds: f64,
    /// Samples the reader read.
    pub samples: u64,
    /// Samples in the file: all of them, unless a write error stopped the writer.
    pub samples_stored: u64,
    pub lost_reported: u64,
    /// Losses the kernel counted that no PERF_RECORD_LOST reported before detach
    /// (written into the capture as final lost markers).
    pub lost_unreported: u64,
    pub kernel: probes::counters::KernelCounters,
    /// emitted == samples + lost (reported + unreported).
    pub balanced: bool,
    pub file_bytes: u64,
    pub writer_records_per_s: f64,
    pub writer_mb_per_s: f64,
    /// Times the reader found every batch buffer in use and had to wait for the writer.
    pub reader_waits: u64,
    pub interrupted: bool,
    /// The write error that stopped the capture early (e.g. a full disk).
    pub write_error: Option<String>,
    pub load: Option<serde_json::Value>,
    /// `--run`: how the command ended.
    pub command: Option<crate::results::CommandOutcome>,
}

fn parse_filter(s: &str) -> anyhow::Result<Filter> {
    if s == "all" {
        return Ok(Filter::All);
    }
    if let Some(list) = s.strip_prefix("tgid:") {
        let t = list
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<u32>()
                    .with_context(|| format!("bad tgid {p:?} in --filter {s:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Filter::Tgids(t));
    }
    if let Some(p) = s.strip_prefix("cgroup:") {
        return Ok(Filter::Cgroup(PathBuf::from(p)));
    }
    anyhow::bail!("unknown --filter {s:?}; expected all, load, tgid:PID[,PID..] or cgroup:PATH")
}

/// The ring size and wakeup policy a recording uses: the ring size is checked
/// first (so a bad size is what gets named), then the wakeup asked for is
/// checked against that ring, or, if none was asked for, the default for that
/// ring size ([`default_wakeup`]) is taken.
pub fn resolve_ring(
    transport: Transport,
    ring_bytes: u64,
    wakeup: Option<&str>,
) -> anyhow::Result<(usize, Wakeup)> {
    let page = probes::ring::mem::page_size();
    let bytes = usize::try_from(ring_bytes).unwrap_or(usize::MAX);
    match transport {
        Transport::Perf => {
            probes::perf::PerfRingOptions::new(bytes)?;
        }
        // The ring buffer's size is the map's u32 max_entries.
        Transport::Ringbuf => {
            if bytes < page || !bytes.is_power_of_two() || bytes > u32::MAX as usize {
                return Err(RingBufError::BadSize { bytes, page }.into());
            }
        }
    }
    let wakeup = match wakeup {
        Some(w) => Wakeup::parse(transport, bytes, w).map_err(anyhow::Error::msg)?,
        None => default_wakeup(transport, bytes),
    };
    Ok((bytes, wakeup))
}

/// Runs a recording as `args` says and returns its summary; a write error
/// that stopped it early (a full disk) is an error.
pub fn record(args: &RecordArgs) -> anyhow::Result<RecordSummary> {
    match record_with_failure(args)? {
        (summary, None) => Ok(summary),
        (_, Some(e)) => Err(e.into()),
    }
}

/// Runs a recording as `args` says and returns its summary, with the write
/// error that stopped it early, if one did (a full disk). The capture then
/// holds every block written before the error, ends on a whole block, and
/// carries the kernel counters and a note of the error (see
/// [`CaptureWriter::close`]).
pub fn record_with_failure(
    args: &RecordArgs,
) -> anyhow::Result<(RecordSummary, Option<CaptureError>)> {
    let (ring_bytes, wakeup) =
        resolve_ring(args.transport, args.ring_bytes, args.wakeup.as_deref())?;

    // The load, if any: spawned now (tids known), released after the probes attach.
    let mut load = match &args.load_rate {
        Some(rate) => {
            let rate: loadgen::Rate = rate.parse()?;
            let secs = args
                .load_duration
                .or(args.duration)
                .unwrap_or(Duration::from_secs(5));
            let mut cfg = loadgen::LoadConfig::new(rate, loadgen::RunEnd::Duration(secs));
            if let Some(m) = &args.load_mix {
                cfg.mix = m.parse()?;
            }
            cfg.cpus = args.load_cpus.clone();
            Some(loadgen::Load::spawn(cfg)?)
        }
        None => None,
    };
    // A command: its cgroup now (the filter names it), the command itself once the probes are attached.
    let cgroup = match &args.run {
        Some(_) => Some(Arc::new(super::program::Cgroup::create()?)),
        None => None,
    };
    let filter = match (&args.filter, &load) {
        _ if cgroup.is_some() => Filter::Cgroup(
            cgroup
                .as_ref()
                .map(|c| c.path().to_path_buf())
                .unwrap_or_default(),
        ),
        (Some(f), _) if f == "load" => match &load {
            Some(l) => Filter::Tgids(vec![l.pid() as u32]),
            None => anyhow::bail!("--filter load needs --load-rate"),
        },
        (Some(f), _) => parse_filter(f)?,
        (None, Some(l)) => Filter::Tgids(vec![l.pid() as u32]),
        (None, None) => Filter::All,
    };

    let online = probes::loader::online_cpus()?.len() as u32;
    let rings = match args.transport {
        Transport::Perf => online,
        Transport::Ringbuf => 1,
    };
    let mut meta = CaptureMeta::now(args.layout, args.transport, args.ring_bytes, rings, wakeup);
    meta.load = load
        .as_ref()
        .map(|l| serde_json::to_value(l.config()).unwrap_or_default());
    // The probes' own run time goes into the command's CPU profile.
    let run_time = match &args.run {
        Some(_) => Some(probes::loader::RunTimeStats::enable()?),
        None => None,
    };
    // Create the file first: an unwritable path fails before anything is attached.
    let writer = CaptureWriter::create(&args.output, &meta)?;

    let spec = ProbeSpec {
        layout: args.layout,
        transport: args.transport,
        ring_bytes,
        wakeup,
        filter,
        emit_exit: !args.no_exit,
        hook: args.hook,
        tracefs: args.tracefs.clone(),
    };
    let mut probe = match Probe::load(&spec) {
        Ok(p) => p,
        Err(e) => {
            drop(writer);
            let _ = std::fs::remove_file(&args.output);
            return Err(e.into());
        }
    };
    let mut source = probe.take_source().expect("a fresh probe has its source");

    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let i = interrupted.clone();
        // A second Ctrl-C while finishing is ignored: the file is being closed properly.
        let _ = ctrlc::set_handler(move || i.store(true, Ordering::Release));
    }

    let mut rec = Recorder::start(writer, rings)?;

    if let Some(l) = load.as_mut() {
        l.release();
    }
    let (mut command, sampler) = match (&args.run, &cgroup) {
        (Some(c), Some(g)) => {
            let cpus = probes::loader::online_cpus()?.len().max(1);
            let sampler = super::program::CpuSampler::start(
                g.clone(),
                cpus,
                crate::capture::cpu_profile::DEFAULT_BUCKET_NS,
            );
            (
                Some(super::program::TracedCommand::spawn(c, g)?),
                Some(sampler),
            )
        }
        _ => (None, None),
    };
    let start = Instant::now();
    let mut programs = None;
    let deadline = args.duration.map(|d| start + d);
    let mut detached = false;
    let stop = probe.stop_handle();
    let mut last_progress = Instant::now();
    loop {
        if !detached {
            let load_done = (load.as_ref().is_some_and(|l| l.is_finished())
                || command.as_mut().is_some_and(|c| !c.running()))
                && args.duration.is_none();
            if interrupted.load(Ordering::Acquire)
                || deadline.is_some_and(|d| Instant::now() >= d)
                || load_done
                || !rec.writer_running()
            {
                // The programs' run time is read while they are attached.
                if run_time.is_some() {
                    programs = Some(probe.program_run_time()?);
                }
                probe.detach()?;
                stop.store(true, Ordering::Release);
                detached = true;
                if let Some(l) = load.as_ref() {
                    l.stop(); // nothing is traced any more; an early stop is reported as such
                }
            }
        }
        // A command's end is seen within 10 ms (its run time is measured from it).
        let idle = Duration::from_millis(if command.is_some() { 10 } else { 50 });
        let b = source.read_batch(8192, idle, &mut |r| rec.take(r))?;
        rec.after_read(b);
        if b == Batch::Closed {
            break;
        }
        if !args.quiet && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprintln!(
                "  {:>6.1}s  {} samples, {} lost",
                start.elapsed().as_secs_f64(),
                rec.samples,
                rec.lost_reported
            );
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    // A command still running at --duration is stopped now.
    let outcome = match command {
        Some(c) => Some(c.wait(Duration::ZERO)?),
        None => None,
    };
    let mut profile = sampler.map(super::program::CpuSampler::finish);
    drop(cgroup);
    let Recorded {
        mut writer,
        busy,
        samples,
        lost_reported,
        reader_waits,
        per_ring_lost,
    } = rec.finish()?;

    // Close the books with the kernel's own counters. Perf reports a loss only
    // ahead of the next sample that fits, so losses at the very end may be
    // unreported: write them as final lost markers so the capture accounts for all.
    let kernel = probe.counters()?;
    let mut stats = Vec::new();
    let mut unreported = Vec::new();
    match args.transport {
        Transport::Perf => {
            for c in &kernel.cpus {
                let reported = per_ring_lost.get(c.cpu as usize).copied().unwrap_or(0);
                unreported.push((c.cpu, c.failed().saturating_sub(reported)));
                stats.push(RingStats {
                    ring: c.cpu,
                    received: c.emitted,
                    dropped: c.failed(),
                });
            }
        }
        Transport::Ringbuf => {
            let t = kernel.total();
            unreported.push((0, t.failed().saturating_sub(lost_reported)));
            stats.push(RingStats {
                ring: 0,
                received: t.emitted,
                dropped: t.failed(),
            });
        }
    }
    let lost_unreported = unreported.iter().map(|(_, n)| n).sum();
    if let Some(p) = profile.as_mut() {
        p.programs_ns = programs.map(|r| r.run_ns);
        match writer.write_cpu_profile(p) {
            Ok(()) | Err(CaptureError::Io { .. } | CaptureError::Stopped { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    for &(ring, count) in unreported.iter().filter(|(_, n)| *n > 0) {
        match writer.write(RecordRef::Lost { ring, count }) {
            // A write error stops the writer, which keeps it for `close` to report.
            Ok(()) | Err(CaptureError::Io { .. } | CaptureError::Stopped { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (cs, failure) = writer.close(&stats);
    let load_report = match load {
        Some(l) => Some(serde_json::to_value(l.join()?)?),
        None => None,
    };
    let total = kernel.total();
    let bytes: u64 = cs.per_ring.iter().map(|r| r.bytes).sum();
    let busy_s = busy.as_secs_f64().max(1e-9);
    let summary = RecordSummary {
        output: args.output.clone(),
        layout: args.layout,
        transport: args.transport,
        ring_bytes: args.ring_bytes,
        wakeup: wakeup.to_string(),
        seconds,
        samples,
        samples_stored: cs.samples,
        lost_reported,
        lost_unreported,
        balanced: total.emitted == samples + lost_reported + lost_unreported,
        kernel,
        file_bytes: cs.file_bytes,
        writer_records_per_s: (cs.samples + cs.lost_markers) as f64 / busy_s,
        writer_mb_per_s: bytes as f64 / busy_s / 1e6,
        reader_waits,
        interrupted: interrupted.load(Ordering::Acquire),
        write_error: failure.as_ref().map(|e| e.to_string()),
        load: load_report,
        command: outcome,
    };
    Ok((summary, failure))
}

/// What the writer thread hands back: the writer (to finish the file, and
/// holding the write error that stopped it, if one did) and the time it spent writing.
struct WriterEnd {
    writer: CaptureWriter,
    busy: Duration,
}

/// `harness record`'s reader side: what it reads is counted and packed into
/// pooled batch buffers, which a writer thread turns into pcapng blocks, so
/// the reader only waits on the writer when every buffer is full. The same
/// reader drains the kernel's rings (`record`) and emulated ones
/// ([`drain_to_capture`], the `recorder` reader of `harness fidelity`).
pub struct Recorder {
    cur: PackedBatch,
    full_tx: Option<Sender<PackedBatch>>,
    free_rx: Receiver<PackedBatch>,
    thread: std::thread::JoinHandle<WriterEnd>,
    /// Whether the writer thread still takes batches (not after a write error).
    running: bool,
    pub samples: u64,
    pub lost_reported: u64,
    /// Times the reader found every batch buffer in use.
    pub reader_waits: u64,
    pub per_ring_lost: Vec<u64>,
}

/// What a finished [`Recorder`] hands back.
pub struct Recorded {
    /// To finish the file (holding the write error that stopped it, if one did).
    pub writer: CaptureWriter,
    /// Time the writer thread spent writing.
    pub busy: Duration,
    pub samples: u64,
    pub lost_reported: u64,
    pub reader_waits: u64,
    pub per_ring_lost: Vec<u64>,
}

impl Recorder {
    /// Starts the writer thread over `writer`, with [`POOL`] batch buffers.
    pub fn start(writer: CaptureWriter, rings: u32) -> anyhow::Result<Recorder> {
        let (full_tx, full_rx): (Sender<PackedBatch>, Receiver<PackedBatch>) = bounded(POOL);
        let (free_tx, free_rx) = bounded::<PackedBatch>(POOL);
        for _ in 0..POOL {
            free_tx
                .send(PackedBatch {
                    buf: Vec::with_capacity(BATCH_BYTES + 8192),
                    records: 0,
                })
                .map_err(|_| anyhow::anyhow!("filling the batch pool"))?;
        }
        let thread = std::thread::Builder::new()
            .name("capture-writer".into())
            .spawn(move || {
                // The writer yields the CPU to the reader (nice +10): on a 2-core machine
                // the load, the reader and the writer compete, and a late writer only
                // fills the pool, while a late reader loses samples in the kernel.
                // SAFETY: setpriority on this thread's own tid.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10) };
                let mut end = WriterEnd {
                    writer,
                    busy: Duration::ZERO,
                };
                for mut batch in full_rx {
                    let t = Instant::now();
                    // Each batch ends on a block boundary: a killed run leaves a readable file.
                    let r = batch
                        .for_each(|r| end.writer.write(r))
                        .and_then(|()| end.writer.flush());
                    end.busy += t.elapsed();
                    if r.is_err() {
                        // The writer keeps the error for `close`. Returning drops
                        // both channels: the reader sees the writer gone.
                        return end;
                    }
                    batch.buf.clear();
                    batch.records = 0;
                    let _ = free_tx.send(batch);
                }
                end
            })?;
        let cur = free_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the batch pool is empty"))?;
        Ok(Recorder {
            cur,
            full_tx: Some(full_tx),
            free_rx,
            thread,
            running: true,
            samples: 0,
            lost_reported: 0,
            reader_waits: 0,
            per_ring_lost: vec![0; rings as usize],
        })
    }

    pub fn writer_running(&self) -> bool {
        self.running
    }

    /// Counts one record and packs it (once the writer has stopped, records
    /// are still counted, so every sample is accounted for, just not stored).
    #[inline]
    pub fn take(&mut self, r: RecordRef<'_>) {
        match r {
            RecordRef::Sample { .. } => self.samples += 1,
            RecordRef::Lost { ring, count } => {
                self.lost_reported += count;
                if let Some(l) = self.per_ring_lost.get_mut(ring as usize) {
                    *l += count;
                }
            }
        }
        if self.running {
            self.cur.push(r);
        }
    }

    /// After a read: hands the current buffer to the writer when it is full,
    /// or when the read found the ring idle or closed and it holds records.
    pub fn after_read(&mut self, b: Batch) {
        let idle = !matches!(b, Batch::Records(_));
        if !self.running || !(self.cur.buf.len() >= BATCH_BYTES || (idle && self.cur.records > 0)) {
            return;
        }
        let next = match self.free_rx.try_recv() {
            Ok(x) => Ok(x),
            Err(_) => {
                self.reader_waits += 1;
                self.free_rx.recv()
            }
        };
        let sent = next.ok().and_then(|next| {
            let full = std::mem::replace(&mut self.cur, next);
            self.full_tx.as_ref()?.send(full).ok()
        });
        if sent.is_none() {
            self.running = false;
        }
    }

    /// Hands over the last buffer and waits for the writer.
    pub fn finish(mut self) -> anyhow::Result<Recorded> {
        if let Some(tx) = self.full_tx.take() {
            if self.running && self.cur.records > 0 {
                tx.send(std::mem::replace(
                    &mut self.cur,
                    PackedBatch {
                        buf: Vec::new(),
                        records: 0,
                    },
                ))
                .ok();
            }
        }
        let WriterEnd { writer, busy } = self
            .thread
            .join()
            .map_err(|_| anyhow::anyhow!("the capture writer panicked"))?;
        Ok(Recorded {
            writer,
            busy,
            samples: self.samples,
            lost_reported: self.lost_reported,
            reader_waits: self.reader_waits,
            per_ring_lost: self.per_ring_lost,
        })
    }
}

/// The `recorder` reader over any source (a replay's emulated rings):
/// `harness record`'s reader and writer, into a capture at `path` with
/// `meta`. What it read is the consumer's report; the file is removed
/// afterwards (what it cost to write it is what is measured).
pub fn drain_to_capture(
    mut src: impl probes::record::RecordSource,
    path: &std::path::Path,
    meta: &CaptureMeta,
) -> crate::replay::ConsumerReport {
    let cpu0 = crate::results::CpuTime::thread();
    let mut problems = Vec::new();
    let report = |samples, lost_seen, bytes, problems| crate::replay::ConsumerReport {
        variant: "recorder".into(),
        read: samples,
        lost_seen,
        bytes,
        latency: crate::results::latency_histogram(),
        stages: vec![crate::results::StageResult {
            name: "reader".into(),
            records_in: samples,
            records_out: samples,
            cpu: crate::results::CpuTime::thread().since(cpu0),
            note: Some("harness record's reader; its writer thread writes the pcapng".into()),
            ..Default::default()
        }],
        end_ns: crate::host::monotonic_ns(),
        ledger: None,
        problems,
    };
    let rec = CaptureWriter::create(path, meta)
        .map_err(anyhow::Error::from)
        .and_then(|w| Recorder::start(w, meta.rings));
    let mut rec = match rec {
        Ok(r) => r,
        Err(e) => {
            problems.push(format!("recorder: {e:#}"));
            return report(0, 0, 0, problems);
        }
    };
    loop {
        match src.read_batch(8192, Duration::from_millis(50), &mut |r| rec.take(r)) {
            Ok(b) => {
                rec.after_read(b);
                if b == Batch::Closed {
                    break;
                }
            }
            Err(e) => {
                problems.push(format!("recorder: reading: {e}"));
                break;
            }
        }
    }
    match rec.finish() {
        Ok(done) => {
            let (cs, failure) = done.writer.close(&[]);
            if let Some(e) = failure {
                problems.push(format!("recorder: {e}"));
            }
            let bytes = cs.per_ring.iter().map(|r| r.bytes).sum();
            let _ = std::fs::remove_file(path);
            report(done.samples, done.lost_reported, bytes, problems)
        }
        Err(e) => {
            problems.push(format!("recorder: {e:#}"));
            report(0, 0, 0, problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_default_wakeup_follows_the_ring_size_given() {
        // No --wakeup: half of the ring asked for, not of the 8 MiB default.
        assert_eq!(
            resolve_ring(Transport::Perf, MIB, None).unwrap(),
            (1 << 20, Wakeup::Watermark(524_288))
        );
        assert_eq!(
            resolve_ring(Transport::Perf, 8 * MIB, None).unwrap().1,
            Wakeup::Watermark(4 << 20)
        );
        assert_eq!(
            resolve_ring(Transport::Perf, 4096, None).unwrap().1,
            Wakeup::Watermark(2048)
        );
        assert_eq!(
            resolve_ring(Transport::Ringbuf, MIB, None).unwrap().1,
            Wakeup::NoWakeupPoll(Duration::from_millis(1))
        );
        // Asked for and possible: taken as given, percentages of this ring.
        assert_eq!(
            resolve_ring(Transport::Perf, MIB, Some("watermark:25%"))
                .unwrap()
                .1,
            Wakeup::Watermark(262_144)
        );
        assert_eq!(
            resolve_ring(Transport::Perf, MIB, Some("events:64"))
                .unwrap()
                .1,
            Wakeup::Events(64)
        );
    }

    #[test]
    fn an_impossible_combination_names_both_values() {
        let e = resolve_ring(Transport::Perf, MIB, Some("watermark:4m"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("4194304 bytes") && e.contains("1048576 bytes"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
        // A bad ring size is named before any wakeup is looked at.
        let e = resolve_ring(Transport::Perf, 3 * 4096, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("12288"), "{e}");
        for bad in [0, 3 * 4096, 8 << 30] {
            let e = resolve_ring(Transport::Ringbuf, bad, None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&bad.to_string()), "{e}");
        }
        let e = resolve_ring(Transport::Ringbuf, MIB, Some("events:1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"events:1\" for ringbuf"), "{e}");
    }
}
