//! Golden-file tests: the fixture report's HTML and SVGs must match
//! `tests/golden/` byte for byte. After an intended change, regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p reports --test golden` and review the diff
//! (and look at the page: `cargo run -p reports --example render_fixture -- DIR`).

mod common;

use std::path::{Path, PathBuf};

use reports::{render_html, render_svg, write_report, Chart, INDEX_FILE};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// Compares `actual` to the golden file `name`, or rewrites it under UPDATE_GOLDEN=1.
fn check(name: &str, actual: &[u8]) {
    let path = golden_dir().join(name);
    if updating() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        eprintln!("updated {}", path.display());
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "reading golden file {}: {e} (create it with UPDATE_GOLDEN=1)",
            path.display()
        )
    });
    if expected != actual {
        let exp = String::from_utf8_lossy(&expected);
        let act = String::from_utf8_lossy(actual);
        let first = exp
            .lines()
            .zip(act.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| exp.lines().count().min(act.lines().count()));
        panic!(
            "{name} differs from {} at line {}:\n  golden: {:?}\n  actual: {:?}\n\
             (golden {} bytes, actual {} bytes; UPDATE_GOLDEN=1 regenerates after review)",
            path.display(),
            first + 1,
            exp.lines().nth(first),
            act.lines().nth(first),
            expected.len(),
            actual.len()
        );
    }
}

#[test]
fn written_report_matches_golden_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    // Every mode side by side, and an exec reader among the variants.
    let report = common::fixture_three_modes();
    let files = write_report(&out, &report).unwrap();

    let mut expected_names = vec![INDEX_FILE];
    expected_names.extend(Chart::ALL.iter().map(|c| c.file_name()));
    let names: Vec<&str> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(names, expected_names);

    for (path, name) in files.iter().zip(&expected_names) {
        assert_eq!(path.parent().unwrap(), out);
        check(name, &std::fs::read(path).unwrap());
    }
    // Nothing else (no leftover temporary files) in the directory.
    let mut listed: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    listed.sort();
    let mut want: Vec<String> = expected_names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(listed, want);
}

#[test]
fn written_files_equal_in_memory_renders() {
    let dir = tempfile::tempdir().unwrap();
    let report = common::fixture_three_modes();
    let files = write_report(dir.path(), &report).unwrap();
    assert_eq!(
        std::fs::read(&files[0]).unwrap(),
        render_html(&report).unwrap()
    );
    for (path, chart) in files[1..].iter().zip(Chart::ALL) {
        assert_eq!(
            std::fs::read_to_string(path).unwrap(),
            render_svg(&report, chart).unwrap()
        );
    }
}

#[test]
fn rendering_is_deterministic() {
    let report = common::fixture();
    assert_eq!(render_html(&report).unwrap(), render_html(&report).unwrap());
    for chart in Chart::ALL {
        assert_eq!(
            render_svg(&report, chart).unwrap(),
            render_svg(&report, chart).unwrap()
        );
    }
}
