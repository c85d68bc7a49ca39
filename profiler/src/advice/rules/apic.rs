//! Interrupts and the APIC (theme Interrupts): synthetic APIC MSRs, APICv/AVIC and what inhibits
//! it, EOIs and SynIC timer messages.

use profiler_common::ev;

use super::{apicv_inactive, inhibit_active, x2apic_without_x2avic, THREAD};
use crate::advice::ctx::{x, Ctx};
use crate::advice::names;
use crate::advice::{Finding, Severity};

pub(super) fn all(c: &Ctx) -> Vec<Option<Finding>> {
    let mut v = vec![r06(c), r07(c), r11(c), r12(c), r20(c)];
    v.extend(r21(c).into_iter().map(Some));
    v
}

/// R06: Windows writes the synthetic APIC MSRs (0x40000070–72) because
/// APIC_ACCESS_RECOMMENDED is set: hardware cannot accelerate them.
fn r06(c: &Ctx) -> Option<Finding> {
    let mw = c.reason(x::MSR_WRITE);
    if !c.dominant(&mw) {
        return None;
    }
    let syn = c.ev.msr(ev::MSR_WRITE, 0x4000_0070, 0x4000_0072);
    let all = c.ev.count(ev::MSR_WRITE, |_| true);
    let confirmed = c.has(ev::MSR_WRITE);
    if confirmed && (all == 0 || (syn as f64) * 100.0 < c.th.majority_pct * all as f64) {
        return None;
    }
    // Without MSR indexes, the configuration (hv-vapic without hv-avic) or, where it is
    // unknown, a Windows guest points at the synthetic MSRs: the 2021 profile had 90 % MSR
    // writes, nearly all HV_EOI.
    let vapic_only = c.cfg.has("hv-vapic") && !c.cfg.has("hv-avic");
    let windows_unknown_cfg = c.guest.is_windows() && c.cfg.is_unknown();
    if !confirmed && !vapic_only && !windows_unknown_cfg {
        return None;
    }
    let mut f = Finding::new(
        "R06",
        Severity::Warn,
        "Windows uses the synthetic APIC MSRs (HV_EOI/ICR/TPR), which APICv cannot accelerate",
    )
    .ev(c.line("MSR_WRITE", &mw))
    .weight(mw.share());
    if confirmed {
        f = f.ev(format!(
            "synthetic APIC MSR writes: {:.0} % of MSR writes",
            syn as f64 * 100.0 / all.max(1) as f64
        ));
        for r in c.ev.top(ev::MSR_WRITE, 3) {
            f = f.ev(format!(
                "  {} {}",
                crate::advice::evidence::label(r, c.inh),
                c.rate_str(r.count)
            ));
        }
    }
    f = f.evidence_opt(c.unconfirmed(ev::MSR_WRITE));
    let src = format!("KB R06; {THREAD}; QEMU 6.2 hv-avic (clears CPUID 0x40000004 EAX bit 3); libvirt 8.10 <avic state='on'/>");
    f = f.source(src);
    if c.guest.is_nt6_legacy() {
        return f
            .qemu("this guest (NT 6.0/6.1) keeps using AutoEOI, so APICv stays inhibited even with hv-avic (L16): A/B-test hiding the hypervisor bit instead")
            .into();
    }
    if c.cfg.has("hv-avic") {
        return f
            .qemu("hv-avic is already on: check QEMU ≥ 6.2 applied it (CPUID 0x40000004 EAX bit 3 clear) and that the guest was rebooted since")
            .into();
    }
    match c.host.apicv {
        Some(false) => f
            .ev(format!("host {} is off", c.host.apicv_name()))
            .qemu(format!("no hv-avic: the host has no {} (L04); keep hv-vapic — the synthetic MSRs are the cheaper path without APICv; enabling {} first would make hv-avic worthwhile", c.host.apicv_name(), c.host.apicv_param()))
            .effect("none without APICv")
            .into(),
        None => f
            .qemu(format!("only if the host has {}: {}", c.host.apicv_param(), c.cpu_add(&["hv-avic"])))
            .libvirt(format!("{} (libvirt ≥ 8.10)", c.libvirt_add(&["hv-avic"])))
            .effect("EOI/ICR/TPR go through the hardware-accelerated x2APIC path")
            .into(),
        Some(true) => {
            let f = f.qemu(format!("{} (QEMU ≥ 6.2)", c.cpu_add(&["hv-avic"])))
                .libvirt(format!("{} (libvirt ≥ 8.10)", c.libvirt_add(&["hv-avic"])))
                .effect("Windows uses the x2APIC MSRs, accelerated by APICv/AVIC: the MSR_WRITE exits largely disappear");
            Finding { severity: if confirmed { Severity::Critical } else { Severity::Warn }, ..f }.into()
        }
    }
}

