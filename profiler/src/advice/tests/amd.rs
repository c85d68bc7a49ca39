//! AMD specifics: the AVIC-off signature in exit reasons alone (R07 unconfirmed), hosts whose
//! AVIC cannot accelerate x2APIC (no x2AVIC), and the hv-spinlocks value advised.

use super::rules::WIN10_ID;
use super::*;

const SYNIC: &str = "host,hv-time,hv-vpindex,hv-synic,hv-stimer,hv-vapic";

/// The shape of the published AMD profile with SynIC on and AVIC inhibited (corpus fixture
/// 09): interrupt 34 %, msr 24 %, vintr 2 %, write_cr8 2 % of all exits, hlt the rest.
fn avic_off(cpu: &str, vintr_per_s: u64) -> Fx {
    Fx::new(&qemu(cpu))
        .once(ev::MSR_WRITE, 0, 0x4000_0000, WIN10_ID)
        .svm(0x78, 16_000, 800_000)
        .svm(0x60, 14_000, 1_200)
        .svm(0x7c, 10_000, 2_500)
        .svm(0x64, vintr_per_s, 800)
        .svm(0x18, vintr_per_s * 8 / 10, 700)
        .missing("kvm:kvm_apicv_inhibit_changed")
}

fn host_avic_unknown() -> HostFacts {
    HostFacts {
        apicv: None,
        ..amd(true)
    }
}

#[test]
fn r07_from_the_vintr_write_cr8_signature() {
    let r = avic_off(SYNIC, 900).run(host_avic_unknown());
    let f = get(&r, "R07");
    assert!(f.unconfirmed, "judged on exit reasons only: {f:?}");
    assert!(f.title.contains("vintr/write_cr8"), "{}", f.title);
    assert!(f.advice_qemu.contains("hv-avic=on"), "{}", f.advice_qemu);
    assert!(f
        .evidence
        .iter()
        .any(|e| e.contains("kvmprof advise --duration 30s --vm win")));
    let first_runtime = r.findings.iter().find(|f| f.rule.starts_with('R'));
    assert_eq!(
        first_runtime.map(|f| f.rule.as_str()),
        Some("R07"),
        "{:?}",
        ids(&r)
    );
}

#[test]
fn no_r07_signature_where_it_is_not_that() {
    let host = host_avic_unknown();
    // hv-avic already on: AutoEOI is not what keeps AVIC off.
    let on = avic_off(&format!("{SYNIC},hv-avic"), 900).run(host.clone());
    assert!(!has_id(&on, "R07"), "{:?}", ids(&on));
    // A handful of vintr exits among tens of thousands of interrupts (nested guests, boot).
    let few = avic_off(SYNIC, 5).run(host.clone());
    assert!(!has_id(&few, "R07"), "{:?}", ids(&few));
    // No SynIC configured: something else keeps AVIC off.
    let nosynic = avic_off("host,hv-time,hv-vapic", 900).run(host.clone());
    assert!(!has_id(&nosynic, "R07"), "{:?}", ids(&nosynic));
    // AVIC off on the host: R07 has nothing to inhibit.
    let off = avic_off(SYNIC, 900).run(amd(false));
    assert!(
        !ids(&off).contains(&"R07") || !get(&off, "R07").title.contains("vintr"),
        "{:?}",
        ids(&off)
    );
}

fn has_id(r: &VmReport, id: &str) -> bool {
    ids(r).contains(&id)
}

/// hv-avic moves Windows to the x2APIC MSRs; an AMD host without x2AVIC does not accelerate
/// those, so the advice turns x2APIC off as well — and only there.
#[test]
fn hv_avic_on_an_avic_host_without_x2avic_turns_x2apic_off() {
    let synthetic = |cpu: &str| {
        Fx::new(&qemu(cpu))
            .svm(0x7c, 45_000, 1_500)
            .svm(0x60, 2_000, 2_000)
            .svm(0x78, 5_000, 400_000)
            .msr_w(0x4000_0070, 40_000)
            .msr_w(0x4000_0071, 4_000)
    };
    let zen = |x2avic| HostFacts {
        x2avic: Some(x2avic),
        ..amd(true)
    };
    let zen3 = synthetic(SYNIC).run(zen(false));
    let f = get(&zen3, "R06");
    assert!(
        f.advice_qemu.contains("hv-avic=on,x2apic=off"),
        "{}",
        f.advice_qemu
    );
    assert!(
        f.advice_libvirt.contains("name='x2apic'"),
        "{}",
        f.advice_libvirt
    );
    let zen4 = synthetic(SYNIC).run(zen(true));
    assert!(!get(&zen4, "R06").advice_qemu.contains("x2apic"));
    let already = synthetic(&format!("{SYNIC},-x2apic")).run(zen(false));
    assert!(!get(&already, "R06").advice_qemu.contains("x2apic"));
}

