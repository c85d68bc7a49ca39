//! The HTML page: escaping of untrusted names, no way to load or run anything, one session
//! and N sessions through the same path, perf text without histograms said so, and `-o`.

use super::super::tests_diff::{all_features, no_features};
use super::super::tests_table::{add, vm, SEC};
use super::*;
use crate::{decode::ExitNames, sample::Sample};

const HOSTILE: &str = "<script>alert(1)</script>\"'&";

fn page(sessions: Vec<Data>) -> String {
    let parts: Vec<(String, Session)> = sessions
        .into_iter()
        .map(|d| {
            (
                d.label.clone(),
                Session {
                    data: d,
                    advice: None,
                    heat: None,
                },
            )
        })
        .collect();
    render(&parts).expect("page")
}

/// Two VMs over 10 s, one of them named `name`.
fn two_vms(name: &str) -> Data {
    let mut old = Sample {
        mono_ns: 5 * SEC,
        ..Default::default()
    };
    vm(&mut old, 7, name);
    vm(&mut old, 8, "plain");
    let mut new = old.clone();
    new.mono_ns = 15 * SEC;
    add(&mut new, 7, 0, 1, 49, 5_000, 3_000);
    add(&mut new, 7, 0, 1, 32, 2_000, 900);
    add(&mut new, 8, 0, 1, 30, 700, 20_000);
    Data::from_samples(&old, &new, &ExitNames::builtin(), name)
}

/// The colors a page's bars are drawn with, as plotters writes them.
fn fill_of(i: usize) -> String {
    let (r, g, b) = color(i);
    format!("fill=\"#{r:02X}{g:02X}{b:02X}\"")
}

#[test]
fn untrusted_names_are_escaped_everywhere() {
    let mut d = two_vms(HOSTILE);
    // A reason name as perf text may carry one, drawn in the charts and the table.
    d.view.vms[0].reasons[0].name = "<img src=x onerror=alert(2)>".into();
    d.warnings.push(format!("{HOSTILE} warns"));
    let html = page(vec![d]);
    assert!(!html.contains("<script"), "a script element got in");
    assert!(!html.contains("<img"), "an img element got in");
    assert!(!html.contains(HOSTILE));
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;";
    // Title, legend, scope heading, chart captions, table, warning.
    assert!(html.matches(escaped).count() >= 6, "{html}");
    assert!(html.contains("&quot;"), "the double quote was not escaped");
    assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"));
    assert!(!html.contains("'&<") && !html.contains("\"'&<"));
}

#[test]
fn bidi_and_control_characters_are_shown_not_obeyed() {
    let html = page(vec![two_vms("evil\u{202e}gnp.exe\n")]);
    assert!(
        !html.contains('\u{202e}'),
        "a bidi override reached the page"
    );
    assert!(html.contains("evil\\u{202e}gnp.exe\\n"));
}

#[test]
fn the_page_can_load_and_run_nothing() {
    let html = page(vec![no_features(), all_features()]);
    assert!(html.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
    ));
    for bad in [
        "<script", "<link", "<iframe", "<object", " src=", " href=", "url(", "@import",
    ] {
        assert!(!html.contains(bad), "the page has {bad}");
    }
    // The only URL is the SVG namespace, which is a name, not a fetch.
    let urls = html.matches("http://").count() + html.matches("https://").count();
    let ns = html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
    assert_eq!(urls, ns);
}

#[test]
fn one_and_many_sessions_draw_one_bar_per_session_and_reason() {
    let one = page(vec![no_features()]);
    let two = page(vec![no_features(), all_features()]);
    // One VM: its section only (no "All VMs"), two bar charts; no second color.
    assert!(!one.contains("All VMs"));
    assert!(one.contains(&fill_of(0)) && !one.contains(&fill_of(1)));
    // 5 reasons in the exits chart, 4 (HLT left out) in the time chart, + histograms.
    let (a, b) = (
        two.matches(&fill_of(0)).count(),
        two.matches(&fill_of(1)).count(),
    );
    // Session B has a sixth reason (VMCALL): A draws a zero-length bar for it in both charts.
    assert!(a >= 6 + 5, "session A drew {a} shapes");
    assert!(b >= 6 + 5, "session B drew {b} shapes");
    let legend = two.matches("class=\"sw\"").count();
    assert!(legend >= 2, "no legend swatch per session");
    assert!(two.contains("Exits per second") && two.contains("ms/s"));
}

