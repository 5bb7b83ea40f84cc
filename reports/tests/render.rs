//! Rendering behaviour: escaping, self-containment, invalid-series marking,
//! edge cases that must not panic, file writing and reading errors.

mod common;

use common::{fixture, point, series};
use reports::{
    read_sweep, render_html, render_svg, write_report, Chart, Point, ReportError, SweepReport,
};

fn html(report: &SweepReport) -> String {
    String::from_utf8(render_html(report).unwrap()).unwrap()
}

fn svgs(report: &SweepReport) -> Vec<String> {
    Chart::ALL
        .iter()
        .map(|&c| render_svg(report, c).unwrap())
        .collect()
}

fn empty_report() -> SweepReport {
    let mut r = fixture();
    r.series.clear();
    r
}

/// Count of `<circle` elements: one per plotted point plus one per legend entry.
fn circles(svg: &str) -> usize {
    svg.matches("<circle").count()
}

fn is_svg_document(svg: &str) {
    assert!(svg.starts_with("<svg "), "{}", &svg[..svg.len().min(80)]);
    assert!(svg.trim_end().ends_with("</svg>"));
}

#[test]
fn every_input_string_is_escaped() {
    let evil = "<script>alert(1)</script>";
    // Cells in several modes, so the NDR-by-mode chart has labels too.
    let mut r = common::fixture_three_modes();
    r.title = format!("title {evil}");
    r.capture = Some(format!("cap {evil}"));
    r.notes = vec![format!("note {evil}")];
    r.environment = vec![(
        format!("key {evil}"),
        format!("value \"quoted\" & 'single' {evil}"),
    )];
    for s in &mut r.series {
        s.variant = format!("{} {evil}", s.variant);
        s.layout = format!("layout {evil}");
        s.transport = format!("transport {evil}");
        s.sink = format!("sink {evil}");
        s.problems.push(format!("problem {evil}"));
    }
    let page = html(&r);
    assert!(
        !page.to_lowercase().contains("<script"),
        "unescaped <script in HTML"
    );
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;";
    // title (twice: <title> and <h1>), capture, note, env key and value, and per
    // series: variant (summary, detail, alert for the invalid one), layout,
    // transport, sink (summary + detail each), problem (+ alert when invalid).
    assert!(page.matches(escaped).count() >= 6 + 4 * 10);
    assert!(page.contains("value &quot;quoted&quot; &amp; &#39;single&#39;"));
    for svg in svgs(&r) {
        assert!(!svg.to_lowercase().contains("<script"));
        assert!(
            svg.contains("&lt;script&gt;"),
            "chart labels carry variant names"
        );
    }
}

#[test]
fn page_is_self_contained() {
    let page = html(&fixture());
    for banned in [
        "http://", "https://", "src=", "<script", "<link", "@import", "url(", "<iframe", "<img",
    ] {
        assert!(!page.contains(banned), "page contains {banned:?}");
    }
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<meta charset=\"utf-8\">"));
    assert_eq!(
        page.matches("<svg ").count(),
        Chart::ALL.len(),
        "every chart inline"
    );
    assert_eq!(page.matches("</svg>").count(), Chart::ALL.len());
    for chart in Chart::ALL {
        assert!(page.contains(&format!("<figure id=\"chart-{chart}\">")));
    }
}

#[test]
fn summary_lists_every_series_with_ratio_to_baseline() {
    let page = html(&fixture());
    let summary = &page[page.find("<table class=\"summary\">").unwrap()..];
    let summary = &summary[..summary.find("</table>").unwrap()];
    assert_eq!(summary.matches("<tr").count(), 1 + 4, "header + 4 series");
    for v in ["seed-baseline", "batched", "ringbuf", "zero-copy-sharded"] {
        assert!(summary.contains(&format!(">{v}</a>")), "{v} missing");
    }
    // 300 k / 150 k and 1.2 M / 150 k; none for the series with no zero-loss rate.
    assert!(summary.contains(">baseline<"));
    assert!(summary.contains(">2.00×<"));
    assert!(summary.contains(">8.00×<"));
    assert!(summary.contains(">none<"));
    assert!(summary.contains(">150.0 k<"));
    assert!(summary.contains(">1.20 M<"));
    // Goal 600 k: only ringbuf meets it.
    assert_eq!(summary.matches("<td>meets</td>").count(), 1);
    assert_eq!(summary.matches("<td>below</td>").count(), 3);
}

