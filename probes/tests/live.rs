//! Privileged tests against the real kernel, every one: ignored unless the
//! `privileged-tests` feature is on, and then a process that cannot load BPF
//! fails them (tests/support/mod.rs). Only a missing kernel feature (cgroup v2)
//! skips, and under CI=true even that fails.

mod support;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::Mutex;
use std::time::Duration;

use probes::abi::{Event, Kind, Layout, Syscall};
use probes::loader::{Filter, Hook, Probe, ProbeSpec, Transport, Wakeup};
use probes::record::{Batch, RecordRef};
use support::{drain, read_available, require_bpf, skip_missing};

/// Probes share the same tracepoints; run one live test at a time.
static LIVE: Mutex<()> = Mutex::new(());

/// Issues one syscall of `sys` on `path` directly, so the tracepoint that fires is exactly that one.
fn issue(sys: Syscall, path: &CString) {
    let mut st = [0u8; 256];
    // SAFETY: valid NUL-terminated path and buffers big enough for each call's output.
    unsafe {
        match sys {
            Syscall::Openat => {
                let fd = libc::syscall(
                    libc::SYS_openat,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    libc::O_RDONLY | libc::O_CLOEXEC,
                    0o640,
                );
                if fd >= 0 {
                    libc::close(fd as i32);
                }
            }
            Syscall::Openat2 => {
                let how: [u64; 3] = [(libc::O_RDONLY | libc::O_CLOEXEC) as u64, 0, 0];
                let fd = libc::syscall(
                    libc::SYS_openat2,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    how.as_ptr(),
                    24usize,
                );
                if fd >= 0 {
                    libc::close(fd as i32);
                }
            }
            Syscall::Newfstatat => {
                libc::syscall(
                    libc::SYS_newfstatat,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    st.as_mut_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                );
            }
            Syscall::Statx => {
                libc::syscall(
                    libc::SYS_statx,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    0,
                    libc::STATX_BASIC_STATS,
                    st.as_mut_ptr(),
                );
            }
            Syscall::Newstat => {
                libc::syscall(libc::SYS_stat, path.as_ptr(), st.as_mut_ptr());
            }
            Syscall::Newlstat => {
                libc::syscall(libc::SYS_lstat, path.as_ptr(), st.as_mut_ptr());
            }
        }
    }
}

/// The (flags, mode) a probe records for the call [`issue`] makes: each is a
/// different argument register, so a probe that reads the wrong one shows.
fn issued_flags_and_mode(sys: Syscall) -> (u32, u32) {
    let open = (libc::O_RDONLY | libc::O_CLOEXEC) as u32;
    match sys {
        // openat ignores the mode without O_CREAT; openat2 refuses one (EINVAL).
        Syscall::Openat => (open, 0o640),
        Syscall::Openat2 => (open, 0),
        Syscall::Newfstatat => (libc::AT_SYMLINK_NOFOLLOW as u32, 0),
        Syscall::Statx => (0, libc::STATX_BASIC_STATS),
        Syscall::Newstat | Syscall::Newlstat => (0, 0),
    }
}