#[test]
fn perf_text_says_it_has_no_histograms_and_no_rates() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/report/golden/perf_new_vmx.txt"
    ))
    .unwrap();
    let perf = Data::from_perf_text(&text, "perf.txt").unwrap();
    let html = page(vec![no_features(), perf]);
    assert!(html.contains("perf.txt is perf text: it has no latency histograms"));
    assert!(html.contains("Totals, not rates"));
    assert!(html.contains("title=\"perf text has no histograms\""));
    // The recording's histograms are still drawn.
    assert!(html.contains("class=\"latency\""));
}

#[test]
fn table_cells_carry_the_exact_numbers() {
    let d = no_features();
    let html = page(vec![d.clone()]);
    for r in &d.view.vms[0].reasons {
        assert!(html.contains(&format!("data-count=\"{}\"", r.count)));
        assert!(html.contains(&format!("data-total-ns=\"{}\"", r.total_ns)));
        assert!(html.contains(&format!("data-rate-per-s=\"{}\"", r.rate_per_s)));
        assert!(html.contains(&format!("data-p99-ns=\"{}\"", r.p99_ns)));
    }
}

#[test]
fn output_needs_a_path_and_refuses_what_is_not_a_file() {
    assert_eq!(
        Output::of(None).unwrap_err().to_string(),
        "--format html writes a whole page: give it a file with -o FILE (or -o - for stdout)"
    );
    assert_eq!(Output::of(Some("-".as_ref())).unwrap(), Output::Stdout);
    let dir = tempfile::tempdir().unwrap();
    let e = write(dir.path(), "x").unwrap_err().to_string();
    assert!(
        e.ends_with("is not a regular file (a directory): give -o a file path, or -o - for stdout"),
        "{e}"
    );
    let e = write("/dev/null".as_ref(), "x").unwrap_err().to_string();
    assert!(e.contains("(a character device)"), "{e}");
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a directory entry.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let e = write(&fifo, "x").unwrap_err().to_string();
    assert!(e.contains("(a FIFO)"), "{e}");
    // A regular file is truncated, and a symlink to one followed, as `record -o` does.
    let f = dir.path().join("out.html");
    std::fs::write(&f, "a much longer old content").unwrap();
    let link = dir.path().join("link.html");
    std::os::unix::fs::symlink(&f, &link).unwrap();
    write(&link, "new").unwrap();
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "new");
}

#[test]
fn many_vms_get_sections_for_the_costliest_only() {
    let mut old = Sample {
        mono_ns: SEC,
        ..Default::default()
    };
    for pid in 1..=20 {
        vm(&mut old, pid, &format!("vm{pid:02}"));
    }
    let mut new = old.clone();
    new.mono_ns = 2 * SEC;
    for pid in 1..=20 {
        add(&mut new, pid, 0, 1, 49, 100, 1_000 * pid as u64);
    }
    let html = page(vec![Data::from_samples(
        &old,
        &new,
        &ExitNames::builtin(),
        "x",
    )]);
    let sections = html.matches("<section class=\"scope\">").count();
    assert_eq!(sections, 1 + series::TOP_VMS);
    assert!(html.contains("<h2>VM vm20</h2>") && html.contains("<h2>VM vm05</h2>"));
    assert!(
        !html.contains("<h2>VM vm04</h2>"),
        "a cheaper VM got a section"
    );
    assert!(html.contains("4 more VMs, whose exits cost less"));
    // All 20 are in the table.
    assert_eq!(html.matches("<tr class=\"reason\"").count(), 20);
}

#[test]
fn a_session_without_exits_is_a_page_too() {
    let html = page(vec![Data {
        label: "empty".into(),
        has_hist: true,
        ..Default::default()
    }]);
    assert!(html.contains("no exits"));
    assert!(html.contains("no advice for this session"));
}
