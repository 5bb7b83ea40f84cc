//! A capture bigger than the memory the sweep may use: the sweep streams it
//! and finishes inside an address-space limit (`ulimit -v`) smaller than the
//! file, and says its peak memory in sweep.json; asked to preload it under
//! the same limit, it refuses in one line. The limit needs no privileges, so
//! this runs everywhere.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use harness::capture::{CaptureMeta, CaptureWriter, Transport};
use harness::sweep::SweepResults;
use probes::abi::{encode_event, EventHeader, Kind, Layout, Syscall};
use probes::record::RecordRef;

/// The address-space limit of the sweep (`ulimit -v`). The harness maps
/// about 250 MiB before it reads anything (its 70 MB executable with debug
/// info, thread stacks, two 1 MiB rings), so this leaves it ~250 MiB to work in.
const LIMIT: u64 = 512 << 20;
/// The capture: bigger than the whole limit.
const CAPTURE_BYTES: u64 = 640 << 20;

/// Writes fixed4k enter events whose 4000-byte paths are not trimmed (about
/// 4.1 KB of file each) on two rings until the file holds `bytes`.
fn write_big_capture(path: &Path, bytes: u64) {
    let meta = CaptureMeta::now(Layout::Fixed4k, Transport::Perf, 1 << 20, 2, "events:64");
    let mut w = CaptureWriter::create(path, &meta).unwrap();
    // 16 distinct paths: what the sweep counts per path stays small.
    let paths: Vec<Vec<u8>> = (0..16u8)
        .map(|i| {
            (0..4000)
                .map(|j| b'a' + ((i as usize + j) % 26) as u8)
                .collect()
        })
        .collect();
    let mut buf = Vec::new();
    let n = bytes / 4000 + 1;
    for i in 0..n {
        let ts = meta.start_monotonic_ns + 10_000 * i;
        let h = EventHeader {
            ts_ns: ts,
            pid: 100,
            tid: 100,
            syscall: Syscall::Openat as u8,
            kind: Kind::Enter as u8,
            ..Default::default()
        };
        encode_event(Layout::Fixed4k, &h, &paths[i as usize % 16], &mut buf);
        // perf's raw size: round_up(len + 4, 8) - 4.
        buf.resize(((buf.len() + 4 + 7) & !7) - 4, 0);
        w.write(RecordRef::Sample {
            ring: (i % 2) as u32,
            origin_ns: ts,
            data: &buf,
        })
        .unwrap();
    }
    w.finish(&[]).unwrap();
    let size = std::fs::metadata(path).unwrap().len();
    assert!(size >= bytes, "{size} bytes written, wanted {bytes}");
}

/// `harness sweep` over `capture` with at most `LIMIT` bytes of address space.
fn limited_sweep(dir: &Path, capture: &Path, load: &str) -> std::process::Output {
    let cfg = dir.join("big.toml");
    let mut f = std::fs::File::create(&cfg).unwrap();
    // One variant, small rings, the null sink, short uniform trials and two
    // rates: the point is the memory, not the rate.
    writeln!(
        f,
        "variants = [\"batched\"]\nring_bytes = [\"2MiB\"]\nsink = \"null\"\n\
         shape = \"uniform\"\nwarmup = \"100ms\"\nwindow = \"500ms\"\n\
         lo = 20000.0\nhi = 40000.0\nmax_trials = 2"
    )
    .unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_harness"));
    c.args(["sweep", "--config"])
        .arg(&cfg)
        .arg("--capture")
        .arg(capture)
        .args(["--load", load, "--out"])
        .arg(dir.join("results"))
        // One malloc arena per thread would reserve 64 MiB of address space each.
        .env("MALLOC_ARENA_MAX", "2");
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.output().unwrap()
}

#[test]
fn a_capture_bigger_than_the_memory_limit_is_streamed_within_it() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("big.pcapng");
    write_big_capture(&capture, CAPTURE_BYTES);

    let out = limited_sweep(dir.path(), &capture, "auto");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // (The capture summary prints the top paths: 4000 bytes each.)
    assert!(out.status.success(), "stderr:\n{stderr}");
    assert!(stdout.contains("streamed from the file"));
    let latest = dir.path().join("results/latest/sweep.json");
    let results = SweepResults::read(&latest).unwrap();
    assert_eq!(results.captures.len(), 1);
    assert_eq!(results.captures[0].holding, "streamed");
    assert!(results.captures[0].file_bytes >= CAPTURE_BYTES);
    let peak = results
        .peak_rss_bytes
        .expect("the peak RSS is in sweep.json");
    eprintln!(
        "peak RSS {} MiB sweeping a {} MiB capture under a {} MiB address-space limit",
        peak >> 20,
        results.captures[0].file_bytes >> 20,
        LIMIT >> 20
    );
    // Streaming holds at most ~36 MiB of capture (docs/tuning.md, "Big captures").
    assert!(
        peak < CAPTURE_BYTES / 8,
        "peak RSS {} MiB for a {} MiB capture",
        peak >> 20,
        CAPTURE_BYTES >> 20
    );
    // Every series ran and replayed samples.
    assert_eq!(results.series.len(), 1);
    let s = &results.series[0];
    assert!(!s.points.is_empty());
    assert!(s.points.iter().all(|p| p.counts.offered > 0), "{s:?}");

    // Preloading it under the same limit: refused in one line, nothing panics.
    let out = limited_sweep(dir.path(), &capture, "preload");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("does not fit in memory"), "{stderr}");
}
