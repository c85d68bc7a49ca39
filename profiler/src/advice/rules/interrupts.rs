//! Interrupt delivery and IPIs (theme Interrupts): posted interrupts, host interrupt noise, ICR
//! writes, TLB-shootdown and IPI hypercalls.

use profiler_common::ev;

use super::{apicv_inactive, inhibit_active, THREAD};
use crate::advice::ctx::{x, Ctx};
use crate::advice::names;
use crate::advice::{Finding, Severity};

pub(super) fn all(c: &Ctx) -> Vec<Option<Finding>> {
    vec![r08(c), r09(c), r10(c), r16(c), r17(c)]
}

/// R08: EXTERNAL_INTERRUPT dominant with reschedule (KVM kick) vectors: no posted interrupts.
fn r08(c: &Ctx) -> Option<Finding> {
    let ext = c.reason(x::EXTINT);
    if !c.dominant(&ext) {
        return None;
    }
    let resched = c.ev.detail(1, |v| v == 0xfd);
    let all = c.ev.detail(1, |_| true);
    let ipi = c.ev.count(ev::IPI, |_| true);
    if all > 0 && (resched as f64) * 100.0 < c.th.majority_pct * all as f64 {
        return None; // Host noise: R09.
    }
    if all == 0 && !(apicv_inactive(c) || c.high(c.rate_of(ipi))) {
        return None;
    }
    let mut f = Finding::new(
        "R08",
        Severity::Critical,
        "no posted interrupts: every IPI costs at least two exits",
    )
    .ev(c.line("EXTERNAL_INTERRUPT", &ext))
    .weight(ext.share());
    if all > 0 {
        f = f.ev(format!(
            "vector 0xfd RESCHEDULE (KVM kick): {:.0} % of external interrupts",
            resched as f64 * 100.0 / all as f64
        ));
    }
    if ipi > 0 {
        f = f.ev(format!(
            "guest IPIs: {} ({:.0}/s per vCPU)",
            c.rate_str(ipi),
            c.per_vcpu(c.rate_of(ipi))
        ));
    }
    let mut q = Vec::new();
    if inhibit_active(c, "HYPERV").is_some() || !c.ev.autoeoi_sints().is_empty() {
        q.push("fix R07 (APICv inhibited by AutoEOI)".to_string());
    }
    if c.host.apicv == Some(false) {
        q.push(format!("enable {} on the host", c.host.apicv_name()));
    }
    let flags = if c.visible() && c.guest.is_windows() {
        c.missing_flags(&["hv-vpindex", "hv-ipi", "hv-tlbflush"])
    } else {
        Vec::new()
    };
    if !flags.is_empty() {
        q.push(format!("{} (fewer guest IPIs)", c.cpu_add(&flags)));
    }
    q.push("pin vCPUs 1:1 to dedicated pCPUs".into());
    f.qemu(q.join("; "))
        .libvirt(
            format!(
                "{} <cputune><vcpupin vcpu='0' cpuset='…'/>…</cputune>",
                c.libvirt_add(&flags)
            )
            .trim_start()
            .to_string(),
        )
        .effect("with APICv active IPIs are posted without exits")
        .source(format!("KB R08; {THREAD}"))
        .into()
}

/// R09: EXTERNAL_INTERRUPT from host timer/device vectors while APICv works: host noise.
fn r09(c: &Ctx) -> Option<Finding> {
    let ext = c.reason(x::EXTINT);
    let all = c.ev.detail(1, |_| true);
    let noise = c.ev.detail(1, |v| v != 0xfd && v != 0xf2 && v != 0xf1);
    if !(c.dominant(&ext) || c.high(ext.rate)) || all == 0 || apicv_inactive(c) {
        return None;
    }
    if (noise as f64) * 100.0 < c.th.majority_pct * all as f64 {
        return None;
    }
    let timer = c.ev.detail(1, |v| v == 0xec);
    Finding::new("R09", Severity::Warn, "external-interrupt exits are host interrupt noise, not Hyper-V")
        .ev(c.line("EXTERNAL_INTERRUPT", &ext))
        .ev(format!("host timer 0xec LOCAL_TIMER: {:.0} %, other host/device vectors: {:.0} %", timer as f64 * 100.0 / all as f64, (noise - timer) as f64 * 100.0 / all as f64))
        .weight(ext.share())
        .qemu("no hv-* change: steer device IRQs away from the vCPUs' pCPUs (IRQ affinity), nohz_full / isolcpus on those pCPUs")
        .libvirt("<cputune><vcpupin …/><emulatorpin cpuset='…'/></cputune>")
        .effect("fewer host interrupts landing on vCPU threads")
        .source("KB R09")
        .into()
}

