//! Whole-profile fingerprints P1–P5 (KB "Whole-profile fingerprints"): which of the 2021
//! configurations the profile looks like, pointing at the finding that explains its cost.

use profiler_common::ev;

use super::ctx::{x, Ctx, Rs};
use super::rules::inhibit_active;
use super::{Finding, Severity};

const THREAD: &str =
    "KB fingerprints; 2021 kvm/qemu-devel thread \"About the performance of hyper-v\"";

/// The matching fingerprint as an Info finding, or None. `findings` are the VM's sorted
/// findings: the top one is named as the explanation.
pub(crate) fn classify(c: &Ctx, findings: &[Finding]) -> Option<Finding> {
    // A profile's shape over a handful of exits is noise, not a configuration.
    if !c.enough() {
        return None;
    }
    let (id, meaning, lines) = p3(c)
        .or_else(|| p2(c))
        .or_else(|| p1(c))
        .or_else(|| p4(c))
        .or_else(|| p5(c))?;
    let mut f = Finding::new(id, Severity::Info, format!("profile {id}: {meaning}"));
    for l in lines {
        f = f.ev(l);
    }
    if let Some(top) = findings
        .iter()
        .find(|f| f.rule.starts_with('R') || f.rule.starts_with('L'))
    {
        f = f
            .qemu(format!("see {}: {}", top.rule, top.advice_qemu))
            .libvirt(top.advice_libvirt.clone())
            .effect(top.effect.clone());
    }
    Some(f.source(THREAD))
}

type Hit = Option<(&'static str, &'static str, Vec<String>)>;

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

/// The non-HLT class with the largest share among the ones the fingerprints name.
fn top_is(c: &Ctx, set: &[(u32, u32)]) -> bool {
    let me = c.reason(set).share();
    me > 0.0
        && [
            x::MMIO,
            x::EXTINT,
            x::MSR_WRITE,
            x::APIC_WRITE,
            x::IO,
            x::VMCALL,
            x::PAUSE,
            x::EOI_INDUCED,
            x::APIC_ACCESS,
        ]
        .iter()
        .all(|s| *s == set || c.reason(s).share() <= me)
}

/// P1: MMIO exits on top, HPET MMIO / RTC port I/O: no timer/clock enlightenments.
fn p1(c: &Ctx) -> Hit {
    let mmio = c.reason(x::MMIO);
    if !top_is(c, x::MMIO) || !c.dominant(&mmio) {
        return None;
    }
    let (hr, hw) = c.ev.hpet(|_| true);
    let rtc = c.ev.pio(|p| matches!(p, 0x70 | 0x71));
    if c.has(ev::MMIO_READ) && hr + hw + rtc == 0 {
        return None;
    }
    let aw = c.reason(x::APIC_WRITE);
    Some((
        "P1",
        "no timer/clock enlightenments (HPET/RTC emulation dominates)",
        vec![
            c.line("MMIO exits", &mmio),
            format!(
                "HPET MMIO {}, RTC port I/O {}",
                c.measured(ev::MMIO_READ, hr + hw),
                c.measured(ev::PIO_IN, rtc)
            ),
            c.line("APIC_WRITE", &aw),
        ],
    ))
}

fn msr_share(c: &Ctx) -> (u64, u64) {
    (
        c.ev.msr(ev::MSR_WRITE, 0x4000_0070, 0x4000_0071),
        c.ev.count(ev::MSR_WRITE, |_| true),
    )
}

/// P2: EXTERNAL_INTERRUPT + MSR_WRITE on top, synthetic EOI/ICR writes, HYPERV inhibit.
fn p2(c: &Ctx) -> Hit {
    let ext = c.reason(x::EXTINT);
    let mw = c.reason(x::MSR_WRITE);
    let both = |r: &Rs| r.share() >= c.th.dominant_pct / 2.0;
    if !(both(&ext) && both(&mw)) || ext.share() + mw.share() < 2.0 * c.th.dominant_pct {
        return None;
    }
    let (syn, all) = msr_share(c);
    let inh = inhibit_active(c, "HYPERV");
    if c.has(ev::MSR_WRITE) && syn == 0 && inh.is_none() {
        return None;
    }
    let mut lines = vec![c.line("EXTERNAL_INTERRUPT", &ext), c.line("MSR_WRITE", &mw)];
    if all > 0 {
        lines.push(format!(
            "0x40000070/71 HV_EOI/HV_ICR: {:.0} % of MSR writes",
            pct(syn, all)
        ));
    }
    if let Some((bit, ..)) = inh {
        lines.push(format!("APICv inhibit HYPERV (bit {bit}) in force"));
    }
    Some(("P2", "all features on, APICv inhibited by AutoEOI", lines))
}