/// hv-spinlocks as the KB gives it: notify early (0xfff) where vCPUs share CPUs, never
/// (0xffffffff) on dedicated ones — in the command line and the libvirt XML alike.
#[test]
fn spinlock_retries_follow_dedication() {
    let l01 = |extra: &str| {
        let r = Fx::new(&(qemu("host,hv-time") + extra))
            .once(ev::MSR_WRITE, 0, 0x4000_0000, WIN10_ID)
            .run(intel(true));
        let f = get(&r, "L01").clone();
        (f.advice_qemu, f.advice_libvirt)
    };
    let (q, l) = l01("");
    assert!(
        q.contains("hv-spinlocks=0xfff,") || q.ends_with("hv-spinlocks=0xfff"),
        "{q}"
    );
    assert!(l.contains("retries='4095'"), "{l}");
    let (q, l) = l01(" -overcommit cpu-pm=on");
    assert!(q.contains("hv-spinlocks=0xffffffff"), "{q}");
    assert!(l.contains("retries='4294967295'"), "{l}");
}

/// A Zen 3 host with AVIC on and no inhibit traced: a guest in x2APIC mode still has its EOIs
/// emulated (R12), and the advice names the xAPIC way out.
#[test]
fn x2apic_eois_on_a_host_without_x2avic_are_not_accelerated() {
    let host = |x2avic| HostFacts {
        x2avic: Some(x2avic),
        ..amd(true)
    };
    let fx = || {
        Fx::new(&qemu("host,hv-time,hv-vpindex,hv-synic,hv-stimer,hv-avic"))
            .once(ev::MSR_WRITE, 0, 0x4000_0000, WIN10_ID)
            .svm(0x7c, 30_000, 1_500)
            .svm(0x78, 5_000, 400_000)
            .msr_w(0x80b, 25_000)
            .msr_w(0x830, 5_000)
    };
    let zen3 = fx().run(host(false));
    let f = get(&zen3, "R12");
    assert!(f.advice_qemu.contains("x2apic=off"), "{}", f.advice_qemu);
    let zen4 = fx().run(host(true));
    assert!(!ids(&zen4).contains(&"R12"), "{:?}", ids(&zen4));
}

/// AVIC's IPI virtualization switched off (kvm_amd enable_ipiv=N): the advice names the AMD
/// parameter and the erratum that forces it on Zen 1/2, never kvm_intel's.
#[test]
fn r10_on_amd_names_kvm_amd_enable_ipiv() {
    let host = HostFacts {
        ipiv: Some(false),
        ..amd(true)
    };
    let r = Fx::new(&qemu("host,hv-time,hv-vpindex,hv-synic,hv-stimer,hv-avic"))
        .once(ev::MSR_WRITE, 0, 0x4000_0000, WIN10_ID)
        .svm(0x401, 20_000, 1_000)
        .svm(0x78, 5_000, 400_000)
        .run(host);
    let f = get(&r, "R10");
    assert!(
        f.advice_qemu.contains("kvm_amd enable_ipiv=Y"),
        "{}",
        f.advice_qemu
    );
    assert!(!f.advice_qemu.contains("kvm_intel"), "{}", f.advice_qemu);
}

/// Host changes are on their own line, for the host's module: on a replay of SVM exits (no
/// host vendor known) that is kvm_amd's, and no line names kvm_intel.
#[test]
fn host_changes_name_the_amd_module_on_their_own_line() {
    let host = HostFacts {
        vendor: None,
        ..amd(false)
    };
    let r = avic_off(&format!("{SYNIC},hv-avic"), 900).run(host);
    let l04 = get(&r, "L04");
    assert!(l04.advice_host.contains("kvm_amd avic=1"), "{l04:?}");
    assert!(!l04.advice_qemu.contains("kvm_"), "{}", l04.advice_qemu);
    for f in &r.findings {
        let all = [&f.advice_host, &f.advice_qemu, &f.advice_libvirt, &f.title]
            .iter()
            .map(|s| s.as_str())
            .chain(f.evidence.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(!all.contains("kvm_intel"), "{}: {all}", f.rule);
    }
    let text = crate::advice::render_text(&Report {
        findings: r.findings.clone(),
        vms: vec![r],
        notes: vec![],
    });
    assert!(
        text.contains("host     or, instead, enable kvm_amd avic=1"),
        "{text}"
    );
}
