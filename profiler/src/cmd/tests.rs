//! Every headless command run end to end on a fake live host: no root, no probe. (The TUI
//! commands — top, demo, replay — are driven by the TUI's own tests on the same fake source.)

use profiler_common::ISA_VMX;

use super::*;
use crate::{
    cli::{Cli, Command},
    sample::{Key, Sample, Stat, VmInfo},
    source::FakeSource,
    store::Recording,
};
use clap::Parser;

const SEC: u64 = 1_000_000_000;

/// Two VMs: `win` (pid 100) with 2 000 IO exits a second, `db` (pid 200) with 10 HLTs.
pub(super) fn host() -> Vec<Sample> {
    (0..8u64)
        .map(|i| {
            let mut s = Sample {
                mono_ns: (i + 1) * SEC,
                wall_ms: 1_700_000_000_000 + i * 1000,
                ..Default::default()
            };
            for (pid, name, reason, per_s) in [(100, "win", 30, 2_000), (200, "db", 12, 10)] {
                s.vms.insert(
                    pid,
                    VmInfo {
                        pid,
                        name: name.into(),
                        uuid: (pid == 100).then(|| "8c3a5e2b-0000-4000-8000-00000000abcd".into()),
                        is_qemu: true,
                        ..Default::default()
                    },
                );
                let mut st = Stat::default();
                st.record(3_000, per_s * (i + 1));
                let k = Key {
                    tgid: pid,
                    vcpu: 0,
                    isa: ISA_VMX,
                    reason,
                };
                s.stats.insert(k, st);
            }
            s
        })
        .collect()
}

pub(super) fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("kvmprof").chain(args.iter().copied())).expect("args")
}

/// `kvmprof check ARGS` on the fake host: (exit code, output).
pub(super) fn check_run(args: &[&str]) -> (u8, String) {
    let cli = parse(&[&["check"], args].concat());
    let Some(Command::Check(a)) = &cli.command else {
        panic!()
    };
    check::run(&mut env(&cli), a).expect("check")
}

pub(super) fn env(cli: &Cli) -> Env {
    Env::fake(cli.global(), FakeSource::live(host()))
}

#[test]
fn report_live_json_narrowed_by_uuid() {
    let cli = parse(&[
        "report",
        "-i",
        "20ms",
        "-d",
        "100ms",
        "-f",
        "json",
        "--vm",
        "8C3A5E2B-0000-4000-8000-00000000ABCD",
    ]);
    let Some(Command::Report(a)) = &cli.command else {
        panic!()
    };
    let out = report::render(&mut env(&cli), a).expect("report");
    assert!(out.contains("\"win\"") && !out.contains("\"db\""), "{out}");
}

#[test]
fn report_without_a_session_says_what_to_give() {
    let cli = parse(&["report"]);
    let Some(Command::Report(a)) = &cli.command else {
        panic!()
    };
    let e = report::render(&mut env(&cli), a).unwrap_err().to_string();
    assert!(e.starts_with("say what to analyse"), "{e}");
}

/// record keeps only the VMs named, the file reads back, and report and diff read it.
#[test]
fn record_then_report_and_diff_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("s.kvmprof");
    let f = file.to_str().expect("utf-8 path");
    let cli = parse(&[
        "record", "-i", "20ms", "-o", f, "-d", "100ms", "--vm", "win",
    ]);
    let Some(Command::Record(a)) = &cli.command else {
        panic!()
    };
    record::record(&mut env(&cli), a).expect("record");
    let rec = Recording::open(&file).expect("recording");
    assert!(rec.len() >= 2, "{} samples", rec.len());
    let last = rec.sample(rec.len() - 1).expect("sample");
    assert!(
        last.stats.keys().all(|k| k.tgid == 100),
        "{:?}",
        last.stats.keys().collect::<Vec<_>>()
    );

    let cli = parse(&["report", f, "--vm", "pid 100"]);
    let Some(Command::Report(a)) = &cli.command else {
        panic!()
    };
    let table = report::render(&mut env(&cli), a).expect("report");
    assert!(table.contains("IO_INSTRUCTION"), "{table}");

    let cli = parse(&["diff", f, f, "--vm-a", "win", "--vm-b", "100"]);
    let Some(Command::Diff(a)) = &cli.command else {
        panic!()
    };
    let d = diff::render_diff(a).expect("diff");
    assert!(d.contains("IO_INSTRUCTION"), "{d}");
}

