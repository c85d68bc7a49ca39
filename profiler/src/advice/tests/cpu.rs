//! The VM's host CPU next to the timer findings: how users meet timer emulation.

use super::rules::WIN10_ID;
use super::*;

/// An idle Windows VM polling the RTC: 35 % of a core, 2 % of it in the guest.
fn rtc(fx: Fx) -> VmReport {
    fx.once(ev::MSR_WRITE, 0, 0x4000_0000, WIN10_ID)
        .vmx(30, 3_000, 6_000)
        .vmx(12, 500, 900_000)
        .ev(ev::PIO_OUT, 1, 0x70, 1_500, 0)
        .ev(ev::PIO_IN, 1, 0x71, 1_500, 0)
        .run(intel(true))
}

#[test]
fn timer_findings_carry_the_vms_host_cpu() {
    let r = rtc(Fx::new(&qemu("host")).cpu(35, 2, 30));
    let f = get(&r, "R02");
    let line = f
        .evidence
        .iter()
        .find(|e| e.starts_with("host CPU of the VM: 35.0% of a core"))
        .unwrap_or_else(|| panic!("{:?}", f.evidence));
    assert!(
        line.contains("guest 2.0") && line.contains("1–3 %"),
        "{line}"
    );
    // Not on findings of other themes.
    let timers = |id: &str| catalog::rule(id).is_some_and(|r| r.theme == catalog::Theme::Timers);
    assert!(r.findings.iter().any(|f| !timers(&f.rule)), "{:?}", ids(&r));
    for other in r.findings.iter().filter(|f| !timers(&f.rule)) {
        assert!(
            !other.evidence.iter().any(|e| e.starts_with("host CPU")),
            "{}: {:?}",
            other.rule,
            other.evidence
        );
    }
    // No CPU times (perf text, an old recording): no line, never "0 %".
    let none = rtc(Fx::new(&qemu("host")));
    assert!(!get(&none, "R02")
        .evidence
        .iter()
        .any(|e| e.contains("host CPU")));
}
