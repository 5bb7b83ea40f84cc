//! Live benchmark: dropbench's readers against libbpf's own readers, same
//! settings, same run. For each event layout (fixed4k, compact), transport
//! and wakeup policy, a C loop of openat+close+fstatat runs at top speed
//! pinned to CPU 0, traced by the probe filtered to its pid; the reader is pinned to CPU 1. Prints
//! traced ops/s, lost, and reader CPU for both, plus the untraced loop. Each
//! round runs the untraced loop, dropbench and libbpf back to back (order
//! rotating), and the verdicts use each round's ratios (paired), with a 95%
//! interval over the rounds, because this machine's speed drifts by ±25 %
//! over minutes.
//!
//! `sudo cargo bench -p probes --bench live_peer` (root; builds the C peer with
//! cc + libbpf-dev). `LIVE_PEER_SECS` (default 3) sets each run's length and
//! `LIVE_PEER_ROUNDS` (default 1) repeats every pair, alternating who goes first.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use probes::abi::{EventHeader, Layout};
use probes::loader::{Filter, Hook, Probe, ProbeSpec, Transport, Wakeup};
use probes::record::{Batch, RecordRef};

const LOAD_CPU: usize = 0;
const READER_CPU: usize = 1;
/// Perf: 8 MiB per CPU; ring buffer: 32 MiB (docs/tuning.md, "Wakeup policy").
const PERF_BYTES: usize = 8 << 20;
const RINGBUF_BYTES: usize = 32 << 20;
const TRACED_PATH: &str = "/etc/hostname";
/// Pause before each run so the previous run's teardown has finished.
const SETTLE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy)]
struct Setting {
    layout: Layout,
    transport: Transport,
    wakeup: Wakeup,
    /// The libbpf reader's spelling of the same policy.
    peer: &'static str,
}

/// Every wakeup setting of both transports, on both event layouts.
fn settings() -> Vec<Setting> {
    [Layout::Fixed4k, Layout::Compact]
        .into_iter()
        .flat_map(|layout| {
            wakeups().into_iter().map(move |mut s| {
                s.layout = layout;
                s
            })
        })
        .collect()
}

fn wakeups() -> Vec<Setting> {
    let half = (PERF_BYTES / 2) as u32;
    vec![
        Setting {
            layout: Layout::Fixed4k,
            transport: Transport::Perf,
            wakeup: Wakeup::Events(1),
            peer: "events:1",
        },
        Setting {
            layout: Layout::Fixed4k,
            transport: Transport::Perf,
            wakeup: Wakeup::Events(64),
            peer: "events:64",
        },
        Setting {
            layout: Layout::Fixed4k,
            transport: Transport::Perf,
            wakeup: Wakeup::Watermark(half as u64),
            peer: "watermark:4194304",
        },
        Setting {
            layout: Layout::Fixed4k,
            transport: Transport::Ringbuf,
            wakeup: Wakeup::Adaptive,
            peer: "adaptive",
        },
        Setting {
            layout: Layout::Fixed4k,
            transport: Transport::Ringbuf,
            wakeup: Wakeup::NoWakeupPoll(Duration::from_millis(1)),
            peer: "no-wakeup:1000",
        },
        Setting {
            layout: Layout::Fixed4k,
            transport: Transport::Ringbuf,
            wakeup: Wakeup::Forced,
            peer: "forced",
        },
    ]
}

#[derive(Default, Clone, Copy)]
struct Outcome {
    ops_per_s: f64,
    emitted: u64,
    lost: u64,
    reader_cpu_s: f64,
}

