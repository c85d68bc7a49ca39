//! Outside the themes above (theme Other): a hidden hypervisor, nested Hyper-V, exits Hyper-V
//! enlightenments cannot help.

use profiler_common::ev;

use crate::advice::ctx::{x, Ctx};
use crate::advice::{Finding, Severity};

pub(super) fn all(c: &Ctx) -> Vec<Option<Finding>> {
    vec![r18(c), r19(c), r22(c)]
}

/// R18: hypervisor bit hidden, no Hyper-V traffic: every hv-* flag is inert.
fn r18(c: &Ctx) -> Option<Finding> {
    if !c.cfg.hypervisor_hidden {
        return None;
    }
    if c.has(ev::MSR_WRITE) && c.ev.hyperv_traffic() {
        return None;
    }
    let sev = if c.cfg.any_hv() {
        Severity::Warn
    } else {
        Severity::Info
    };
    let mut f = Finding::new(
        "R18",
        sev,
        "hypervisor CPUID bit hidden: Windows sees no hypervisor and every hv-* flag is inert",
    )
    .ev("configured: -hypervisor / hypervisor=off")
    .ev("no 0x4000xxxx MSR traffic and no Hyper-V hypercalls")
    .evidence_opt(c.unconfirmed(ev::MSR_WRITE));
    if c.cfg.any_hv() {
        f = f.ev(format!("inert flags: {}", c.cfg.enabled().join(",")));
    }
    let old = c.host.autoeoi_only_inhibit() == Some(false);
    let q = if c.guest.is_nt6_legacy() {
        "keep it hidden: this guest (NT 6.0/6.1) would use AutoEOI and inhibit APICv (L16)"
            .to_string()
    } else if old {
        "keep it hidden until the host runs Linux ≥ 5.15 and QEMU ≥ 6.2; then expose it with all features + hv-avic".into()
    } else if c.apicv_on() {
        "on Linux ≥ 5.15 + QEMU ≥ 6.2 expose it (drop -hypervisor) with all recommended features + hv-avic; keep it hidden only for a reason (A/B-measure: hidden was the lowest overhead in 2021)".into()
    } else {
        "expose it (drop -hypervisor) with all recommended features (no hv-avic: host APICv/AVIC not known on); keep it hidden only for a reason".into()
    };
    f.qemu(q)
        .libvirt("remove <feature policy='disable' name='hypervisor'/> from <cpu>")
        .effect("Windows uses the enlightenments (stimer, TSC page, PV IPIs/flushes); measure against the hidden baseline")
        .source("KB R18; 2021 kvm/qemu-devel thread (config 3); Linux 5.15; QEMU 6.2")
        .into()
}

/// R19: VMX/SVM instruction exits: the guest runs Hyper-V itself (VBS/HVCI/WSL2).
fn r19(c: &Ctx) -> Option<Finding> {
    let n = c.reason(x::NESTED);
    if n.count == 0
        || c.cfg.nested == Some(false)
        || !(c.dominant(&n) || c.rate_of(n.count) >= c.th.timer_rate)
    {
        return None;
    }
    // hv-xmm-input and hv-tlbflush-ext help any Windows guest: they are L01's, not nested-only.
    // hv-tlbflush-direct needs hv-vapic.
    let mut want = vec![
        "hv-vapic",
        "hv-stimer-direct",
        "hv-tlbflush-direct",
        "hv-emsr-bitmap",
    ];
    if !c.is_amd() {
        want.insert(0, "hv-evmcs");
    }
    let flags = c.missing_flags(&want);
    let flag = if c.is_amd() { "svm" } else { "vmx" };
    Finding::new(
        "R19",
        Severity::Warn,
        "Windows runs Hyper-V itself (VBS/HVCI/WSL2): nested virtualization",
    )
    .ev(c.line("VMX/SVM instruction exits", &n))
    .weight(n.share())
    .qemu(format!(
        "not needed: -cpu …,{flag}=off; needed: {}",
        if flags.is_empty() {
            "nested enlightenments already on".to_string()
        } else {
            c.cpu_add(&flags)
        }
    ))
    .libvirt(format!(
        "not needed: <feature policy='disable' name='{flag}'/>; needed: {}",
        c.libvirt_add(&flags)
    ))
    .effect("no nested exits (hidden) or cheaper L2 entries, flushes and timers (enlightened)")
    .source("KB R19; QEMU 4.1 stimer-direct, 7.1 tlbflush-direct, emsr-bitmap; libvirt 10.7/11.0")
    .into()
}

/// R22: top exits unrelated to Hyper-V (DR_ACCESS, CPUID, PCI config ports).
fn r22(c: &Ctx) -> Option<Finding> {
    let dr = c.reason(x::DR);
    let cpuid = c.reason(x::CPUID);
    let pci = c.ev.pio(|p| p == 0xcf8 || (0xcfc..=0xcff).contains(&p));
    let mut f = Finding::new(
        "R22",
        Severity::Info,
        "top exits not related to Hyper-V: no hv-* flag helps",
    );
    let mut w: f64 = 0.0;
    for (name, r) in [("DR_ACCESS", &dr), ("CPUID", &cpuid)] {
        if c.dominant(r) {
            f = f.ev(c.line(name, r));
            w = w.max(r.share());
        }
    }
    if c.rate_of(pci) >= c.th.timer_rate {
        f = f.ev(format!(
            "PCI config space ports 0xCF8/0xCFC: {}",
            c.rate_str(pci)
        ));
    }
    if f.evidence.is_empty() {
        return None;
    }
    f.weight(w)
        .qemu("no enlightenment change: DR_ACCESS = a debugger/anti-cheat in the guest; CPUID = a guest polling CPUID; PCI config = a driver polling config space")
        .source("KB R22")
        .into()
}
