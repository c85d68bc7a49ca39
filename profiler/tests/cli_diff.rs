//! `kvmprof diff` as a user runs it: N sessions of mixed kinds (published perf tables from
//! tests/corpus, perf >= 6.4's layout from tests/perf64, a recording written by the store),
//! every format its --help offers, labels, VM selection and the chart width.

mod common;

use std::{path::Path, process::Command};

use common::{kvmprof, repo_file, stderr};
use kvmprof::sample::{Key, Sample, Stat, VmInfo};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A recording of VM `win-game` (pid 77): 2 s of APIC_WRITE and EXTERNAL_INTERRUPT exits.
fn write_recording(path: &Path) {
    let mut r = common::recorder(path);
    for i in 0..3u64 {
        let mut s = Sample {
            mono_ns: (i + 1) * 1_000_000_000,
            ..Default::default()
        };
        s.vms.insert(
            77,
            VmInfo {
                pid: 77,
                name: "win-game".into(),
                start_time: 1,
                ..Default::default()
            },
        );
        for (reason, n, ns) in [(56, 50_000, 1_400), (1, 4_000, 3_000)] {
            let k = Key {
                tgid: 77,
                vcpu: 0,
                isa: 1,
                reason,
            };
            let mut st = Stat::default();
            st.record(ns, n * i);
            s.stats.insert(k, st);
        }
        r.append(&s).unwrap();
    }
    r.finish().unwrap();
}

/// Four sessions: two classic perf tables, a perf >= 6.4 screen and a recording.
fn four(dir: &Path) -> Vec<String> {
    let rec = dir.join("fixed-plus.kvmprof");
    write_recording(&rec);
    vec![
        repo_file("profiler/tests/corpus/04-win-3dgame-no-hyperv-baseline.txt"),
        repo_file("profiler/tests/corpus/03-win-3dgame-hyperv-synic-apicv-off.txt"),
        repo_file("profiler/tests/perf64/perf64-vmx-vmexit.txt"),
        rec.to_str().unwrap().to_string(),
    ]
}

fn run(files: &[String], extra: &[&str]) -> std::process::Output {
    let mut args: Vec<&str> = vec!["diff"];
    args.extend(files.iter().map(String::as_str));
    args.extend(extra);
    kvmprof(&args)
}

