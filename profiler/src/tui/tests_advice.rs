//! The advice panel over hand-built samples of the KB's P2 profile: a Windows guest with
//! every Hyper-V enlightenment but hv-avic, SINT2 in AutoEOI mode inhibiting APICv (HYPERV),
//! and a high rate of synthetic EOI writes (MSR 0x40000070).

use crossterm::event::KeyCode;
use profiler_common::{ev, ISA_VMX};

use super::tests::{draw, feed, press, SEC};
use super::{App, Screen};
use crate::{
    advice::{HostFacts, Severity, Vendor},
    decode::ExitNames,
    sample::{EvKey, EvStat, Key, Sample, Stat, VmInfo},
};

const PID: u32 = 4242;
const SPAN: u64 = 10;
const VCPUS: u32 = 4;
const HV: &str = "hv-relaxed=on,hv-vapic=on,hv-spinlocks=0x1fff,hv-vpindex=on,hv-runtime=on,hv-synic=on,hv-stimer=on,hv-stimer-direct=on,hv-reset=on,hv-frequencies=on,hv-reenlightenment=on,hv-tlbflush=on,hv-ipi=on,hv-time=on";

fn intel() -> HostFacts {
    HostFacts {
        vendor: Some(Vendor::Intel),
        apicv: Some(true),
        halt_poll_ns: Some(200_000),
        kernel_release: Some("6.8.0-45-generic".into()),
        cpus: Some(32),
        clocksource: Some("tsc".into()),
        ..Default::default()
    }
}

/// Two cumulative samples SPAN seconds apart.
fn p2() -> (Sample, Sample) {
    let vm = VmInfo {
        pid: PID,
        name: "win".into(),
        cmdline: format!("/usr/bin/qemu-system-x86_64 -name guest=win -machine pc-q35-8.2,accel=kvm -cpu host,{HV} -smp 4 -m 8G")
            .split_whitespace()
            .map(String::from)
            .collect(),
        is_qemu: true,
        ..Default::default()
    };
    let mut older = Sample {
        mono_ns: SEC,
        ..Default::default()
    };
    older.vms.insert(PID, vm.clone());
    let mut newer = Sample {
        mono_ns: (1 + SPAN) * SEC,
        ..Default::default()
    };
    newer.vms.insert(PID, vm);
    // (VMX reason, exits/s for the VM, ns each): EXTERNAL_INTERRUPT, MSR_WRITE, VMCALL, HLT.
    for (reason, per_s, ns) in [
        (1, 30_000, 2_000),
        (32, 25_000, 1_500),
        (18, 2_000, 3_000),
        (12, 5_000, 400_000),
    ] {
        let n = per_s * SPAN / u64::from(VCPUS);
        for vcpu in 0..VCPUS {
            let mut st = Stat {
                count: n,
                sum_ns: n * ns,
                min_ns: ns,
                max_ns: ns,
                ..Default::default()
            };
            st.hist.record(ns, n);
            let k = Key {
                tgid: PID,
                vcpu,
                isa: ISA_VMX,
                reason,
            };
            newer.stats.insert(k, st);
        }
    }
    let mut ev = |kind: u16, flags: u16, a: u64, per_s: u64, last: u64| {
        let k = EvKey {
            tgid: PID,
            kind,
            flags,
            a,
        };
        let old = EvStat {
            count: 5,
            sum: 0,
            last,
        };
        older.evidence.insert(k, old);
        let n = per_s * SPAN;
        let new = EvStat {
            count: 5 + n,
            sum: n * 1000,
            last,
        };
        newer.evidence.insert(k, if per_s == 0 { old } else { new });
    };
    ev(
        ev::MSR_WRITE,
        ev::msr_write_flags(0x4000_0070, 0),
        0x4000_0070,
        20_000,
        0,
    );
    ev(
        ev::MSR_WRITE,
        ev::msr_write_flags(0x4000_0071, 0),
        0x4000_0071,
        5_000,
        0,
    );
    // SINT2 with AutoEOI, written at boot; APICv inhibited for HYPERV (bit 1).
    let sint2 = ev::msr_write_flags(0x4000_0092, 0x2_0050);
    ev(ev::MSR_WRITE, sint2, 0x4000_0092, 0, 0x2_0050);
    ev(ev::APICV_INHIBIT, 1, 1, 0, 0b10);
    ev(ev::EXIT_DETAIL, 1, 0xfd, 28_000, 0);
    ev(ev::EXIT_DETAIL, 1, 0xec, 2_000, 0);
    ev(ev::IPI, 0, 0xfd, 30_000, 0);
    (older, newer)
}

fn advice_app() -> App {
    let (older, newer) = p2();
    let mut a = App::new(ExitNames::builtin(), "fake: win".into()).with_host(intel());
    feed(&mut a, vec![older, newer]);
    a
}

#[test]
fn advice_panel_collapsed_and_expanded() {
    let mut a = advice_app();
    press(&mut a, KeyCode::Enter); // the VM's exit table
    press(&mut a, KeyCode::Char('a'));
    assert_eq!(a.level().screen, Screen::Advice(PID));
    let collapsed = draw(&a, 110, 30);
    assert!(collapsed.contains("win › advice"), "{collapsed}");
    assert!(collapsed.contains("profile P2"), "{collapsed}");
    let first = collapsed
        .lines()
        .find(|l| l.contains('▶'))
        .unwrap_or_default();
    assert!(
        first.contains("CRITICAL") && first.contains("R07"),
        "{collapsed}"
    );
    // Most severe first.
    let sev: Vec<Severity> = a.findings(PID).iter().map(|f| f.severity).collect();
    assert!(sev.windows(2).all(|w| w[0] >= w[1]), "{sev:?}");
    assert!(!collapsed.contains("Evidence"), "{collapsed}");
    insta::assert_snapshot!("advice_collapsed", collapsed);

    press(&mut a, KeyCode::Char('e'));
    let expanded = draw(&a, 110, 30);
    for want in [
        "R07 CRITICAL · details",
        "Evidence",
        "HYPERV (bit 1)",
        "HV_SINT2",
        "hv-avic=on",
        "Effect",
        "Source",
    ] {
        assert!(expanded.contains(want), "{want}: {expanded}");
    }
    insta::assert_snapshot!("advice_expanded", expanded);

    // The details follow the cursor.
    press(&mut a, KeyCode::Down);
    let next = draw(&a, 110, 30);
    assert!(!next.contains("R07 CRITICAL · details"), "{next}");
    assert!(next.contains("Evidence"), "{next}");

    press(&mut a, KeyCode::Esc); // collapses
    assert!(!draw(&a, 110, 30).contains("Evidence"));
    press(&mut a, KeyCode::Esc); // back to the exit table
    assert_eq!(a.level().screen, Screen::Vm(PID));
}

#[test]
fn advice_from_the_vm_list_and_without_samples() {
    let mut a = advice_app();
    press(&mut a, KeyCode::Char('a'));
    assert_eq!(a.level().screen, Screen::Advice(PID));
    press(&mut a, KeyCode::Char('a')); // a again closes it
    assert_eq!(a.level().screen, Screen::Vms);

    let mut empty = App::new(ExitNames::builtin(), "fake".into()).with_host(intel());
    press(&mut empty, KeyCode::Char('a'));
    assert_eq!(empty.level().screen, Screen::Vms, "no VM to advise on");
}