/// Drains `probe`'s reader until it closes, returning (samples, lost markers' total).
fn drain_all(probe: &mut Probe) -> (Vec<Vec<u8>>, u64) {
    probe.detach().unwrap();
    let stop = probe.stop_handle();
    let mut src = probe.take_source().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Release);
    let d = drain(&mut *src);
    let lost = d.lost_total();
    (d.into_samples(), lost)
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn known_calls_are_captured_exactly_for_every_layout_transport_and_hook() {
    require_bpf();
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let cells = Layout::ALL.iter().flat_map(|l| {
        Transport::ALL
            .iter()
            .flat_map(move |t| Hook::ALL.iter().map(move |h| (l, t, h)))
    });
    for (layout, transport, hook) in cells {
        {
            let mut spec = ProbeSpec::new(*layout, *transport);
            spec.hook = *hook;
            spec.ring_bytes = 4 << 20;
            spec.filter = Filter::Tgids(vec![pid]);
            spec.wakeup = Wakeup::default_for(*transport);
            // N known calls: every syscall on 5 paths each, half of them missing files
            // (created before attaching, so creating them is not traced).
            let paths: Vec<_> = (0..5)
                .map(|i| {
                    dir.path()
                        .join(format!("known-{layout}-{transport}-{hook}-{i}"))
                })
                .collect();
            for p in paths.iter().step_by(2) {
                std::fs::write(p, b"x").unwrap();
            }
            let mut probe =
                Probe::load(&spec).unwrap_or_else(|e| panic!("{layout}/{transport}/{hook}: {e}"));
            let mut expected: BTreeMap<(String, Syscall), usize> = BTreeMap::new();
            for p in &paths {
                let c = CString::new(p.to_str().unwrap()).unwrap();
                for s in Syscall::ALL {
                    issue(*s, &c);
                    *expected
                        .entry((p.to_str().unwrap().to_string(), *s))
                        .or_default() += 1;
                }
            }
            let (samples, lost) = drain_all(&mut probe);
            assert_eq!(
                lost, 0,
                "{layout}/{transport}/{hook}: nothing should be lost at this rate"
            );
            let marker = format!("known-{layout}-{transport}-{hook}-");
            let mut got: BTreeMap<(String, Syscall), usize> = BTreeMap::new();
            let (mut exits, mut missing) = (0, 0);
            for s in &samples {
                let e = Event::decode(s).unwrap();
                assert_eq!(e.header.pid, pid);
                assert_eq!(e.header.layout, *layout as u8);
                if e.kind() == Some(Kind::Exit) {
                    exits += 1;
                    missing += (e.header.ret == -(libc::ENOENT as i64)) as usize;
                    continue;
                }
                let path = String::from_utf8_lossy(e.path).to_string();
                if path.contains(&marker) {
                    if *layout == Layout::Fixed4k {
                        assert!(
                            s.len() >= probes::abi::FIXED4K_LEN,
                            "fixed4k sends the whole buffer"
                        );
                    } else {
                        assert!(
                            s.len() < 512,
                            "compact sends only what is used, got {}",
                            s.len()
                        );
                    }
                    let sys = e.syscall().unwrap();
                    assert_eq!(
                        (e.header.flags, e.header.mode, e.header.dfd),
                        {
                            let (f, m) = issued_flags_and_mode(sys);
                            (f, m, libc::AT_FDCWD)
                        },
                        "{layout}/{transport}/{hook}: {sys:?}'s arguments"
                    );
                    *got.entry((path, sys)).or_default() += 1;
                }
            }
            assert_eq!(
                got, expected,
                "{layout}/{transport}/{hook}: the capture must hold exactly the issued calls"
            );
            assert!(
                exits >= expected.len(),
                "{layout}/{transport}/{hook}: exit events carry return values"
            );
            // Two of the five paths are missing: each syscall on them fails with ENOENT.
            assert!(
                missing >= 2 * Syscall::ALL.len(),
                "{layout}/{transport}/{hook}: {missing} exits returned -ENOENT"
            );
            let k = probe.counters().unwrap().total();
            assert_eq!(k.failed(), 0);
        }
    }
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn tgid_filter_holds_with_targets_inline_and_in_the_hash() {
    require_bpf();
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    let path = CString::new("/nonexistent/dropbench-filter").unwrap();
    // tgids that are no process's (pid_max is at most 2^22).
    let others: Vec<u32> = (0..probes::abi::INLINE_TGIDS as u32)
        .map(|i| (1 << 23) + i)
        .collect();
    let with_us = |mut v: Vec<u32>| {
        v.push(pid);
        v
    };
    let cases = [
        ("alone, inline", vec![pid], true),
        ("among others, inline", with_us(others[1..].to_vec()), true),
        (
            "among more than fit inline: the hash",
            with_us(others.clone()),
            true,
        ),
        ("absent, inline", others[1..].to_vec(), false),
        (
            "absent, the hash",
            (0..5).map(|i| (1 << 23) + i).collect::<Vec<u32>>(),
            false,
        ),
    ];
    for (what, tgids, traced) in cases {
        let mut spec = ProbeSpec::new(Layout::Compact, Transport::Ringbuf);
        spec.ring_bytes = 1 << 20;
        spec.wakeup = Wakeup::Adaptive;
        spec.filter = Filter::Tgids(tgids);
        spec.emit_exit = false;
        let mut probe = Probe::load(&spec).unwrap_or_else(|e| panic!("{what}: {e}"));
        for _ in 0..10 {
            issue(Syscall::Newfstatat, &path);
        }
        let (samples, lost) = drain_all(&mut probe);
        assert_eq!(lost, 0, "{what}");
        let ours = samples
            .iter()
            .filter(|s| Event::decode(s).unwrap().path == path.as_bytes())
            .count();
        assert_eq!(ours, if traced { 10 } else { 0 }, "{what}");
        let k = probe.counters().unwrap().total();
        if !traced {
            assert!(k.filtered >= 10, "{what}: filtered {}", k.filtered);
        }
    }
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn tiny_buffer_loses_samples_and_kernel_counters_balance() {
    require_bpf();
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    let path = CString::new("/nonexistent/dropbench-burst").unwrap();
    for transport in Transport::ALL {
        let mut spec = ProbeSpec::new(Layout::Fixed4k, *transport);
        // Perf: 2 pages per CPU hold one 4160-byte fixed4k record at a time
        // (8 + 4 + 4148 bytes). Ring buffer: 16 KiB hold three (4152 + 8 each).
        spec.ring_bytes = match transport {
            Transport::Perf => 8192,
            Transport::Ringbuf => 16384,
        };
        spec.wakeup = Wakeup::default_for(*transport);
        spec.filter = Filter::Tgids(vec![pid]);
        spec.emit_exit = false;
        let mut probe = Probe::load(&spec).unwrap();
        // A burst with nobody reading.
        for _ in 0..2000 {
            issue(Syscall::Newfstatat, &path);
        }
        let mut src = probe.take_source().unwrap();
        let (mut read, mut lost) = (0u64, 0u64);
        let mut tally = |src: &mut Box<dyn probes::record::RecordSource>| {
            read_available(&mut **src, &mut |r| match r {
                RecordRef::Sample { .. } => read += 1,
                RecordRef::Lost { count, .. } => lost += count,
            });
        };
        tally(&mut src);
        // Perf reports losses in a PERF_RECORD_LOST written ahead of the next sample
        // that fits: with the ring drained, one more call makes room for it.
        issue(Syscall::Newfstatat, &path);
        std::thread::sleep(Duration::from_millis(30)); // past the ring buffer reader's 10 ms counter poll
        tally(&mut src);
        probe.detach().unwrap();
        tally(&mut src);
        let k = probe.counters().unwrap().total();
        assert!(
            lost > 0,
            "{transport}: a tiny buffer under a burst must lose samples (read {read})"
        );
        assert_eq!(
            k.emitted,
            k.output_ok + k.failed(),
            "{transport}: every output attempt is counted once: {k:?}"
        );
        assert_eq!(
            k.emitted,
            read + lost,
            "{transport}: emitted = read + lost (kernel {k:?}, read {read}, lost {lost})"
        );
        assert_eq!(
            k.output_ok, read,
            "{transport}: every record the kernel accepted was read"
        );
        eprintln!("{transport}: emitted {} read {read} lost {lost}", k.emitted);
    }
}

/// Pins the calling thread to `cpu`, returning its previous CPU set.
fn pin_to(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain data; the calls read/write only the sets given.
    unsafe {
        let mut old: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut old);
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one),
            0
        );
        old
    }
}

