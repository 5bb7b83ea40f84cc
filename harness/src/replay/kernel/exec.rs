//! `--variant exec:'COMMAND'`: the user's own reader, started on the pinned rings.
//!
//! The program runs under `sh -c` in its own process group, with the pin paths
//! and the event ABI facts in its environment ([`environment`],
//! docs/byo-reader.md). dropbench waits for it to be ready ([`Ready`]), runs
//! the injection, gives it [`ExecSpec::drain`] to catch up, then stops the
//! whole group: SIGTERM, up to [`ExecSpec::grace`], then SIGKILL. The loss is
//! taken from the injector's kernel counters, so the program needs no
//! cooperation beyond reading the ring.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use probes::abi::{ABI_VERSION, FIXED4K_LEN, HEADER_LEN};
use probes::inject::Pins;

use crate::replay::RingConfig;

/// How dropbench learns that the reader has opened the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// The file `$DROPBENCH_READY_FILE` exists, or (perf) every online CPU's
    /// slot of the pinned perf event array holds a perf event: the reader has
    /// stored its own (what `perf_buffer__new` and `bpftool map event_pipe` do).
    Auto,
    /// Only the file `$DROPBENCH_READY_FILE`.
    File,
    /// A fixed wait, for programs that cannot signal.
    After(Duration),
}

impl std::str::FromStr for Ready {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Ready::Auto),
            "file" => Ok(Ready::File),
            _ => match s.strip_prefix("after:").map(crate::replay::parse_duration) {
                Some(Ok(d)) => Ok(Ready::After(d)),
                _ => Err(format!(
                    "bad ready handshake {s:?}; expected auto, file or after:DURATION (e.g. after:500ms)"
                )),
            },
        }
    }
}

/// An outside reader to run.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// Run with `sh -c`.
    pub command: String,
    pub ready: Ready,
    /// How long to wait for the ready signal.
    pub ready_timeout: Duration,
    /// Time given to the reader to catch up after the last injection, before
    /// it is stopped. The ring buffer's backlog is watched, and the wait ends
    /// early once it is empty; perf rings belong to the reader and cannot be
    /// watched, so the whole time is waited.
    pub drain: Duration,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Where bpffs is (or gets mounted).
    pub bpffs: PathBuf,
}

impl ExecSpec {
    pub fn new(command: impl Into<String>) -> Self {
        ExecSpec {
            command: command.into(),
            ready: Ready::Auto,
            ready_timeout: Duration::from_secs(10),
            drain: Duration::from_millis(500),
            grace: Duration::from_secs(2),
            bpffs: PathBuf::from(probes::pin::DEFAULT_BPFFS),
        }
    }
}

/// Why the outside reader could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("starting the exec reader `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("the exec reader `{command}` exited ({status}) before it was ready")]
    ExitedEarly { command: String, status: String },
    #[error("the exec reader `{command}` did not signal ready within {waited:.0?}: {hint}")]
    NotReady {
        command: String,
        waited: Duration,
        hint: &'static str,
    },
    #[error("waiting for the exec reader `{command}`: {source}")]
    Wait {
        command: String,
        source: std::io::Error,
    },
    #[error("creating a directory for the ready file: {source}")]
    ReadyDir { source: std::io::Error },
}

/// What became of the outside reader.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExecReport {
    pub command: String,
    /// How it ended: `exit N`, or `signal N` (SIGTERM is dropbench stopping it).
    pub status: String,
    /// It exited on its own while events were still being injected.
    pub exited_during_run: bool,
    /// From start to ready.
    pub ready_after_ns: u64,
    /// The pin directory (removed when the run ended).
    pub pins: PathBuf,
}

