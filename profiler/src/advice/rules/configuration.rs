//! Configuration checks L01–L16 (KB "Configuration checks"): from the command line / domain
//! XML and host facts alone; runtime evidence only adds lines.

use profiler_common::ev;

use crate::advice::ctx::{x, Ctx};
use crate::advice::{Finding, Severity, Vendor};

pub(super) fn all(c: &Ctx) -> Vec<Option<Finding>> {
    if c.cfg.is_unknown() {
        return Vec::new();
    }
    vec![
        l01(c),
        l02_l03(c),
        l04(c),
        l05(c),
        l06(c),
        l07(c),
        l08(c),
        l09(c),
        l10(c),
        l11(c),
        l12(c),
        l13(c),
        l14(c),
        l15(c),
        l16(c),
    ]
}

const QEMU_HV: &str = "QEMU docs/system/i386/hyperv.rst";

/// The features QEMU's docs recommend for Windows (all but syndbg, passthrough,
/// enforce-cpuid; the conditional ones — evmcs, crash, reenlightenment, vendor-id,
/// no-nonarch-coresharing, nested extras — have their own checks).
const STANDARD: &[&str] = &[
    "hv-relaxed",
    "hv-vapic",
    "hv-spinlocks",
    "hv-vpindex",
    "hv-runtime",
    "hv-time",
    "hv-synic",
    "hv-stimer",
    "hv-stimer-direct",
    "hv-frequencies",
    "hv-tlbflush",
    "hv-tlbflush-ext",
    "hv-ipi",
];
// QEMU's list (docs/system/i386/hyperv.rst) is every enlightenment but hv-syndbg,
// hv-passthrough and hv-enforce-cpuid; of the rest, hv-reset can be left off, hv-crash wants a
// consumer of the crash MSRs, hv-reenlightenment TSC scaling, hv-no-nonarch-coresharing pinning,
// hv-evmcs / hv-emsr-bitmap nesting (R19) and hv-avic APICv (below): those are not asked for
// everywhere. hv-xmm-input is added where the host kernel handles every XMM fast hypercall.

/// L01: Windows guest, hypervisor visible, recommended features missing.
fn l01(c: &Ctx) -> Option<Finding> {
    if !c.visible() || !c.guest.is_windows() {
        return None;
    }
    let mut want: Vec<&str> = STANDARD.to_vec();
    // hv-avic only where the host has APICv/AVIC and the guest honours DEPRECATING_AEOI (L04, L16).
    if c.apicv_on() && !c.guest.is_nt6_legacy() {
        want.push("hv-avic");
    }
    // Windows Server 2019 did not boot with hv-xmm-input until KVM handled HVCALL_SEND_IPI_EX
    // as an XMM fast hypercall (Linux 5.18): only where the host kernel is known to be newer.
    if c.host.kernel().is_some_and(|k| k >= (5, 18)) {
        want.push("hv-xmm-input");
    }
    let flags = c.missing_flags(&want);
    // Flags that need another one to do anything (QEMU refuses some of these at start).
    let deps: Vec<String> = [
        ("hv-stimer", "hv-time"),
        ("hv-stimer", "hv-synic"),
        ("hv-synic", "hv-vpindex"),
        ("hv-tlbflush", "hv-vpindex"),
        ("hv-ipi", "hv-vpindex"),
        ("hv-tlbflush-direct", "hv-vapic"),
        ("hv-tlbflush-ext", "hv-tlbflush"),
        ("hv-evmcs", "hv-vapic"),
    ]
    .iter()
    .filter(|(on, needs)| c.cfg.has(on) && !c.cfg.has(needs))
    .map(|(on, needs)| format!("{on} is on without {needs}, which it needs"))
    .collect();
    // Every flag a dependency needs is in STANDARD, so a broken dependency always leaves a
    // missing flag to name.
    if flags.is_empty() {
        return None;
    }
    let timers = flags
        .iter()
        .any(|f| matches!(*f, "hv-time" | "hv-stimer" | "hv-synic"));
    let sev = if timers || flags.len() >= 3 {
        Severity::Warn
    } else {
        Severity::Info
    };
    Finding::new("L01", sev, format!("Windows guest without {} recommended Hyper-V enlightenment(s)", flags.len()))
        .ev(format!("guest: {}", c.guest.describe()))
        .ev(format!("missing: {}", flags.join(",")))
        .ev_all(deps)
        .qemu(c.cpu_add(&flags))
        .libvirt(c.libvirt_add(&flags))
        .effect("Windows uses synthetic timers, TSC page, PV spinlocks/IPIs/flushes instead of emulated hardware")
        .source(format!("KB L01; {QEMU_HV} (recommends all but syndbg, passthrough, enforce-cpuid)"))
        .into()
}

