//! One fixture per runtime rule (R01–R23) and configuration check (L01–L16), plus the
//! negative cases: never advise a flag already on, never hv-avic without APICv.

use super::fingerprints::{p1, p2, p3, p4, p5};
use super::*;

fn has(r: &VmReport, id: &str) -> bool {
    ids(r).contains(&id)
}

const NO_DIRECT: &str = "host,hv-relaxed,hv-vapic,hv-vpindex,hv-synic,hv-stimer,hv-time,hv-tlbflush,hv-ipi,hv-spinlocks=0x1fff";

#[test]
fn r01_r02_l01_from_p1() {
    let r = p1().run(intel(true));
    assert!(has(&r, "R01") && has(&r, "R02") && has(&r, "L01"));
    assert!(get(&r, "R02").advice_qemu.contains("do not disable HPET"));
}

#[test]
fn r03_pm_timer_with_hv_time_points_to_r05() {
    let r = Fx::new(&qemu("host,hv-time,hv-relaxed"))
        .vmx(30, 600, 5_000)
        .ev(ev::PIO_IN, 4, 0x608, 500, 0)
        .run(intel(true));
    assert!(get(&r, "R03").advice_qemu.contains("R05"), "{:?}", ids(&r));
}

#[test]
fn r04_pit_on_amd_mentions_r20() {
    let r = Fx::new(&qemu("host"))
        .once(ev::MSR_WRITE, 0, 0x4000_0000, WIN10_ID)
        .svm(0x7b, 500, 5_000)
        .ev(ev::PIO_OUT, 1, 0x40, 200, 0)
        .ev(ev::PIO_OUT, 1, 0x43, 100, 0)
        .run(amd(true));
    assert!(get(&r, "R04").advice_qemu.contains("R20"));
}

#[test]
fn r05_time_ref_count_reads() {
    let mut host = intel(true);
    host.clocksource = Some("hpet".into());
    let r = Fx::new(&qemu(&format!("host,{ALL_HV}")))
        .vmx(31, 5_000, 1_000)
        .ev(ev::MSR_READ, 0, 0x4000_0020, 4_000, 0)
        .run(host);
    let f = get(&r, "R05");
    assert!(f.advice_qemu.contains("clocksource") && f.evidence.iter().any(|e| e.contains("hpet")));
}

#[test]
fn r06_r07_r08_l02_from_p2_p3() {
    assert!(has(&p3().run(intel(true)), "R06"));
    let r = p2("").run(intel(true));
    assert!(has(&r, "R06") && has(&r, "R07") && has(&r, "R08") && has(&r, "L02"));
}

#[test]
fn r07_old_kernel_says_upgrade() {
    let mut host = intel(true);
    host.kernel_release = Some("5.10.0-30-amd64".into());
    let r = p2("").missing("kvm:kvm_apicv_inhibit_changed").run(host);
    let f = get(&r, "R07");
    assert!(f.advice_qemu.contains("5.15"), "{}", f.advice_qemu);
}

#[test]
fn r09_host_noise_not_r08() {
    let r = Fx::new(&qemu(&format!("host,{ALL_HV},hv-avic")))
        .vmx(1, 20_000, 2_000)
        .vmx(12, 5_000, 100_000)
        .ev(ev::EXIT_DETAIL, 1, 0xec, 15_000, 0)
        .ev(ev::EXIT_DETAIL, 1, 0x22, 5_000, 0)
        .run(intel(true));
    assert!(has(&r, "R09") && !has(&r, "R08"), "{:?}", ids(&r));
}

#[test]
fn r10_icr_writes_with_ipiv_off() {
    let mut host = intel(true);
    host.ipiv = Some(false);
    let f = get(&p4().run(host), "R10").clone();
    assert_eq!(f.severity, Severity::Warn);
    assert!(f.advice_qemu.contains("enable_ipiv=Y"));
}

#[test]
fn r11_message_mode_stimer() {
    let r = Fx::new(&qemu(NO_DIRECT))
        .vmx(45, 2_000, 1_000)
        .vmx(1, 500, 1_000)
        .once(
            ev::MSR_WRITE,
            ev::msr_write_flags(0x4000_0092, 0x52),
            0x4000_0092,
            0x52,
        )
        .ev(ev::EXIT_DETAIL, 45, 0x52, 2_000, 0)
        .ev(ev::STIMER_EXPIRE, 0, 0, 2_000, 0)
        .run(intel(true));
    assert!(get(&r, "R11").advice_qemu.contains("hv-stimer-direct=on"));
    assert!(has(&r, "L01"));
}

