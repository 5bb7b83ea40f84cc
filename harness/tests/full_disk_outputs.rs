//! The sweep's and replay's output files on a disk that fills up (a small
//! tmpfs, 256 KiB, this test mounts): results, sweep results (and gate baselines), the
//! HTML report and the file sink. A failed write never leaves a half file
//! where a good one was: the old file keeps its bytes, no temporary file is
//! left behind, and the error names the file and the OS error. Needs root
//! (the mount): ignored unless the privileged-tests feature is on.

mod support;

use std::path::Path;
use std::time::Duration;

use harness::experiment::results::{SweepResults, SWEEP_SCHEMA};
use harness::export::report::to_report;
use harness::results::{Environment, RunConfig, RunResult};
use harness::sink::{FileSink, Sink};
use support::root::{files_below, Tmpfs};

/// Fills what is left of `disk` with one file, so the next write fails.
fn fill(disk: &Tmpfs) {
    use std::io::Write;
    let mut f = std::fs::File::create(disk.path("filler")).unwrap();
    let block = vec![0xa5u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.flush();
}

/// Files on `disk` other than the filler, sorted, relative to it.
fn files(disk: &Tmpfs) -> Vec<String> {
    let mut v: Vec<String> = files_below(&disk.mnt)
        .into_iter()
        .map(|p| p.strip_prefix(&disk.mnt).unwrap().display().to_string())
        .filter(|n| n != "filler")
        .collect();
    v.sort();
    v
}

fn assert_names_file_and_enospc(e: &str, file: &Path) {
    assert!(
        e.contains(&file.display().to_string()) && e.contains("No space left on device"),
        "the error names {} and the OS error: {e}",
        file.display()
    );
}

/// Half a MiB of text: more than the whole disk.
fn too_big() -> String {
    "x".repeat(512 << 10)
}

fn sweep_results(note: String) -> SweepResults {
    SweepResults {
        schema: SWEEP_SCHEMA.into(),
        started_unix_s: 1,
        environment: Environment::detect(),
        sink_note: note,
        captures: Vec::new(),
        series: Vec::new(),
        plan_hash: String::new(),
        build: String::new(),
        shard: None,
        planned_series: 0,
        skipped: Vec::new(),
        peak_rss_bytes: None,
    }
}

#[test]
#[cfg_attr(
    not(feature = "privileged-tests"),
    ignore = "needs root (mounts a tmpfs)"
)]
fn results_that_do_not_fit_leave_the_old_file() {
    let disk = Tmpfs::mount("256k");
    let run = disk.path("run.json");
    let sweep = disk.path("sweep.json");
    let mut r = RunResult::new(
        harness::results::RunKind::Replay,
        "noop",
        RunConfig::default(),
    );
    r.write(&run).unwrap();
    sweep_results("small".into()).write(&sweep).unwrap();
    let (run_before, sweep_before) = (std::fs::read(&run).unwrap(), std::fs::read(&sweep).unwrap());
    fill(&disk);

    r.problem(too_big());
    let e = r.write(&run).unwrap_err().to_string();
    assert_names_file_and_enospc(&e, &run);
    let e = sweep_results(too_big())
        .write(&sweep)
        .unwrap_err()
        .to_string();
    assert_names_file_and_enospc(&e, &sweep);

    assert_eq!(std::fs::read(&run).unwrap(), run_before);
    assert_eq!(std::fs::read(&sweep).unwrap(), sweep_before);
    RunResult::read(&run).unwrap();
    SweepResults::read(&sweep).unwrap();
    assert_eq!(
        files(&disk),
        ["run.json", "sweep.json"],
        "no temporary file is left"
    );
}

#[test]
#[cfg_attr(
    not(feature = "privileged-tests"),
    ignore = "needs root (mounts a tmpfs)"
)]
fn a_report_that_does_not_fit_leaves_whole_files() {
    let disk = Tmpfs::mount("256k");
    let dir = disk.path("report");
    let written =
        reports::write_report(&dir, &to_report(&sweep_results("small".into()), None)).unwrap();
    let before: Vec<Vec<u8>> = written.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let names_before = files(&disk);
    fill(&disk);

    let e = reports::write_report(&dir, &to_report(&sweep_results(too_big()), None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("No space left on device"), "{e}");
    assert!(e.contains(&dir.display().to_string()), "{e}");
    // Every file is the old one, whole (the new index did not fit).
    for (p, b) in written.iter().zip(&before) {
        assert_eq!(&std::fs::read(p).unwrap(), b, "{}", p.display());
    }
    assert_eq!(files(&disk), names_before, "no temporary file is left");
}

#[test]
#[cfg_attr(
    not(feature = "privileged-tests"),
    ignore = "needs root (mounts a tmpfs)"
)]
fn a_file_sink_that_does_not_fit_keeps_the_old_file_and_fails_every_message() {
    let disk = Tmpfs::mount("256k");
    let path = disk.path("sink.bin");
    let sink = FileSink::create(&path).unwrap();
    sink.send(b"k", b"old").unwrap();
    let good = sink.finish(Duration::ZERO).unwrap();
    assert_eq!((good.delivered, good.failed), (1, 0));
    let before = std::fs::read(&path).unwrap();
    fill(&disk);

    // 1 000 messages of 1 KiB: four times the disk.
    let sink = FileSink::create(&path).unwrap();
    let value = vec![7u8; 1024];
    for _ in 0..1_000 {
        sink.send(b"key", &value).unwrap();
    }
    let r = sink.finish(Duration::ZERO).unwrap();
    assert_eq!(r.accepted, 1_000);
    assert_eq!((r.delivered, r.failed), (0, 1_000), "nothing was kept");
    assert_eq!(r.delivered_crc_sum, 0);
    let why = r.read_back_error.unwrap();
    assert_names_file_and_enospc(&why, &path);
    assert_eq!(r.failed_by_error.values().sum::<u64>(), 1_000);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the old file is untouched"
    );
    assert_eq!(files(&disk), ["sink.bin"], "no temporary file is left");
}