/// The kernel's wakeup rule, which the emulated perf rings reproduce: with
/// `events:4` the reader is not woken (and drains nothing) until the 4th sample.
#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn perf_reader_sees_nothing_before_wakeup_events_samples_live() {
    require_bpf();
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut spec = ProbeSpec::new(Layout::Compact, Transport::Perf);
    spec.ring_bytes = 1 << 20;
    spec.wakeup = Wakeup::Events(4);
    spec.filter = Filter::Tgids(vec![std::process::id()]);
    spec.emit_exit = false;
    let mut probe = Probe::load(&spec).unwrap();
    let mut src = probe.take_source().unwrap();
    // All four samples on one CPU's ring.
    // SAFETY: no preconditions.
    let cpu = unsafe { libc::sched_getcpu() }.max(0) as usize;
    let old = pin_to(cpu);
    let path = CString::new("/nonexistent/dropbench-wakeup-rule").unwrap();
    let mut marked = 0;
    let mut count = |r: RecordRef<'_>| {
        if let RecordRef::Sample { data, .. } = r {
            if Event::decode(data).unwrap().path == path.as_bytes() {
                marked += 1;
            }
        }
    };
    // Attaching opened tracefs files, which the attached programs traced (this
    // is our tgid): wakeups may be pending, and up to 3 samples may wait
    // below the rule on this ring. Take the pending wakeups, then issue
    // samples until this ring's wakeup fires: its event count then starts at 0.
    let pending = |src: &mut Box<dyn probes::record::RecordSource>| {
        let b = src.read_batch(4096, Duration::from_millis(50), &mut |_| {});
        matches!(b, Ok(Batch::Records(_)))
    };
    while pending(&mut src) {}
    let settle = CString::new("/nonexistent/dropbench-wakeup-settle").unwrap();
    let settled = (0..8).any(|_| {
        issue(Syscall::Newfstatat, &settle);
        pending(&mut src)
    });
    for _ in 0..3 {
        issue(Syscall::Newfstatat, &path);
    }
    let before = src
        .read_batch(4096, Duration::from_millis(100), &mut count)
        .unwrap();
    issue(Syscall::Newfstatat, &path);
    let after = src
        .read_batch(4096, Duration::from_secs(5), &mut count)
        .unwrap();
    // SAFETY: restoring the set read above.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &old) };
    assert!(settled, "the ring's wakeup never fired");
    assert_eq!(before, Batch::Idle, "no wakeup before the 4th sample");
    assert!(matches!(after, Batch::Records(n) if n >= 4), "{after:?}");
    assert_eq!(marked, 4, "the 4th sample's wakeup hands out all 4");
}

