//! Runtime rules R08–R12 (KB "Runtime rules"): interrupt delivery, IPIs and EOIs.

use profiler_common::ev;

use super::ctx::{libvirt_snippet, x, Ctx};
use super::rules::{apicv_inactive, inhibit_active, THREAD};
use super::{Finding, Severity};

pub(crate) fn all(c: &Ctx) -> Vec<Option<Finding>> {
    vec![r08(c), r09(c), r10(c), r11(c), r12(c)]
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
                libvirt_snippet(&flags)
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
    if c.host.ipiv == Some(false) {
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
        .source("KB R10; Linux 5.19 IPIv (kvm_intel enable_ipiv)")
        .into()
}

/// R11: EOI-induced exits for SINT vectors: message-mode stimer interrupts each exit.
fn r11(c: &Ctx) -> Option<Finding> {
    let eoi = c.reason(x::EOI_INDUCED);
    if eoi.count == 0 {
        return None;
    }
    let sints = c.ev.sint_vectors();
    let on_sint = c.ev.detail(45, |v| sints.contains(&v));
    let msg = c.ev.count(ev::STIMER_EXPIRE, |r| r.flags & 1 == 0);
    let direct = c.ev.count(ev::STIMER_EXPIRE, |r| r.flags & 1 != 0);
    if on_sint == 0 && msg == 0 {
        return None;
    }
    if !(c.dominant(&eoi) || c.rate_of(eoi.count) >= c.th.timer_rate) {
        return None;
    }
    let mut f = Finding::new(
        "R11",
        Severity::Warn,
        "message-mode stimer: every SINT interrupt takes an EOI-induced exit",
    )
    .ev(c.line("EOI_INDUCED", &eoi))
    .ev(format!(
        "EOI-induced on SINT vectors {sints:x?}: {}; stimer expirations direct 0: {}, direct 1: {}",
        c.rate_str(on_sint),
        c.rate_str(msg),
        c.rate_str(direct)
    ))
    .weight(eoi.share())
    .source("KB R11; QEMU 4.1 hv-stimer-direct; libvirt 5.7 <stimer><direct/></stimer>");
    if c.cfg.has("hv-stimer-direct") {
        f.severity = Severity::Info;
        f.qemu("hv-stimer-direct is on but Windows programs message mode (config bit 12 clear): nothing to change on the host")
    } else {
        f.qemu(c.cpu_add(&["hv-stimer-direct"]))
            .libvirt(libvirt_snippet(&["hv-stimer-direct"]))
            .effect("direct-mode stimer interrupts are not in the EOI-exit bitmap: confirm with config bit 12 / \"direct 1\"")
    }
    .into()
}

/// R12: EOIs emulated in software because APICv is inactive.
fn r12(c: &Ctx) -> Option<Finding> {
    if !apicv_inactive(c) {
        return None;
    }
    let eoi = c.ev.count(ev::EOI, |_| true)
        + c.ev.count(ev::PV_EOI, |_| true)
        + c.ev.msr(ev::MSR_WRITE, 0x80b, 0x80b);
    let acc = c.reason(x::APIC_ACCESS);
    if !(c.dominant(&acc) || c.high(c.rate_of(eoi))) {
        return None;
    }
    let mut q = Vec::new();
    if inhibit_active(c, "HYPERV").is_some() {
        q.push("fix R07".to_string());
    }
    let flags = if c.visible() {
        c.missing_flags(&["hv-vapic"])
    } else {
        Vec::new()
    };
    if !flags.is_empty() {
        q.push(format!(
            "where APICv is impossible: {} (PV EOI via the VP-assist page)",
            c.cpu_add(&flags)
        ));
    } else {
        q.push("where APICv is impossible keep hv-vapic (PV EOI via the VP-assist page)".into());
    }
    Finding::new(
        "R12",
        Severity::Warn,
        "EOIs emulated in software (APICv inactive)",
    )
    .ev(format!(
        "EOIs (kvm_eoi + kvm_pv_eoi + x2APIC EOI 0x80b writes): {}",
        c.rate_str(eoi)
    ))
    .ev(c.line("APIC_ACCESS", &acc))
    .weight(acc.share())
    .qemu(q.join("; "))
    .libvirt(libvirt_snippet(&flags))
    .effect("EOIs complete in hardware (APICv) or through the VP-assist page")
    .source("KB R12; TLFS VP assist page")
    .into()
}
