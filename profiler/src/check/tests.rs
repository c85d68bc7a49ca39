//! Every threshold kind on hand-built samples, pass and fail; parsing errors; outputs.

use profiler_common::{ISA_SVM, ISA_VMX};

use super::*;
use crate::{
    advice::Severity,
    decode::ExitNames,
    model::{compute, View},
    sample::{Key, Sample, VmInfo},
};

const MS: u64 = 1_000_000;
const EPT: u32 = 49;
const MSR_W: u32 = 32;
const HLT: u32 = 12;

/// (pid, vcpu, isa, reason, exits, ns each) added on top of `base`, at `mono_ms`.
fn step(base: &Sample, mono_ms: u64, add: &[(u32, u32, u32, u32, u64, u64)]) -> Sample {
    let mut s = base.clone();
    s.mono_ns = mono_ms * MS;
    for &(pid, vcpu, isa, reason, n, ns) in add {
        let k = Key {
            tgid: pid,
            vcpu,
            isa,
            reason,
        };
        s.stats.entry(k).or_default().record(ns, n);
        s.vms.entry(pid).or_insert_with(|| VmInfo {
            pid,
            name: match pid {
                10 => "win11".into(),
                20 => "db".into(),
                _ => format!("vm{pid}"),
            },
            ..Default::default()
        });
    }
    s
}

fn start() -> Sample {
    // Every key exists at t0 so later deltas are exact.
    let s = Sample {
        mono_ns: 100_000 * MS,
        ..Default::default()
    };
    step(
        &s,
        100_000,
        &[
            (10, 0, ISA_VMX, EPT, 1, 1_000),
            (10, 1, ISA_VMX, EPT, 1, 1_000),
            (10, 0, ISA_VMX, HLT, 1, 1_000),
        ],
    )
}

/// 1 s: vCPU0 1000 EPT × 2 µs + 10 MSR_WRITE × 40 µs + 100 HLT × 1 ms; vCPU1 3000 EPT × 30 µs.
pub(super) fn run() -> (View, Vec<View>) {
    let s0 = start();
    let s1 = step(
        &s0,
        101_000,
        &[
            (10, 0, ISA_VMX, EPT, 1000, 2_000),
            (10, 0, ISA_VMX, MSR_W, 10, 40_000),
            (10, 0, ISA_VMX, HLT, 100, 1_000_000),
            (10, 1, ISA_VMX, EPT, 3000, 30_000),
        ],
    );
    let names = ExitNames::builtin();
    let v = compute(&s0, &s1, &names);
    (v.clone(), vec![v])
}

pub(super) fn t(flags: &[&str]) -> Thresholds {
    let mut t = Thresholds::default();
    for f in flags {
        t.set(f).expect("valid flag");
    }
    t
}

fn only(r: &CheckReport) -> &CheckResult {
    assert_eq!(r.results.len(), 1, "{:#?}", r.results);
    &r.results[0]
}

fn eval(flags: &[&str]) -> CheckReport {
    let (v, s) = run();
    evaluate(&v, &s, &t(flags), &[], None, None)
}

#[test]
fn reason_rate_whole_vm_and_per_vcpu() {
    let r = eval(&["EPT_MISCONFIG.max_per_s=5000"]);
    assert_eq!(only(&r).status, Status::Pass);
    assert_eq!(only(&r).measured, Some(4000.0));
    let r = eval(&["EPT_MISCONFIG.max_per_s=3000"]);
    let x = only(&r);
    assert_eq!(
        (x.status, x.over_by, x.worst_vcpu),
        (Status::Fail, Some(1000.0), Some(1))
    );
    assert_eq!(x.threshold, "EPT_MISCONFIG.max_per_s");
    assert_eq!((x.vm.as_str(), x.pid), ("win11", Some(10)));
    assert_eq!(r.exit_code(), 1);
    let r = eval(&["ept_misconfig.max_per_vcpu_per_s=2500"]);
    assert_eq!(
        (only(&r).measured, only(&r).status),
        (Some(3000.0), Status::Fail)
    );
    let r = eval(&["vmx:49.max_per_vcpu_per_s=3000"]);
    assert_eq!(only(&r).status, Status::Pass);
}