/// The cgroup v2 mount point, if any (hybrid hosts mount it at /sys/fs/cgroup/unified).
fn cgroup2_root() -> Option<std::path::PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[2] == "cgroup2").then(|| std::path::PathBuf::from(f[1]))
    })
}

/// A cgroup v2 hierarchy this test mounted itself (fresh machines of the CI
/// kind mount only v1 controllers; docs/tuning.md), unmounted on drop.
struct OwnMount(std::path::PathBuf);

impl OwnMount {
    fn cgroup2() -> std::io::Result<OwnMount> {
        let dir = std::env::temp_dir().join(format!("dropbench-cgroup2-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let target = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid NUL-terminated strings; cgroup2 takes no data argument.
        let r = unsafe {
            libc::mount(
                c"cgroup2".as_ptr(),
                target.as_ptr(),
                c"cgroup2".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            let _ = std::fs::remove_dir(&dir);
            return Err(e);
        }
        Ok(OwnMount(dir))
    }
}

impl Drop for OwnMount {
    fn drop(&mut self) {
        let target = CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: unmounting what `cgroup2` mounted.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn cgroup_filter_traces_only_tasks_in_the_cgroup() {
    require_bpf();
    // Use the host's cgroup v2 mount, or mount one (root may; a kernel
    // without cgroup2 is a missing feature, still a failure under CI=true).
    let mut _own = None;
    let root = match cgroup2_root() {
        Some(r) => r,
        None => match OwnMount::cgroup2() {
            Ok(m) => {
                let r = m.0.clone();
                _own = Some(m);
                r
            }
            Err(e) => {
                skip_missing(&format!("no cgroup2 mount, and mounting one failed: {e}"));
                return;
            }
        },
    };
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let cg = root.join(format!("dropbench-test-{}", std::process::id()));
    std::fs::create_dir_all(&cg).unwrap();
    let mut spec = ProbeSpec::new(Layout::Compact, Transport::Perf);
    spec.ring_bytes = 1 << 20;
    spec.wakeup = Wakeup::Events(1);
    spec.filter = Filter::Cgroup(cg.clone());
    spec.emit_exit = false;
    let mut probe = Probe::load(&spec).unwrap();
    // Outside the cgroup: this process. Inside: a child that moves itself in first.
    let outside = CString::new("/nonexistent/dropbench-cgroup-outside").unwrap();
    issue(Syscall::Newfstatat, &outside);
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec stat /nonexistent/dropbench-cgroup-inside",
            cg.display()
        ))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success(), "stat of a missing file fails, as intended");
    let (samples, _) = drain_all(&mut probe);
    let paths: Vec<String> = samples
        .iter()
        .map(|s| String::from_utf8_lossy(Event::decode(s).unwrap().path).to_string())
        .collect();
    let _ = std::fs::remove_dir(&cg);
    assert!(
        paths
            .iter()
            .any(|p| p == "/nonexistent/dropbench-cgroup-inside"),
        "the child's stat is traced: {paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.contains("cgroup-outside")),
        "tasks outside the cgroup are filtered out"
    );
    assert!(probe.counters().unwrap().total().filtered > 0);
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn run_time_stats_count_every_program_run_and_its_time() {
    require_bpf();
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    let path = CString::new("/nonexistent/dropbench-run-time").unwrap();
    let mut spec = ProbeSpec::new(Layout::Compact, Transport::Perf);
    spec.ring_bytes = 1 << 20;
    spec.wakeup = Wakeup::Events(1);
    spec.filter = Filter::Tgids(vec![pid]);
    spec.emit_exit = true;
    let mut probe = Probe::load(&spec).unwrap();
    let stats = probes::loader::RunTimeStats::enable().unwrap();
    let on = probe.program_run_time().unwrap();
    const CALLS: u64 = 500;
    for _ in 0..CALLS {
        issue(Syscall::Newfstatat, &path);
    }
    let after = probe.program_run_time().unwrap().since(&on);
    drop(stats);
    let (samples, lost) = drain_all(&mut probe);
    // Each call runs the enter and the exit program; other processes' stat
    // calls run them too (and are filtered out), so at least 2 per call.
    assert!(after.runs >= 2 * CALLS, "{after:?}");
    // This process's other file syscalls (loading the probe, the test
    // harness) are traced too.
    let ours = samples.len() as u64 + lost;
    assert!(ours >= 2 * CALLS, "{ours} events for {CALLS} calls");
    // A run is at least a map lookup and a clock read: > 10 ns each, and far
    // under the 1 ms a run would take if the clock were misread.
    let per_run = after.run_ns / after.runs;
    assert!(
        (10..1_000_000).contains(&per_run),
        "{per_run} ns a run: {after:?}"
    );
}
