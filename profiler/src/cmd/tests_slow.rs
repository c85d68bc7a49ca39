//! `check` and `diff` on the slow-exit log: recordings that hold it (format 4), one that does
//! not (format 3: "not recorded", never 0), and a live check with the log turned off.

use std::path::{Path, PathBuf};

use profiler_common::ISA_VMX;

use super::tests::{check_run, env, host, parse};
use super::*;
use crate::{
    cli::Command,
    decode::ExitNames,
    sample::SlowEvent,
    store::{Header, Recorder},
};

const MS: u64 = 1_000_000;

/// The fake host's 8 samples (7 s), win (pid 100) logging per sample the `(reason, took ms)`
/// exits of `each`; the first sample's come before the span and are not counted.
fn recording(dir: &Path, name: &str, each: &[(u32, u64)]) -> PathBuf {
    let path = dir.join(format!("{name}.kvmprof"));
    let header = Header {
        names: ExitNames::builtin(),
        interval_ms: 1000,
        ..Default::default()
    };
    let mut r = Recorder::create(&path, &header).expect("create");
    for mut s in host() {
        s.slow = each
            .iter()
            .enumerate()
            .map(|(i, &(reason, ms))| SlowEvent {
                exit_ns: s.mono_ns - 500 * MS + i as u64,
                took_ns: ms * MS,
                tgid: 100,
                tid: 101,
                isa: ISA_VMX,
                reason,
                ..Default::default()
            })
            .collect();
        r.append(&s).expect("append");
    }
    r.finish().expect("finish");
    path
}

fn v3() -> String {
    format!(
        "{}/src/store/fixtures/v3.kvmprof",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn diff_out(args: &[&str]) -> String {
    let cli = parse(&[&["diff"], args].concat());
    let Some(Command::Diff(a)) = &cli.command else {
        panic!()
    };
    diff::render_diff(a).expect("diff")
}

#[test]
fn diff_compares_slow_exits_and_says_not_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = recording(dir.path(), "a", &[(30, 2)]);
    let b = recording(dir.path(), "b", &[(30, 1), (30, 1), (32, 5)]);
    let (a, b, old) = (a.to_str().unwrap(), b.to_str().unwrap(), v3());
    let table = diff_out(&[a, b, &old]);
    for want in [
        "A: 7 (1.00/s), worst 2.00ms; IO_INSTRUCTION 7 (worst 2.00ms)\n",
        "B: 21 (3.00/s), worst 5.00ms; IO_INSTRUCTION 14 (worst 1.00ms), MSR_WRITE 7 (worst 5.00ms)\n",
        "C: not recorded\n",
    ] {
        assert!(table.contains(want), "{want}: {table}");
    }

    let json: serde_json::Value =
        serde_json::from_str(&diff_out(&[a, b, &old, "-f", "json"])).expect("json");
    let slow = &json["slow"];
    assert_eq!(slow[0]["count"], 7);
    assert_eq!(slow[1]["rate_per_s"], 3.0);
    assert_eq!(slow[1]["worst_ns"], 5 * MS);
    assert_eq!(slow[1]["reasons"][1]["name"], "MSR_WRITE");
    assert!(slow[2].is_null(), "{slow}");

    let csv = diff_out(&[a, b, &old, "-f", "csv"]);
    for want in [
        "\nslow,,,false,A,a,7.000,7,1.000,,,,,,,,2000000\n",
        "\nslow,,,false,C,v3,",
        "\nslow_reason,MSR_WRITE,,false,B,b,7.000,7,1.000,,,,,,,,5000000\n",
    ] {
        assert!(csv.contains(want), "{want}: {csv}");
    }
    let not_recorded = csv
        .lines()
        .find(|l| l.starts_with("slow,,,false,C,"))
        .unwrap();
    assert!(not_recorded.ends_with(",,,,,,,,,,"), "{not_recorded}");

    // The HTML page says it in each session's line.
    let page = diff_out(&[a, &old, "-f", "html"]);
    assert!(page.contains("7 slow exits (worst 2.00ms)"), "{page}");
    assert!(page.contains("slow exits not recorded"), "{page}");

    // Only sessions without the log: nothing to say.
    assert!(!diff_out(&[&old, &old]).contains("Slow exits"));
}

#[test]
fn check_reads_a_recordings_slow_exits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = recording(dir.path(), "a", &[(30, 2), (32, 1)]);
    let a = a.to_str().unwrap();
    let (code, text) = check_run(&[a, "-t", "max_slow_per_s=1.5", "--vm", "win"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("max_slow_per_s"), "{text}");
    let (code, text) = check_run(&[a, "-t", "IO_INSTRUCTION.max_slow_per_s=1", "--vm", "win"]);
    assert_eq!(code, 0, "{text}");
    // The other VM logged none.
    let (code, text) = check_run(&[a, "-t", "max_slow_per_s=0", "--vm", "db"]);
    assert_eq!(code, 0, "{text}");

    let (code, text) = check_run(&[&v3(), "-t", "max_slow_per_s=1"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no slow-exit log"), "{text}");
}

#[test]
fn a_live_check_needs_the_slow_log_on() {
    let (code, text) = check_run(&[
        "-d",
        "60ms",
        "--sample-every",
        "20ms",
        "-t",
        "max_slow_dropped=0",
    ]);
    assert_eq!(code, 0, "the log is on by default: {text}");
    let cli = parse(&[
        "check",
        "-d",
        "60ms",
        "--slow",
        "off",
        "-t",
        "max_slow_per_s=1",
    ]);
    let Some(Command::Check(a)) = &cli.command else {
        panic!()
    };
    let e = check::run(&mut env(&cli), a).unwrap_err().to_string();
    assert!(e.contains("drop --slow off") && !e.contains('\n'), "{e}");
}
