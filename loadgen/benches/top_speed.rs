//! Top speed: loadgen's `max` mode against a bare loop of the same syscalls, in one run.
//!
//! Both walk the same paths (the default generated corpus, written to a list file that loadgen reads)
//! in the same order with the same op cycle and thread count. The bare loop is plain libc calls in a
//! tight loop: no pacing, no counting, no error checks beyond closing what opened. The time per side
//! is cut into short rounds that alternate the order (bare, loadgen, loadgen, bare, ...), so a
//! neighbour's build that starts or stops mid-run hits both sides alike, and the headline is the
//! median of the round ratios, which one disturbed round cannot move much.
//! Prints each round's rates and ratio, the median ratio and the totals' ratio.
//! What must hold: loadgen >= 90% of bare.
//!
//! Env: LOADGEN_BENCH_SECS (per side in all, default 6), LOADGEN_BENCH_ROUNDS (default 12, so 0.5 s
//! slices),
//! LOADGEN_BENCH_THREADS (default 1), LOADGEN_BENCH_MIX (default openat=1,stat=1),
//! LOADGEN_BENCH_NICE (nice of both sides' threads; default -20 as root, "none" for the process's).
//!
//! Run: `cargo bench -p loadgen --bench top_speed`

use loadgen::{
    now_ns, Corpus, CorpusSpec, Load, LoadConfig, OpKind, OpMix, PathSource, Rate, RunEnd,
};
use std::ffi::c_char;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Raw path pointers, shareable across the bare threads (the corpus outlives them).
#[derive(Clone, Copy)]
struct Paths(*const *const c_char, usize);
unsafe impl Send for Paths {}

/// LOADGEN_BENCH_NICE, or -20 when running as root.
fn bench_nice() -> Option<i32> {
    match std::env::var("LOADGEN_BENCH_NICE") {
        Ok(v) if v == "none" => None,
        Ok(v) => Some(v.parse().expect("LOADGEN_BENCH_NICE: a nice value or none")),
        // SAFETY: geteuid has no preconditions.
        Err(_) => (unsafe { libc::geteuid() } == 0).then_some(-20),
    }
}

/// One bare thread: the cycle's ops on the paths, for `secs`; returns ops done.
fn bare_thread(
    cycle: &[OpKind],
    paths: Paths,
    start_index: usize,
    secs: f64,
    nice: Option<i32>,
) -> u64 {
    if let Some(n) = nice {
        // Same nice as loadgen's workers get, applied to this thread only.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, n) };
    }
    let paths = unsafe { std::slice::from_raw_parts(paths.0, paths.1) };
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let (mut op_i, mut path_i) = (0usize, start_index);
    let end = now_ns() + (secs * 1e9) as u64;
    let mut ops = 0u64;
    // The clock is read every 1024 ops (~1 ms), which costs nothing measurable.
    while now_ns() < end {
        for _ in 0..1024 {
            let p = paths[path_i];
            unsafe {
                match cycle[op_i] {
                    OpKind::Openat => {
                        let fd = libc::openat(libc::AT_FDCWD, p, loadgen::ops::OPENAT_FLAGS);
                        if fd >= 0 {
                            libc::close(fd);
                        }
                    }
                    OpKind::Stat => {
                        libc::stat(p, &mut st);
                    }
                    OpKind::Lstat => {
                        libc::lstat(p, &mut st);
                    }
                    OpKind::Fstatat => {
                        libc::fstatat(libc::AT_FDCWD, p, &mut st, 0);
                    }
                    OpKind::Statx => {
                        libc::statx(
                            libc::AT_FDCWD,
                            p,
                            libc::AT_STATX_SYNC_AS_STAT,
                            loadgen::ops::STATX_MASK,
                            &mut stx,
                        );
                    }
                }
            }
            op_i += 1;
            if op_i == cycle.len() {
                op_i = 0;
            }
            path_i += 1;
            if path_i == paths.len() {
                path_i = 0;
            }
        }
        ops += 1024;
    }
    ops
}

fn bare(
    cycle: &[OpKind],
    ptrs: &[*const c_char],
    threads: usize,
    secs: f64,
    nice: Option<i32>,
) -> f64 {
    let paths = Paths(ptrs.as_ptr(), ptrs.len());
    let t0 = now_ns();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = t * ptrs.len() / threads;
                s.spawn(move || bare_thread(cycle, paths, start, secs, nice))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bare thread"))
            .sum()
    });
    total as f64 / ((now_ns() - t0) as f64 / 1e9)
}

