//! `--format html` and `-o` as a user meets them: HTML needs `-o` (one clear line before any
//! work), `-o -` is stdout, `-o` refuses what is not a regular file, and any format can go to
//! a file with `-o`.

mod common;

use common::{kvmprof, repo_file, stderr};

const PERF: &str = "profiler/tests/perf64/perf64-vmx-vmexit.txt";

/// The one error line of a run that must fail with status 2.
fn error_line(args: &[&str]) -> String {
    let o = kvmprof(args);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
    assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
    e
}

#[test]
fn html_needs_an_output_and_only_a_regular_file() {
    let perf = repo_file(PERF);
    for args in [
        vec!["report", "--from-perf", &perf, "--format", "html"],
        vec!["diff", &perf, &perf, "--format", "html"],
        // Said before collecting anything.
        vec!["report", "--duration", "1h", "--format", "html"],
    ] {
        let e = error_line(&args);
        assert!(
            e.contains("give it a file with -o FILE (or -o - for stdout)"),
            "{e}"
        );
    }
    let e = error_line(&[
        "report",
        "--from-perf",
        &perf,
        "--format",
        "html",
        "-o",
        "/dev/null",
    ]);
    assert!(
        e.contains("/dev/null is not a regular file (a character device)"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let e = error_line(&["diff", &perf, &perf, "--format", "html", "-o", d]);
    assert!(e.contains("(a directory)"), "{e}");
}

#[test]
fn output_goes_to_stdout_or_a_file() {
    let perf = repo_file(PERF);
    let o = kvmprof(&[
        "report",
        "--from-perf",
        &perf,
        "--format",
        "html",
        "-o",
        "-",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = String::from_utf8(o.stdout).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.json");
    let f = file.to_str().unwrap();
    let o = kvmprof(&["report", "--from-perf", &perf, "--format", "json", "-o", f]);
    assert!(o.status.success() && o.stdout.is_empty(), "{}", stderr(&o));
    let stdout = kvmprof(&["report", "--from-perf", &perf, "--format", "json"]).stdout;
    assert_eq!(std::fs::read(&file).unwrap(), stdout);
    let o = kvmprof(&["diff", &perf, &perf, "--format", "html", "-o", f]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = std::fs::read_to_string(&file).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("2 sessions compared"));
}

/// What kvmprof warns about a perf text on stderr is in the page too, next to its session.
#[test]
fn perf_import_warnings_are_in_the_page() {
    let cut = repo_file("profiler/tests/corpus/04-win-3dgame-no-hyperv-baseline.txt");
    let o = kvmprof(&["report", &cut, "--format", "html", "-o", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let warning = "6044 samples are not in this table (cut short?)";
    assert!(stderr(&o).contains(warning), "{}", stderr(&o));
    let page = String::from_utf8(o.stdout).unwrap();
    assert!(page.contains(warning), "the page lacks the import warning");
}
