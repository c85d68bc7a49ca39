//! Wait thresholds: the share of exit time runnable but not running, per VM and per reason,
//! and a session without the scheduler split.

use profiler_common::ISA_VMX;

use super::tests::t;
use super::*;
use crate::{
    decode::ExitNames,
    model::compute,
    sample::{Key, ProgStat, Sample, VmInfo},
};

const MS: u64 = 1_000_000;

/// 1 s of win11 (pid 10): vCPU0 100 EPT_MISCONFIG of 1 ms, 20 ms of it waited; vCPU1 100
/// MSR_WRITE of 1 ms, 5 ms waited; vCPU1 10 HLT of 10 ms, 50 ms waited, 40 ms asleep.
/// `split`: whether the kernel's sched programs ran.
fn run(split: bool) -> View {
    let key = |vcpu, reason| Key {
        tgid: 10,
        vcpu,
        isa: ISA_VMX,
        reason,
    };
    let mut a = Sample {
        mono_ns: 1_000 * MS,
        ..Default::default()
    };
    a.vms.insert(
        10,
        VmInfo {
            pid: 10,
            name: "win11".into(),
            ..Default::default()
        },
    );
    if split {
        a.progs.push(ProgStat {
            name: "sched_switch".into(),
            ..Default::default()
        });
    }
    for (vcpu, reason) in [(0, 49), (1, 32), (1, 12)] {
        a.stats
            .entry(key(vcpu, reason))
            .or_default()
            .record(1_000, 1);
    }
    let mut b = a.clone();
    b.mono_ns = 2_000 * MS;
    for (vcpu, reason, n, each, wait, blocked) in [
        (0, 49, 100, MS, 20 * MS, 0),
        (1, 32, 100, MS, 5 * MS, 0),
        (1, 12, 10, 10 * MS, 50 * MS, 40 * MS),
    ] {
        let st = b.stats.get_mut(&key(vcpu, reason)).unwrap();
        st.record(each, n);
        if split {
            st.wait_ns += wait;
            st.blocked_ns += blocked;
        }
    }
    compute(&a, &b, &ExitNames::builtin())
}

fn eval(flags: &[&str], split: bool) -> CheckReport {
    let v = run(split);
    evaluate(&v, std::slice::from_ref(&v), &t(flags), &[], None, None)
}

#[test]
fn the_vms_non_hlt_wait_share() {
    let r = eval(&["max_wait_pct=10"], true);
    let x = &r.results[0];
    // 25 of 200 ms non-HLT exit time: HLT's 50 ms waited is left out of the VM's share.
    assert_eq!(x.status, Status::Fail, "{x:?}");
    assert!((x.measured.unwrap() - 12.5).abs() < 1e-9, "{x:?}");
    assert_eq!(x.worst_vcpu, Some(0), "vCPU0 waited 20 %");
    assert_eq!(x.worst_reason.as_deref(), Some("EPT_MISCONFIG"));
    assert!(x.detail.contains("25.0 of 200.0 ms"), "{}", x.detail);
    assert_eq!(r.exit_code(), 1);
    assert_eq!(eval(&["max_wait_pct=12.5"], true).exit_code(), 0);
}

#[test]
fn a_reasons_wait_share_hlt_included_by_name() {
    let r = eval(&["MSR_WRITE.max_wait_pct=4"], true);
    let x = &r.results[0];
    assert_eq!((x.status, x.worst_vcpu), (Status::Fail, Some(1)), "{x:?}");
    assert!((x.measured.unwrap() - 5.0).abs() < 1e-9, "{x:?}");
    let r = eval(&["hlt.max_wait_pct=60"], true);
    assert!((r.results[0].measured.unwrap() - 50.0).abs() < 1e-9);
    assert_eq!(r.results[0].status, Status::Pass);
    // A reason never seen has nothing to measure: skipped, not passed at 0 %.
    let r = eval(&["CPUID.max_wait_pct=1"], true);
    assert_eq!(r.results[0].status, Status::Skipped, "{:?}", r.results[0]);
}

#[test]
fn without_the_split_it_cannot_be_measured() {
    // The same exits with no wait recorded must not pass as "0 % waited".
    for flag in ["max_wait_pct=1", "EPT_MISCONFIG.max_wait_pct=1"] {
        let r = eval(&[flag], false);
        let x = &r.results[0];
        assert_eq!(x.status, Status::Error, "{x:?}");
        assert!(x.detail.contains("no scheduler split"), "{}", x.detail);
        assert_eq!(r.exit_code(), 2);
    }
}

#[test]
fn parsed_from_flags_and_toml_and_in_the_example() {
    let th = Thresholds::from_toml(
        "max_wait_pct = 5\n[[reason]]\nname = \"HLT\"\nmax_wait_pct = 20\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(th.max_wait_pct, Some(5.0));
    assert_eq!(th.reasons[0].max_wait_pct, Some(20.0));
    let e = Thresholds::default().set("max_wait_pct=-1").unwrap_err();
    assert!(e.0.contains("max_wait_pct"), "{e}");
    let ex = Thresholds::from_toml(EXAMPLE_TOML, "example.toml").unwrap();
    assert!(ex.max_wait_pct.is_some() && ex.reasons.iter().any(|r| r.max_wait_pct.is_some()));
}
