//! `harness inspect FILE [--json]`: what a capture holds.
//!
//! [`summarize`] streams the capture once and returns a [`CaptureInfo`];
//! [`print_info`] prints it as text. `harness sweep` reuses both.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;
use probes::abi::{Event, Kind, Syscall};
use probes::record::RecordRef;
use serde::Serialize;

use crate::capture::{CaptureError, CaptureMeta, CaptureReader, RingStats};

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The capture (pcapng) to summarise.
    pub file: PathBuf,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// How many of the most frequent paths to list.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Exit 0 even if the last block is cut short (a recording that was killed).
    #[arg(long)]
    pub allow_truncated: bool,
}

/// Counts of one ring.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RingInfo {
    pub ring: u32,
    pub samples: u64,
    pub lost_markers: u64,
    pub lost: u64,
    pub bytes: u64,
}

/// Counts of one syscall.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyscallInfo {
    pub syscall: String,
    pub enter: u64,
    pub exit: u64,
}

/// Events in one time bucket.
#[derive(Debug, Clone, Serialize)]
pub struct RateBucket {
    /// Bucket start, seconds from the first sample.
    pub start_s: f64,
    pub events: u64,
    pub events_per_s: f64,
}

/// Everything `inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureInfo {
    pub file: String,
    pub file_bytes: u64,
    pub meta: CaptureMeta,
    pub samples: u64,
    pub lost_markers: u64,
    /// Sum of the lost markers' counts.
    pub lost: u64,
    /// Kernel counters from the statistics blocks (absent if the capture was cut short).
    pub kernel_stats: Vec<RingStats>,
    pub per_ring: Vec<RingInfo>,
    pub per_syscall: Vec<SyscallInfo>,
    /// Samples that did not decode as events (first error kept).
    pub undecodable: u64,
    pub first_decode_error: Option<String>,
    /// First to last sample, ns.
    pub span_ns: u64,
    pub mean_rate_per_s: f64,
    pub bucket_s: f64,
    pub rate: Vec<RateBucket>,
    pub top_paths: Vec<(String, u64)>,
    /// Offset and reason if the last block was cut short.
    pub truncated_tail: Option<(u64, String)>,
    /// Notes in the statistics blocks, e.g. why a recording stopped early.
    pub notes: Vec<String>,
    /// A recorded command's CPU use (`record --run`).
    pub cpu_profile: Option<crate::capture::cpu_profile::CpuProfile>,
}

/// Distinct paths counted for the top list; beyond this only known paths grow,
/// which bounds memory on captures with millions of unique paths.
const MAX_DISTINCT_PATHS: usize = 100_000;
/// Rates are first counted in 10 ms slots, then merged into display buckets.
const SLOT_NS: u64 = 10_000_000;

