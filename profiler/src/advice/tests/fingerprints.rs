//! P1–P5 fixtures from the KB's 2021 story, the expected fingerprint and top finding, plus
//! report shapes (JSON contract, text) and degraded inputs.

use super::*;

/// P1: no Hyper-V flags; HPET/RTC emulated in userspace, then APIC_WRITE.
pub(super) fn p1() -> Fx {
    p1_cpu("host,migratable=on")
}

/// P1's exits and accesses under this `-cpu`.
fn p1_cpu(cpu: &str) -> Fx {
    Fx::new(&qemu(cpu))
        .vmx(49, 40_000, 20_000)
        .vmx(56, 10_000, 1_000)
        .vmx(30, 2_000, 10_000)
        .vmx(12, 5_000, 500_000)
        .ev(ev::MMIO_READ, 4, 0xfed0_00f0, 30_000, 0)
        .ev(ev::MMIO_WRITE, 4, 0xfed0_0108, 10_000, 0)
        .ev(ev::PIO_OUT, 1, 0x70, 1_000, 0)
        .ev(ev::PIO_IN, 1, 0x71, 1_000, 0)
        .ev(ev::EXIT_DETAIL, 56, 0x300, 8_000, 0)
        .ev(ev::EXIT_DETAIL, 56, 0xb0, 2_000, 0)
}

/// P2: all features on without hv-avic; AutoEOI inhibits APICv; IPIs and synthetic EOIs.
pub(super) fn p2(extra: &str) -> Fx {
    Fx::new(&qemu(&format!("host,{ALL_HV}{extra}")))
        .vmx(1, 30_000, 2_000)
        .vmx(32, 25_000, 1_500)
        .vmx(18, 2_000, 3_000)
        .vmx(12, 5_000, 400_000)
        .msr_w(0x4000_0070, 20_000)
        .msr_w(0x4000_0071, 5_000)
        .once(
            ev::MSR_WRITE,
            ev::msr_write_flags(0x4000_0092, 0x2_0050),
            0x4000_0092,
            0x2_0050,
        )
        .once(ev::APICV_INHIBIT, 1, 1, 0b10)
        .ev(ev::EXIT_DETAIL, 1, 0xfd, 28_000, 0)
        .ev(ev::EXIT_DETAIL, 1, 0xec, 2_000, 0)
        .ev(ev::IPI, 0, 0xfd, 30_000, 0)
}

/// P3: AutoEOI fixed (kernel ≥ 5.15), no hv-avic: ~90 % MSR_WRITE to HV_EOI.
pub(super) fn p3() -> Fx {
    Fx::new(&qemu(&format!("host,{ALL_HV}")))
        .vmx(32, 45_000, 1_500)
        .vmx(1, 2_000, 2_000)
        .vmx(18, 1_000, 3_000)
        .vmx(12, 5_000, 400_000)
        .msr_w(0x4000_0070, 40_000)
        .msr_w(0x4000_0071, 4_000)
        .msr_w(0x4000_00b0, 1_000)
}

/// P4: fixed (hv-avic, APICv active): ICR writes remain, some EOI_INDUCED, VMCALL.
pub(super) fn p4() -> Fx {
    Fx::new(&qemu(&format!("host,{ALL_HV},hv-avic=on")))
        .vmx(56, 20_000, 1_000)
        .vmx(45, 3_000, 1_000)
        .vmx(18, 2_000, 2_000)
        .vmx(1, 1_000, 2_000)
        .vmx(12, 8_000, 300_000)
        .ev(ev::EXIT_DETAIL, 56, 0x300, 19_000, 0)
        .ev(ev::EXIT_DETAIL, 56, 0x80, 1_000, 0)
        .ev(ev::HV_HYPERCALL, 0, 0x5c, 1_000, 0)
        .msr_w(0x4000_00b0, 500)
}

/// P5: hypervisor bit hidden: no Hyper-V traffic, LAPIC TSC-deadline timer.
pub(super) fn p5() -> Fx {
    Fx::new(&qemu("host,-hypervisor"))
        .vmx(32, 11_000, 800)
        .vmx(1, 2_000, 2_000)
        .vmx(12, 10_000, 300_000)
        .msr_w(0x6e0, 8_000)
        .msr_w(0x830, 3_000)
}