/// The variables the program gets (docs/byo-reader.md lists them).
pub fn environment(
    pins: &Pins,
    rings: &RingConfig,
    layout: probes::abi::Layout,
    cpus: &[u32],
    ready_file: &Path,
) -> Vec<(&'static str, String)> {
    let cpus = cpus
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    vec![
        ("DROPBENCH_PIN_DIR", pins.dir.display().to_string()),
        ("DROPBENCH_PIN_EVENTS", pins.events.display().to_string()),
        (
            "DROPBENCH_PIN_COUNTERS",
            pins.counters.display().to_string(),
        ),
        ("DROPBENCH_TRANSPORT", rings.transport.to_string()),
        ("DROPBENCH_RING_BYTES", rings.ring_bytes.to_string()),
        ("DROPBENCH_WAKEUP", rings.wakeup.to_string()),
        ("DROPBENCH_CPUS", cpus),
        ("DROPBENCH_LAYOUT", layout.to_string()),
        ("DROPBENCH_ABI_VERSION", ABI_VERSION.to_string()),
        ("DROPBENCH_HEADER_BYTES", HEADER_LEN.to_string()),
        ("DROPBENCH_EVENT_MAX_BYTES", FIXED4K_LEN.to_string()),
        ("DROPBENCH_READY_FILE", ready_file.display().to_string()),
    ]
}

/// The running program. Dropping it stops the whole process group.
pub struct ExecReader {
    command: String,
    child: Child,
    started: Instant,
    status: Option<ExitStatus>,
    ready_dir: tempfile::TempDir,
}

impl ExecReader {
    /// A directory for the ready file (outside bpffs, which holds only pins).
    pub fn ready_dir() -> Result<tempfile::TempDir, ExecError> {
        tempfile::Builder::new()
            .prefix("dropbench-ready-")
            .tempdir()
            .map_err(|source| ExecError::ReadyDir { source })
    }

