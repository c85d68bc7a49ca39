//! `report --format html` and `diff --format html` read by a real browser: Debian's chromium,
//! headless, loads each page from disk and reports no console or network error; a
//! screenshot shows each session's bars, as long as their numbers say, in the charts' places;
//! and the numbers in the page's table equal those of `report --format json` for the same
//! input. `cargo xtask setup` installs chromium; without it these tests fail saying so.
//!
//! The diff page's first screen is also written to docs/html-report.png for the README.

mod browser;
mod common;

use std::path::{Path, PathBuf};

use browser::{Browser, Page, SCREEN};
use kvmprof::sample::{Key, Sample, VmInfo};
use serde_json::Value;

const HOSTILE: &str = "<script>alert(1)</script>\"'&";
/// A perf ≥ 6.4 table (no histograms, no duration).
const PERF: &str = "profiler/tests/perf64/perf64-vmx-vmexit.txt";

/// (reason, exits per second, typical ns): a Windows guest without Hyper-V enlightenments
/// and with all of them, as in the talk (synthetic numbers).
const BEFORE: &[(u32, u64, u64)] = &[
    (49, 40_000, 6_000),
    (32, 30_000, 1_500),
    (1, 10_000, 700),
    (30, 1_000, 20_000),
    (12, 5_000, 100_000),
];
const AFTER: &[(u32, u64, u64)] = &[
    (49, 2_000, 6_000),
    (32, 15_000, 1_400),
    (18, 7_000, 2_300),
    (1, 10_000, 700),
    (30, 1_000, 20_000),
    (12, 5_000, 100_000),
];
const OTHER_VM: &[(u32, u64, u64)] = &[(30, 3_000, 9_000), (48, 500, 4_000)];

/// A 3-sample recording (1 s apart) of two VMs: "win11-gaming" doing `rows`, and one with
/// a hostile name. Each reason's exits spread over three latencies.
fn recording(path: &Path, rows: &[(u32, u64, u64)]) {
    let mut r = kvmprof::store::Recorder::create(
        path,
        &kvmprof::store::Header {
            names: kvmprof::decode::ExitNames::builtin(),
            interval_ms: 1000,
            ..Default::default()
        },
    )
    .unwrap();
    let mut s = Sample::default();
    for (pid, name) in [(4000, "win11-gaming"), (4100, HOSTILE)] {
        let vm = VmInfo {
            pid,
            name: name.into(),
            start_time: 1,
            ..Default::default()
        };
        s.vms.insert(pid, vm);
    }
    for sec in 1..=3u64 {
        s.mono_ns = sec * 1_000_000_000;
        if sec > 1 {
            for (pid, rows) in [(4000, rows), (4100, OTHER_VM)] {
                for &(reason, n, ns) in rows {
                    let key = Key {
                        tgid: pid,
                        vcpu: reason % 2,
                        isa: profiler_common::ISA_VMX,
                        reason,
                    };
                    let st = s.stats.entry(key).or_default();
                    st.record(ns * 8 / 10, n * 3 / 10);
                    st.record(ns, n * 6 / 10);
                    st.record(ns * 3, n / 10);
                }
            }
        }
        r.append(&s).unwrap();
    }
    r.finish().unwrap();
}

/// What the tests look at: three pages, and the JSON reports of their sessions.
struct Pages {
    _dir: tempfile::TempDir,
    report: PathBuf,
    diff: PathBuf,
    perf: PathBuf,
    before: Value,
    after: Value,
    perf_json: Value,
}