#[test]
fn r12_software_eoi_without_apicv() {
    let r = Fx::new(&qemu("host,hv-relaxed,hv-time"))
        .vmx(44, 20_000, 2_000)
        .ev(ev::EOI, 0, 0x51, 20_000, 0)
        .run(intel(false));
    assert!(get(&r, "R12").advice_qemu.contains("hv-vapic=on"));
    never_adds_hv_avic(&r);
}

#[test]
fn r13_spinlock_notifications() {
    let r = Fx::new(&qemu(&format!("host,{ALL_HV}")))
        .vmx(18, 5_000, 2_000)
        .ev(ev::HV_HYPERCALL, 0, 0x8, 4_000, 0)
        .run(intel(true));
    assert!(get(&r, "R13").advice_qemu.contains("0xfff"));
}

#[test]
fn r14_r15_pause_and_halts() {
    let r = Fx::new(&qemu("host"))
        .vmx(40, 10_000, 1_000)
        .vmx(12, 8_000, 50_000)
        .ev(ev::WAKEUP, 1, 0, 8_000, 0)
        .ev(ev::HALT_POLL, 1, 0, 100, 400_000)
        .ev(ev::HALT_POLL, 0, 0, 100, 100_000)
        .run(intel(true));
    assert!(get(&r, "R14").advice_qemu.contains("cpu-pm=on"));
    assert!(has(&r, "R15"), "{:?}", ids(&r));
}

#[test]
fn r16_ipis_without_tlbflush() {
    let r = Fx::new(&qemu(
        "host,hv-relaxed,hv-vapic,hv-vpindex,hv-time,hv-synic,hv-stimer",
    ))
    .vmx(1, 8_000, 2_000)
    .msr_w(0x4000_0070, 100)
    .ev(ev::IPI, 0, 0xfd, 8_000, 0)
    .run(intel(true));
    let f = get(&r, "R16");
    assert!(f.advice_qemu.contains("hv-tlbflush=on") && !f.advice_qemu.contains("hv-vpindex"));
}

#[test]
fn r17_hypercall_ipis_on_ipiv_host() {
    let mut host = intel(true);
    host.ipiv = Some(true);
    let r = Fx::new(&qemu(&format!("host,{ALL_HV},hv-avic")))
        .vmx(18, 20_000, 2_000)
        .ev(ev::HV_HYPERCALL, 0, 0xb, 15_000, 0)
        .run(host);
    assert!(has(&r, "R17"));
}

#[test]
fn r18_r23_from_p5() {
    let r = p5().run(intel(true));
    assert_eq!(get(&r, "R18").severity, Severity::Info);
    assert!(has(&r, "R23"));
}

#[test]
fn r19_nested_hyperv_l15() {
    let r = Fx::new(&qemu(
        "host,+vmx,hv-relaxed,hv-vapic,hv-vpindex,hv-synic,hv-stimer,hv-time",
    ))
    .vmx(24, 5_000, 5_000)
    .vmx(23, 20_000, 500)
    .run(intel(true));
    assert!(get(&r, "R19").advice_qemu.contains("hv-evmcs=on"));
    assert!(has(&r, "L15"));
}

#[test]
fn r20_l13_pit_reinject_on_avic() {
    let r = Fx::new(&qemu("host"))
        .svm(0x60, 1_000, 1_000)
        .once(ev::APICV_INHIBIT, 1, 9, 1 << 9)
        .run(amd(true));
    assert!(get(&r, "R20")
        .advice_qemu
        .contains("lost_tick_policy=discard"));
    assert!(has(&r, "L13"));
    let ok = Fx::new(&(qemu("host") + " -global kvm-pit.lost_tick_policy=discard")).run(amd(true));
    assert!(!has(&ok, "L13"));
}

#[test]
fn r21_other_inhibit() {
    let r = Fx::new(&qemu("host"))
        .vmx(1, 1_000, 1_000)
        .once(ev::APICV_INHIBIT, 1, 5, 1 << 5)
        .run(intel(true));
    assert!(get(&r, "R21").title.contains("APIC_ID_MODIFIED"));
}