    /// Starts `sh -c COMMAND` with `env`, in a process group of its own.
    pub fn spawn(
        command: &str,
        env: &[(&'static str, String)],
        ready_dir: tempfile::TempDir,
    ) -> Result<ExecReader, ExecError> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(command).process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // SAFETY: prctl is async-signal-safe; the child gets SIGTERM if dropbench
        // dies without stopping it (e.g. SIGKILL).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let started = Instant::now();
        let child = cmd.spawn().map_err(|source| ExecError::Spawn {
            command: command.to_string(),
            source,
        })?;
        Ok(ExecReader {
            command: command.to_string(),
            child,
            started,
            status: None,
            ready_dir,
        })
    }

    pub fn ready_file(&self) -> PathBuf {
        self.ready_dir.path().join("ready")
    }

    /// Its exit status, if it has exited (without waiting).
    pub fn exited(&mut self) -> Result<Option<ExitStatus>, ExecError> {
        if self.status.is_none() {
            self.status = self.child.try_wait().map_err(|source| ExecError::Wait {
                command: self.command.clone(),
                source,
            })?;
        }
        Ok(self.status)
    }

    /// Waits until the program is ready. `slots_filled` answers, for perf,
    /// whether every CPU's perf event array slot holds an event (`None` for
    /// the ring buffer). Returns how long it took; `Ok(None)` if `stop` was set.
    pub fn wait_ready(
        &mut self,
        ready: Ready,
        timeout: Duration,
        stop: &AtomicBool,
        mut slots_filled: Option<&mut dyn FnMut() -> bool>,
    ) -> Result<Option<Duration>, ExecError> {
        let file = self.ready_file();
        loop {
            if stop.load(Ordering::Acquire) {
                return Ok(None);
            }
            if let Some(st) = self.exited()? {
                return Err(ExecError::ExitedEarly {
                    command: self.command.clone(),
                    status: describe(st),
                });
            }
            let waited = self.started.elapsed();
            let is_ready = match ready {
                Ready::After(d) => waited >= d,
                Ready::File => file.exists(),
                Ready::Auto => file.exists() || slots_filled.as_mut().is_some_and(|f| f()),
            };
            if is_ready {
                return Ok(Some(waited));
            }
            if waited >= timeout {
                return Err(ExecError::NotReady {
                    command: self.command.clone(),
                    waited,
                    hint: match (ready, slots_filled.is_some()) {
                        (Ready::Auto, true) => "it should store its perf events in $DROPBENCH_PIN_EVENTS (perf_buffer__new does) or create $DROPBENCH_READY_FILE; or pass --exec-ready after:DURATION",
                        _ => "it should create the file $DROPBENCH_READY_FILE once it has opened the ring, or pass --exec-ready after:DURATION",
                    },
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the program's process group: SIGTERM, up to `grace` for the
    /// group to exit (the program may be a child of `sh`, draining and
    /// printing after `sh` itself is gone), then SIGKILL for what is left.
    /// Returns how the program (`sh -c`'s process) ended.
    pub fn stop(&mut self, grace: Duration) -> Result<String, ExecError> {
        let pgid = self.child.id() as i32;
        // SAFETY: signalling our child's process group; ESRCH once it is gone is fine.
        unsafe { libc::killpg(pgid, libc::SIGTERM) };
        let until = Instant::now() + grace;
        loop {
            let leader_gone = self.exited()?.is_some();
            // SAFETY: signal 0 only checks whether any member of the group exists.
            let group_gone = unsafe { libc::killpg(pgid, 0) } != 0;
            if (leader_gone && group_gone) || Instant::now() >= until {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: as above.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
        let st = match self.status {
            Some(st) => st,
            None => self.child.wait().map_err(|source| ExecError::Wait {
                command: self.command.clone(),
                source,
            })?,
        };
        self.status = Some(st);
        Ok(describe(st))
    }
}

impl Drop for ExecReader {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.stop(Duration::from_millis(200));
        }
    }
}

fn describe(st: ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => st.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_handshakes_parse() {
        assert_eq!("auto".parse::<Ready>(), Ok(Ready::Auto));
        assert_eq!("file".parse::<Ready>(), Ok(Ready::File));
        assert_eq!(
            "after:250ms".parse::<Ready>(),
            Ok(Ready::After(Duration::from_millis(250)))
        );
        assert!("after:soon".parse::<Ready>().is_err());
        assert!("line".parse::<Ready>().unwrap_err().contains("auto, file"));
    }

    #[test]
    fn a_reader_that_dies_early_or_never_signals_gets_a_clear_error() {
        let stop = AtomicBool::new(false);
        let mut r = ExecReader::spawn("exit 3", &[], ExecReader::ready_dir().unwrap()).unwrap();
        let e = r
            .wait_ready(Ready::File, Duration::from_secs(5), &stop, None)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("exited (exit 3) before it was ready"),
            "{e}"
        );

        let mut r = ExecReader::spawn("sleep 30", &[], ExecReader::ready_dir().unwrap()).unwrap();
        let e = r
            .wait_ready(Ready::File, Duration::from_millis(50), &stop, None)
            .unwrap_err();
        assert!(e.to_string().contains("DROPBENCH_READY_FILE"), "{e}");
        assert_eq!(r.stop(Duration::from_secs(2)).unwrap(), "signal 15");
    }

    #[test]
    fn the_ready_file_and_the_environment_reach_the_program() {
        let stop = AtomicBool::new(false);
        let dir = ExecReader::ready_dir().unwrap();
        let file = dir.path().join("ready");
        let env = vec![("DROPBENCH_READY_FILE", file.display().to_string())];
        let mut r =
            ExecReader::spawn("touch \"$DROPBENCH_READY_FILE\"; exec sleep 30", &env, dir).unwrap();
        let waited = r
            .wait_ready(Ready::File, Duration::from_secs(10), &stop, None)
            .unwrap();
        assert!(waited.is_some());
        // SIGTERM reaches the whole group: sh exec'ed sleep, which dies of it.
        assert_eq!(r.stop(Duration::from_secs(2)).unwrap(), "signal 15");
    }
}