#[test]
fn advise_live_and_one_vm_selector_rule() {
    let cli = parse(&["advise", "-i", "20ms", "-d", "100ms", "--vm", "db"]);
    let Some(Command::Advise(a)) = &cli.command else {
        panic!()
    };
    let out = advise::render(&mut env(&cli), a).expect("advise");
    assert!(
        out.contains("VM db (pid 200)") && !out.contains("VM win"),
        "{out}"
    );
    let cli = parse(&["advise", "-i", "20ms", "-d", "60ms", "--vm", "nope"]);
    let Some(Command::Advise(a)) = &cli.command else {
        panic!()
    };
    let e = advise::render(&mut env(&cli), a).unwrap_err().to_string();
    assert!(e.contains("no VM `nope` in this session"), "{e}");
}

/// check on a live run: a threshold the fake host breaks fails (exit 1) and JUnit says so.
#[test]
fn check_live_fails_a_threshold_and_writes_junit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("j.xml");
    let j = junit.to_str().expect("utf-8 path");
    let cli = parse(&[
        "check",
        "-d",
        "150ms",
        "--sample-every",
        "30ms",
        "-t",
        "max_exits_per_s=100",
        "--vm",
        "win",
        "--junit",
        j,
    ]);
    let Some(Command::Check(a)) = &cli.command else {
        panic!()
    };
    let (code, text) = check::run(&mut env(&cli), a).expect("check");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("max_exits_per_s"), "{text}");
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains("<failure") && xml.contains("win"), "{xml}");
}

/// serve on the fake host: a port already taken is a one-line error, not a panic.
#[test]
fn serve_reports_a_taken_port() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let cli = parse(&["serve", "--listen", &addr]);
    let Some(Command::Serve(a)) = &cli.command else {
        panic!()
    };
    let e = serve::serve(&mut env(&cli), a).unwrap_err();
    assert!(format!("{e:#}").contains(&addr), "{e:#}");
}

/// A p99 threshold on perf text (no histograms) cannot be measured: exit 2 with the reason,
/// not a pass at "0 µs"; the max-exit threshold still measures perf's Max column.
#[test]
fn check_on_perf_text_does_not_pass_p99_it_cannot_see() {
    let dir = tempfile::tempdir().expect("tempdir");
    let txt = dir.path().join("perf.txt");
    std::fs::write(
        &txt,
        "Analyze events for all VMs, all VCPUs:\n\n             VM-EXIT    Samples  Samples%     Time%    Min Time    Max Time         Avg time\n\n      IO_INSTRUCTION     100    100.00%   100.00%      1.00us     30.00us      2.00us ( +-   1.00% )\n\nTotal Samples:100, Total events handled time:200.00us.\n",
    )
    .expect("write");
    let t = txt.to_str().expect("utf-8 path");
    let cli = parse(&["check", "--from-perf", t, "-t", "max_p99_us=1000"]);
    let Some(Command::Check(a)) = &cli.command else {
        panic!()
    };
    let (code, text) = check::run(&mut env(&cli), a).expect("check");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no latency histograms"), "{text}");
    let cli = parse(&["check", "--from-perf", t, "-t", "max_exit_us=10"]);
    let Some(Command::Check(a)) = &cli.command else {
        panic!()
    };
    let (code, text) = check::run(&mut env(&cli), a).expect("check");
    assert_eq!(code, 1, "30 µs > 10 µs: {text}");
}