fn build_peers(out: &Path) -> (PathBuf, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench");
    std::fs::create_dir_all(out).unwrap();
    let lp = out.join("traced_loop");
    let rd = out.join("libbpf_reader");
    let ok = |c: &mut Command, what: &str| {
        let o = c
            .output()
            .unwrap_or_else(|e| panic!("building {what}: {e} (needs cc)"));
        assert!(
            o.status.success(),
            "building {what} failed (needs libbpf-dev): {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ok(
        Command::new("cc")
            .args(["-O2", "-o"])
            .arg(&lp)
            .arg(src.join("traced_loop.c")),
        "traced_loop",
    );
    ok(
        Command::new("cc")
            .args(["-O2", "-o"])
            .arg(&rd)
            .arg(src.join("libbpf_reader.c"))
            .args(["-lbpf", "-lelf", "-lz"]),
        "libbpf_reader",
    );
    (lp, rd)
}

struct Loop {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: u32,
}

fn start_loop(bin: &Path, secs: f64) -> Loop {
    let mut child = Command::new(bin)
        .arg(LOAD_CPU.to_string())
        .arg(secs.to_string())
        .arg(TRACED_PATH)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let pid = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .expect("traced_loop prints ready PID");
    Loop {
        child,
        stdin,
        stdout,
        pid,
    }
}

impl Loop {
    /// Starts the loop and waits for it; returns traced ops/s.
    fn go(mut self) -> f64 {
        writeln!(self.stdin, "go").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        self.child.wait().unwrap();
        let f: Vec<&str> = line.split_whitespace().collect();
        let ops: f64 = f[1].parse().unwrap();
        let secs: f64 = f[3].parse().unwrap();
        ops / secs
    }
}

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t with one bit set, for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// `LIVE_PEER_FIFO=1`: both readers run SCHED_FIFO (priority 10), which takes
/// ordinary scheduling interference out of the comparison.
fn fifo() -> bool {
    std::env::var("LIVE_PEER_FIFO").as_deref() == Ok("1")
}

fn make_fifo() {
    if fifo() {
        let p = libc::sched_param { sched_priority: 10 };
        // SAFETY: setting this thread's own policy.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) };
    }
}

/// The hook both readers' probes attach to: `LIVE_PEER_HOOK=raw-syscalls`
/// or `tracepoints` (the default).
fn hook() -> Hook {
    match std::env::var("LIVE_PEER_HOOK") {
        Ok(h) => h.parse().unwrap_or_else(|e| panic!("LIVE_PEER_HOOK: {e}")),
        Err(_) => Hook::default(),
    }
}

fn thread_cpu_s() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut r) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(r.ru_utime) + tv(r.ru_stime)
}

fn run_dropbench(lp: &Path, s: Setting, secs: f64) -> Outcome {
    let lo = start_loop(lp, secs);
    let mut spec = ProbeSpec::new(s.layout, s.transport);
    spec.ring_bytes = match s.transport {
        Transport::Perf => PERF_BYTES,
        Transport::Ringbuf => RINGBUF_BYTES,
    };
    spec.wakeup = s.wakeup;
    spec.filter = Filter::Tgids(vec![lo.pid]);
    spec.emit_exit = false;
    spec.hook = hook();
    let mut probe = Probe::load(&spec).expect("loading the probe");
    let mut src = probe.take_source().unwrap();
    let stop = probe.stop_handle();
    // Like libbpf_reader's "ready": the load starts only once the reader
    // thread is running, pinned and about to read.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        pin(READER_CPU);
        make_fifo();
        let c0 = thread_cpu_s();
        ready_tx.send(()).unwrap();
        let (mut n, mut lost, mut sink) = (0u64, 0u64, 0u64);
        loop {
            let b = src
                .read_batch(usize::MAX, Duration::from_millis(50), &mut |r| match r {
                    RecordRef::Sample { data, .. } => {
                        // Decode the header, as libbpf's callback does.
                        let h = EventHeader::read(data).unwrap();
                        sink = sink.wrapping_add(h.ts_ns + h.path_len as u64);
                        n += 1;
                    }
                    RecordRef::Lost { count, .. } => lost += count,
                })
                .unwrap();
            if b == Batch::Closed {
                break;
            }
        }
        std::hint::black_box(sink);
        (n, lost, thread_cpu_s() - c0)
    });
    ready_rx.recv().expect("reader thread started");
    let ops = lo.go();
    probe.detach().unwrap();
    stop.store(true, Ordering::Release);
    let (_n, lost, cpu) = reader.join().unwrap();
    let k = probe.counters().unwrap().total();
    // Perf reports a loss ahead of the next sample that fits; losses after the
    // last one are only in the kernel counter, which is the truth for both readers.
    Outcome {
        ops_per_s: ops,
        emitted: k.emitted,
        lost: lost.max(k.failed()),
        reader_cpu_s: cpu,
    }
}

