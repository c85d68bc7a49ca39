//! The advice panel over hand-built samples of the KB's P2 profile: a Windows guest with
//! every Hyper-V enlightenment but hv-avic, SINT2 in AutoEOI mode inhibiting APICv (HYPERV),
//! and a high rate of synthetic EOI writes (MSR 0x40000070).

use crossterm::event::KeyCode;
use profiler_common::ev;

use super::tests::{draw, feed, press};
use super::{App, Screen};
use crate::advice::tests::{Fx, PID};
use crate::{
    advice::{HostFacts, Severity},
    decode::ExitNames,
    sample::Sample,
};

const HV: &str = "hv-relaxed=on,hv-vapic=on,hv-spinlocks=0x1fff,hv-vpindex=on,hv-runtime=on,hv-synic=on,hv-stimer=on,hv-stimer-direct=on,hv-reset=on,hv-frequencies=on,hv-reenlightenment=on,hv-tlbflush=on,hv-ipi=on,hv-time=on";

pub(super) fn intel() -> HostFacts {
    crate::advice::tests::intel(true)
}

/// Two cumulative samples 10 s apart, built with the advice tests' fixture.
pub(super) fn p2() -> (Sample, Sample) {
    let cmdline = format!("/usr/bin/qemu-system-x86_64 -name guest=win -machine pc-q35-8.2,accel=kvm -cpu host,{HV} -smp 4 -m 8G");
    // SINT2 with AutoEOI, written at boot; APICv inhibited for HYPERV (bit 1).
    let sint2 = ev::msr_write_flags(0x4000_0092, 0x2_0050);
    // (VMX reason, exits/s for the VM, ns each): EXTERNAL_INTERRUPT, MSR_WRITE, VMCALL, HLT.
    Fx::new(&cmdline)
        .vmx(1, 30_000, 2_000)
        .vmx(32, 25_000, 1_500)
        .vmx(18, 2_000, 3_000)
        .vmx(12, 5_000, 400_000)
        .msr_w(0x4000_0070, 20_000)
        .msr_w(0x4000_0071, 5_000)
        .ev(ev::MSR_WRITE, sint2, 0x4000_0092, 0, 0x2_0050)
        .ev(ev::APICV_INHIBIT, 1, 1, 0, 0b10)
        .ev(ev::EXIT_DETAIL, 1, 0xfd, 28_000, 0)
        .ev(ev::EXIT_DETAIL, 1, 0xec, 2_000, 0)
        .ev(ev::IPI, 0, 0xfd, 30_000, 0)
        .samples()
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
