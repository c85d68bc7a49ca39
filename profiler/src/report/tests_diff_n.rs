//! N-way diffs: sessions of different lengths, of different kinds (published perf tables from
//! tests/corpus, a recording written by the store), of different ISAs; CSV.

use profiler_common::ISA_VMX;

use super::tests_diff::{cell, vs};
use super::tests_table::{add, vm, SEC};
use super::*;
use crate::store::{Header, Recorder};

/// One VM over `ms` milliseconds: (reason, exits, ns each).
fn session(label: &str, ms: u64, rows: &[(u32, u64, u64)]) -> Data {
    let mut old = Sample {
        mono_ns: 50 * SEC,
        ..Default::default()
    };
    vm(&mut old, 4000, "win11");
    let mut new = old.clone();
    new.mono_ns = 50 * SEC + ms * 1_000_000;
    for &(reason, n, ns) in rows {
        add(&mut new, 4000, 0, ISA_VMX, reason, n, ns);
    }
    Data::from_samples(&old, &new, &ExitNames::builtin(), label)
}

/// A file of the repository's tests/ folder, read as perf text.
fn perf_fixture(rel: &str) -> Data {
    let path = format!("{}/tests/{rel}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let stem = rel.rsplit('/').next().unwrap().trim_end_matches(".txt");
    Data::from_perf_text(&text, stem).unwrap()
}

/// A recording of one VMX VM over 2 s, written and read back by the store.
fn recording(dir: &std::path::Path) -> Data {
    let path = dir.join("fixed-plus.kvmprof");
    let mut r = Recorder::create(
        &path,
        &Header {
            names: ExitNames::builtin(),
            interval_ms: 1000,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..3u64 {
        let mut s = Sample {
            mono_ns: (i + 1) * SEC,
            ..Default::default()
        };
        vm(&mut s, 77, "win-game");
        add(&mut s, 77, 0, ISA_VMX, 56, 50_000 * i, 1_400); // APIC_WRITE
        add(&mut s, 77, 1, ISA_VMX, 1, 4_000 * i, 3_000); // EXTERNAL_INTERRUPT
        r.append(&s).unwrap();
    }
    r.finish().unwrap();
    let mut d = crate::session::Session::file(&path)
        .unwrap()
        .data()
        .unwrap();
    d.label = "fixed-plus".into();
    d
}

/// The known complaint: 2000 exits in 2.9 s against 4000 in 1.6 s is a rate 3.6 times as
/// high (+262.5 %), not +100 %.
#[test]
fn rates_not_counts_when_durations_differ() {
    let a = session("long", 2_900, &[(30, 2_000, 2_000)]);
    let b = session("short", 1_600, &[(30, 4_000, 2_000)]);
    let d = diff(&a, &b);
    assert_eq!(d.basis, "per second");
    let io = cell(&d, "IO_INSTRUCTION", 1);
    let pct = vs(io).exits_pct.unwrap();
    assert!((pct - 262.5).abs() < 1e-9, "{pct}");
    // Handling time per second: 2000 × 2 µs / 2.9 s against 4000 × 2 µs / 1.6 s.
    assert_eq!(vs(io).time_ratio, "3.62× more");
    let t = diff_table::render_table(&d);
    let row = t.lines().find(|l| l.starts_with("IO_INSTRUCTION")).unwrap();
    assert!(row.contains("+262.5%") && !row.contains("+100.0%"), "{row}");
    assert!(row.contains("689.7") && row.contains("2500.0"), "{row}");
}

/// The talk's comparison, four sessions of three kinds: no Hyper-V flags, all flags (SynIC
/// turns APICv off), all flags plus the fix (published perf tables), and a recording.
#[test]
fn four_sessions_of_mixed_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let data = [
        perf_fixture("corpus/04-win-3dgame-no-hyperv-baseline.txt"),
        perf_fixture("corpus/03-win-3dgame-hyperv-synic-apicv-off.txt"),
        perf_fixture("corpus/06-win-3dgame-fixed-deprecating-aeoi.txt"),
        recording(dir.path()),
    ];
    let refs: Vec<&Data> = data.iter().collect();
    let d = diff_with(&refs, &DiffOptions::default()).unwrap();
    let tags: Vec<&str> = d.sessions.iter().map(|s| s.tag.as_str()).collect();
    assert_eq!(tags, ["A", "B", "C", "D"]);
    assert_eq!(d.sessions[3].duration_s, 2.0);
    // perf text has no duration: totals, and the diff names the sessions lacking one.
    assert_eq!(d.basis, "total");
    assert!(
        d.notes[0].contains("A, B, C have no duration"),
        "{:?}",
        d.notes
    );
    // Counts as the tables printed them; the recording's over its 2 s.
    assert_eq!(cell(&d, "APIC_WRITE", 0).count, 255_152);
    assert_eq!(cell(&d, "APIC_WRITE", 1).count, 0);
    assert_eq!(cell(&d, "APIC_WRITE", 2).count, 172_232);
    assert_eq!(cell(&d, "APIC_WRITE", 3).count, 100_000);
    assert_eq!(cell(&d, "APIC_WRITE", 3).rate_per_s, Some(50_000.0));
    assert_eq!(vs(cell(&d, "APIC_WRITE", 1)).time_ratio, "gone");
    assert_eq!(vs(cell(&d, "MSR_WRITE", 1)).time_ratio, "new");
    // Every ratio is that session's handling time against A's.
    for r in &d.reasons {
        let a = r.sessions[0].total_ns as f64;
        for c in &r.sessions[1..] {
            assert_eq!(
                vs(c).time_ratio,
                diff::ratio(a, c.total_ns as f64),
                "{}",
                r.name
            );
        }
    }
    // The totals: 3.63× the handling time of A with Hyper-V on, less with the fix.
    let (ta, tb) = (d.totals[0].total_ns as f64, d.totals[1].total_ns as f64);
    assert!(tb / ta > 2.0, "{ta} {tb}");
    assert_eq!(vs(&d.totals[1]).time_ratio, diff::ratio(ta, tb));
    assert!(vs(&d.totals[2]).time_ratio.ends_with("less"));

    let t = diff_table::render_table(&d);
    let heads: Vec<&str> = t.lines().filter(|l| l.starts_with("Reason")).collect();
    assert_eq!(heads.len(), 1, "{t}");
    assert_eq!(heads[0].matches("Count").count(), 4, "{t}");
    assert_eq!(heads[0].matches("Time vs A").count(), 3, "{t}");
    for want in [
        "A: 04-win-3dgame-no-hyperv-baseline",
        "D: fixed-plus [win-game], 2.0s",
    ] {
        assert!(t.contains(want), "{want}\n{t}");
    }
    let total = t.lines().find(|l| l.starts_with("Total (HLT")).unwrap();
    assert_eq!(total.matches("100.00").count(), 4, "{total}");
}

/// A VMX table against an SVM one: said once, and no row called new or gone for it.
#[test]
fn different_isas_are_said_once() {
    let vmx = perf_fixture("perf64/perf64-vmx-vmexit.txt");
    let svm = perf_fixture("perf64/perf64-svm-vmexit.txt");
    let d = diff(&vmx, &svm);
    assert_eq!(d.sessions[0].isas, ["vmx"]);
    assert_eq!(d.sessions[1].isas, ["svm"]);
    let notes: Vec<&String> = d.notes.iter().filter(|n| n.contains("ISA")).collect();
    assert_eq!(notes.len(), 1, "{:?}", d.notes);
    assert!(
        notes[0].starts_with("different ISAs (A is VMX; B is SVM)"),
        "{}",
        notes[0]
    );
    for r in &d.reasons {
        assert_eq!(vs(&r.sessions[1]).time_ratio, "other ISA", "{}", r.name);
        assert_eq!(vs(&r.sessions[1]).exits_pct, None);
    }
    let t = diff_table::render_table(&d);
    assert_eq!(t.matches("note: different ISAs").count(), 1, "{t}");
    assert!(!t.contains(" new") && !t.contains(" gone"), "{t}");
}

/// CSV: one line per (reason, session) and per session's total, every line full.
#[test]
fn csv_has_a_line_per_reason_and_session() {
    let a = session("a", 10_000, &[(30, 2_000, 2_000), (12, 10, 1_000_000)]);
    let b = session("b,\"quoted\"", 5_000, &[(30, 500, 2_000), (10, 100, 1_000)]);
    let c = session("c", 20_000, &[(10, 400, 1_500)]);
    let d = diff_with(&[&a, &b, &c], &DiffOptions::default()).unwrap();
    let csv = diff_table::render_csv(&d);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], diff_table::CSV_COLUMNS.join(","));
    assert_eq!(lines.len(), 1 + d.reasons.len() * 3 + 3, "{csv}");
    let io: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("reason,IO_INSTRUCTION,"))
        .collect();
    assert_eq!(
        io,
        [
            "reason,IO_INSTRUCTION,vmx,false,A,a,10.000,2000,200.000,100.0000,4000000,400000.0,2000.0,2000,,,",
            "reason,IO_INSTRUCTION,vmx,false,B,\"b,\"\"quoted\"\"\",5.000,500,100.000,90.9091,1000000,200000.0,2000.0,2000,-50.00,2.00× less,",
            "reason,IO_INSTRUCTION,vmx,false,C,c,20.000,0,0.000,0.0000,0,0.0,,,-100.00,gone,",
        ]
    );
    assert!(csv.contains("\ntotal,,vmx,false,C,c,20.000,400,20.000,100.0000,600000,30000.0,1500.0,,-90.00,13.33× less,\n"), "{csv}");
}

/// One `--vm` applies to every session.
#[test]
fn one_vm_for_every_session() {
    let (a, b) = (
        session("a", 1_000, &[(30, 1, 1)]),
        session("b", 1_000, &[(10, 1, 1)]),
    );
    let o = DiffOptions {
        vms: vec![Some("win11".into())],
    };
    let d = diff_with(&[&a, &b, &a], &o).unwrap();
    assert!(d.sessions.iter().all(|s| s.vms == ["win11"]));
}