/// R10: APIC_WRITE on the ICR dominant with APICv active: xAPIC IPIs trap without IPIv.
fn r10(c: &Ctx) -> Option<Finding> {
    let aw = c.reason(x::APIC_WRITE);
    if !c.dominant(&aw) {
        return None;
    }
    let icr = c.ev.detail(56, |o| o == 0x300);
    let all = c.ev.detail(56, |_| true);
    if all > 0 && (icr as f64) * 100.0 < c.th.majority_pct * all as f64 {
        return None;
    }
    let mut f = Finding::new(
        "R10",
        Severity::Info,
        "IPIs still trap on ICR writes (APICv without IPI virtualization): the expected remainder",
    )
    .ev(c.line("APIC_WRITE / avic_incomplete_ipi", &aw))
    .weight(aw.share());
    if all > 0 {
        f = f.ev(format!(
            "ICR (offset 0x300): {:.0} % of APIC writes",
            icr as f64 * 100.0 / all as f64
        ));
    }
    let mut q = Vec::new();
    if c.host.ipiv == Some(false) && c.is_amd() {
        f.severity = Severity::Warn;
        q.push(
            "AVIC IPI virtualization is off (kvm_amd enable_ipiv=N; KVM forces that on Zen 1/Zen 2 for erratum #1235): on Zen 3 or later set kvm_amd enable_ipiv=Y".to_string(),
        );
    } else if c.host.ipiv == Some(false) {
        f.severity = Severity::Warn;
        q.push(
            "host supports IPI virtualization but it is off: kvm_intel enable_ipiv=Y".to_string(),
        );
    } else if !c.is_amd() && c.host.ipiv.is_none() {
        q.push("IPIv needs Sapphire Rapids+ and kvm_intel enable_ipiv=Y".into());
    }
    q.push(
        if c.cfg.has("hv-ipi") {
            "A/B-test without hv-ipi"
        } else {
            "A/B-test with hv-ipi"
        }
        .into(),
    );
    f.qemu(q.join("; "))
        .effect("with IPIv ICR writes are virtualized without exits")
        .source("KB R10; Linux 5.19 IPIv (kvm_intel enable_ipiv); kvm_amd enable_ipiv")
        .into()
}

/// R16: many IPIs, no TLB-flush hypercalls, hv-tlbflush off: shootdowns by IPI.
fn r16(c: &Ctx) -> Option<Finding> {
    let ipi = c.ev.count(ev::IPI, |_| true);
    if !c.has(ev::IPI) || !c.high(c.rate_of(ipi)) || !c.guest.is_windows() || !c.visible() {
        return None;
    }
    let flushes =
        c.ev.count(ev::HV_HYPERCALL, |r| names::TLBFLUSH_CALLS.contains(&r.a));
    if flushes > 0 || c.cfg.has("hv-tlbflush") {
        return None;
    }
    let flags = c.missing_flags(&["hv-vpindex", "hv-tlbflush", "hv-ipi"]);
    Finding::new(
        "R16",
        Severity::Warn,
        "TLB shootdowns and IPIs go through the emulated APIC (no hv-tlbflush)",
    )
    .ev(format!(
        "guest IPIs: {} ({:.0}/s per vCPU); TLB-flush hypercalls 0x2/0x3/0x13/0x14: none",
        c.rate_str(ipi),
        c.per_vcpu(c.rate_of(ipi))
    ))
    .evidence_opt(c.unconfirmed(ev::HV_HYPERCALL))
    .qemu(c.cpu_add(&flags))
    .libvirt(c.libvirt_add(&flags))
    .effect("remote TLB flushes become one hypercall instead of an IPI per vCPU")
    .source("KB R16; QEMU docs hv-tlbflush, hv-ipi")
    .into()
}

/// R17: hypercall IPIs dominant on an IPIv host (hypothesis).
fn r17(c: &Ctx) -> Option<Finding> {
    let vmcall = c.reason(x::VMCALL);
    if c.host.ipiv != Some(true) || !c.dominant(&vmcall) || !c.cfg.has("hv-ipi") {
        return None;
    }
    let ipis =
        c.ev.count(ev::HV_HYPERCALL, |r| names::IPI_CALLS.contains(&r.a));
    let all = c.ev.count(ev::HV_HYPERCALL, |_| true);
    if all == 0 || (ipis as f64) * 100.0 < c.th.majority_pct * all as f64 {
        return None;
    }
    Finding::new(
        "R17",
        Severity::Info,
        "IPIs by hypercall always exit; with IPIv, ICR writes would not (hypothesis)",
    )
    .ev(c.line("VMCALL", &vmcall))
    .ev(format!(
        "hypercalls 0xb/0x15 SendSyntheticClusterIpi(Ex): {} ({:.0} % of hypercalls)",
        c.rate_str(ipis),
        ipis as f64 * 100.0 / all as f64
    ))
    .weight(vmcall.share())
    .qemu("A/B-test without hv-ipi (-cpu …,hv-ipi=off) and compare exit time")
    .libvirt("<hyperv><ipi state='off'/></hyperv>")
    .effect("possibly fewer exits per IPI; measure before and after")
    .source("KB R17 (hypothesis)")
    .into()
}