/// L02: SynIC/stimer without hv-avic on an APICv host → add hv-avic.
/// L03: hv-vapic without hv-avic (and no SynIC) → expect R06.
fn l02_l03(c: &Ctx) -> Option<Finding> {
    if !c.visible() || c.cfg.has("hv-avic") || !c.apicv_on() || c.guest.is_nt6_legacy() {
        return None;
    }
    let synic = c.cfg.has("hv-synic") || c.cfg.has("hv-stimer");
    let libvirt = format!("{} (libvirt ≥ 8.10)", c.libvirt_add(&["hv-avic"]));
    if synic {
        let mut f = Finding::new(
            "L02",
            Severity::Warn,
            "hv-synic/hv-stimer without hv-avic: SynIC AutoEOI will inhibit APICv",
        )
        .ev(format!("configured: {}", c.cfg.enabled().join(",")))
        .ev(format!("host: {} on", c.host.apicv_name()));
        let mut q = format!("{} (QEMU ≥ 6.2)", c.cpu_add(&["hv-avic"]));
        if c.host.autoeoi_only_inhibit() == Some(false) {
            q.push_str(
                "; and a host kernel ≥ 5.15 (older kernels inhibit APICv whenever SynIC is active)",
            );
        }
        f = f.qemu(q).libvirt(libvirt);
        return f
            .effect("guest stops using AutoEOI (DEPRECATING_AEOI) and the x2APIC MSRs: APICv stays active")
            .source("KB L02; 2021 kvm/qemu-devel thread; Linux 5.15; QEMU 6.2 hv-avic")
            .into();
    }
    if !c.cfg.has("hv-vapic") {
        return None;
    }
    Finding::new(
        "L03",
        Severity::Info,
        "hv-vapic without hv-avic: Windows will use the synthetic APIC MSRs (expect R06)",
    )
    .ev("configured: hv-vapic on, hv-avic off")
    .qemu(c.cpu_add(&["hv-avic"]))
    .libvirt(libvirt)
    .effect("EOI/ICR/TPR through the APICv-accelerated x2APIC path")
    .source("KB L03; QEMU 6.2 hv-avic")
    .into()
}

/// L04: hv-avic on a host without APICv/AVIC → remove.
fn l04(c: &Ctx) -> Option<Finding> {
    if c.cfg.hv.get("hv-avic") != Some(&true) || c.host.apicv != Some(false) {
        return None;
    }
    Finding::new("L04", Severity::Warn, format!("hv-avic on a host without {}: remove it", c.host.apicv_name()))
        .ev(format!("configured: hv-avic on; host {} = off", c.host.apicv_param().split('=').next().unwrap_or("")))
        .qemu("-cpu …,hv-avic=off")
        .host(format!("or, instead, enable {} on the host", c.host.apicv_param()))
        .libvirt("<hyperv><avic state='off'/></hyperv>")
        .effect("without APICv the x2APIC path traps anyway; the synthetic APIC MSRs (hv-vapic) are cheaper")
        .source("KB L04; QEMU 6.2 hv-avic")
        .into()
}