/// Runs kvmprof in `dir` (so the pages name the sessions by their file names, and the
/// screenshot is the same on every run).
fn run(dir: &Path, args: &[&str]) -> String {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_kvmprof"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running kvmprof");
    assert!(
        o.status.success(),
        "kvmprof {args:?}: {}",
        common::stderr(&o)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn pages() -> Pages {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = ("no-enlightenments.kvmprof", "all-enlightenments.kvmprof");
    recording(&d.join(a), BEFORE);
    recording(&d.join(b), AFTER);
    let perf = common::repo_file(PERF);
    run(d, &["report", a, "--format", "html", "-o", "report.html"]);
    run(d, &["diff", a, b, "--format", "html", "-o", "diff.html"]);
    run(
        d,
        &[
            "report",
            "--from-perf",
            &perf,
            "--format",
            "html",
            "-o",
            "perf.html",
        ],
    );
    let json = |args: &[&str]| serde_json::from_str(&run(d, args)).unwrap();
    Pages {
        before: json(&["report", a, "--format", "json"]),
        after: json(&["report", b, "--format", "json"]),
        perf_json: json(&["report", "--from-perf", &perf, "--format", "json"]),
        report: d.join("report.html"),
        diff: d.join("diff.html"),
        perf: d.join("perf.html"),
        _dir: dir,
    }
}

fn url(p: &Path) -> String {
    format!("file://{}", p.display())
}

#[test]
fn pages_load_without_errors_and_run_nothing() {
    let pages = pages();
    let mut b = Browser::launch();
    // The check can fail: a page that logs an error and fetches from the network is caught.
    let control = pages._dir.path().join("control.html");
    std::fs::write(
        &control,
        "<!doctype html><img src=\"http://127.0.0.1:9/x.png\"><script>console.error('x')</script>",
    )
    .unwrap();
    let c = b.open(&url(&control));
    assert!(
        c.errors.len() >= 2,
        "the control page's errors were not seen: {:?}",
        c.errors
    );
    for path in [&pages.report, &pages.diff, &pages.perf] {
        let page = b.open(&url(path));
        assert_eq!(page.errors, Vec::<String>::new(), "{}", path.display());
        assert_eq!(b.eval(&page, "document.scripts.length"), 0);
        let svgs = b.eval(&page, "document.querySelectorAll('figure svg').length");
        assert!(
            svgs.as_u64().unwrap() >= 2,
            "{}: {svgs} charts",
            path.display()
        );
    }
    // The hostile VM name is text in the table and the headings, not markup.
    let page = b.open(&url(&pages.diff));
    let expr = format!(
        "[...document.querySelectorAll('td, h2')].filter(e => e.textContent.includes({})).length",
        serde_json::to_string(HOSTILE).unwrap()
    );
    assert!(b.eval(&page, &expr).as_u64().unwrap() >= 3);
    // perf text has no histograms, and the page says so.
    let page = b.open(&url(&pages.perf));
    let text = b.eval(&page, "document.body.innerText");
    assert!(text.as_str().unwrap().contains("no latency histograms"));
}

/// Every row of the page's table, with its `data-*` values.
const ROWS: &str = "[...document.querySelectorAll('tr.reason')].map(tr => {
    const o = Object.assign({}, tr.dataset);
    tr.querySelectorAll('td').forEach(td => Object.assign(o, td.dataset));
    return o;
})";

/// The page's table holds exactly the reasons of `sessions`' JSON, with the same numbers.
fn numbers_match(b: &mut Browser, page: &Page, sessions: &[&Value]) {
    let rows = b.eval(page, ROWS);
    let rows = rows.as_array().unwrap();
    let mut seen = 0;
    for (i, json) in sessions.iter().enumerate() {
        for vm in json["vms"].as_array().unwrap() {
            for r in vm["reasons"].as_array().unwrap() {
                seen += 1;
                let is = |row: &Value, k: &str, want: String| row[k].as_str() == Some(&want);
                let row = rows
                    .iter()
                    .find(|row| {
                        is(row, "session", i.to_string())
                            && is(row, "pid", vm["pid"].to_string())
                            && is(row, "isa", r["isa"].to_string())
                            && is(row, "reason", r["reason"].to_string())
                    })
                    .unwrap_or_else(|| panic!("session {i}: no row for {r}"));
                for (attr, field) in [
                    ("count", "count"),
                    ("totalNs", "total_ns"),
                    ("minNs", "min_ns"),
                    ("maxNs", "max_ns"),
                    ("ratePerS", "rate_per_s"),
                    ("samplesPct", "samples_pct"),
                    ("timePct", "time_pct"),
                    ("meanNs", "mean_ns"),
                    ("p50Ns", "p50_ns"),
                    ("p99Ns", "p99_ns"),
                    ("p999Ns", "p999_ns"),
                ] {
                    let want = r[field].as_f64().unwrap();
                    match row[attr].as_str() {
                        Some(got) => assert_eq!(got.parse::<f64>().unwrap(), want, "{attr} of {r}"),
                        // Only perf text leaves percentiles out, and it has none.
                        None => assert!(attr.starts_with('p') && want == 0.0, "{attr} of {r}"),
                    }
                }
            }
        }
    }
    assert_eq!(rows.len(), seen, "the page has rows the JSON does not");
}

