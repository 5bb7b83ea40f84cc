//! A real command as a cell's traffic: `record --run`, `live --run` and
//! `fidelity`. Needs root and eBPF: ignored unless the privileged-tests
//! feature is on. (Without privileges: tests/sweep_cli.rs.)

mod support;

use harness::capture::{Capture, Loading};
use harness::results::RunResult;
use support::cli::{assert_clear_error, harness, ok, text};
use support::root::require_bpf;
use support::tools::assert_tshark_reads_cleanly;

/// Serialises the tests that attach probes (they share the tracepoints).
static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A directory walk on every machine: a few thousand traced syscalls.
const WALK: &str = "du -s /usr/share/doc /usr/lib >/dev/null; exit 0";

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn a_recorded_command_carries_its_cpu_profile_and_tshark_reads_it() {
    require_bpf();
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("walk.pcapng");
    let out = harness()
        .args([
            "record",
            "--layout",
            "compact",
            "--ring-bytes",
            "16m",
            "--run",
            WALK,
            "-o",
        ])
        .arg(&cap)
        .output()
        .unwrap();
    let stdout = ok(&out);
    assert!(stdout.contains("exit 0 after"), "{stdout}");
    let c = Capture::open(&cap, Loading::Preload).unwrap();
    assert!(
        c.summary.samples > 1000,
        "the walk was traced: {:?}",
        c.summary
    );
    let p = c.cpu_profile.as_ref().expect("a CPU profile block");
    let busy: u64 = p.total_per_cpu().iter().sum();
    assert!(busy > 1_000_000, "the walk's CPU was sampled: {p:?}");
    assert!(p.buckets() >= 1 && p.tasks >= 1, "{p:?}");
    assert!(p.programs_ns.is_some_and(|ns| ns > 0), "{p:?}");
    assert_tshark_reads_cleanly(&cap);
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn a_live_cell_of_a_command_is_judged_only_when_the_command_ran_its_window() {
    require_bpf();
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("live.json");
    // A walk that lasts: judged, its ledger balanced against the kernel.
    let out = harness()
        .args(["live", "--variant", "compact", "--ring-bytes", "8MiB"])
        .args(["--warmup", "0s", "--window", "50ms", "--json"])
        .arg(&json)
        .args(["--run", WALK])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(stdout.contains("command   `du"), "{stdout}\n{stderr}");
    let r = RunResult::read(&json).unwrap();
    let k = r.ledger.as_ref().unwrap().kernel.unwrap();
    assert!(k.emitted > 1000, "{k:?}");
    assert_eq!(k.emitted, k.accepted + k.lost);
    let c = r
        .config
        .extra
        .command
        .as_ref()
        .expect("the command's outcome");
    assert_eq!(c.exit_code, Some(0));
    assert_ne!(
        r.verdict.as_ref().unwrap().kind,
        harness::results::VerdictKind::Unmeasured,
        "{:?}",
        r.verdict
    );

    // A command that fails: reported, not judged, exit 1.
    let out = harness()
        .args(["live", "--variant", "compact", "--window", "50ms", "--json"])
        .arg(&json)
        .args(["--run", "echo broken >&2; exit 3"])
        .output()
        .unwrap();
    let line = assert_clear_error(&out, 1, "not judged");
    assert!(
        line.contains("status 3") && line.contains("broken"),
        "{line}"
    );
    let r = RunResult::read(&json).unwrap();
    assert_eq!(
        r.verdict.as_ref().unwrap().kind,
        harness::results::VerdictKind::Unmeasured
    );
    // One shorter than the warm-up and window: the same.
    let out = harness()
        .args([
            "live",
            "--variant",
            "compact",
            "--window",
            "2s",
            "--run",
            "true",
        ])
        .output()
        .unwrap();
    let line = assert_clear_error(&out, 1, "shorter than the warm-up and window");
    assert!(line.contains("2250 ms"), "{line}");
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn fidelity_runs_every_side_with_the_same_reader_and_writes_its_distributions() {
    require_bpf();
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out = harness()
        .args(["fidelity", "--run", WALK, "--variant", "compact,recorder"])
        .args(["--ring-bytes", "64KiB", "--wakeup", "watermark:50%"])
        .args(["--repeats", "3", "--window", "10ms", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = ok(&out);
    assert!(
        stdout.contains("replay + co-runner against live"),
        "{stdout}"
    );
    let r: harness::experiment::fidelity::FidelityResults =
        serde_json::from_slice(&std::fs::read(dir.path().join("fidelity.json")).unwrap()).unwrap();
    assert_eq!(r.schema, harness::experiment::fidelity::SCHEMA);
    assert_eq!(r.cells.len(), 2);
    // A pipeline variant, and harness record's own reader (a recording predicted).
    for (c, reader) in r.cells.iter().zip(["compact", "recorder"]) {
        assert_eq!(c.sides.len(), 3, "live, replay, replay + co-runner");
        for s in &c.sides {
            assert_eq!(s.reader, reader, "the same reader on every side");
            assert_eq!(s.runs.len(), 3, "{:?}", s.side);
            for run in &s.runs {
                assert!(run.offered > 1000, "{run:?}");
            }
        }
        // The reference lost nothing, and each side replayed exactly what it recorded.
        assert_eq!(c.reference_lost, vec![0, 0, 0]);
        for (i, &n) in c.reference_samples.iter().enumerate() {
            for s in &c.sides[1..] {
                assert_eq!(s.runs[i].offered, n, "{reader} {:?}", s.side);
            }
        }
        assert_eq!(c.agreement.len(), 2);
    }
    let html = std::fs::read_to_string(dir.path().join("fidelity.html")).unwrap();
    assert_eq!(html.matches("<circle").count(), 18, "every run drawn");
    assert!(
        !dir.path().join("references").exists(),
        "the reference recordings are removed"
    );
}

#[test]
#[cfg_attr(not(feature = "privileged-tests"), ignore = "needs root and eBPF")]
fn a_sweep_plan_runs_its_programs_into_the_run_folder() {
    require_bpf();
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "captures = [\"fixtures/captures/fixed4k-perf.pcapng\"]\nsink = \"null\"\n\
         variants = [\"compact\"]\nshape = \"uniform\"\nwarmup = \"50ms\"\nwindow = \"100ms\"\n\
         lo = 5000.0\nhi = 5000.0\nresolution = 1.0\nmax_trials = 1\n\
         ring_bytes = [\"1MiB\"]\nperf_wakeup = \"watermark:65536\"\nprogram_repeats = 3\n\
         [[programs]]\nname = \"walk\"\nrun = \"{WALK}\"\n"
    );
    let stdout = ok(&support::cli::sweep(harness(), dir.path(), &plan)
        .output()
        .unwrap());
    assert!(stdout.contains("program walk:"), "{stdout}");
    let folder = support::cli::results_dir(dir.path()).join("latest");
    let r: harness::experiment::fidelity::FidelityResults =
        serde_json::from_slice(&std::fs::read(folder.join("fidelity-walk.json")).unwrap()).unwrap();
    assert_eq!(r.cells.len(), 1);
    assert_eq!(r.cells[0].sides[0].runs.len(), 3);
    assert!(folder.join("fidelity-walk.html").is_file());
    assert!(folder.join("fidelity-walk.txt").is_file());
}