/// L05: hv-passthrough / hv-syndbg / hv-enforce-cpuid in production.
fn l05(c: &Ctx) -> Option<Finding> {
    let mut what = Vec::new();
    if c.cfg.passthrough {
        what.push("hv-passthrough (effective set depends on the host kernel; blocks migration)");
    }
    if c.cfg.hv.get("hv-syndbg") == Some(&true) {
        what.push("hv-syndbg (debugging only)");
    }
    if c.cfg.enforce_cpuid {
        what.push("hv-enforce-cpuid");
    }
    if what.is_empty() {
        return None;
    }
    let mut f = Finding::new(
        "L05",
        Severity::Warn,
        "development-only Hyper-V options in use",
    );
    for w in what {
        f = f.ev(w);
    }
    f.qemu("list the wanted hv-* flags explicitly instead of hv-passthrough; drop hv-syndbg")
        .libvirt("<hyperv mode='custom'> with explicit features")
        .effect("a reproducible, migratable feature set")
        .source(format!("KB L05; {QEMU_HV}"))
        .into()
}

/// L06: hv-evmcs on AMD or without nesting.
fn l06(c: &Ctx) -> Option<Finding> {
    if c.cfg.hv.get("hv-evmcs") != Some(&true) {
        return None;
    }
    let why = if c.host.vendor == Some(Vendor::Amd) {
        "hv-evmcs is Intel-only"
    } else if c.cfg.nested == Some(false) || c.host.nested == Some(false) {
        "hv-evmcs without nesting (vmx not exposed)"
    } else {
        return None;
    };
    Finding::new("L06", Severity::Warn, why)
        .ev("configured: hv-evmcs on")
        .qemu("-cpu …,hv-evmcs=off")
        .libvirt("<hyperv><evmcs state='off'/></hyperv>")
        .effect("no useless (or, on AMD, rejected) enlightenment")
        .source(format!("KB L06; {QEMU_HV} hv-evmcs"))
        .into()
}

/// L07: hv-no-nonarch-coresharing=on without pinning.
fn l07(c: &Ctx) -> Option<Finding> {
    if c.cfg.coresharing.as_deref() != Some("on") || c.cfg.pinned == Some(true) {
        return None;
    }
    Finding::new("L07", Severity::Warn, "hv-no-nonarch-coresharing=on without vCPU pinning")
        .ev("configured: hv-no-nonarch-coresharing=on; pinning not known")
        .qemu("only promise no core sharing with 1:1 pinned vCPUs and matching SMT siblings; else hv-no-nonarch-coresharing=auto")
        .effect("the guest's side-channel mitigations stay correct")
        .source(format!("KB L07; {QEMU_HV}"))
        .into()
}

/// L08: hv-crash with nothing consuming the event.
fn l08(c: &Ctx) -> Option<Finding> {
    if c.cfg.hv.get("hv-crash") != Some(&true) || c.cfg.on_crash.is_some() {
        return None;
    }
    Finding::new(
        "L08",
        Severity::Info,
        "hv-crash on, but nothing known to consume GUEST_PANICKED",
    )
    .ev("configured: hv-crash on; no <on_crash> action known")
    .qemu("keep hv-crash only with a consumer (libvirt <on_crash>, a QMP listener)")
    .libvirt("<on_crash>coredump-restart</on_crash>")
    .effect("guest crash parameters are recorded")
    .source(format!("KB L08; {QEMU_HV} hv-crash"))
    .into()
}