/// Streams `path` once and summarises it.
pub fn summarize(path: &Path, top: usize) -> Result<CaptureInfo, CaptureError> {
    let mut r = CaptureReader::open(path)?;
    let meta = r.meta().clone();
    let mut per_ring: Vec<RingInfo> = (0..meta.rings)
        .map(|ring| RingInfo {
            ring,
            ..Default::default()
        })
        .collect();
    let mut per_sys: BTreeMap<u8, SyscallInfo> = BTreeMap::new();
    let mut slots: BTreeMap<u64, u64> = BTreeMap::new();
    let mut paths: HashMap<Vec<u8>, u64> = HashMap::new();
    let (mut samples, mut lost_markers, mut lost, mut undecodable) = (0u64, 0u64, 0u64, 0u64);
    let mut first_decode_error = None;
    let (mut first_ts, mut last_ts) = (u64::MAX, 0u64);
    while let Some(e) = r.next_entry()? {
        let ri = &mut per_ring[e.ring as usize];
        match e.rec {
            RecordRef::Lost { count, .. } => {
                ri.lost_markers += 1;
                ri.lost += count;
                lost_markers += 1;
                lost += count;
            }
            RecordRef::Sample {
                origin_ns, data, ..
            } => {
                ri.samples += 1;
                ri.bytes += data.len() as u64;
                samples += 1;
                first_ts = first_ts.min(origin_ns);
                last_ts = last_ts.max(origin_ns);
                *slots.entry(origin_ns / SLOT_NS).or_default() += 1;
                match Event::decode(data) {
                    Ok(ev) => {
                        let s = per_sys
                            .entry(ev.header.syscall)
                            .or_insert_with(|| SyscallInfo {
                                syscall: Syscall::from_u8(ev.header.syscall)
                                    .map(|s| s.name().to_string())
                                    .unwrap_or_else(|| format!("unknown({})", ev.header.syscall)),
                                ..Default::default()
                            });
                        match ev.kind() {
                            Some(Kind::Exit) => s.exit += 1,
                            _ => s.enter += 1,
                        }
                        if !ev.path.is_empty() {
                            if let Some(c) = paths.get_mut(ev.path) {
                                *c += 1;
                            } else if paths.len() < MAX_DISTINCT_PATHS {
                                paths.insert(ev.path.to_vec(), 1);
                            }
                        }
                    }
                    Err(err) => {
                        undecodable += 1;
                        first_decode_error.get_or_insert_with(|| err.to_string());
                    }
                }
            }
        }
    }
    let span_ns = last_ts.saturating_sub(first_ts);
    let first_slot = if samples > 0 { first_ts / SLOT_NS } else { 0 };
    // Pick the smallest bucket that gives at most 30 rows.
    let span_slots = span_ns / SLOT_NS + 1;
    let bucket_slots = [1u64, 10, 100, 1_000, 6_000, 60_000]
        .into_iter()
        .find(|b| span_slots.div_ceil(*b) <= 30)
        .unwrap_or(360_000);
    let mut buckets: BTreeMap<u64, u64> = BTreeMap::new();
    for (slot, n) in slots {
        *buckets
            .entry((slot - first_slot) / bucket_slots)
            .or_default() += n;
    }
    let bucket_s = (bucket_slots * SLOT_NS) as f64 / 1e9;
    let nb = buckets.keys().last().map(|k| k + 1).unwrap_or(0);
    let rate = (0..nb)
        .map(|b| {
            let events = buckets.get(&b).copied().unwrap_or(0);
            RateBucket {
                start_s: b as f64 * bucket_s,
                events,
                events_per_s: events as f64 / bucket_s,
            }
        })
        .collect();
    let mut top_paths: Vec<(String, u64)> = paths
        .into_iter()
        .map(|(p, c)| (String::from_utf8_lossy(&p).into_owned(), c))
        .collect();
    top_paths.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top_paths.truncate(top);
    Ok(CaptureInfo {
        file: r.file().to_string(),
        file_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        meta,
        samples,
        lost_markers,
        lost,
        kernel_stats: r.ring_stats().to_vec(),
        per_ring,
        per_syscall: per_sys.into_values().collect(),
        undecodable,
        first_decode_error,
        span_ns,
        mean_rate_per_s: if span_ns > 0 {
            samples.saturating_sub(1) as f64 * 1e9 / span_ns as f64
        } else {
            0.0
        },
        bucket_s,
        rate,
        top_paths,
        truncated_tail: r.truncated_tail().map(|(o, w)| (o, w.to_string())),
        notes: r.notes().to_vec(),
        cpu_profile: r.cpu_profile().cloned(),
    })
}