#[test]
fn invalid_series_is_visibly_marked() {
    let page = html(&fixture());
    // Alert box up top naming the series and its problem.
    let alert = &page[page.find("<div class=\"alert\" role=\"alert\">").unwrap()..];
    let alert = &alert[..alert.find("</div>").unwrap()];
    assert!(alert.contains("1 of 4 series is INVALID"));
    assert!(alert.contains("4. zero-copy-sharded"));
    assert!(alert.contains("ledger unbalanced"));
    // Its summary row and its detail block carry the invalid class and badge.
    let row_start = page.find("<tr class=\"invalid\">").unwrap();
    let row = &page[row_start..row_start + page[row_start..].find("</tr>").unwrap()];
    assert!(row.contains("zero-copy-sharded") && row.contains("INVALID"));
    assert_eq!(page.matches("<tr class=\"invalid\">").count(), 1);
    assert!(page.contains("<article class=\"series invalid\" id=\"series-4\">"));
    assert!(page.contains("<ul class=\"problems\">\n<li>ledger unbalanced"));
    // A valid series' problems are warnings, not errors.
    assert!(page.contains("<ul class=\"warnings\">\n<li>kafka mock cluster"));
    // Charts: [INVALID] legend label (kept when the label is cut); outlined bar.
    let loss = render_svg(&fixture(), Chart::LossVsRate).unwrap();
    assert_eq!(loss.matches("[INVALID]").count(), 1);
    let invalid_entry = loss.lines().find(|l| l.contains("[INVALID]")).unwrap();
    assert!(
        invalid_entry.starts_with("4. zero-copy-sharded"),
        "{invalid_entry}"
    );
    let bars = render_svg(&fixture(), Chart::ZeroLossRate).unwrap();
    assert!(bars.contains("lost events even at the lowest rate tried · INVALID"));

    let mut all_valid = fixture();
    all_valid.series.pop();
    let page = html(&all_valid);
    assert!(!page.contains("class=\"alert\""));
    assert!(!page.contains("class=\"invalid\""));
    assert!(!page.contains("INVALID"));
}

