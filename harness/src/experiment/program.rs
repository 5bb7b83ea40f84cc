//! A real command as a live cell's traffic (`harness live --run`,
//! `harness record --run`, `harness fidelity`).
//!
//! The command runs under `sh -c` in a cgroup v2 of its own, made for it and
//! removed afterwards, so the probes' cgroup filter traces its whole process
//! tree and nothing else. The child joins the cgroup between fork and exec,
//! so its first syscall is already traced. While it runs, [`CpuSampler`]
//! records what its tasks use of each CPU ([`CpuProfile`]): the cgroup's
//! `cpu.stat` gives the exact total (exited tasks included), and each live
//! task's `schedstat` and last CPU split it over the CPUs.

use std::collections::HashMap;
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::capture::cpu_profile::CpuProfile;

/// Why a command could not be run as a cell's traffic.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("--run needs a command, e.g. --run 'du -s /usr'")]
    Empty,
    #[error("no cgroup v2 hierarchy is mounted and mounting one failed; a real command's process tree is traced through one (mount -t cgroup2 none DIR)")]
    NoCgroup2,
    #[error("cgroup {path}: {op}: {source}")]
    Cgroup {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("starting `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("waiting for `{command}`: {source}")]
    Wait {
        command: String,
        source: std::io::Error,
    },
}

/// The cgroup v2 mount point (`/sys/fs/cgroup` on a unified host,
/// `/sys/fs/cgroup/unified` on a hybrid one). A host that mounts only cgroup
/// v1 controllers (these machines, fresh) gets the v2 hierarchy mounted at
/// `$TMPDIR/dropbench-cgroup2`, left there for the next run: it is the one
/// v2 hierarchy every mount shows, and `bpf_get_current_cgroup_id` reads ids from it.
pub fn cgroup2_root() -> Result<PathBuf, ProgramError> {
    if let Some(p) = mounted_cgroup2() {
        return Ok(p);
    }
    let dir = std::env::temp_dir().join("dropbench-cgroup2");
    let _ = std::fs::create_dir_all(&dir);
    let target = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| ProgramError::NoCgroup2)?;
    // SAFETY: NUL-terminated strings that outlive the call; cgroup2 takes no data.
    let rc = unsafe {
        libc::mount(
            c"cgroup2".as_ptr(),
            target.as_ptr(),
            c"cgroup2".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(ProgramError::NoCgroup2);
    }
    Ok(dir)
}

fn mounted_cgroup2() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPER"
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

/// A cgroup made for one command: its tasks are killed and the directory
/// removed when it is dropped.
#[derive(Debug)]
pub struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// Creates `dropbench-PID-N` under the cgroup v2 root.
    pub fn create() -> Result<Cgroup, ProgramError> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = cgroup2_root()?.join(format!("dropbench-{}-{n}", std::process::id()));
        std::fs::create_dir(&path).map_err(|source| ProgramError::Cgroup {
            path: path.clone(),
            op: "create",
            source,
        })?;
        Ok(Cgroup { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// CPU time its tasks used so far, ns (`cpu.stat`'s `usage_usec`,
    /// exited tasks included).
    pub fn usage_ns(&self) -> Option<u64> {
        let s = std::fs::read_to_string(self.path.join("cpu.stat")).ok()?;
        s.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|us| us * 1000)
    }

    /// Thread ids in it now.
    pub fn threads(&self) -> Vec<u32> {
        std::fs::read_to_string(self.path.join("cgroup.threads"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Whatever the command left running goes with it (cgroup.kill, 5.14+;
        // else one SIGKILL per process), then the empty directory.
        if std::fs::write(self.path.join("cgroup.kill"), "1").is_err() {
            for pid in std::fs::read_to_string(self.path.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
            {
                // SAFETY: kill(2) on a pid read from our own cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        for _ in 0..200 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        tracing::warn!("could not remove cgroup {}", self.path.display());
    }
}

pub use crate::results::CommandOutcome;

/// A command to run in its own cgroup, then running there.
pub struct TracedCommand {
    command: String,
    child: Option<Child>,
    started: Instant,
    /// Its status and when it was first seen to have exited.
    ended: Option<(ExitStatus, Instant)>,
    stderr: Option<std::process::ChildStderr>,
}

impl TracedCommand {
    /// `sh -c COMMAND`, not started yet ([`TracedCommand::start`]).
    pub fn pending(command: &str) -> TracedCommand {
        TracedCommand {
            command: command.to_string(),
            child: None,
            started: Instant::now(),
            ended: None,
            stderr: None,
        }
    }

    /// Starts it inside `cgroup` (it joins before exec); its stdout is
    /// discarded, its stderr kept for the failure message.
    pub fn start(&mut self, cgroup: &Cgroup) -> Result<(), ProgramError> {
        if self.command.trim().is_empty() {
            return Err(ProgramError::Empty);
        }
        let procs = std::ffi::CString::new(
            cgroup
                .path()
                .join("cgroup.procs")
                .as_os_str()
                .as_encoded_bytes(),
        )
        .map_err(|_| ProgramError::Cgroup {
            path: cgroup.path().to_path_buf(),
            op: "name",
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&self.command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec the child only calls async-signal-safe
        // functions (open, write, close, getpid) on memory allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let mut digits = [0u8; 12];
                let mut pid = libc::getpid() as u32;
                let mut i = digits.len();
                loop {
                    i -= 1;
                    digits[i] = b'0' + (pid % 10) as u8;
                    pid /= 10;
                    if pid == 0 {
                        break;
                    }
                }
                let n = digits.len() - i;
                let wrote = libc::write(fd, digits[i..].as_ptr().cast(), n);
                libc::close(fd);
                if wrote != n as isize {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.started = Instant::now();
        let mut child = cmd.spawn().map_err(|source| ProgramError::Spawn {
            command: self.command.clone(),
            source,
        })?;
        self.stderr = child.stderr.take();
        self.child = Some(child);
        Ok(())
    }

    /// Starts `command` inside `cgroup` ([`TracedCommand::start`]).
    pub fn spawn(command: &str, cgroup: &Cgroup) -> Result<TracedCommand, ProgramError> {
        let mut c = TracedCommand::pending(command);
        c.start(cgroup)?;
        Ok(c)
    }

    pub fn command(&self) -> &str {
        &self.command
    }

    /// Whether it was started and has not exited; the moment it is first
    /// seen to have exited is its end (callers poll every millisecond or so).
    pub fn running(&mut self) -> bool {
        if self.ended.is_some() {
            return false;
        }
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                self.ended = Some((status, Instant::now()));
                false
            }
            Some(Err(_)) | None => false,
        }
    }

    /// Waits for it, up to `limit` from its start; past that it is killed.
    pub fn wait(mut self, limit: Duration) -> Result<CommandOutcome, ProgramError> {
        let command = self.command.clone();
        let err = |source| ProgramError::Wait {
            command: command.clone(),
            source,
        };
        let Some(child) = self.child.as_mut() else {
            return Err(err(std::io::Error::other("it was never started")));
        };
        let (status, timed_out, end): (ExitStatus, bool, Instant) = loop {
            if let Some((s, at)) = self.ended {
                break (s, false, at);
            }
            if let Some(s) = child.try_wait().map_err(err)? {
                break (s, false, Instant::now());
            }
            if self.started.elapsed() >= limit {
                let _ = child.kill();
                break (child.wait().map_err(err)?, true, Instant::now());
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let ran_ns = end.duration_since(self.started).as_nanos() as u64;
        let mut text = String::new();
        if let Some(mut e) = self.stderr.take() {
            // Read after exit: what is left in the pipe (64 KiB at most).
            let _ = (&mut e).take(64 << 10).read_to_string(&mut text);
        }
        let failed = !status.success() || timed_out;
        Ok(CommandOutcome {
            command: self.command,
            exit_code: status.code(),
            ran_ns,
            timed_out,
            stderr_tail: text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .filter(|_| failed)
                .map(|l| l.chars().take(200).collect()),
        })
    }
}

/// Samples a cgroup's CPU use per CPU, every bucket, on a thread of its own.
pub struct CpuSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<CpuProfile>,
}

/// `/proc/TID/schedstat`'s first field (ns on a CPU) and `/proc/TID/stat`'s
/// field 39 (the CPU it last ran on).
fn task_cpu(tid: u32) -> Option<(u64, usize)> {
    let run = std::fs::read_to_string(format!("/proc/{tid}/schedstat")).ok()?;
    let run_ns = run.split_whitespace().next()?.parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from after its ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let cpu = after.split_whitespace().nth(36)?.parse().ok()?;
    Some((run_ns, cpu))
}

impl CpuSampler {
    /// Starts sampling `cgroup` (shared with the caller, who keeps it alive
    /// until [`CpuSampler::finish`]).
    pub fn start(cgroup: Arc<Cgroup>, cpus: usize, bucket_ns: u64) -> CpuSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut p = CpuProfile::new(cpus, bucket_ns, crate::host::monotonic_ns());
            let mut last: HashMap<u32, u64> = HashMap::new();
            let mut usage = cgroup.usage_ns().unwrap_or(0);
            let mut next = Instant::now();
            loop {
                let done = flag.load(Ordering::Acquire);
                let now = crate::host::monotonic_ns();
                // Each task's time since the last look, on the CPU it is on.
                let mut by_cpu = vec![0u64; cpus.max(1)];
                for tid in cgroup.threads() {
                    let Some((run_ns, cpu)) = task_cpu(tid) else {
                        continue;
                    };
                    let before = *last.entry(tid).or_insert(0);
                    last.insert(tid, run_ns);
                    if let Some(slot) = by_cpu.get_mut(cpu) {
                        *slot += run_ns.saturating_sub(before);
                    }
                }
                // The cgroup's own total counts tasks that exited meanwhile
                // too; it is split as the live tasks' time was (or, if none
                // ran, over the CPU of the largest share last time).
                let total = match cgroup.usage_ns() {
                    Some(u) => {
                        let d = u.saturating_sub(usage);
                        usage = u;
                        d
                    }
                    None => by_cpu.iter().sum(),
                };
                let seen: u64 = by_cpu.iter().sum();
                if total > 0 {
                    for (cpu, &ns) in by_cpu.iter().enumerate() {
                        let share = match seen {
                            0 => 1.0 / by_cpu.len() as f64,
                            _ => ns as f64 / seen as f64,
                        };
                        let part = (total as f64 * share).round() as u64;
                        if part > 0 {
                            // Credited to the bucket that just ended.
                            p.add(cpu, now.saturating_sub(1), part);
                        }
                    }
                }
                if done {
                    break;
                }
                next += Duration::from_nanos(bucket_ns);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            p.tasks = last.len() as u32;
            p
        });
        CpuSampler { stop, thread }
    }

    /// Takes a last sample and returns the profile.
    pub fn finish(self) -> CpuProfile {
        self.stop.store(true, Ordering::Release);
        self.thread.join().unwrap_or_else(|_| {
            CpuProfile::new(0, crate::capture::cpu_profile::DEFAULT_BUCKET_NS, 0)
        })
    }
}