#[test]
fn the_numbers_in_the_page_are_those_of_the_json_report() {
    let pages = pages();
    let mut b = Browser::launch();
    for (path, sessions) in [
        (&pages.report, vec![&pages.before]),
        (&pages.diff, vec![&pages.before, &pages.after]),
        (&pages.perf, vec![&pages.perf_json]),
    ] {
        let page = b.open(&url(path));
        numbers_match(&mut b, &page, &sessions);
    }
}

/// The screenshot's pixels, RGB, row by row.
fn pixels(png_bytes: &[u8]) -> (u32, u32, Vec<[u8; 3]>) {
    let mut r = png::Decoder::new(std::io::Cursor::new(png_bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("unexpected PNG color type {other:?}"),
    };
    let px = buf[..info.buffer_size()]
        .chunks(step)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (info.width, info.height, px)
}

/// The longest horizontal run of exactly `rgb` inside the box (x0, y0, x1, y1): the
/// longest bar of that color in a chart.
fn longest_run(img: &(u32, u32, Vec<[u8; 3]>), bx: [u32; 4], rgb: (u8, u8, u8)) -> u32 {
    let (w, _, px) = img;
    let want = [rgb.0, rgb.1, rgb.2];
    let mut best = 0;
    for y in bx[1]..bx[3] {
        let mut run = 0;
        for x in bx[0]..bx[2] {
            run = if px[(y * w + x) as usize] == want {
                run + 1
            } else {
                0
            };
            best = best.max(run);
        }
    }
    best
}

/// The largest value a session has in the first scope's bar chart (all VMs): exits per
/// second, or non-HLT handling ms per second, of any reason summed over the VMs.
fn largest(json: &Value, time: bool) -> f64 {
    let mut by: std::collections::BTreeMap<String, f64> = Default::default();
    for vm in json["vms"].as_array().unwrap() {
        for r in vm["reasons"].as_array().unwrap() {
            if time && r["hlt"] == Value::Bool(true) {
                continue;
            }
            let v = if time {
                r["total_ns"].as_f64().unwrap() / 1e6
            } else {
                r["count"].as_f64().unwrap()
            };
            *by.entry(r["name"].as_str().unwrap().to_string())
                .or_default() += v;
        }
    }
    let secs = json["duration_s"].as_f64().unwrap();
    by.values().fold(0.0f64, |a, v| a.max(*v)) / secs
}

#[test]
fn a_screenshot_shows_each_sessions_bars_as_long_as_its_numbers() {
    let pages = pages();
    let mut b = Browser::launch();
    let page = b.open(&url(&pages.diff));
    let boxes = b.eval(
        &page,
        "[...document.querySelectorAll('figure.chart svg')].slice(0, 2)
            .map(e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })",
    );
    let img = pixels(&b.screenshot(&page));
    assert_eq!((img.0, img.1), SCREEN);
    let sessions = [&pages.before, &pages.after];
    for (chart, time) in [(0, false), (1, true)] {
        let bx: Vec<u32> = boxes[chart]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap().round() as u32)
            .collect();
        assert!(
            bx[2] <= SCREEN.0 && bx[3] <= SCREEN.1,
            "chart {chart} is not on the first screen: {bx:?}"
        );
        let bx = [bx[0], bx[1], bx[2], bx[3]];
        let runs: Vec<f64> = (0..2)
            .map(|i| longest_run(&img, bx, kvmprof::report::html::color(i)) as f64)
            .collect();
        let want: Vec<f64> = sessions.iter().map(|j| largest(j, time)).collect();
        assert!(
            runs.iter().all(|r| *r > 20.0),
            "chart {chart}: bars {runs:?} px"
        );
        // One axis for both sessions: bar lengths in proportion to the values, to 3 px.
        let scale = runs[0] / want[0];
        assert!(
            (runs[1] - want[1] * scale).abs() <= 3.0,
            "chart {chart}: bars {runs:?} px for values {want:?}"
        );
    }
    let png = b.screenshot(&page);
    let doc = common::repo_file("docs/html-report.png");
    if std::fs::read(&doc).ok().as_deref() != Some(&png[..]) {
        std::fs::write(&doc, &png).unwrap();
    }
}
