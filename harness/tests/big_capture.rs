//! A capture bigger than the memory the sweep may use: the sweep streams it
//! and finishes inside an address-space limit (`ulimit -v`) smaller than the
//! file, and says its peak memory in sweep.json; asked to preload it under
//! the same limit, it refuses in one line. The limit needs no privileges, so
//! this runs everywhere.

mod support;

use std::os::unix::process::CommandExt;
use std::path::Path;

use harness::capture::{CaptureMeta, Transport};
use probes::abi::{Kind, Layout, Syscall};
use support::cli::{assert_clear_error, harness, ok, sweep, sweep_results};
use support::events::{header, SynthCapture};

/// The address-space limit of the sweep (`ulimit -v`). The harness maps
/// about 250 MiB before it reads anything (its 70 MB executable with debug
/// info, thread stacks, two 1 MiB rings), so this leaves it ~250 MiB to work in.
const LIMIT: u64 = 512 << 20;
/// The capture: bigger than the whole limit.
const CAPTURE_BYTES: u64 = 640 << 20;

/// Writes fixed4k enter events whose 4000-byte paths are not trimmed (about
/// 4.1 KB of file each) on two rings until the file holds `bytes`.
fn write_big_capture(path: &Path, bytes: u64) {
    let meta = CaptureMeta::now(
        Layout::Fixed4k,
        Transport::Perf,
        1 << 20,
        2,
        probes::Wakeup::Events(64),
    );
    let mut c = SynthCapture::with_meta(path, meta);
    // 16 distinct paths: what the sweep counts per path stays small.
    let paths: Vec<Vec<u8>> = (0..16u8)
        .map(|i| {
            (0..4000)
                .map(|j| b'a' + ((i as usize + j) % 26) as u8)
                .collect()
        })
        .collect();
    let n = bytes / 4000 + 1;
    for i in 0..n {
        let ts = c.start_ns() + 10_000 * i;
        let h = header(ts, 100, 100, Syscall::Openat, Kind::Enter);
        c.event((i % 2) as u32, &h, &paths[i as usize % 16]);
    }
    c.finish(&[]);
    let size = std::fs::metadata(path).unwrap().len();
    assert!(size >= bytes, "{size} bytes written, wanted {bytes}");
}

/// `harness sweep` over `capture` with at most `LIMIT` bytes of address space.
fn limited_sweep(dir: &Path, capture: &Path, load: &str) -> std::process::Output {
    // One variant, small rings, the null sink, short uniform trials and two
    // rates: the point is the memory, not the rate.
    let plan = "variants = [\"batched\"]\nring_bytes = [\"2MiB\"]\nsink = \"null\"\n\
                shape = \"uniform\"\nwarmup = \"100ms\"\nwindow = \"500ms\"\n\
                lo = 20000.0\nhi = 40000.0\nmax_trials = 2\n";
    let mut c = sweep(harness(), dir, plan);
    c.arg("--capture")
        .arg(capture)
        .args(["--load", load])
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
    // (The capture summary prints the top paths: 4000 bytes each.)
    assert!(ok(&out).contains("streamed from the file"));
    let results = sweep_results(dir.path());
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
    assert_clear_error(&out, 1, "does not fit in memory");
}
