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

#[test]
fn enlightenments_cut_handling_time_five_fold() {
    let d = diff(&no_features(), &all_features());
    assert_eq!(d.basis, "per second");
    assert_eq!(d.total_time_ratio, "5.04× less");
    assert_eq!(d.total_time.a, 294_000_000.0);
    assert_eq!(d.total_time.b, 58_331_000.0);
    let top = &d.reasons[0];
    assert_eq!(top.name, "EPT_MISCONFIG");
    assert_eq!(top.time_ratio, "20.00× less");
    assert_eq!(top.count.rel_pct, Some(-95.0));
    assert_eq!(top.rate_per_s.as_ref().map(|r| r.b), Some(2_000.0));
    assert_eq!(top.p99_ns.abs, Some(0.0));
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
    let vmcall = &d.reasons[2];
    assert_eq!(
        (vmcall.time_ratio.as_str(), vmcall.mean_ns.a),
        ("new", None)
    );
    assert_eq!(vmcall.mean_ns.b, Some(2_333.0));
}

#[test]
fn diff_table_golden() {
    let d = diff(&no_features(), &all_features());
    golden("diff.txt", &diff::render_table(&d));
}

#[test]
fn diff_json_has_both_sides() {
    let d = diff(&no_features(), &all_features());
    let j: serde_json::Value = serde_json::from_str(&diff::render_json(&d).unwrap()).unwrap();
    assert_eq!(j["total_time_ratio"], "5.04× less");
    assert_eq!(j["a"]["label"], "no-enlightenments");
    assert_eq!(j["reasons"][2]["mean_ns"]["a"], serde_json::Value::Null);
    assert_eq!(j["reasons"][0]["count"]["rel_pct"], -95.0);
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

/// perf text on one side: totals compared as totals, no p99 there.
#[test]
fn recording_against_perf_text() {
    let perf = "Analyze events for all VMs, all VCPUs:\n\n\
        VM-EXIT Samples Samples% Time% Min Time Max Time Avg time\n\n\
        EPT_MISCONFIG 4000000 100.00% 100.00% 5.00us 7.00us 6.00us ( +- 0.10% )\n\n\
        Total Samples:4000000, Total events handled time:24000000.00us.\n";
    let a = Data::from_perf_text(perf, "perf.txt").unwrap();
    let d = diff(&a, &all_features());
    assert_eq!(d.basis, "total");
    let ept = d
        .reasons
        .iter()
        .find(|r| r.name == "EPT_MISCONFIG")
        .unwrap();
    assert_eq!((ept.p99_ns.a, ept.p99_ns.b), (None, Some(6_000.0)));
    assert_eq!(ept.time_ratio, "200.00× less");
    assert!(diff::render_table(&d).contains("n/a"));
}

#[test]
fn one_vm_each_side() {
    let o = DiffOptions {
        vm_a: Some("win11".into()),
        vm_b: Some("4000".into()),
    };
    assert!(diff_with(&no_features(), &all_features(), &o).is_ok());
    let bad = DiffOptions {
        vm_a: Some("linux".into()),
        ..Default::default()
    };
    let e = diff_with(&no_features(), &all_features(), &bad).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no VM `linux` in this session (VMs: win11 (pid 4000)): name one by name, uuid or pid"
    );
}
