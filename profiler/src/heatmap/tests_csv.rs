//! `report --heatmap -f csv` on a recording made by the store's own writer, with known exits
//! at known latencies in known intervals: the exact cells, the narrowing options, hostile
//! names and the errors.

use profiler_common::ISA_VMX;

use crate::{
    cli::{Cli, Command},
    cmd::report,
    decode::ExitNames,
    sample::{Key, Sample, VmInfo},
    session::Env,
    source::FakeSource,
    store::{Header, Recorder},
    text::testing::EVIL,
};
use clap::Parser;

const SEC: u64 = 1_000_000_000;
const WALL: u64 = 1_700_000_000_000;

fn key(tgid: u32, vcpu: u32, reason: u32) -> Key {
    Key {
        tgid,
        vcpu,
        isa: ISA_VMX,
        reason,
    }
}

/// Samples at 10 s, 11 s and 13 s. Before the first: 100 IO exits (not in any interval).
/// Interval 0: VM 100 IO 5 × 1.5 µs + 2 × 3 µs on vCPU 0, 1 × 100 µs on vCPU 1; VM 200 3 HLT
/// of 2 ms. Interval 1: VM 100 IO 4 × 1.5 µs and CPUID 7 × 700 ns on vCPU 0.
fn samples() -> Vec<Sample> {
    let mut s = Sample::default();
    for (pid, name) in [(100, EVIL), (200, "db")] {
        s.vms.insert(
            pid,
            VmInfo {
                pid,
                name: name.into(),
                is_qemu: true,
                ..Default::default()
            },
        );
    }
    let mut out = Vec::new();
    let steps: [&[(Key, u64, u64)]; 3] = [
        &[(key(100, 0, 30), 1_500, 100)],
        &[
            (key(100, 0, 30), 1_500, 5),
            (key(100, 0, 30), 3_000, 2),
            (key(100, 1, 30), 100_000, 1),
            (key(200, 0, 12), 2_000_000, 3),
        ],
        &[(key(100, 0, 30), 1_500, 4), (key(100, 0, 10), 700, 7)],
    ];
    for (i, step) in steps.iter().enumerate() {
        s.mono_ns = [10, 11, 13][i] * SEC;
        s.wall_ms = WALL + [0, 1000, 3000][i];
        for &(k, ns, n) in step.iter() {
            s.stats.entry(k).or_default().record(ns, n);
        }
        out.push(s.clone());
    }
    out
}

fn recording(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("heat.kvmprof");
    let header = Header {
        names: ExitNames::builtin(),
        ..Default::default()
    };
    let mut w = Recorder::create(&path, &header).expect("create");
    for s in samples() {
        w.append(&s).expect("append");
    }
    w.finish().expect("finish");
    path
}

fn run(args: &[&str]) -> anyhow::Result<String> {
    let cli = Cli::try_parse_from(std::iter::once("kvmprof").chain(args.iter().copied()))?;
    let Some(Command::Report(a)) = &cli.command else {
        panic!("not a report")
    };
    let mut env = Env::fake(cli.global(), FakeSource::live(samples()));
    report::render(&mut env, a)
}