#[test]
fn detail_tables_show_every_point_sorted_by_rate() {
    let page = html(&fixture());
    let batched = &page[page.find("id=\"series-2\"").unwrap()..];
    let batched = &batched[..batched.find("</article>").unwrap()];
    // The fixture lists batched's points out of order (600 k first).
    let order: Vec<usize> = [
        "100.0 k/s",
        "200.0 k/s",
        "300.0 k/s",
        "600.0 k/s",
        "1.20 M/s",
    ]
    .iter()
    .map(|r| batched.find(&format!(">{r}</td>")).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    // 300 k is its zero-loss rate; 600 k lost 151,200 of 1,200,000.
    assert!(batched.contains(
        "<tr class=\"zero-loss\" title=\"highest zero-loss rate\"><td class=\"num\">300.0 k/s"
    ));
    assert!(batched.contains("<tr class=\"lossy\"><td class=\"num\">600.0 k/s</td><td class=\"num\">1,200,000</td><td class=\"num\">1,048,800</td><td class=\"num\">151,200</td><td class=\"num\">12.60</td>"));
}

#[test]
fn charts_plot_every_finite_point() {
    let mut r = fixture();
    // batched at 1.2 M delivers nothing: no latency there.
    r.series[1].points[4] = point(1_200_000, 2_400_000, 0, 0, 0, 35 << 20);
    let points: usize = r.series.iter().map(|s| s.points.len()).sum();
    let legend = r.series.len();
    let loss = render_svg(&r, Chart::LossVsRate).unwrap();
    assert_eq!(circles(&loss), points + legend);
    // p99 leaves out the point where nothing was delivered.
    let p99 = render_svg(&r, Chart::P99VsRate).unwrap();
    assert_eq!(circles(&p99), points - 1 + legend);
    // 100 k..1.2 M spans 12x: log rate axis; p99 spans 12 µs..16.9 ms: log too.
    assert!(loss.contains("offered rate (events/s, log scale)"));
    assert!(p99.contains("p99 latency (log scale)"));
    assert!(!loss.contains("lost (% of offered) (log scale)"));
    // Goal marker on all three.
    for svg in [&loss, &p99, &render_svg(&r, Chart::ZeroLossRate).unwrap()] {
        assert!(svg.contains("goal 600k/s"));
    }
}

#[test]
fn narrow_rate_span_uses_linear_axis_and_no_goal_means_no_marker() {
    let mut r = fixture();
    r.goal_rate = None;
    for s in &mut r.series {
        s.points
            .retain(|p| p.rate >= 200_000.0 && p.rate <= 600_000.0);
    }
    for svg in svgs(&r) {
        is_svg_document(&svg);
        assert!(!svg.contains("goal"));
        // Only latency axes go logarithmic over this narrow span.
        assert!(!svg.contains("log scale") || svg.contains("latency (log scale)"));
    }
    let loss = render_svg(&r, Chart::LossVsRate).unwrap();
    assert!(
        loss.contains("offered rate (events/s)<") || loss.contains("offered rate (events/s)\n")
    );
}

#[test]
fn empty_sweep_renders_placeholders() {
    let r = empty_report();
    for (chart, svg) in Chart::ALL.iter().zip(svgs(&r)) {
        is_svg_document(&svg);
        assert!(svg.contains("no series in this sweep"), "{chart}");
        assert_eq!(circles(&svg), 0);
    }
    let page = html(&r);
    assert!(page.contains("No series in this sweep."));
    assert_eq!(page.matches("<svg ").count(), Chart::ALL.len());
}

#[test]
fn series_without_points_and_single_point() {
    let mut r = fixture();
    r.series.truncate(2);
    r.series[0].points.clear();
    r.series[1].points = vec![point(250_000, 0, 1_000, 2_000, 3_000, 4096)];
    let loss = render_svg(&r, Chart::LossVsRate).unwrap();
    is_svg_document(&loss);
    // One plotted point + two legend markers.
    assert_eq!(circles(&loss), 1 + 2);
    assert!(loss.contains("1. seed-baseline (no data)"));
    let page = html(&r);
    assert!(page.contains("No rates were run."));

    // Only series without points: placeholders, legend still there.
    r.series[1].points.clear();
    let loss = render_svg(&r, Chart::LossVsRate).unwrap();
    assert!(loss.contains("no plottable points"));
    assert_eq!(circles(&loss), 2);
}

#[test]
fn zero_loss_everywhere_keeps_a_visible_axis() {
    let mut r = fixture();
    for s in &mut r.series {
        for p in &mut s.points {
            *p = point(
                p.rate as u64,
                0,
                p.p50_ns,
                p.p99_ns,
                p.p999_ns,
                p.high_water_bytes,
            );
        }
    }
    let loss = render_svg(&r, Chart::LossVsRate).unwrap();
    is_svg_document(&loss);
    // y runs 0..1 %, so a 1 tick exists and every point sits on the floor.
    assert!(loss.contains(">\n1\n</text>"), "y axis should reach 1 %");
    assert!(loss.contains(">\n0\n</text>"));
}

#[test]
fn non_finite_and_nonsense_values_do_not_panic() {
    let weird = |rate: f64, lost_pct: f64| Point {
        rate,
        lost_pct,
        throughput: f64::NAN,
        ..point(1000, 0, 1, 1, 1, 1)
    };
    let mut s = series("weird", "fixed4k", "perf", 1);
    s.zero_loss_rate = Some(f64::NAN);
    s.points = vec![
        weird(f64::NAN, 0.0),
        weird(f64::INFINITY, 1.0),
        weird(f64::NEG_INFINITY, 1.0),
        weird(0.0, 1.0),
        weird(-5.0, 1.0),
        weird(1000.0, f64::NAN),
        weird(2000.0, f64::INFINITY),
    ];
    let mut huge = series("huge", "fixed4k", "perf", u64::MAX);
    huge.zero_loss_rate = Some(f64::INFINITY);
    huge.points = vec![Point {
        p99_ns: u64::MAX,
        p50_ns: u64::MAX,
        p999_ns: u64::MAX,
        offered: u64::MAX,
        delivered: u64::MAX,
        high_water_bytes: u64::MAX,
        ..point(1_000_000, 0, 0, 0, 0, 0)
    }];
    let mut r = fixture();
    r.goal_rate = Some(f64::INFINITY);
    r.series = vec![s.clone(), huge];
    for svg in svgs(&r) {
        is_svg_document(&svg);
    }
    let bars = render_svg(&r, Chart::ZeroLossRate).unwrap();
    assert!(bars.contains("zero-loss rate is NaN"));
    assert!(bars.contains("zero-loss rate is inf"));
    let page = html(&r);
    assert!(page.contains(">NaN/s</td>"), "NaN rates shown as they are");

    // Only non-finite values anywhere: nothing to plot, no panic.
    r.series = vec![s];
    r.series[0]
        .points
        .retain(|p| !(p.rate.is_finite() && p.rate > 0.0));
    r.goal_rate = Some(f64::NAN);
    for svg in svgs(&r) {
        is_svg_document(&svg);
    }
    assert!(render_svg(&r, Chart::LossVsRate)
        .unwrap()
        .contains("no plottable points"));
    html(&r);
}

#[test]
fn many_series_get_distinct_markers_and_taller_bar_chart() {
    let mut r = fixture();
    let template = r.series[1].clone();
    r.series = (0..25)
        .map(|i| {
            let mut s = template.clone();
            s.variant = format!("variant-{i:02}");
            s
        })
        .collect();
    let loss = render_svg(&r, Chart::LossVsRate).unwrap();
    // Series 11-20 use triangles (polygons), 21+ crosses; all 25 in the legend.
    assert!(loss.contains("<polygon"));
    for i in 0..25 {
        assert!(loss.contains(&format!("{}. variant-{i:02}", i + 1)));
    }
    // A label too long for the legend is cut, but its [INVALID] marker stays.
    r.series[24].variant = "x".repeat(200);
    r.series[24].valid = false;
    let loss = render_svg(&r, Chart::LossVsRate).unwrap();
    assert!(loss.contains("x… [INVALID]"));
    let few = render_svg(&fixture(), Chart::ZeroLossRate).unwrap();
    let many = render_svg(&r, Chart::ZeroLossRate).unwrap();
    let height = |svg: &str| -> u32 {
        let h = &svg[svg.find("height=\"").unwrap() + 8..];
        h[..h.find('"').unwrap()].parse().unwrap()
    };
    assert!(height(&many) > height(&few));
}

#[test]
fn write_report_overwrites_and_reports_bad_directories() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/report");
    let first = write_report(&out, &fixture()).unwrap();
    let mut changed = fixture();
    changed.title = "second run".to_string();
    let second = write_report(&out, &changed).unwrap();
    assert_eq!(first, second);
    assert!(std::fs::read_to_string(&second[0])
        .unwrap()
        .contains("<h1>second run</h1>"));
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        1 + Chart::ALL.len(),
        "no temp files left"
    );

    // A directory path that runs through a regular file.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let bad = file.join("report");
    match write_report(&bad, &fixture()) {
        Err(ReportError::CreateDir { path, .. }) => assert_eq!(path, bad),
        other => panic!("expected CreateDir error, got {other:?}"),
    }
    let msg = write_report(&bad, &fixture()).unwrap_err().to_string();
    assert!(msg.contains(&bad.display().to_string()), "{msg}");
}