/// P3: ~90 % MSR_WRITE, mostly 0x40000070, APICv not inhibited.
fn p3(c: &Ctx) -> Hit {
    let mw = c.reason(x::MSR_WRITE);
    let (syn, all) = msr_share(c);
    let eoi = c.ev.msr(ev::MSR_WRITE, 0x4000_0070, 0x4000_0070);
    if mw.samples_pct < 70.0
        || all == 0
        || pct(eoi, all) < c.th.majority_pct
        || inhibit_active(c, "HYPERV").is_some()
    {
        return None;
    }
    // KB P3 is "AutoEOI fixed"; a SINT still using AutoEOI with APICv off looks the same in
    // the exits, so say which one this is.
    let title = if c.ev.autoeoi_sints().is_empty() {
        "AutoEOI fixed, synthetic APIC MSRs still recommended"
    } else {
        "synthetic APIC MSRs dominate; a SINT still uses AutoEOI (APICv off or not inhibited)"
    };
    Some((
        "P3",
        title,
        vec![
            c.line("MSR_WRITE", &mw),
            format!(
                "0x40000070 HV_EOI: {:.0} % of MSR writes (0x40000070/71: {:.0} %)",
                pct(eoi, all),
                pct(syn, all)
            ),
        ],
    ))
}

/// P4: APIC_WRITE on the ICR on top, some EOI_INDUCED, VMCALL present: the fixed state.
fn p4(c: &Ctx) -> Hit {
    let aw = c.reason(x::APIC_WRITE);
    if !top_is(c, x::APIC_WRITE) || !c.dominant(&aw) {
        return None;
    }
    let icr = c.ev.detail(56, |o| o == 0x300);
    let all = c.ev.detail(56, |_| true);
    if all > 0 && pct(icr, all) < c.th.majority_pct {
        return None;
    }
    let eoi = c.reason(x::EOI_INDUCED);
    let vmcall = c.reason(x::VMCALL);
    if c.reason(&[(profiler_common::ISA_VMX, 56)]).count > 0
        && (eoi.count == 0 || vmcall.count == 0)
    {
        return None;
    }
    Some((
        "P4",
        "fixed: hv-avic with APICv active; ICR writes are the remainder",
        vec![
            c.line("APIC_WRITE", &aw),
            format!("ICR (offset 0x300): {:.0} % of APIC writes", pct(icr, all)),
            c.line("EOI_INDUCED", &eoi),
            c.line("VMCALL", &vmcall),
        ],
    ))
}

/// P5: no Hyper-V MSR/hypercall traffic, LAPIC timer in use: hypervisor bit hidden.
fn p5(c: &Ctx) -> Hit {
    if !c.has(ev::MSR_WRITE) || c.ev.hyperv_traffic() || c.ev.kvm_pv_traffic() {
        return None;
    }
    let t = c.ev.timers();
    if t.lapic_per_s() <= 0.0 || !(c.cfg.hypervisor_hidden || c.guest.is_windows()) {
        return None;
    }
    let mut lines = vec![
        "no 0x4000xxxx MSR traffic, no Hyper-V hypercalls".to_string(),
        format!(
            "LAPIC timer: TSC_DEADLINE {:.0}/s, TMICT {:.0}/s",
            t.tsc_deadline_per_s, t.lapic_oneshot_per_s
        ),
    ];
    if c.cfg.hypervisor_hidden {
        lines.push("configured: hypervisor bit hidden".into());
    }
    Some((
        "P5",
        "hypervisor bit hidden: Windows uses the LAPIC timer",
        lines,
    ))
}