/// RFC 4180 records (quoted fields may hold commas, quotes and newlines).
fn records(csv: &str) -> Vec<Vec<String>> {
    let (mut out, mut rec, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, csv.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => rec.push(std::mem::take(&mut field)),
            (false, '\n') => {
                rec.push(std::mem::take(&mut field));
                out.push(std::mem::take(&mut rec));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(rec.is_empty() && field.is_empty(), "unterminated last line");
    out
}

#[test]
fn heatmap_csv_has_the_exact_cells() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = recording(dir.path());
    let f = rec.to_str().expect("utf-8");
    let csv = run(&["report", f, "--heatmap", "-f", "csv"]).expect("report");
    let rows = records(&csv);
    assert_eq!(rows[0], super::csv::COLUMNS);
    let (w0, w1) = (WALL.to_string(), (WALL + 1000).to_string());
    let want: Vec<Vec<String>> = [
        [
            "100", EVIL, "all", "vmx", "10", "CPUID", "1.000", "3.000", &w1, "512", "1024", "7",
        ],
        [
            "100",
            EVIL,
            "all",
            "vmx",
            "30",
            "IO_INSTRUCTION",
            "0.000",
            "1.000",
            &w0,
            "1024",
            "2048",
            "5",
        ],
        [
            "100",
            EVIL,
            "all",
            "vmx",
            "30",
            "IO_INSTRUCTION",
            "0.000",
            "1.000",
            &w0,
            "2048",
            "4096",
            "2",
        ],
        [
            "100",
            EVIL,
            "all",
            "vmx",
            "30",
            "IO_INSTRUCTION",
            "0.000",
            "1.000",
            &w0,
            "65536",
            "131072",
            "1",
        ],
        [
            "100",
            EVIL,
            "all",
            "vmx",
            "30",
            "IO_INSTRUCTION",
            "1.000",
            "3.000",
            &w1,
            "1024",
            "2048",
            "4",
        ],
        [
            "200", "db", "all", "vmx", "12", "HLT", "0.000", "1.000", &w0, "1048576", "2097152",
            "3",
        ],
    ]
    .iter()
    .map(|r| r.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(rows[1..], want[..], "{csv}");
    // The hostile name is one quoted field, raw as SECURITY.md says CSV keeps names: a CSV
    // reader gets it back whole and finds no forged record (the equality above).
    assert!(csv.contains(&format!("\"{EVIL}\"")), "{csv}");

    let one = run(&[
        "report",
        f,
        "--heatmap",
        "-f",
        "csv",
        "--vm",
        "pid 100",
        "--vcpu",
        "1",
        "--reason",
        "io_instruction",
    ])
    .expect("narrowed");
    let rows = records(&one);
    assert_eq!(rows.len(), 2, "{one}");
    assert_eq!(
        rows[1][2..],
        [
            "1",
            "vmx",
            "30",
            "IO_INSTRUCTION",
            "0.000",
            "1.000",
            &w0,
            "65536",
            "131072",
            "1"
        ]
    );
    let db = records(&run(&["report", f, "--heatmap", "-f", "csv", "--vm", "db"]).expect("db"));
    assert_eq!(db.len(), 2);
    assert_eq!(db[1][5], "HLT");
}

#[test]
fn heatmap_errors_say_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = recording(dir.path());
    let f = rec.to_str().expect("utf-8");
    let e = run(&["report", f, "--heatmap"]).unwrap_err().to_string();
    assert!(e.contains("add -f csv"), "{e}");
    let e = run(&["report", f, "--heatmap", "-f", "csv", "--event", "msr"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("leave out --event"), "{e}");
    let e = run(&[
        "report",
        f,
        "--heatmap",
        "-f",
        "csv",
        "--reason",
        "NOPE\x1b",
    ])
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("no exit reason `NOPE\\x1b`") && e.contains("CPUID, HLT, IO_INSTRUCTION"),
        "{e}"
    );
    assert!(
        run(&["report", f, "--reason", "HLT"]).is_err(),
        "--reason needs --heatmap"
    );

    let txt = dir.path().join("perf.txt");
    std::fs::write(
        &txt,
        "Analyze events for all VMs, all VCPUs:\n\n             VM-EXIT    Samples  Samples%     Time%    Min Time    Max Time         Avg time\n\n                 npf     100    100.00%   100.00%      1.00us      3.00us      2.00us ( +-   1.00% )\n\nTotal Samples:100, Total events handled time:200.00us.\n",
    )
    .expect("write");
    let e = run(&[
        "report",
        txt.to_str().expect("utf-8"),
        "--heatmap",
        "-f",
        "csv",
    ])
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("perf text has no intervals") && !e.contains('\n'),
        "{e}"
    );
}

/// A live collection keeps every interval for the heatmap.
#[test]
fn heatmap_of_a_live_collection() {
    let csv = run(&[
        "report",
        "-i",
        "10ms",
        "-d",
        "50ms",
        "--heatmap",
        "-f",
        "csv",
    ])
    .expect("live");
    let rows = records(&csv);
    let io: u64 = rows[1..]
        .iter()
        .filter(|r| r[5] == "IO_INSTRUCTION")
        .map(|r| r[11].parse::<u64>().expect("exits"))
        .sum();
    // The fake host's samples after the first: 5 + 2 + 1 + 4 IO exits.
    assert_eq!(io, 12, "{csv}");
}

/// The HTML report draws the same cells: per scope and top reason one heatmap, each cell
/// shaded by its level (IO_INSTRUCTION's cells of 5, 4, 2 and 1 exits: levels 4, 4, 3, 2).
#[test]
fn html_report_draws_the_heatmaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = recording(dir.path());
    let out = dir.path().join("r.html");
    let (f, o) = (rec.to_str().expect("utf-8"), out.to_str().expect("utf-8"));
    let page = run(&["report", f, "-f", "html", "-o", o]).expect("html");
    let figures: Vec<&str> = page.split("<figure class=\"heat\">").skip(1).collect();
    assert_eq!(
        figures.len(),
        4,
        "All VMs and the VM, IO_INSTRUCTION and CPUID each"
    );
    let io = figures
        .iter()
        .find(|f| f.contains("IO_INSTRUCTION over time · VM evil"))
        .expect("the VM's IO heatmap");
    let fills = |c: &str| io.matches(&format!("fill=\"#{c}\"")).count();
    let shades = crate::report::html::HEAT_SHADES;
    let hex = |(r, g, b): (u8, u8, u8)| format!("{r:02X}{g:02X}{b:02X}");
    assert_eq!(
        [
            fills(&hex(shades[3])),
            fills(&hex(shades[2])),
            fills(&hex(shades[1])),
            fills(&hex(shades[0]))
        ],
        [2, 1, 1, 0],
        "{io}"
    );
    assert!(!page.contains('\x1b'), "a raw escape in the page");
}