/// L09: hv-reenlightenment without TSC scaling or a fixed tsc-frequency.
fn l09(c: &Ctx) -> Option<Finding> {
    if c.cfg.hv.get("hv-reenlightenment") != Some(&true)
        || c.cfg.tsc_frequency.is_some()
        || c.host.tsc_scaling == Some(true)
    {
        return None;
    }
    Finding::new(
        "L09",
        Severity::Info,
        "hv-reenlightenment without TSC scaling or tsc-frequency",
    )
    .ev("configured: hv-reenlightenment on; no tsc-frequency; host TSC scaling not known")
    .qemu(
        "-cpu …,tsc-frequency=<Hz> (migration to a different TSC rate needs hardware TSC scaling)",
    )
    .libvirt("<clock><timer name='tsc' frequency='…'/></clock>")
    .effect("reenlightenment only matters for nested Hyper-V across migration")
    .source(format!("KB L09; {QEMU_HV} hv-reenlightenment"))
    .into()
}

/// L10: hv-spinlocks retries vs overcommit.
fn l10(c: &Ctx) -> Option<Finding> {
    let v = c.cfg.spinlocks?;
    let dedicated = c.dedicated();
    let (sev, title, q) = if v < 0xfff {
        (
            Severity::Warn,
            "hv-spinlocks below 0xfff (libvirt requires ≥ 4095)",
            "hv-spinlocks=0xfff (overcommitted) or 0xffffffff (dedicated)",
        )
    } else if dedicated && v != 0xffff_ffff {
        (
            Severity::Info,
            "dedicated vCPUs: hv-spinlocks could be 0xffffffff",
            "hv-spinlocks=0xffffffff (never notify)",
        )
    } else {
        return None;
    };
    Finding::new("L10", sev, title)
        .ev(format!(
            "configured: hv-spinlocks={v:#x}{}",
            if dedicated {
                " with dedicated vCPUs"
            } else {
                ""
            }
        ))
        .qemu(format!("-cpu …,{q}"))
        .libvirt("<spinlocks state='on' retries='4095'/> (or 4294967295 dedicated)")
        .effect("spin-wait notifications match the host's scheduling")
        .source("KB L10; QEMU docs hv-spinlocks; libvirt docs")
        .into()
}

/// L11: kvm=off hides only the KVM signature.
fn l11(c: &Ctx) -> Option<Finding> {
    if !c.cfg.kvm_hidden || c.cfg.hypervisor_hidden {
        return None;
    }
    Finding::new("L11", Severity::Info, "kvm=off does not hide the hypervisor, only the KVM signature")
        .ev("configured: kvm=off, hypervisor bit visible")
        .qemu("nothing to change for performance; to hide the hypervisor use -cpu …,-hypervisor (see R18)")
        .effect("none")
        .source("KB L11")
        .into()
}

/// L12: HPET disabled with no working stimer → Windows falls back to the RTC.
fn l12(c: &Ctx) -> Option<Finding> {
    let stimer = c.cfg.has("hv-stimer") && c.cfg.has("hv-synic") && c.cfg.has("hv-time");
    if c.cfg.hpet != Some(false) || (stimer && c.visible()) || c.cfg.hypervisor_hidden {
        return None;
    }
    let rtc = c.ev.pio(|p| matches!(p, 0x70 | 0x71));
    let mut f = Finding::new(
        "L12",
        Severity::Warn,
        "HPET disabled without a working stimer: Windows falls back to the RTC",
    )
    .ev("configured: hpet=off / -no-hpet; hv-stimer (with hv-synic, hv-time) not on");
    if rtc > 0 {
        f = f.ev(format!("RTC port I/O: {}", c.rate_str(rtc)));
    }
    let flags = c.missing_flags(&["hv-time", "hv-vpindex", "hv-synic", "hv-stimer"]);
    f.qemu(format!("{} — or re-enable HPET", c.cpu_add(&flags)))
        .libvirt(c.libvirt_add(&flags))
        .effect("Windows uses the synthetic timer instead of the RTC")
        .source("KB L12; 2021 kvm/qemu-devel thread (stimer > HPET > RTC)")
        .into()
}