/// A live collection as an HTML page: narrowed to one VM like JSON, with that VM's advice.
#[test]
fn report_live_html_narrowed_by_vm() {
    let cli = parse(&[
        "report", "-i", "20ms", "-d", "100ms", "-f", "html", "-o", "-", "--vm", "win",
    ]);
    let Some(Command::Report(a)) = &cli.command else {
        panic!()
    };
    let out = report::render(&mut env(&cli), a).expect("report");
    assert!(out.starts_with("<!DOCTYPE html>"), "{out}");
    assert!(
        out.contains("<h2>VM win</h2>") && !out.contains("VM db"),
        "{out}"
    );
    assert!(out.contains("data-pid=\"100\"") && !out.contains("data-pid=\"200\""));
    assert!(
        out.contains("<b>VM win</b> (pid 100)"),
        "no advice for win: {out}"
    );
}

/// `report --every`: a kvm_stat -l style log, one CSV line per interval and (VM, reason) with
/// exits, the interval's end first; the fake host's rates come back per interval.
#[test]
fn report_every_logs_a_line_per_interval_and_reason() {
    let cli = parse(&["report", "--every", "20ms", "-d", "1s", "-f", "csv"]);
    let Some(Command::Report(a)) = &cli.command else {
        panic!()
    };
    let mut out = Vec::new();
    log::log_to(&mut env(&cli), a, a.every.expect("--every"), &mut out).expect("log");
    let text = String::from_utf8(out).expect("utf-8");
    let mut lines = text.lines();
    let head = lines.next().expect("header");
    assert_eq!(
        head,
        format!("time,{}", crate::report::csv::COLUMNS.join(","))
    );
    let col = |name: &str| head.split(',').position(|c| c == name).expect(name);
    let (t, pid, count, rate) = (col("time"), col("vm_pid"), col("count"), col("rate_per_s"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    // Seven intervals of the fake host (its 8 samples, 1 s apart), then nothing moves.
    assert_eq!(rows.len(), 14, "{text}");
    for pair in rows.chunks(2) {
        assert_eq!(
            (pair[0][pid], pair[0][count], pair[0][rate]),
            ("100", "2000", "2000.000")
        );
        assert_eq!(
            (pair[1][pid], pair[1][count], pair[1][rate]),
            ("200", "10", "10.000")
        );
        assert_eq!(pair[0][t], pair[1][t]);
    }
    assert!(rows.windows(2).all(|w| w[0][t] <= w[1][t]));
    assert_eq!(rows[0][t], "2023-11-14T22:13:21Z");
    // Only CSV: a log of tables would not be a log.
    let cli = parse(&["report", "--every", "20ms", "-d", "50ms"]);
    let Some(Command::Report(a)) = &cli.command else {
        panic!()
    };
    let e = log::log_to(&mut env(&cli), a, a.every.unwrap(), &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("-f csv"), "{e}");
}

/// `-1` / `--once` collects one second, like `kvm_stat -1`, and takes no other span.
#[test]
fn report_once_collects_one_second() {
    let cli = parse(&["report", "-1", "-i", "100ms", "-f", "json"]);
    let Some(Command::Report(a)) = &cli.command else {
        panic!()
    };
    // The fake host's clock is its own; the collection's length is the real one.
    let t = std::time::Instant::now();
    let out = report::render(&mut env(&cli), a).expect("report");
    let secs = t.elapsed().as_secs_f64();
    assert!((0.95..5.0).contains(&secs), "{secs} s");
    assert!(out.contains("\"vms\""), "{out}");
    for bad in [
        &["report", "--once", "-d", "5s"][..],
        &["report", "-1", "--until-signal"],
        &["report", "-1", "x.kvmprof"],
        &["advise", "-1", "--from-perf", "p.txt"],
    ] {
        let e = <crate::cli::Cli as clap::Parser>::try_parse_from(
            std::iter::once("kvmprof").chain(bad.iter().copied()),
        )
        .expect_err("conflicting spans")
        .to_string();
        assert!(e.contains("cannot be used with"), "{bad:?}: {e}");
    }
}