#[test]
fn r22_cpuid_not_hyperv() {
    let r = Fx::new(&qemu("host"))
        .vmx(10, 10_000, 1_000)
        .run(intel(true));
    assert!(has(&r, "R22"));
}

#[test]
fn never_adds_hv_avic_when_on_or_without_apicv() {
    never_adds_hv_avic(&p2(",hv-avic=on").run(intel(true)));
    let r = p2("").run(intel(false));
    never_adds_hv_avic(&r);
    assert!(!has(&r, "L02"));
    never_adds_hv_avic(&p3().run(intel(false)));
}

#[test]
fn never_repeats_flags_already_on() {
    for r in [p2("").run(intel(true)), p4().run(intel(true))] {
        for f in &r.findings {
            for flag in [
                "hv-time=on",
                "hv-synic=on",
                "hv-stimer=on",
                "hv-vapic=on",
                "hv-ipi=on",
            ] {
                assert!(
                    !f.advice_qemu.contains(flag) || f.rule.starts_with('P'),
                    "{}: {flag}",
                    f.rule
                );
            }
        }
    }
}

#[test]
fn l04_hv_avic_without_apicv() {
    let r = p2(",hv-avic=on").run(intel(false));
    assert!(get(&r, "L04").advice_qemu.contains("hv-avic=off"));
}

#[test]
fn l03_vapic_without_avic() {
    let r = Fx::new(&qemu("host,hv-relaxed,hv-vapic,hv-time"))
        .msr_w(0x4000_0070, 10)
        .run(intel(true));
    assert!(has(&r, "L03") && !has(&r, "L02"));
}

#[test]
fn configuration_checks_l05_to_l14() {
    let cases: &[(&str, HostFacts, &str)] = &[
        ("host,hv-passthrough", intel(true), "L05"),
        ("host,hv-evmcs=on", amd(true), "L06"),
        ("host,hv-no-nonarch-coresharing=on", intel(true), "L07"),
        ("host,hv-crash", intel(true), "L08"),
        ("host,hv-reenlightenment", intel(true), "L09"),
        ("host,hv-spinlocks=0x100", intel(true), "L10"),
        ("host,kvm=off", intel(true), "L11"),
    ];
    for (cpu, host, id) in cases {
        let r = Fx::new(&qemu(cpu)).run(host.clone());
        assert!(has(&r, id), "{cpu}: {id} not in {:?}", ids(&r));
    }
    let r = Fx::new(&(qemu("host,hv-relaxed") + " -no-hpet")).run(intel(true));
    assert!(has(&r, "L12"));
    let mut small = intel(true);
    small.cpus = Some(2);
    let r = Fx::new(&(qemu("host") + " -overcommit cpu-pm=on")).run(small);
    assert!(has(&r, "L14"));
}

/// GUEST_OS_ID of Windows 10: Microsoft, NT, 10.0 build 19045.
pub(super) const WIN10_ID: u64 = (1u64 << 48) | (4 << 40) | (10 << 32) | 19045;

/// Without a Windows guest, hv-* flags or Hyper-V traffic, timer fallbacks get no Hyper-V
/// advice; the same exits from a Windows guest do.
#[test]
fn no_hyperv_advice_without_a_sign_of_hyperv() {
    let pit = |fx: Fx| {
        fx.svm(0x7b, 500, 5_000)
            .ev(ev::PIO_OUT, 1, 0x40, 200, 0)
            .ev(ev::PIO_OUT, 1, 0x43, 100, 0)
            .run(amd(true))
    };
    let linux = pit(Fx::new(&qemu("host")));
    assert!(!has(&linux, "R04"), "{:?}", ids(&linux));
    assert!(linux
        .notes
        .iter()
        .any(|n| n.contains("Hyper-V advice withheld")));
    let windows = pit(Fx::new(&qemu("host")).once(ev::MSR_WRITE, 0, 0x4000_0000, WIN10_ID));
    assert!(has(&windows, "R04"), "{:?}", ids(&windows));
}

#[test]
fn l16_windows7_no_hv_avic() {
    // Windows 7 SP1: Microsoft, NT, 6.1 build 7601.
    let id = (1u64 << 48) | (4 << 40) | (6 << 32) | (1 << 24) | 7601;
    let r = p2("")
        .once(ev::MSR_WRITE, 0, 0x4000_0000, id)
        .run(intel(true));
    assert!(r.guest.contains("Windows 7"), "{}", r.guest);
    assert!(has(&r, "L16"));
    never_adds_hv_avic(&r);
    assert!(get(&r, "R07")
        .advice_qemu
        .contains("hiding the hypervisor bit"));
}