/// Prints `info` as a human-readable summary.
pub fn print_info(info: &CaptureInfo) {
    let m = &info.meta;
    println!("capture   {} ({} bytes)", info.file, info.file_bytes);
    println!(
        "probe     {} via {}: {} ring(s) x {} bytes, wakeup {}",
        m.layout, m.transport, m.rings, m.ring_bytes, m.wakeup
    );
    println!(
        "recorded  kernel {} on {} ({} CPUs), start {} (unix ns)",
        m.kernel, m.hostname, m.cpus, m.start_unix_ns
    );
    if let Some(load) = &m.load {
        println!("load      {load}");
    }
    if !m.command.is_empty() {
        println!("command   {}", m.command.join(" "));
    }
    let pct = if info.samples + info.lost > 0 {
        100.0 * info.lost as f64 / (info.samples + info.lost) as f64
    } else {
        0.0
    };
    println!(
        "samples   {}   lost {} in {} marker(s) ({pct:.3}% of samples + lost)",
        info.samples, info.lost, info.lost_markers
    );
    println!(
        "span      {:.3} s, mean {:.0} events/s",
        info.span_ns as f64 / 1e9,
        info.mean_rate_per_s
    );
    for note in &info.notes {
        println!("note      {note}");
    }
    if let Some(p) = &info.cpu_profile {
        let per_cpu: Vec<String> = p
            .total_per_cpu()
            .iter()
            .enumerate()
            .map(|(cpu, ns)| format!("cpu{cpu} {:.1} ms", *ns as f64 / 1e6))
            .collect();
        println!(
            "cpu       the command's {} task(s) ran {} over {} bucket(s) of {} ms{}",
            p.tasks,
            per_cpu.join(", "),
            p.buckets(),
            p.bucket_ns / 1_000_000,
            p.programs_ns
                .map(|ns| format!("; the probes' programs {:.1} ms of it", ns as f64 / 1e6))
                .unwrap_or_default()
        );
    }
    if let Some((off, what)) = &info.truncated_tail {
        println!(
            "WARNING   capture cut short at byte {off}: {what}; everything before it was read"
        );
    }
    println!();
    println!(
        "{:<8} {:>12} {:>10} {:>10} {:>14}",
        "ring", "samples", "lost", "markers", "bytes"
    );
    for r in &info.per_ring {
        println!(
            "{:<8} {:>12} {:>10} {:>10} {:>14}",
            crate::capture::ring_name(m.transport, r.ring),
            r.samples,
            r.lost,
            r.lost_markers,
            r.bytes
        );
    }
    if !info.kernel_stats.is_empty() {
        println!();
        println!("{:<8} {:>14} {:>14}", "ring", "kernel recv", "kernel drop");
        for s in &info.kernel_stats {
            println!(
                "{:<8} {:>14} {:>14}",
                crate::capture::ring_name(m.transport, s.ring),
                s.received,
                s.dropped
            );
        }
    }
    println!();
    println!("{:<12} {:>12} {:>12}", "syscall", "enter", "exit");
    for s in &info.per_syscall {
        println!("{:<12} {:>12} {:>12}", s.syscall, s.enter, s.exit);
    }
    if info.undecodable > 0 {
        println!(
            "undecodable {} (first: {})",
            info.undecodable,
            info.first_decode_error.as_deref().unwrap_or("")
        );
    }
    if !info.rate.is_empty() {
        println!();
        println!("rate over time ({} s buckets)", info.bucket_s);
        let peak = info.rate.iter().map(|b| b.events).max().unwrap_or(1).max(1);
        for b in &info.rate {
            // A 40-character bar scaled to the busiest bucket.
            let bar = "#".repeat((b.events * 40 / peak) as usize);
            println!("{:>9.2}s {:>12.0}/s {bar}", b.start_s, b.events_per_s);
        }
    }
    if !info.top_paths.is_empty() {
        println!();
        println!("top paths");
        for (p, c) in &info.top_paths {
            println!("{c:>10}  {p}");
        }
    }
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let info = summarize(&args.file, args.top)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&info).context("encoding the summary as JSON")?
        );
    } else {
        print_info(&info);
    }
    if let (Some((off, what)), false) = (&info.truncated_tail, args.allow_truncated) {
        anyhow::bail!(
            "{}: truncated at byte {off}: {what}; the complete blocks before it are summarised above (--allow-truncated to accept)",
            info.file
        );
    }
    Ok(())
}