fn loadgen_max(base: &LoadConfig, secs: f64) -> f64 {
    let mut cfg = base.clone();
    cfg.end = RunEnd::Duration(Duration::from_secs_f64(secs));
    let r = Load::start(cfg)
        .and_then(|l| l.join())
        .unwrap_or_else(|e| panic!("loadgen run failed: {e}"));
    r.achieved_ops_per_sec
}

fn main() {
    // `cargo bench` passes --bench; without it (`cargo test --all-targets`) this is a smoke run:
    // short enough for CI, and its figures mean nothing.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let secs: f64 = if smoke {
        0.2
    } else {
        env_or("LOADGEN_BENCH_SECS", 6.0)
    };
    if smoke {
        println!("smoke run (not under `cargo bench`): checks the bench runs; figures are not meaningful");
    }
    let rounds: usize = if smoke {
        1
    } else {
        env_or("LOADGEN_BENCH_ROUNDS", 12)
    };
    let slice = secs / rounds as f64;
    let threads: usize = env_or("LOADGEN_BENCH_THREADS", 1);
    let mix: OpMix = std::env::var("LOADGEN_BENCH_MIX")
        .unwrap_or_else(|_| "openat=1,stat=1".into())
        .parse()
        .expect("mix");
    let cycle = mix.cycle().expect("mix");

    let corpus = Corpus::generate(&CorpusSpec::default()).expect("corpus");
    let list = tempfile::NamedTempFile::new().expect("list file");
    {
        let mut w = std::io::BufWriter::new(list.as_file());
        for p in corpus.paths() {
            w.write_all(std::ffi::OsStr::from_bytes(p.as_bytes()).as_bytes())
                .expect("write");
            w.write_all(b"\n").expect("write");
        }
        w.flush().expect("flush");
    }
    // The bare loop reads the list file too, so both sides hold the strings in the same layout
    // (the generated corpus' strings sit in memory in generation order, not walk order).
    let listed = Corpus::from_list(list.path()).expect("list file");
    let ptrs: Vec<*const c_char> = listed.paths().iter().map(|p| p.as_ptr()).collect();
    let mut base = LoadConfig::new(Rate::Max, RunEnd::Ops(1));
    base.threads = threads;
    base.mix = mix.clone();
    base.paths = PathSource::ListFile(list.path().to_path_buf());
    base.nice = bench_nice();

    println!(
        "top_speed: {secs} s per side in {rounds} rounds of {slice} s, {threads} thread(s), mix {:?}, {} paths, nice {:?}",
        mix.0,
        ptrs.len(),
        base.nice
    );
    println!(
        "{:>5} {:>14} {:>14} {:>8}",
        "round", "bare ops/s", "loadgen ops/s", "ratio"
    );
    let (mut sum_bare, mut sum_lg) = (0.0, 0.0);
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let (b, l) = if round % 2 == 0 {
            let b = bare(&cycle, &ptrs, threads, slice, base.nice);
            (b, loadgen_max(&base, slice))
        } else {
            let l = loadgen_max(&base, slice);
            (bare(&cycle, &ptrs, threads, slice, base.nice), l)
        };
        sum_bare += b;
        sum_lg += l;
        ratios.push(l / b);
        println!("{:>5} {:>14.0} {:>14.0} {:>8.3}", round + 1, b, l, l / b);
    }
    ratios.sort_by(f64::total_cmp);
    let overall = sum_lg / sum_bare;
    let median = if ratios.len() % 2 == 1 {
        ratios[ratios.len() / 2]
    } else {
        (ratios[ratios.len() / 2 - 1] + ratios[ratios.len() / 2]) / 2.0
    };
    println!(
        "mean  {:>14.0} {:>14.0} {:>8.3}   (ratio of means; round ratios {:.3}..{:.3})",
        sum_bare / rounds as f64,
        sum_lg / rounds as f64,
        overall,
        ratios[0],
        ratios[ratios.len() - 1]
    );
    println!(
        "loadgen max = {:.1}% of the bare loop (median of {rounds} round ratios) -> {}",
        median * 100.0,
        if median >= 0.90 {
            "within 10%"
        } else {
            "MORE than 10% below (noisy machine? rerun when quieter)"
        }
    );
}
