//! A/B diffs: a Windows guest without Hyper-V enlightenments against the same guest with all
//! of them (numbers also in golden/gen_golden.py).

use profiler_common::ISA_VMX;

use super::tests_table::{add, golden, vm, SEC};
use super::*;

/// One VM over 10 s: (reason, exits, ns each).
fn session(label: &str, rows: &[(u32, u64, u64)]) -> Data {
    let mut old = Sample {
        mono_ns: 50 * SEC,
        ..Default::default()
    };
    vm(&mut old, 4000, "win11");
    let mut new = old.clone();
    new.mono_ns = 60 * SEC;
    for &(reason, n, ns) in rows {
        add(&mut new, 4000, 0, ISA_VMX, reason, n, ns);
    }
    Data::from_samples(&old, &new, &ExitNames::builtin(), label)
}

pub(super) fn no_features() -> Data {
    session(
        "no-enlightenments",
        &[
            (49, 400_000, 6_000),  // EPT_MISCONFIG: APIC/timer MMIO
            (32, 300_000, 1_500),  // MSR_WRITE
            (1, 100_000, 700),     // EXTERNAL_INTERRUPT
            (30, 10_000, 2_000),   // IO_INSTRUCTION
            (12, 50_000, 100_000), // HLT
        ],
    )
}

pub(super) fn all_features() -> Data {
    session(
        "all-enlightenments",
        &[
            (49, 20_000, 6_000),
            (32, 150_000, 1_400),
            (1, 100_000, 700),
            (30, 10_000, 2_000),
            (18, 70_000, 2_333), // VMCALL: Hyper-V hypercalls
            (12, 50_000, 100_000),
        ],
    )
}

/// Session `i`'s numbers of reason `name`.
pub(super) fn cell<'a>(d: &'a Diff, name: &str, i: usize) -> &'a diff::Cell {
    let r = d.reasons.iter().find(|r| r.name == name);
    &r.unwrap_or_else(|| panic!("no {name}")).sessions[i]
}

pub(super) fn vs(c: &diff::Cell) -> &diff::VsFirst {
    c.vs_first.as_ref().expect("not the first session")
}

#[test]
fn enlightenments_cut_handling_time_five_fold() {
    let d = diff(&no_features(), &all_features());
    assert_eq!(d.basis, "per second");
    assert_eq!(vs(&d.totals[1]).time_ratio, "5.04× less");
    assert_eq!(d.totals[0].time_ns_per_s, Some(294_000_000.0));
    assert_eq!(d.totals[1].time_ns_per_s, Some(58_331_000.0));
    assert_eq!(d.totals[0].vs_first, None);
    let top = &d.reasons[0];
    assert_eq!(top.name, "EPT_MISCONFIG");
    let b = &top.sessions[1];
    assert_eq!(vs(b).time_ratio, "20.00× less");
    assert_eq!(vs(b).exits_pct, Some(-95.0));
    assert_eq!(b.rate_per_s, Some(2_000.0));
    assert_eq!(b.p99_ns, top.sessions[0].p99_ns);
    let names: Vec<&str> = d.reasons.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "EPT_MISCONFIG",
            "MSR_WRITE",
            "VMCALL",
            "EXTERNAL_INTERRUPT",
            "HLT",
            "IO_INSTRUCTION"
        ]
    );
    let vmcall = cell(&d, "VMCALL", 1);
    assert_eq!(
        (vs(vmcall).time_ratio.as_str(), vmcall.mean_ns),
        ("new", Some(2_333.0))
    );
    assert_eq!(cell(&d, "VMCALL", 0).mean_ns, None);
}

#[test]
fn diff_table_golden() {
    let d = diff(&no_features(), &all_features());
    golden("diff.txt", &diff_table::render_table(&d));
}

#[test]
fn diff_json_has_every_session() {
    let d = diff(&no_features(), &all_features());
    let j: serde_json::Value = serde_json::from_str(&diff_table::render_json(&d).unwrap()).unwrap();
    assert_eq!(j["totals"][1]["vs_first"]["time_ratio"], "5.04× less");
    assert_eq!(j["sessions"][0]["label"], "no-enlightenments");
    assert_eq!(j["sessions"][1]["tag"], "B");
    assert_eq!(
        j["reasons"][2]["sessions"][0]["mean_ns"],
        serde_json::Value::Null
    );
    assert_eq!(
        j["reasons"][0]["sessions"][1]["vs_first"]["exits_pct"],
        -95.0
    );
}

#[test]
fn ratios_read_both_ways() {
    assert_eq!(diff::ratio(130.0, 100.0), "1.30× less");
    assert_eq!(diff::ratio(100.0, 130.0), "1.30× more");
    assert_eq!(diff::ratio(5.0, 5.0), "same");
    assert_eq!(diff::ratio(0.0, 5.0), "new");
    assert_eq!(diff::ratio(5.0, 0.0), "gone");
    assert_eq!(diff::ratio(0.0, 0.0), "same");
}

/// perf text on one side: totals compared as totals (and the diff says why), no p99 there.
#[test]
fn recording_against_perf_text() {
    let perf = "Analyze events for all VMs, all VCPUs:\n\n\
        VM-EXIT Samples Samples% Time% Min Time Max Time Avg time\n\n\
        EPT_MISCONFIG 4000000 100.00% 100.00% 5.00us 7.00us 6.00us ( +- 0.10% )\n\n\
        Total Samples:4000000, Total events handled time:24000000.00us.\n";
    let a = Data::from_perf_text(perf, "perf.txt").unwrap();
    let d = diff(&a, &all_features());
    assert_eq!(d.basis, "total");
    assert!(d.notes[0].starts_with("compared as totals, not per second: A has no duration"));
    let (a, b) = (cell(&d, "EPT_MISCONFIG", 0), cell(&d, "EPT_MISCONFIG", 1));
    assert_eq!((a.p99_ns, b.p99_ns), (None, Some(6_000.0)));
    assert_eq!((a.rate_per_s, b.rate_per_s), (None, Some(2_000.0)));
    assert_eq!(vs(b).time_ratio, "200.00× less");
    assert!(diff_table::render_table(&d).contains("n/a"));
}

#[test]
fn one_vm_each_side() {
    let (a, b) = (no_features(), all_features());
    let o = DiffOptions {
        vms: vec![Some("win11".into()), Some("4000".into())],
    };
    assert!(diff_with(&[&a, &b], &o).is_ok());
    let bad = DiffOptions {
        vms: vec![Some("linux".into()), None],
    };
    let e = diff_with(&[&a, &b], &bad).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no VM `linux` in this session (VMs: win11 (pid 4000)): name one by name, uuid or pid"
    );
    let three = DiffOptions {
        vms: vec![None, None, None],
    };
    let e = diff_with(&[&a, &b], &three).unwrap_err().to_string();
    assert!(
        e.starts_with("3 --vm for 2 sessions: give one --vm for every session"),
        "{e}"
    );
}