#[test]
fn p1_no_enlightenments_r01_on_top() {
    let r = p1().run(intel(true));
    assert_eq!(r.profile.as_deref(), Some("P1"));
    let top = &r.findings[0];
    assert_eq!(top.rule, "R01", "{:?}", ids(&r));
    assert_eq!(top.severity, Severity::Critical);
    assert!(top
        .evidence
        .iter()
        .any(|e| e.contains("HPET+0xf0 MAIN_COUNTER")));
    assert!(top.advice_qemu.contains("hv-time=on") && top.advice_qemu.contains("hv-stimer=on"));
    assert!(top.advice_libvirt.contains("hypervclock"));
    assert!(ids(&r).contains(&"R02") && ids(&r).contains(&"L01"));
    // On an APICv host SynIC comes with hv-avic, or the fix would land in P2.
    assert!(top.advice_qemu.contains("hv-avic=on"));
    never_adds_hv_avic(&p1().run(intel(false)));
}

#[test]
fn p2_autoeoi_inhibit_r07_r06_l02() {
    let r = p2("").run(intel(true));
    assert_eq!(r.profile.as_deref(), Some("P2"));
    assert_eq!(r.findings[0].rule, "R07", "{:?}", ids(&r));
    for id in ["R06", "L02", "R08"] {
        assert!(ids(&r).contains(&id), "{id}: {:?}", ids(&r));
    }
    let r07 = get(&r, "R07");
    assert!(r07.evidence.iter().any(|e| e.contains("HYPERV (bit 1)")));
    assert!(r07.evidence.iter().any(|e| e.contains("HV_SINT2")));
    assert!(r07.advice_qemu.contains("hv-avic=on"));
    assert!(get(&r, "L02").advice_libvirt.contains("<avic state='on'/>"));
}

#[test]
fn p3_synthetic_msrs_r06_on_top() {
    let r = p3().run(intel(true));
    assert_eq!(r.profile.as_deref(), Some("P3"));
    let top = &r.findings[0];
    assert_eq!(top.rule, "R06", "{:?}", ids(&r));
    assert_eq!(top.severity, Severity::Critical);
    assert!(top.advice_qemu.contains("hv-avic=on"));
    assert!(top.evidence.iter().any(|e| e.contains("0x40000070 HV_EOI")));
}

#[test]
fn p4_fixed_state_r10_and_no_hv_avic_advice() {
    let r = p4().run(intel(true));
    assert_eq!(r.profile.as_deref(), Some("P4"));
    assert!(ids(&r).contains(&"R10"));
    assert!(!ids(&r).contains(&"R06") && !ids(&r).contains(&"L02"));
    never_adds_hv_avic(&r);
}

#[test]
fn p5_hidden_hypervisor() {
    let r = p5().run(intel(true));
    assert_eq!(r.profile.as_deref(), Some("P5"));
    assert!(ids(&r).contains(&"R18") && ids(&r).contains(&"R23"));
    assert!(get(&r, "R23").title.contains("TSC-deadline"));
    never_adds_hv_avic(&r);
    // Hidden hypervisor: L01 must not ask for inert flags.
    assert!(!ids(&r).contains(&"L01"));
}

#[test]
fn json_contract_keys() {
    let rep = analyze(&p2("").input(intel(true)));
    let v: serde_json::Value = serde_json::from_str(&render_json(&rep)).expect("json");
    let list = v["findings"].as_array().expect("findings");
    assert_eq!(list[0]["rule"], "R07");
    for f in list {
        let keys: Vec<&str> = f
            .as_object()
            .expect("obj")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 7, "{keys:?}");
        for k in [
            "rule",
            "severity",
            "title",
            "evidence",
            "advice",
            "source",
            "confirmed",
        ] {
            assert!(f.get(k).is_some(), "{k}");
        }
        assert!(f["advice"]["qemu"].is_string() && f["advice"]["libvirt"].is_string());
        assert!(
            !f["source"].as_str().unwrap_or("").is_empty(),
            "{}",
            f["rule"]
        );
    }
    assert_eq!(list[0]["severity"], "critical");
}

#[test]
fn text_report_lists_top_first() {
    let t = render_text(&analyze(&p1().input(intel(true))));
    assert!(t.contains("VM win (pid 4242)"), "{t}");
    assert!(t.contains("profile P1"), "{t}");
    let first = t
        .lines()
        .find(|l| l.trim_start().starts_with("1. "))
        .unwrap_or("");
    assert!(first.contains("[CRITICAL] R01"), "{first}");
}

#[test]
fn missing_mmio_tracepoint_degrades_r01() {
    let r = analyze(&p1().missing("kvm:kvm_mmio").input(intel(true)));
    let vm = &r.vms[0];
    let r01 = get(vm, "R01");
    assert_eq!(r01.severity, Severity::Warn);
    assert!(r01.evidence.iter().any(|e| e.contains("unconfirmed")));
    assert!(
        r.notes.iter().any(|n| n.contains("kvm:kvm_mmio")),
        "{:?}",
        r.notes
    );
}