#[test]
fn latency_overall_excludes_hlt_and_per_reason() {
    // Worst non-HLT p99 is MSR_WRITE at 40 µs (HLT's 1 ms is ignored).
    let r = eval(&["max_p99_us=45"]);
    let x = only(&r);
    assert_eq!(x.status, Status::Pass);
    assert!((x.measured.unwrap() - 40.0).abs() / 40.0 < 0.07, "{x:?}");
    let r = eval(&["max_p99_us=35"]);
    assert_eq!(only(&r).status, Status::Fail);
    assert_eq!(only(&r).worst_reason.as_deref(), Some("MSR_WRITE"));
    assert_eq!(only(&r).worst_vcpu, Some(0));
    // Per reason: EPT's p99 is 30 µs, on vCPU 1.
    let r = eval(&["EPT_MISCONFIG.max_p99_us=20"]);
    assert_eq!(
        (only(&r).status, only(&r).worst_vcpu),
        (Status::Fail, Some(1))
    );
    assert!((only(&r).measured.unwrap() - 30.0).abs() / 30.0 < 0.07);
    let r = eval(&["max_exit_us=39"]);
    assert_eq!(
        (only(&r).status, only(&r).measured),
        (Status::Fail, Some(40.0))
    );
    assert_eq!(only(&r).worst_reason.as_deref(), Some("MSR_WRITE"));
    let r = eval(&["MSR_WRITE.max_us=40", "MSR_WRITE.max_p99_us=50"]);
    assert!(r.results.iter().all(|x| x.status == Status::Pass), "{r:#?}");
    // A reason never seen: its rate passes at 0, its latency has nothing to measure.
    let r = eval(&["CPUID.max_per_s=1", "CPUID.max_p99_us=1"]);
    assert_eq!(r.results[0].status, Status::Pass);
    assert_eq!(r.results[1].status, Status::Skipped);
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn overhead_and_total_rates() {
    // Busy: vCPU0 2 ms + 0.4 ms, vCPU1 90 ms → 92.4 ms / (1 s × 2) = 4.62 %.
    let r = eval(&["max_overhead_pct=5"]);
    let x = only(&r);
    assert_eq!(x.status, Status::Pass);
    assert!((x.measured.unwrap() - 4.62).abs() < 1e-9, "{x:?}");
    let r = eval(&["max_overhead_pct=4"]);
    assert_eq!(
        (only(&r).status, only(&r).worst_vcpu),
        (Status::Fail, Some(1))
    );
    assert!((only(&r).over_pct.unwrap() - 15.5).abs() < 1e-6);
    let r = eval(&["max_exits_per_s=4110"]);
    assert_eq!(
        (only(&r).status, only(&r).measured),
        (Status::Pass, Some(4110.0))
    );
    let r = eval(&["max_exits_per_s=4000"]);
    assert_eq!(only(&r).status, Status::Fail);
    let r = eval(&["max_exits_per_vcpu_per_s=2000"]);
    assert_eq!(
        (only(&r).status, only(&r).worst_vcpu),
        (Status::Fail, Some(1))
    );
}

/// Ten 100 ms intervals: 10 EPT each, 500 in the sixth.
fn storm_run() -> (View, Vec<View>) {
    let names = ExitNames::builtin();
    let mut samples = vec![start()];
    for i in 1..=10u64 {
        let n = if i == 6 { 500 } else { 10 };
        let prev = samples.last().unwrap();
        samples.push(step(
            prev,
            100_000 + i * 100,
            &[(10, 0, ISA_VMX, EPT, n, 1_000)],
        ));
    }
    let series = samples
        .windows(2)
        .map(|w| compute(&w[0], &w[1], &names))
        .collect();
    (compute(&samples[0], &samples[10], &names), series)
}

#[test]
fn storms_use_the_window() {
    let (v, s) = storm_run();
    let r = evaluate(&v, &s, &t(&["max_storm_exits_per_s=4000"]), &[], None, None);
    let x = only(&r);
    assert_eq!((x.status, x.measured), (Status::Fail, Some(5000.0)));
    assert!(x.detail.contains("+0.50 s"), "{}", x.detail);
    // Whole-run average 590/s: a 1 s window sees no storm.
    let th = t(&["max_storm_exits_per_s=4000", "storm_window_ms=1000"]);
    let r = evaluate(&v, &s, &th, &[], None, None);
    assert_eq!(only(&r).status, Status::Pass);
    assert!((only(&r).measured.unwrap() - 590.0).abs() < 1e-6);
    // 200 ms windows: (500 + 10) / 0.2 s.
    let th = t(&["EPT_MISCONFIG.max_storm_per_s=2000", "storm_window_ms=200"]);
    let r = evaluate(&v, &s, &th, &[], None, None);
    assert_eq!(only(&r).status, Status::Fail);
    assert!((only(&r).measured.unwrap() - 2550.0).abs() < 1e-6);
    // No series: the whole run stands in, flagged as approximate.
    let r = evaluate(
        &v,
        &[],
        &t(&["max_storm_exits_per_s=4000"]),
        &[],
        None,
        None,
    );
    assert!((only(&r).measured.unwrap() - 590.0).abs() < 1e-6);
    assert!(only(&r).detail.contains("approximate"));
}

#[test]
fn frame_budget_worst_window_per_vcpu() {
    // 10 ms intervals; vCPU0 spends 5 ms handling exits in the third one, 0.1 ms elsewhere.
    let names = ExitNames::builtin();
    let mut samples = vec![start()];
    for i in 1..=6u64 {
        let (n, ns) = if i == 3 { (100, 50_000) } else { (10, 10_000) };
        let prev = samples.last().unwrap();
        samples.push(step(
            prev,
            100_000 + i * 10,
            &[(10, 0, ISA_VMX, EPT, n, ns)],
        ));
    }
    let series: Vec<View> = samples
        .windows(2)
        .map(|w| compute(&w[0], &w[1], &names))
        .collect();
    let v = compute(&samples[0], &samples[6], &names);
    let th = t(&["frame_budget_pct=30", "frame_budget_us=3000"]);
    let r = evaluate(&v, &series, &th, &[], None, None);
    let get = |n: &str| r.results.iter().find(|x| x.threshold == n).unwrap();
    // 60 Hz: two intervals (20 ms) cover a frame: 5.1 ms / 20 ms = 25.5 %.
    let f60 = get("frame_budget_pct[60hz]");
    assert_eq!(f60.status, Status::Pass);
    assert!((f60.measured.unwrap() - 25.5).abs() < 1e-6, "{f60:?}");
    assert_eq!(f60.worst_vcpu, Some(0));
    // 120 Hz: one interval covers 8.3 ms: 5 ms / 10 ms = 50 %.
    let f120 = get("frame_budget_pct[120hz]");
    assert_eq!(f120.status, Status::Fail);
    assert!((f120.measured.unwrap() - 50.0).abs() < 1e-6);
    // µs per frame: 25.5 % of 16.67 ms = 4250 µs > 3000.
    let u60 = get("frame_budget_us[60hz]");
    assert!((u60.measured.unwrap() - 4250.0).abs() < 1.0, "{u60:?}");
    assert_eq!(u60.status, Status::Fail);
    assert!(u60.detail.contains("mean"), "{}", u60.detail);
    // One 1 s interval: the average is spread over every frame, flagged approximate.
    let (v, s) = run();
    let r = evaluate(&v, &s, &t(&["frame_budget_pct=10"]), &[], None, None);
    assert!(r.results.iter().all(|x| x.detail.contains("approximate")));
    assert!((r.results[0].measured.unwrap() - 9.0).abs() < 1e-6);
}

fn advice(sev: Severity) -> AdviceSummary {
    AdviceSummary {
        findings: vec![AdviceItem {
            pid: 10,
            vm: "win11".into(),
            rule: "R07".into(),
            severity: sev,
            title: "synthetic timers off".into(),
        }],
    }
}

#[test]
fn advice_severity_gate() {
    let (v, s) = run();
    let crit = t(&["fail_on=critical"]);
    let r = evaluate(&v, &s, &crit, &[], Some(&advice(Severity::Warn)), None);
    assert_eq!(only(&r).status, Status::Pass);
    let r = evaluate(&v, &s, &crit, &[], Some(&advice(Severity::Critical)), None);
    assert_eq!(
        (only(&r).status, only(&r).worst_reason.as_deref()),
        (Status::Fail, Some("R07"))
    );
    assert!(summary(&r).contains("CRITICAL R07 [win11] synthetic timers off"));
    let r = evaluate(
        &v,
        &s,
        &t(&["fail_on=warn"]),
        &[],
        Some(&advice(Severity::Warn)),
        None,
    );
    assert_eq!(only(&r).status, Status::Fail);
    let r = evaluate(&v, &s, &crit, &[], None, None);
    assert_eq!((only(&r).status, r.exit_code()), (Status::Error, 2));
}

#[test]
fn could_not_measure_cases() {
    let (v, s) = run();
    let th = t(&["max_overhead_pct=5", "max_exits_per_s=1"]);
    // Unknown VM: every threshold is an error for it, exit 2.
    let r = evaluate(&v, &s, &th, &["nope".into()], None, None);
    assert_eq!(r.results.len(), 2);
    assert!(r
        .results
        .iter()
        .all(|x| x.status == Status::Error && x.vm == "nope"));
    assert!(
        r.results[0].detail.contains("no VM `nope` in this session"),
        "{}",
        r.results[0].detail
    );
    assert!(r.results[0].detail.contains("win11 (pid 10)"));
    assert_eq!(r.exit_code(), 2);
    // By pid, found; the failure decides the exit code.
    let r = evaluate(&v, &s, &th, &["10".into(), "nope".into()], None, None);
    assert_eq!(r.exit_code(), 1);
    // No exits at all.
    let empty = View {
        duration_s: 5.0,
        ..Default::default()
    };
    let r = evaluate(&empty, &[], &th, &[], None, None);
    assert!(r
        .results
        .iter()
        .all(|x| x.status == Status::Error && x.vm == "*"));
    assert!(r.results[0].detail.contains("no exits seen"));
    // A VM present with zero exits in the span.
    let s0 = start();
    let mut s1 = s0.clone();
    s1.mono_ns += 1_000 * MS;
    let idle = compute(&s0, &s1, &ExitNames::builtin());
    let r = evaluate(&idle, &[], &th, &[], None, None);
    assert!(r.results[0].detail.contains("no exits seen for VM win11"));
    // Running on a KVM without kvm_exit: its returns to the VMM are named, not "is it running?".
    let mut s2 = s1.clone();
    let k = Key {
        tgid: s0.vms.keys().next().copied().unwrap(),
        vcpu: 4400,
        isa: profiler_common::ISA_USERSPACE,
        reason: 2,
    };
    s2.stats.entry(k).or_default().record(20_000, 35_000);
    s2.mono_ns += 1_000 * MS;
    let tcg = compute(&s1, &s2, &ExitNames::builtin());
    let r = evaluate(&tcg, &[], &th, &[], None, None);
    let d = &r.results[0].detail;
    assert!(
        d.contains("35000 returns to the VMM a second") && d.contains("no kvm_exit"),
        "{d}"
    );
    assert_eq!(r.exit_code(), 2);
    // A source error.
    let r = CheckReport::could_not_measure("cannot attach: not root", &th, &["win11".into()]);
    assert_eq!((r.results.len(), r.exit_code()), (2, 2));
    // Nothing to check at all is not a pass.
    let r = evaluate(&v, &s, &Thresholds::default(), &[], None, None);
    assert_eq!(r.exit_code(), 2);
    assert!(!r.notes.is_empty());
}

#[test]
fn unknown_reason_names() {
    let th = t(&["EPT_MISCONFIGG.max_per_s=1"]);
    let e = th.validate(&ExitNames::builtin()).unwrap_err().to_string();
    assert!(e.contains("unknown exit reason `EPT_MISCONFIGG`"), "{e}");
    let (v, s) = run();
    let r = evaluate(&v, &s, &th, &[], None, None);
    assert_eq!(only(&r).status, Status::Error);
    let names = ExitNames::builtin();
    assert_eq!(resolve_reason("npf", &names), vec![(ISA_SVM, 0x400)]);
    assert_eq!(resolve_reason("NPF", &names), vec![(ISA_SVM, 0x400)]);
    assert_eq!(resolve_reason("svm:0x400", &names), vec![(ISA_SVM, 0x400)]);
    assert_eq!(resolve_reason("EPT_MISCONFIG", &names), vec![(ISA_VMX, 49)]);
    assert!(resolve_reason("bogus:1", &names).is_empty());
    assert!(t(&["npf.max_per_s=1"]).validate(&names).is_ok());
}