/// L13: AVIC host with the PIT in reinject (delay) mode → AVIC inhibited (R20).
fn l13(c: &Ctx) -> Option<Finding> {
    if c.host.vendor != Some(Vendor::Amd)
        || !c.apicv_on()
        || c.cfg.pit_policy.as_deref() == Some("discard")
    {
        return None;
    }
    let how = c
        .cfg
        .pit_policy
        .as_deref()
        .map_or("default (delay)".into(), |p| p.to_string());
    Finding::new(
        "L13",
        Severity::Warn,
        "AVIC host with PIT lost_tick_policy=delay: PIT reinjection inhibits AVIC",
    )
    .ev(format!("kvm-pit lost_tick_policy: {how}"))
    .qemu("-global kvm-pit.lost_tick_policy=discard")
    .libvirt("<clock><timer name='pit' tickpolicy='discard'/></clock>")
    .effect("AVIC stays active")
    .source("KB L13 / R20; Linux arch/x86/kvm/i8254.c")
    .into()
}

/// L14: cpu-pm=on on an overcommitted host.
fn l14(c: &Ctx) -> Option<Finding> {
    let cpus = c.host.cpus?;
    if !c.cfg.cpu_pm || c.total_vcpus <= cpus {
        return None;
    }
    Finding::new(
        "L14",
        Severity::Warn,
        "-overcommit cpu-pm=on on an overcommitted host",
    )
    .ev(format!(
        "{} vCPUs across VMs on {cpus} host CPUs",
        c.total_vcpus
    ))
    .qemu("drop -overcommit cpu-pm=on (halted vCPUs then keep their pCPU busy)")
    .effect("idle vCPUs give their pCPU back to others")
    .source("KB L14; QEMU -overcommit")
    .into()
}

/// L15: nested Hyper-V with stimer but no stimer-direct.
fn l15(c: &Ctx) -> Option<Finding> {
    let nested_seen = c.reason(x::NESTED).count > 0;
    if !(c.cfg.nested == Some(true) || nested_seen)
        || !c.cfg.has("hv-stimer")
        || c.cfg.has("hv-stimer-direct")
    {
        return None;
    }
    Finding::new(
        "L15",
        Severity::Warn,
        "nested Hyper-V with hv-stimer but without hv-stimer-direct",
    )
    .ev(format!(
        "vmx/svm exposed: {:?}; nested exits seen: {nested_seen}",
        c.cfg.nested
    ))
    .qemu(c.cpu_add(&["hv-stimer-direct"]))
    .libvirt(c.libvirt_add(&["hv-stimer-direct"]))
    .effect("Hyper-V in the guest needs direct-mode stimers for its own timers")
    .source("KB L15; QEMU 4.1 stimer-direct; libvirt 5.7")
    .into()
}

/// L16: guest NT 6.0/6.1 ignores DEPRECATING_AEOI: hv-avic will not stop AutoEOI.
fn l16(c: &Ctx) -> Option<Finding> {
    if !c.guest.is_nt6_legacy() || !(c.cfg.has("hv-synic") || c.cfg.has("hv-avic")) {
        return None;
    }
    let aeoi = c.ev.autoeoi_sints().len();
    let mut f = Finding::new(
        "L16",
        Severity::Warn,
        "Windows 7/2008-era guest: hv-avic is unlikely to stop AutoEOI (heuristic)",
    )
    .ev(format!("guest: {}", c.guest.describe()))
    .ev("heuristic: these Windows versions are not known to honour DEPRECATING_AEOI; no public source confirms it either way, so measure");
    if c.has(ev::MSR_WRITE) && aeoi > 0 {
        f = f.ev(format!("{aeoi} SINT(s) programmed with AutoEOI"));
    }
    f.qemu("A/B-test hiding the hypervisor bit (-cpu …,-hypervisor) against hv-synic/hv-stimer with APICv inhibited")
        .libvirt("<cpu><feature policy='disable' name='hypervisor'/></cpu>")
        .effect("hidden: LAPIC timer with APICv; visible: synthetic timer without APICv — measure")
        .source("KB L16; 2021 kvm/qemu-devel thread")
        .into()
}