#[test]
fn thresholds_from_json_and_defaults() {
    let t = Thresholds::parse(r#"{"dominant_pct": 60}"#, "t.json", true).expect("json");
    assert_eq!(t.dominant_pct, 60.0);
    assert_eq!(t.high_rate_per_vcpu, 1000.0);
    // With a 60 % bar the P1 MMIO share (~95 % time) still dominates, APIC_WRITE does not.
    let mut i = p1().input(intel(true));
    i.thresholds = t;
    assert_eq!(analyze(&i).vms[0].findings[0].rule, "R01");
}

/// `advise --thresholds` goes through the parser `check --config` uses: a misspelled key, NaN,
/// a negative rate or a share above 100 % is refused with the file, the line and the key.
#[test]
fn thresholds_refuse_what_check_refuses() {
    let bad = |text: &str, json: bool| Thresholds::parse(text, "t.toml", json).unwrap_err().0;
    let e = bad("dominant_pc = 60\n", false);
    assert!(
        e.starts_with("t.toml:1:") && e.contains("dominant_pc"),
        "{e}"
    );
    assert!(e.contains("dominant_pct"), "names the right keys: {e}");
    let e = bad("min_exits = 1\ntimer_rate = nan\n", false);
    assert!(
        e.contains("`timer_rate` = NaN") && e.contains("finite"),
        "{e}"
    );
    let e = bad("high_rate_per_vcpu = -5.0\n", false);
    assert!(e.contains("`high_rate_per_vcpu` = -5"), "{e}");
    let e = bad("dominant_pct = 150.0\n", false);
    assert!(e.contains("at most 100"), "{e}");
    let e = bad("{\n  \"dominant_pct\": 60,\n  \"max_p99_us\": 5\n}", true);
    assert!(
        e.starts_with("t.toml:3:") && e.contains("max_p99_us"),
        "{e}"
    );
    assert!(!e.contains('\n'), "one line: {e}");
    let ok = Thresholds::parse("dominant_pct = 60.0\nmin_exits = 10\n", "t.toml", false);
    assert_eq!(ok.map(|t| (t.dominant_pct, t.min_exits)), Ok((60.0, 10)));
}

/// A host whose KVM has no Hyper-V emulation (CONFIG_KVM_HYPERV off) gets no "enable hv-…"
/// advice, and a note says why.
#[test]
fn no_hyperv_advice_on_a_host_without_kvm_hyperv() {
    let mut host = intel(true);
    host.kvm_hyperv = Some(false);
    let r = super::fingerprints::p1().run(host);
    assert!(!has(&r, "R01") && r.profile.is_none(), "{:?}", ids(&r));
    assert!(
        r.notes.iter().any(|n| n.contains("CONFIG_KVM_HYPERV")),
        "{:?}",
        r.notes
    );
    assert!(has(&super::fingerprints::p1().run(intel(true)), "R01"));
}

/// QEMU's list: hv-reset is not asked for, hv-tlbflush-ext is; hv-xmm-input only on a host
/// kernel that handles every XMM fast hypercall; dependencies are named.
#[test]
fn l01_follows_qemus_list() {
    let fx =
        Fx::new(&qemu("host,hv-relaxed,hv-stimer")).once(ev::MSR_WRITE, 0, 0x4000_0000, WIN10_ID);
    let mut host = intel(false);
    host.kernel_release = Some("5.10.0".into());
    let l01 = get(&fx.run(host.clone()), "L01").clone();
    assert!(!l01.advice_qemu.contains("hv-reset"), "{}", l01.advice_qemu);
    assert!(l01.advice_qemu.contains("hv-tlbflush-ext=on"));
    assert!(!l01.advice_qemu.contains("hv-xmm-input"));
    assert!(l01
        .evidence
        .iter()
        .any(|e| e == "hv-stimer is on without hv-time, which it needs"));
    host.kernel_release = Some("6.1.0".into());
    assert!(get(&fx.run(host), "L01")
        .advice_qemu
        .contains("hv-xmm-input=on"));
}
