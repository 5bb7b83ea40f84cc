//! A real browser opens the written report: headless Chromium parses
//! index.html (the DOM must hold the summary rows and every inline SVG chart,
//! and an HTML-injection attempt must stay text), lays it out at 1280 px (no
//! console errors, every chart a non-zero size, nothing wider than the page)
//! and takes a screenshot.
//!
//! Outside CI the test skips, with the reason printed, when no Chromium is
//! installed; under CI=true a missing Chromium fails it. `CHROMIUM=/path`
//! picks the binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: a cold Chromium on a busy 2-core machine starts in a few seconds.
/// This bounds a hang; it asserts nothing about speed.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(180);

fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

fn chromium_or_skip() -> Option<PathBuf> {
    match find_chromium() {
        Some(p) => Some(p),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but no chromium found on PATH (install Debian's `chromium`)")
        }
        None => {
            eprintln!(
                "SKIP: no chromium on PATH (set CHROMIUM=/path/to/chromium to run this test)"
            );
            None
        }
    }
}

/// Runs headless Chromium on `page` with `extra` arguments; returns its stdout.
fn chromium(bin: &Path, page: &Path, extra: &[String], work: &Path) -> String {
    let profile = tempfile::tempdir_in(work).unwrap();
    let out_path = work.join(format!("chromium-{}.out", extra.len()));
    let err_path = work.join(format!("chromium-{}.err", extra.len()));
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CHROMIUM_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium still running after {CHROMIUM_DEADLINE:?}; stderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "chromium {extra:?} exited with {status}; stderr:\n{}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    std::fs::read_to_string(&out_path).unwrap()
}

/// Runs first in the probe copy's <head>: collects errors, then on load
/// measures the charts and finds elements past the viewport's right edge.
const PROBE: &str = r#"
window.__errors = [];
addEventListener('error', e => __errors.push(String(e.message || (e.target && e.target.outerHTML) || 'error')), true);
const __ce = console.error; console.error = (...a) => { __errors.push(a.join(' ')); __ce(...a); };
addEventListener('load', () => {
  const cw = document.documentElement.clientWidth;
  const charts = [...document.querySelectorAll('figure svg')].map(s => { const r = s.getBoundingClientRect(); return [r.width, r.height]; });
  const wide = [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > cw + 0.5)
    .map(e => e.tagName + '.' + e.getAttribute('class') + ' right=' + Math.round(e.getBoundingClientRect().right)).slice(0, 12);
  document.body.setAttribute('data-probe', JSON.stringify({errors: __errors, charts, clientWidth: cw, scrollWidth: document.documentElement.scrollWidth, wide}));
});
"#;