/// The formats `diff -h` lists: exactly those that work.
fn help_formats() -> Vec<String> {
    let o = kvmprof(&["diff", "-h"]);
    let help = stdout(&o);
    let line = help
        .lines()
        .find(|l| l.contains("[possible values:"))
        .unwrap_or_else(|| panic!("{help}"));
    let list = line.split("[possible values:").nth(1).unwrap();
    list.trim_end_matches(']')
        .split(',')
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn every_listed_format_works_on_four_sessions_of_mixed_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let files = four(dir.path());
    let formats = help_formats();
    assert_eq!(formats, ["table", "json", "csv", "chart", "html"]);
    let page = dir.path().join("d.html");
    for f in &formats {
        // A page goes to a file (-o); the others to stdout.
        let o = match f.as_str() {
            "html" => run(&files, &["-f", f, "-o", page.to_str().unwrap()]),
            _ => run(&files, &["-f", f]),
        };
        assert_eq!(o.status.code(), Some(0), "{f}: {}", stderr(&o));
        let out = match f.as_str() {
            "html" => std::fs::read_to_string(&page).unwrap(),
            _ => stdout(&o),
        };
        assert!(!out.is_empty(), "{f}");
    }
    // The page has one bar group entry per session: each label is in it.
    let html = std::fs::read_to_string(&page).unwrap();
    for f in &files {
        let stem = std::path::Path::new(f)
            .file_stem()
            .unwrap()
            .to_string_lossy();
        assert!(html.contains(stem.as_ref()), "{stem} not in the page");
    }
    let o = run(
        &files,
        &[
            "--label", "none", "--label", "all", "--label", "new-perf", "--label", "rec",
        ],
    );
    let t = stdout(&o);
    for (i, l) in [
        "A: none [",
        "B: all [",
        "C: new-perf [",
        "D: rec [win-game], 2.0s",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(
            t.lines().nth(i).map(|x| x.starts_with(l)),
            Some(true),
            "{l}\n{t}"
        );
    }
    let head = t.lines().find(|l| l.starts_with("Reason")).unwrap();
    assert_eq!(head.matches("Count").count(), 4, "{t}");
    assert_eq!(head.matches("Time vs A").count(), 3, "{t}");

    let j: serde_json::Value =
        serde_json::from_slice(&run(&files, &["-f", "json"]).stdout).unwrap();
    let labels: Vec<&str> = j["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    // Named by file stem without --label.
    assert_eq!(
        labels,
        [
            "04-win-3dgame-no-hyperv-baseline",
            "03-win-3dgame-hyperv-synic-apicv-off",
            "perf64-vmx-vmexit",
            "fixed-plus"
        ]
    );
    let csv = stdout(&run(&files, &["-f", "csv"]));
    let n = j["reasons"].as_array().unwrap().len();
    // A line per (reason, session), a total per session, and a `slow` line per session since
    // D (a recording) has the slow-exit log: none logged there, the perf texts' not recorded.
    assert_eq!(csv.lines().count(), 1 + 4 * n + 4 + 4, "{csv}");
    assert!(
        csv.contains("\nslow,,,false,D,fixed-plus,2.000,0,0.000,"),
        "{csv}"
    );
    assert!(
        csv.contains("\nslow,,,false,A,04-win-3dgame-no-hyperv-baseline,0.000,,,"),
        "{csv}"
    );
    assert!(
        t.contains("\nA: not recorded\n") && t.contains("\nD: 0 (0.00/s)\n"),
        "{t}"
    );
}

#[test]
fn label_and_vm_counts_must_match_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let files = four(dir.path());
    let o = run(&files, &["--label", "x", "--label", "y"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("2 --label for 4 files: give one --label per FILE"),
        "{e}"
    );
    let o = run(&files, &["--vm", "*", "--vm", "win-game"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("2 --vm for 4 sessions"), "{e}");
    // `*` for every VM of the perf tables, the recording's VM by name.
    let o = run(
        &files,
        &["--vm", "*", "--vm", "*", "--vm", "*", "--vm", "win-game"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The old spelling still works on two sessions.
    let o = kvmprof(&[
        "diff", &files[3], &files[3], "--vm-a", "win-game", "--vm-b", "77",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = kvmprof(&["diff", &files[0]]);
    assert_eq!(o.status.code(), Some(2));
}

/// The chart keeps to `--width`, else $COLUMNS, else 80 columns in a pipe.
#[test]
fn chart_width_from_the_flag_the_environment_or_80() {
    let dir = tempfile::tempdir().unwrap();
    let files = four(dir.path());
    let widest = |o: &std::process::Output| {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
        stdout(o).lines().map(|l| l.chars().count()).max().unwrap()
    };
    let bin = env!("CARGO_BIN_EXE_kvmprof");
    let mut args = vec!["diff".to_string()];
    args.extend(files.iter().cloned());
    args.extend(["-f".into(), "chart".into()]);
    let with_env = |cols: Option<&str>, extra: &[&str]| {
        let mut c = Command::new(bin);
        c.args(&args).args(extra).env_remove("COLUMNS");
        if let Some(v) = cols {
            c.env("COLUMNS", v);
        }
        c.output().unwrap()
    };
    let w80 = widest(&with_env(None, &[]));
    assert!((70..=80).contains(&w80), "{w80}");
    let w120 = widest(&with_env(Some("120"), &[]));
    assert!((110..=120).contains(&w120), "{w120}");
    assert_eq!(w120 - w80, 40, "the bars take the extra columns");
    let w60 = widest(&with_env(Some("120"), &["--width", "60"]));
    assert!((50..=60).contains(&w60), "{w60}");
}