#[test]
fn exit_reasons_only_input() {
    let full = p1().input(intel(true));
    let mut only = Input::from_view(full.view.clone(), intel(true));
    // Exit reasons alone do not show a Windows guest: no Hyper-V advice, and a note says why.
    let r = analyze(&only);
    assert!(r.notes.iter().any(|n| n.contains("exit reasons only")));
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert!(r.vms[0].notes.iter().any(|n| n.contains("--guest windows")));
    // Told it is Windows (`advise --guest windows`): R01, unconfirmed, with the command.
    only.guest_hint = Some(crate::advice::GuestKind::Windows);
    let r = analyze(&only);
    let vm = &r.vms[0];
    assert_eq!(vm.findings[0].rule, "R01");
    assert!(vm.findings[0].unconfirmed);
    assert!(vm.findings[0]
        .evidence
        .iter()
        .any(|e| e.contains("kvmprof advise --duration 30s --vm")));
    assert!(vm.notes.iter().any(|n| n.contains("configuration unknown")));
}

#[test]
fn no_panic_on_empty_or_odd_input() {
    let r = analyze(&Input::default());
    assert!(r.findings.is_empty() && r.vms.is_empty());
    let _ = render_text(&r);
    // Span unknown (older = default sample): shares still work, rates are skipped.
    let fx = p2("");
    let mut i = Input::from_samples(
        &Sample::default(),
        &fx.newer,
        &ExitNames::builtin(),
        intel(true),
    );
    i.thresholds.min_exits = 0;
    let r = analyze(&i);
    assert!(r.vms[0]
        .notes
        .iter()
        .any(|n| n.contains("span length unknown")));
    let _ = Fx::new("").svm(0x400, 1, 1).run(HostFacts::default());
    let _ = Fx::new("qemu -cpu , -cpu ,,,=,+,- -global = -smp").run(amd(true));
}

#[test]
fn no_overflow_on_corrupt_evidence() {
    let mut fx = p2("");
    for a in 0..8u64 {
        let k = EvKey {
            tgid: PID,
            kind: ev::MSR_WRITE,
            flags: 0,
            a: 0x4000_0070 + a,
        };
        let s = EvStat {
            count: u64::MAX,
            sum: u64::MAX,
            last: u64::MAX,
        };
        fx.newer.evidence.insert(k, s);
    }
    let k = EvKey {
        tgid: PID,
        kind: ev::WAKEUP,
        flags: 1,
        a: 0,
    };
    fx.newer.evidence.insert(
        k,
        EvStat {
            count: u64::MAX,
            sum: u64::MAX,
            last: 0,
        },
    );
    let mut host = intel(true);
    host.halt_poll_ns = Some(u64::MAX);
    let _ = render_text(&analyze(&fx.input(host)));
}

/// R01's title names what the configuration lacks only when it does (#16: "lacks hv-time"
/// on a command line with hv-time).
#[test]
fn r01_title_follows_the_configuration() {
    let title = |cpu: &str| get(&p1_cpu(cpu).run(intel(true)), "R01").title.clone();
    let none = title("host,migratable=on");
    assert!(
        none.ends_with("the VM lacks hv-time and hv-stimer"),
        "{none}"
    );
    let time = title("host,hv-time=on");
    assert!(time.ends_with("the VM lacks hv-stimer"), "{time}");
    let both = title("host,hv-time=on,hv-stimer=on");
    assert!(!both.contains("lacks"), "{both}");
    assert!(
        both.contains("although the VM has hv-time and hv-stimer"),
        "{both}"
    );
}

/// Accesses the input cannot show are "not measured", not 0 (#16: "HPET MMIO 0 events").
#[test]
fn p1_says_what_was_not_measured() {
    let r = p1()
        .missing("kvm:kvm_mmio")
        .missing("kvm:kvm_pio")
        .run(intel(true));
    let hit = get(&r, "P1");
    assert!(
        hit.evidence
            .iter()
            .any(|e| e == "HPET MMIO not measured, RTC port I/O not measured"),
        "{:?}",
        hit.evidence
    );
    let measured = get(&p1().run(intel(true)), "P1").evidence.clone();
    assert!(
        measured
            .iter()
            .any(|e| e == "HPET MMIO 40000/s, RTC port I/O 2000/s"),
        "{measured:?}"
    );
}