/// R07 from exit reasons alone (a pasted AMD profile): `vintr` and `write_cr8` exits happen
/// only while AVIC is not in use, and next to many `interrupt` exits they are the profile of
/// SynIC inhibiting AVIC (kvm list, Feb 2021: AVIC "totally avoid[s] vintr and write_cr8
/// vmexits"). Unconfirmed: the inhibit tracepoint would say which inhibit it is.
fn r07_avic_signature(c: &Ctx) -> Option<Finding> {
    if c.has(ev::APICV_INHIBIT) || !c.is_amd() || !c.enough() || c.host.apicv == Some(false) {
        return None;
    }
    // A known configuration must have SynIC on and hv-avic off for AutoEOI to be the cause.
    if !c.cfg.is_unknown() && (!c.cfg.has("hv-synic") || c.cfg.has("hv-avic")) {
        return None;
    }
    let (ext, vintr, cr8) = (
        c.reason(x::EXTINT),
        c.reason(x::VINTR),
        c.reason(x::CR8_WRITE),
    );
    let window = vintr.samples_pct + cr8.samples_pct;
    if vintr.count == 0 || cr8.count == 0 || window < 1.0 || !c.dominant(&ext) {
        return None;
    }
    let f = Finding::new(
        "R07",
        Severity::Warn,
        "AVIC is not in use (vintr/write_cr8 exits): with SynIC on, AutoEOI inhibits it for the whole VM",
    )
    .weight(ext.share() + vintr.share() + cr8.share())
    .ev(c.line("interrupt", &ext))
    .ev(c.line("vintr", &vintr))
    .ev(c.line("write_cr8", &cr8))
    .ev("AVIC removes vintr and write_cr8 exits: these come from vCPUs running without it")
    .evidence_opt(c.unconfirmed(ev::APICV_INHIBIT));
    let q = format!(
        "if the host has kvm_amd avic=1 and the VM hv-synic: {} (QEMU ≥ 6.2, host kernel ≥ 5.15: the guest stops using AutoEOI and AVIC stays on); if avic=0, enabling it comes first",
        c.cpu_add(&["hv-avic"])
    );
    f.qemu(q)
        .libvirt(format!("{} (libvirt ≥ 8.10)", c.libvirt_add(&["hv-avic"])))
        .effect("AVIC stays active: interrupts, EOIs and TPR writes stop exiting")
        .source(format!("KB R07; {THREAD}; kvm list 2021-02 \"Optimized clocksource with AMD AVIC enabled for Windows guest\""))
        .into()
}

/// R07: SynIC AutoEOI inhibits APICv for the whole VM.
/// AutoEOI in use while the host has no APICv/AVIC: harmless today, an inhibit tomorrow.
fn r07_latent(c: &Ctx, aeoi: &[&crate::advice::EvRow]) -> Option<Finding> {
    if aeoi.is_empty() {
        return None;
    }
    let mut f = Finding::new(
        "R07",
        Severity::Info,
        "SynIC AutoEOI in use: harmless while APICv/AVIC is off, inhibits APICv once it is on",
    );
    for r in aeoi.iter().take(2) {
        f = f.ev(format!(
            "{} = {:#x}: AutoEOI (bit 17) set, not masked",
            names::msr_name(r.a).unwrap_or_default(),
            r.last
        ));
    }
    f = f.ev(match c.host.apicv {
        Some(false) => format!(
            "host {} is off: every interrupt and EOI is emulated anyway (R12)",
            c.host.apicv_name()
        ),
        _ => "APICv/AVIC state of the host unknown or off".to_string(),
    });
    Some(
        f.host(format!("only if you enable it ({}): see the qemu line", c.host.apicv_param()))
            .qemu("nothing to change while APICv/AVIC stays off; only if you enable it on the host, pair it with the hv-avic CPU flag (QEMU ≥ 6.2) so the guest stops using AutoEOI")
            .libvirt("when enabling APICv/AVIC on the host, add the avic element under <hyperv> (libvirt ≥ 8.10)")
            .effect("no change now; avoids a VM-wide APICv inhibit after APICv/AVIC is enabled")
            .source("KB R07; Linux 5.15 (inhibit only while a SINT uses AutoEOI); QEMU 6.2 hv-avic"),
    )
}