#[test]
fn failed_rename_keeps_old_file_and_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    // A non-empty directory where index.html should go: rename(2) onto it fails.
    let blocker = dir.path().join(reports::INDEX_FILE);
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("keep"), b"old").unwrap();
    match write_report(dir.path(), &fixture()) {
        Err(ReportError::Rename { from, to, .. }) => {
            assert_eq!(to, blocker);
            assert_eq!(from.parent().unwrap(), dir.path(), "temp file is a sibling");
            assert!(!from.exists(), "temp file removed after the failed rename");
        }
        other => panic!("expected Rename error, got {other:?}"),
    }
    assert_eq!(std::fs::read(blocker.join("keep")).unwrap(), b"old");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn read_sweep_round_trips_and_names_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sweep.json");
    let report = fixture();
    std::fs::write(&path, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
    assert_eq!(read_sweep(&path).unwrap(), report);

    // goal_rate may be absent.
    let mut v = serde_json::to_value(&report).unwrap();
    v.as_object_mut().unwrap().remove("goal_rate");
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(read_sweep(&path).unwrap().goal_rate, None);

    std::fs::write(&path, b"{\n  \"title\": 5\n}").unwrap();
    let err = read_sweep(&path).unwrap_err();
    assert!(matches!(err, ReportError::Parse { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("line 2"),
        "{msg}"
    );

    let missing = dir.path().join("missing.json");
    let err = read_sweep(&missing).unwrap_err();
    assert!(matches!(err, ReportError::Read { ref path, .. } if *path == missing));
}

#[test]
fn modes_side_by_side_and_minimum_ring() {
    let mut r = fixture();
    // Without cells in more than one mode the section says what is missing,
    // and so does the chart.
    let page = html(&r);
    assert!(page.contains("No cell ran in more than one mode"));
    let svg = render_svg(&r, Chart::NdrByMode).unwrap();
    assert!(svg.contains("no cell ran in more than one mode"), "{svg}");
    // A live twin of series 1 at half its rate, and series 2 again with a
    // bigger ring that holds the goal.
    let mut live = r.series[0].clone();
    live.mode = reports::Mode::Live;
    live.zero_loss_rate = r.series[0].zero_loss_rate.map(|x| x / 2.0);
    let mut bigger = r.series[1].clone();
    bigger.ring_bytes *= 4;
    bigger.zero_loss_rate = Some(700_000.0);
    r.series.push(live);
    r.series.push(bigger);
    let page = html(&r);
    let section = &page[page.find("id=\"modes\"").unwrap()..];
    let section = &section[..section.find("</section>").unwrap()];
    // One cell, replay and live only: the kernel column and its ratio are dashes.
    assert_eq!(section.matches("<tr><td>").count(), 1, "{section}");
    assert!(section.contains("<td>1. seed-baseline</td>"), "{section}");
    assert!(
        section.contains(
            "<td class=\"num\">150.0 k</td><td class=\"num\">—</td><td class=\"num\">75.0 k</td>"
        ),
        "{section}"
    );
    assert!(
        section.contains("2.00×</td><td class=\"num\">—</td>"),
        "replay ÷ live: {section}"
    );
    let min = &page[page.find("id=\"minimum-ring\"").unwrap()..];
    let min = &min[..min.find("</ul>").unwrap()];
    assert!(min.contains("<li>batched: 140 MiB</li>"), "{min}");
    assert!(
        min.contains("<li>seed-baseline: none of the sizes tried</li>"),
        "{min}"
    );
    // The chart has a two-point line for batched.
    let svg = render_svg(&r, Chart::NdrVsRing).unwrap();
    assert!(
        svg.contains("ring size (per CPU for perf"),
        "x axis named with its unit"
    );
    assert!(svg.contains("zero-loss rate (events/s)"));
}

#[test]
fn cpu_per_stage_stacks_each_series_stages_and_the_tables_show_per_event_and_share() {
    let mut r = fixture();
    let svg = render_svg(&r, Chart::CpuPerStage).unwrap();
    // Every recorded stage in the legend, in pipeline order.
    let mut at = 0;
    for stage in [
        "producer",
        "reader",
        "hand-off",
        "decode",
        "classify",
        "serialize",
        "sink client",
        "broker",
    ] {
        let i = svg[at..]
            .find(&format!("\n{stage}\n"))
            .unwrap_or_else(|| panic!("{stage} missing or out of order in the legend"));
        at += i;
    }
    // The baseline's total: 1.8 s of CPU over 300 000 events = 6.0 µs.
    assert!(svg.contains("6.0 µs/event"), "{svg}");
    assert!(svg.contains("INVALID"), "the invalid series is marked");
    assert!(
        svg.contains("not recorded"),
        "series without figures say so"
    );
    assert!(svg.contains("CPU per event (ns"), "axis description");

    // The per-series table has the new columns; an older result's pairs show dashes.
    let page = html(&r);
    assert!(
        page.contains("<th class=\"num\">per event</th>"),
        "per-event column"
    );
    // classify: 0.57 s over 300 000 events = 1.9 µs, 0.57 / 4 = 14.2% of 2 CPUs x 2 s.
    assert!(
        page.contains("<td>classify</td><td class=\"num\">570.00 ms</td><td class=\"num\">1.9 µs</td><td class=\"num\">14.2%</td>"),
        "{page}"
    );
    for s in &mut r.series {
        s.cpu_per_stage = serde_json::from_str(r#"[["reader", 0.25]]"#).unwrap();
    }
    let page = html(&r);
    assert!(page.contains("<td>reader</td><td class=\"num\">250.00 ms</td><td class=\"num\">—</td><td class=\"num\">—</td>"), "{page}");
    let svg = render_svg(&r, Chart::CpuPerStage).unwrap();
    assert!(svg.contains("no CPU per event was recorded"), "{svg}");
}