#[test]
fn chromium_renders_report() {
    let Some(bin) = chromium_or_skip() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let report_dir = work.path().join("report");
    // Cells in all three modes and an exec reader among the variants.
    let mut report = common::fixture_three_modes();
    // Every optional summary column, with long values: the table must still
    // fit 1280 px. (A cell's modes keep one capture, so they stay one cell.)
    for s in report.series.iter_mut() {
        s.capture = format!(
            "real-programs-burst-capture-{}-fixed4k-perf.pcapng",
            s.variant
        );
        s.wakeup = "no-wakeup, poll every 1 ms".into();
    }
    let files = reports::write_report(&report_dir, &report).unwrap();
    let index = &files[0];

    // The DOM as the browser built it.
    let dom = chromium(&bin, index, &["--dump-dom".to_string()], work.path());
    let summary = &dom[dom
        .find("<table class=\"summary\">")
        .unwrap_or_else(|| panic!("no summary table in DOM:\n{dom}"))..];
    let summary = &summary[..summary.find("</table>").unwrap()];
    let body = &summary[summary.find("<tbody>").unwrap()..];
    assert_eq!(body.matches("<tr").count(), report.series.len());
    for s in &report.series {
        assert!(
            body.contains(&format!(">{}</a>", s.variant)),
            "{} not in summary",
            s.variant
        );
    }
    assert_eq!(body.matches("<tr class=\"invalid\">").count(), 1);
    assert_eq!(
        dom.matches("<svg ").count(),
        reports::Chart::ALL.len(),
        "every chart inline"
    );
    assert!(dom.matches("<polyline").count() > 10, "charts have lines");
    assert!(dom.contains("<h1>dropbench sweep: replay, kernel and live</h1>"));
    // The modes side by side: three cells (batched in all three modes), and
    // the exec reader in the summary like any variant.
    let modes = &dom[dom.find("<section id=\"modes\">").expect("a modes section")..];
    let modes = &modes[..modes.find("</section>").unwrap()];
    assert_eq!(modes.matches("<tr><td>").count(), 3, "{modes}");
    assert!(modes.contains("2. batched"), "{modes}");
    assert!(body.contains(">exec:libbpf-example</a>"), "{body}");

    // Laid out at 1280 px: a copy of the page with a measuring script first
    // in <head> (the report itself has none) records console errors and
    // error events, each chart's size, and every element past the page's
    // right edge, into an attribute the dumped DOM carries.
    let html = std::fs::read_to_string(index).unwrap();
    let probe = report_dir.join("probe.html");
    std::fs::write(
        &probe,
        html.replacen("<head>", &format!("<head><script>{PROBE}</script>"), 1),
    )
    .unwrap();
    let dom = chromium(
        &bin,
        &probe,
        &[
            "--dump-dom".to_string(),
            "--window-size=1280,2000".to_string(),
        ],
        work.path(),
    );
    let attr = dom
        .split("data-probe=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("the probe did not run:\n{}", &dom[..dom.len().min(400)]))
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let m: serde_json::Value = serde_json::from_str(&attr).unwrap();
    println!("layout at 1280 px: {m}");
    assert_eq!(m["errors"], serde_json::json!([]), "console errors");
    let charts = m["charts"].as_array().unwrap();
    assert_eq!(charts.len(), reports::Chart::ALL.len());
    for c in charts {
        assert!(
            c[0].as_f64().unwrap() > 0.0 && c[1].as_f64().unwrap() > 0.0,
            "a chart of zero size: {m}"
        );
    }
    assert_eq!(m["clientWidth"], 1280, "{m}");
    assert!(
        m["scrollWidth"].as_f64().unwrap() <= 1280.0,
        "the page scrolls sideways: {m}"
    );
    assert_eq!(
        m["wide"],
        serde_json::json!([]),
        "elements past the right edge"
    );

    // A screenshot of the page as a person sees it.
    let png = work.path().join("report.png");
    chromium(
        &bin,
        index,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,2000".to_string(),
        ],
        work.path(),
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    // IHDR: width and height, big-endian, at bytes 16..24.
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 2000));
    // A blank 1280x2000 page compresses to a few KB; text, tables and charts
    // make this page's screenshot about 200 KB.
    assert!(
        bytes.len() > 60_000,
        "screenshot only {} bytes",
        bytes.len()
    );
    if let Some(keep) = std::env::var_os("REPORTS_KEEP_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
}

#[test]
fn chromium_keeps_injected_markup_as_text() {
    let Some(bin) = chromium_or_skip() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let mut report = common::fixture();
    let evil = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>";
    report.series[0].variant = evil.to_string();
    report.title = format!("escaping {evil}");
    let files = reports::write_report(&work.path().join("report"), &report).unwrap();
    let dom = chromium(&bin, &files[0], &["--dump-dom".to_string()], work.path());
    // Had the markup been live, the script would have retitled the page and
    // the DOM would hold <script>/<img> elements.
    assert!(!dom.contains("pwned</title>"), "script ran");
    assert!(!dom.contains("<script"), "script element in DOM");
    assert!(!dom.contains("<img"), "img element in DOM");
    assert!(dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"));
}