fn r07(c: &Ctx) -> Option<Finding> {
    let active = inhibit_active(c, "HYPERV");
    let aeoi = c.ev.autoeoi_sints();
    let old_kernel = c.host.autoeoi_only_inhibit() == Some(false);
    // Before 5.15 SynIC alone inhibits APICv; without the tracepoint, infer it.
    let inferred = !c.has(ev::APICV_INHIBIT)
        && old_kernel
        && c.cfg.has("hv-synic")
        && c.visible()
        && c.apicv_on();
    if active.is_none() && aeoi.is_empty() && !inferred {
        return r07_avic_signature(c);
    }
    // With APICv off there is nothing to inhibit now (R12 covers software EOIs), but the
    // operator should know the guest uses AutoEOI before turning APICv/AVIC on.
    if c.host.apicv == Some(false) || (active.is_none() && !inferred && !c.apicv_on()) {
        return r07_latent(c, &aeoi);
    }
    let ext = c.reason(x::EXTINT);
    let mw = c.reason(x::MSR_WRITE);
    let weight = ext.share() + mw.share();
    let sev = if c.dominant(&ext) || weight >= c.th.dominant_pct {
        Severity::Critical
    } else {
        Severity::Warn
    };
    let mut f = Finding::new(
        "R07",
        sev,
        "SynIC AutoEOI inhibits APICv for the whole VM: every IPI and EOI exits",
    )
    .weight(weight);
    if let Some((bit, set, clr, now)) = active {
        f = f.ev(format!("APICv inhibit HYPERV (bit {bit}): set {set}x since attach, cleared {clr}x, set {now}x in the span"));
    }
    for r in aeoi.iter().take(2) {
        f = f.ev(format!(
            "{} = {:#x}: AutoEOI (bit 17) set, not masked",
            names::msr_name(r.a).unwrap_or_default(),
            r.last
        ));
    }
    if inferred {
        f = f.ev(
            "inferred: host kernel < 5.15 inhibits APICv whenever SynIC is active (hv-synic on)",
        );
    }
    f = f
        .ev(c.line("EXTERNAL_INTERRUPT", &ext))
        .ev(c.line("MSR_WRITE", &mw));
    if let Some(k) = &c.host.kernel_release {
        f = f.ev(format!("host kernel {k}"));
    }
    let hide = "A/B-test hiding the hypervisor bit (-cpu …,-hypervisor / <feature policy='disable' name='hypervisor'/>); never just drop hv-stimer while the bit is visible (→ R01/R02)";
    let (q, l) = if c.guest.is_nt6_legacy() {
        (format!("this guest (NT 6.0/6.1) ignores DEPRECATING_AEOI, hv-avic will not help (L16): {hide}"), String::new())
    } else if old_kernel {
        (format!("upgrade the host kernel to ≥ 5.15 (inhibits only while a SINT uses AutoEOI), then add hv-avic (QEMU ≥ 6.2); on an old stack {hide}"), String::new())
    } else if c.cfg.has("hv-avic") {
        (format!("hv-avic is on but the guest still uses AutoEOI (QEMU < 6.2, or a guest that ignores DEPRECATING_AEOI): {hide}"), String::new())
    } else if c.apicv_on() {
        (
            format!(
                "{} (QEMU ≥ 6.2: sets DEPRECATING_AEOI, guest stops using AutoEOI)",
                c.cpu_add(&["hv-avic"])
            ),
            format!("{} (libvirt ≥ 8.10)", c.libvirt_add(&["hv-avic"])),
        )
    } else {
        (
            format!(
                "only if the host has {}: {}",
                c.host.apicv_param(),
                c.cpu_add(&["hv-avic"])
            ),
            String::new(),
        )
    };
    f.qemu(q)
        .libvirt(l)
        .effect("APICv/posted interrupts stay active: IPIs and EOIs no longer exit")
        .source(format!("KB R07; {THREAD}; Linux 5.15 (AutoEOI-only inhibit, DEPRECATING_AEOI); QEMU 6.2 hv-avic"))
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
            .libvirt(c.libvirt_add(&["hv-stimer-direct"]))
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
    if x2apic_without_x2avic(c) {
        q.push(format!(
            "this host's AVIC does not accelerate x2APIC (no x2AVIC: CPUs before Zen 4): give the guest an xAPIC with -cpu {},…,x2apic=off",
            c.cfg.cpu_model.as_deref().unwrap_or("<model>")
        ));
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
    .libvirt(c.libvirt_add(&flags))
    .effect("EOIs complete in hardware (APICv) or through the VP-assist page")
    .source("KB R12; TLFS VP assist page")
    .into()
}

/// R20: PIT reinjection inhibits AVIC.
fn r20(c: &Ctx) -> Option<Finding> {
    let (bit, set, clr, _) = inhibit_active(c, "PIT_REINJ")?;
    Finding::new(
        "R20",
        Severity::Warn,
        "in-kernel PIT in reinject mode inhibits AVIC",
    )
    .ev(format!(
        "APICv inhibit PIT_REINJ (bit {bit}) set {set}x, cleared {clr}x"
    ))
    .qemu("-global kvm-pit.lost_tick_policy=discard")
    .libvirt("<clock><timer name='pit' tickpolicy='discard'/></clock>")
    .effect("AVIC stays active")
    .source("KB R20; Linux arch/x86/kvm/i8254.c (kvm_pit_set_reinject)")
    .into()
}

/// R21: any other APICv inhibit in force, with per-reason advice.
fn r21(c: &Ctx) -> Vec<Finding> {
    let mut out = Vec::new();
    for bit in c.ev.inhibit_bits_set() {
        let name = c.inh.name(bit);
        if matches!(name.as_str(), "HYPERV" | "PIT_REINJ") {
            continue;
        }
        let Some((_, set, clr, now)) = inhibit_active(c, &name) else {
            continue;
        };
        let (sev, why, fix) = match name.as_str() {
            "DISABLED" => (Severity::Warn, "APICv disabled by module parameter", ""),
            "ABSENT" => (
                Severity::Warn,
                "no in-kernel local APIC",
                "use kernel_irqchip=on (default) instead of split/off where possible",
            ),
            "BLOCKIRQ" => (
                Severity::Info,
                "a debugger set KVM_GUESTDBG_BLOCKIRQ",
                "detach the debugger",
            ),
            "NESTED" => (
                Severity::Info,
                "a nested guest (L2) is running",
                "expected while L2 runs; see R19",
            ),
            "IRQWIN" => (
                Severity::Info,
                "transient: waiting for an ExtINT interrupt window",
                "none unless it stays set",
            ),
            "SEV" => (Severity::Info, "SEV guest", "none"),
            "PHYSICAL_ID_ALIASED"
            | "LOGICAL_ID_ALIASED"
            | "APIC_ID_MODIFIED"
            | "APIC_BASE_MODIFIED" => (
                Severity::Warn,
                "the guest changed or aliased APIC IDs / base",
                "use x2APIC in the guest; check the vCPU topology",
            ),
            "PHYSICAL_ID_TOO_BIG" => (
                Severity::Warn,
                "APIC ID above what AVIC supports",
                "fewer vCPUs or x2AVIC hardware",
            ),
            _ => (
                Severity::Info,
                "other inhibit reason",
                "see arch/x86/include/asm/kvm_host.h",
            ),
        };
        if name == "IRQWIN" && c.rate_of(now) < c.th.timer_rate {
            continue;
        }
        out.push(
            Finding::new("R21", sev, format!("APICv inhibited: {name} ({why})"))
                .ev(format!("inhibit {name} (bit {bit}) set {set}x since attach, cleared {clr}x, set {now}x in the span"))
                .qemu(fix)
                .host(match name.as_str() {
                    "DISABLED" => format!("load the module with {}", c.host.apicv_param()),
                    _ => String::new(),
                })
                .effect("APICv/AVIC active again")
                .source("KB R21; Linux asm/kvm_host.h APICV_INHIBIT_REASON_*"),
        );
    }
    out
}