fn run_libbpf(lp: &Path, rd: &Path, s: Setting, secs: f64) -> Outcome {
    let lo = start_loop(lp, secs);
    let (obj, _) = probes::loader::object_bytes(s.layout, s.transport);
    let obj = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bpf/obj")
        .join(obj);
    let size = match s.transport {
        Transport::Perf => (PERF_BYTES / 4096).to_string(), // libbpf takes pages per CPU
        Transport::Ringbuf => RINGBUF_BYTES.to_string(),
    };
    let mut peer = Command::new(rd)
        .arg(&obj)
        .arg(lo.pid.to_string())
        .arg(READER_CPU.to_string())
        .arg(s.transport.name())
        .arg(size)
        .arg(s.peer)
        .arg(hook().name())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(peer.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "libbpf_reader failed to start");
    let ops = lo.go();
    drop(peer.stdin.take()); // closing stdin tells the reader to drain and report
    line.clear();
    out.read_line(&mut line).unwrap();
    peer.wait().unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    let get = |k: &str| {
        f.iter()
            .position(|x| *x == k)
            .map(|i| f[i + 1])
            .unwrap_or("0")
    };
    let failed: u64 = get("failed").parse().unwrap();
    Outcome {
        ops_per_s: ops,
        emitted: get("emitted").parse().unwrap(),
        lost: get("lost").parse::<u64>().unwrap().max(failed),
        reader_cpu_s: get("cpu_s").parse().unwrap(),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Err(e) = probes::loader::check_privileges() {
        println!("live_peer: skipped: {e}");
        return;
    }
    let secs: f64 = std::env::var("LIVE_PEER_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let rounds: usize = std::env::var("LIVE_PEER_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/live-peer");
    let (lp, rd) = build_peers(&out);
    // The untraced loop runs once here and again after every setting: the
    // machine's speed drifts over a run of minutes, and the compact goal is a
    // ratio to it, so it is judged against the mean of all of them.
    let base = start_loop(&lp, secs).go();
    println!(
        "\nlive_peer: fixed4k and compact events, probes on {}, traced loop on cpu{LOAD_CPU}, readers on cpu{READER_CPU}{}, {secs} s per run",
        hook(),
        if fifo() { " (both SCHED_FIFO 10)" } else { "" }
    );
    println!("untraced loop: {:.3} M ops/s\n", base / 1e6);
    println!(
        "{:<7} {:<9} {:<22} {:<10} | {:>9} {:>9} {:>8} {:>7} | {:>9} {:>9} {:>8} {:>7} | {:>9} | {:>5} {:>6}",
        "layout",
        "transport",
        "wakeup",
        "",
        "db Mops/s",
        "db lost",
        "db lost%",
        "db cpu",
        "lb Mops/s",
        "lb lost",
        "lb lost%",
        "lb cpu",
        "untraced",
        "db/lb",
        "holds"
    );
    // LIVE_PEER_ONLY=perf|ringbuf runs one transport; a wakeup prefix
    // (e.g. LIVE_PEER_ONLY=watermark) runs one policy.
    let only = std::env::var("LIVE_PEER_ONLY").ok();
    let wanted = |s: &Setting| {
        only.as_deref()
            .is_none_or(|o| o == s.transport.name() || s.wakeup.to_string().starts_with(o))
    };
    let mut runs = Vec::new();
    for s in settings().into_iter().filter(wanted) {
        let mut rounds_of = Vec::new();
        for round in 0..rounds {
            let r = run_round(&lp, &rd, s, secs, round);
            let one = SettingRuns {
                setting: s,
                rounds: vec![r],
            };
            row(&one, &format!("round {}", round + 1));
            rounds_of.push(r);
        }
        let sr = SettingRuns {
            setting: s,
            rounds: rounds_of,
        };
        if rounds > 1 {
            row(&sr, "all rounds");
            println!(
                "{:<40} | paired rounds: db/lb {}, db/untraced {}",
                "",
                sr.vs_libbpf(),
                sr.vs_untraced()
            );
        }
        runs.push(sr);
    }
    summary(&runs);
}

/// The three runs of one round, each after a settle pause: tearing down the
/// previous reader (freeing its rings, detaching its programs) leaves
/// deferred kernel work that would otherwise land on whichever run is next.
/// The order rotates from round to round so that no side always runs first
/// or right after the untraced loop; the machine's speed drifts over
/// minutes, and ratios of runs a few seconds apart cancel most of that.
fn run_round(lp: &Path, rd: &Path, s: Setting, secs: f64, round: usize) -> Round {
    let mut r = Round::default();
    for step in 0..3 {
        std::thread::sleep(SETTLE);
        match (step + round) % 3 {
            0 => r.untraced = start_loop(lp, secs).go(),
            1 => r.db = run_dropbench(lp, s, secs),
            _ => r.lb = run_libbpf(lp, rd, s, secs),
        }
    }
    r
}

/// One round of one setting: the untraced loop, dropbench's reader and
/// libbpf's, back to back.
#[derive(Default, Clone, Copy)]
struct Round {
    untraced: f64,
    db: Outcome,
    lb: Outcome,
}

struct SettingRuns {
    setting: Setting,
    rounds: Vec<Round>,
}

impl SettingRuns {
    fn db(&self) -> Outcome {
        total(&self.rounds.iter().map(|r| r.db).collect::<Vec<_>>())
    }

    fn lb(&self) -> Outcome {
        total(&self.rounds.iter().map(|r| r.lb).collect::<Vec<_>>())
    }

    /// The untraced loop's mean rate over the rounds.
    fn untraced(&self) -> f64 {
        self.rounds.iter().map(|r| r.untraced).sum::<f64>() / self.rounds.len() as f64
    }

    /// dropbench's traced rate over libbpf's, round by round.
    fn vs_libbpf(&self) -> Ratio {
        Ratio::of(self.rounds.iter().map(|r| r.db.ops_per_s / r.lb.ops_per_s))
    }

    /// dropbench's traced rate over the untraced loop's, round by round.
    fn vs_untraced(&self) -> Ratio {
        Ratio::of(self.rounds.iter().map(|r| r.db.ops_per_s / r.untraced))
    }

    /// dropbench loses no larger share than libbpf (every round pooled) and
    /// slows the load no more (the paired ratio; see [`Ratio::at_least`]).
    fn holds(&self) -> bool {
        pct(&self.db()) <= pct(&self.lb()) + 1e-9 && self.vs_libbpf().at_least(NOISE_FLOOR)
    }
}

/// The traced rate may fall this far below libbpf's and still count as "no
/// slower": one round's runs are seconds apart on a shared 2-core VM.
const NOISE_FLOOR: f64 = 0.97;

/// Paired ratios of traced rates: their geometric mean and its 95% interval.
#[derive(Clone, Copy)]
struct Ratio {
    n: usize,
    mean: f64,
    lo: f64,
    hi: f64,
}

impl Ratio {
    /// Ratios are compared on a log scale (a round at 0.5x and one at 2x
    /// cancel), with Student's t for the interval of the mean log.
    fn of(ratios: impl Iterator<Item = f64>) -> Ratio {
        let logs: Vec<f64> = ratios
            .filter(|r| r.is_finite() && *r > 0.0)
            .map(f64::ln)
            .collect();
        let n = logs.len();
        if n == 0 {
            return Ratio {
                n,
                mean: f64::NAN,
                lo: f64::NAN,
                hi: f64::NAN,
            };
        }
        let m = logs.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Ratio {
                n,
                mean: m.exp(),
                lo: m.exp(),
                hi: m.exp(),
            };
        }
        let var = logs.iter().map(|l| (l - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        let half = t95(n - 1) * (var / n as f64).sqrt();
        Ratio {
            n,
            mean: m.exp(),
            lo: (m - half).exp(),
            hi: (m + half).exp(),
        }
    }

    /// "No lower than `floor`" as far as the rounds can tell: the mean is at
    /// least `floor`, or the interval reaches 1 (the rounds cannot tell this
    /// side from the other). One round is judged on its value alone.
    fn at_least(&self, floor: f64) -> bool {
        self.mean >= floor || (self.n > 1 && self.hi >= 1.0)
    }
}

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.n > 1 {
            write!(
                f,
                "{:.2}x (95% {:.2}-{:.2}, {} rounds)",
                self.mean, self.lo, self.hi, self.n
            )
        } else {
            write!(f, "{:.2}x", self.mean)
        }
    }
}

/// Student's t, two-sided 95%, for `df` degrees of freedom.
fn t95(df: usize) -> f64 {
    const T: [f64; 10] = [12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23];
    match df {
        0 => f64::INFINITY,
        1..=10 => T[df - 1],
        11..=20 => 2.09,
        21..=30 => 2.04,
        _ => 1.96,
    }
}

/// Every round of one side summed: lost over emitted, mean traced rate, CPU summed.
fn total(v: &[Outcome]) -> Outcome {
    Outcome {
        ops_per_s: v.iter().map(|o| o.ops_per_s).sum::<f64>() / v.len() as f64,
        emitted: v.iter().map(|o| o.emitted).sum(),
        lost: v.iter().map(|o| o.lost).sum(),
        reader_cpu_s: v.iter().map(|o| o.reader_cpu_s).sum(),
    }
}

fn pct(o: &Outcome) -> f64 {
    if o.emitted > 0 {
        100.0 * o.lost as f64 / o.emitted as f64
    } else {
        0.0
    }
}

/// The fastest zero-loss traced rate among `outcomes` (0 when every one lost).
fn best_zero_loss(outcomes: impl Iterator<Item = Outcome>) -> f64 {
    outcomes
        .filter(|o| o.lost == 0)
        .map(|o| o.ops_per_s)
        .fold(0.0, f64::max)
}

/// Issue 12's live figures from one run: compact's best zero-loss traced rate
/// against the untraced loop, fixed4k's against libbpf's best setting, and
/// whether dropbench's reader held against libbpf's on every setting.
fn summary(runs: &[SettingRuns]) {
    let side = |layout: Layout, db: bool| {
        best_zero_loss(runs.iter().filter(|r| r.setting.layout == layout).map(|r| {
            if db {
                r.db()
            } else {
                r.lb()
            }
        }))
    };
    // Compact: the zero-loss setting whose traced rate, each round over that
    // round's untraced loop, is highest.
    let compact = runs
        .iter()
        .filter(|r| r.setting.layout == Layout::Compact && r.db().lost == 0)
        .map(|r| (r.setting, r.vs_untraced()))
        .max_by(|a, b| a.1.mean.total_cmp(&b.1.mean));
    match compact {
        Some((s, ratio)) => println!(
            "\ncompact, dropbench's best zero-loss setting ({} {}): {ratio} the untraced loop, round by round (goal >= 0.8)",
            s.transport.name(),
            s.wakeup
        ),
        None => println!("\ncompact: no zero-loss setting ran"),
    }
    let (fixed_db, fixed_lb) = (side(Layout::Fixed4k, true), side(Layout::Fixed4k, false));
    println!(
        "fixed4k, best zero-loss setting: dropbench {:.3} M ops/s, libbpf {:.3} M ops/s: {:.2}x (goal >= 1, {NOISE_FLOOR} with noise)",
        fixed_db / 1e6,
        fixed_lb / 1e6,
        if fixed_lb > 0.0 { fixed_db / fixed_lb } else { f64::NAN }
    );
    let held = runs.iter().filter(|r| r.holds()).count();
    println!(
        "dropbench's reader held against libbpf's (lost no more, slowed the load no more) on {held} of {} settings",
        runs.len()
    );
    for r in runs.iter().filter(|r| !r.holds()) {
        println!(
            "  missed: {} {} {}: db/lb {}, lost {:.3}% vs {:.3}%",
            r.setting.layout.name(),
            r.setting.transport.name(),
            r.setting.wakeup,
            r.vs_libbpf(),
            pct(&r.db()),
            pct(&r.lb())
        );
    }
}

/// One line of the table: a round, or every round of a setting, judged by
/// [`SettingRuns::holds`].
fn row(sr: &SettingRuns, label: &str) {
    let (s, db, lb) = (&sr.setting, &sr.db(), &sr.lb());
    println!(
        "{:<7} {:<9} {:<22} {:<10} | {:>9.3} {:>9} {:>7.3}% {:>6.2}s | {:>9.3} {:>9} {:>7.3}% {:>6.2}s | {:>9.3} | {:>5.2} {:>6}",
        s.layout.name(),
        s.transport.name(),
        s.wakeup.to_string(),
        label,
        db.ops_per_s / 1e6,
        db.lost,
        pct(db),
        db.reader_cpu_s,
        lb.ops_per_s / 1e6,
        lb.lost,
        pct(lb),
        lb.reader_cpu_s,
        sr.untraced() / 1e6,
        sr.vs_libbpf().mean,
        if sr.holds() { "yes" } else { "NO" }
    );
}
