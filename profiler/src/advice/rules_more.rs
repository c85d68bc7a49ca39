//! Runtime rules R13–R23 (KB "Runtime rules"): spinlocks, PLE, halt polling, TLB-flush/IPI
//! hypercalls, hidden hypervisor, nesting, other APICv inhibits, non-Hyper-V exits, timer
//! labelling.

use profiler_common::ev;

use super::ctx::{libvirt_snippet, x, Ctx};
use super::names;
use super::rules::inhibit_active;
use super::{Finding, Severity};

pub(crate) fn all(c: &Ctx) -> Vec<Option<Finding>> {
    let mut v = vec![
        r13(c),
        r14(c),
        r15(c),
        r16(c),
        r17(c),
        r18(c),
        r19(c),
        r20(c),
    ];
    v.extend(r21(c).into_iter().map(Some));
    v.push(r22(c));
    v.push(r23(c));
    v
}

fn dedicated(c: &Ctx) -> bool {
    c.cfg.cpu_pm || c.cfg.pinned == Some(true)
}

/// R13: HvNotifyLongSpinWait (0x0008) hypercalls high: waiters exceed hv-spinlocks retries.
fn r13(c: &Ctx) -> Option<Finding> {
    let vmcall = c.reason(x::VMCALL);
    let spin = c.ev.count(ev::HV_HYPERCALL, |r| r.a == 0x8);
    let confirmed = c.has(ev::HV_HYPERCALL);
    let per_vcpu = c.per_vcpu(c.rate_of(spin));
    if confirmed && (spin == 0 || (per_vcpu < c.th.spin_rate_per_vcpu && !c.dominant(&vmcall))) {
        return None;
    }
    let by_config = c.dominant(&vmcall) && c.cfg.has("hv-spinlocks");
    if !confirmed && !by_config {
        return None;
    }
    let cur = c
        .cfg
        .spinlocks
        .map_or("not set".into(), |v| format!("{v:#x}"));
    let (q, want) = if dedicated(c) {
        (
            "dedicated pinned vCPUs: hv-spinlocks=0xffffffff (never notify)",
            "0xffffffff",
        )
    } else {
        ("overcommitted host: hv-spinlocks=0xfff (notify early, let the host schedule the holder)", "4095")
    };
    Finding::new(
        "R13",
        Severity::Warn,
        "spinlock waiters exceed hv-spinlocks retries (HvNotifyLongSpinWait)",
    )
    .ev(c.line("VMCALL", &vmcall))
    .ev(format!(
        "hypercall 0x8 HvNotifyLongSpinWait: {} ({per_vcpu:.0}/s per vCPU); hv-spinlocks {cur}",
        c.rate_str(spin)
    ))
    .evidence_opt(c.unconfirmed(ev::HV_HYPERCALL))
    .weight(vmcall.share())
    .qemu(format!(
        "{q}; the other case: {}",
        if dedicated(c) {
            "overcommitted: 0xfff"
        } else {
            "dedicated pinned vCPUs: 0xffffffff"
        }
    ))
    .libvirt(format!(
        "<hyperv><spinlocks state='on' retries='{want}'/></hyperv> (libvirt needs ≥ 4095)"
    ))
    .effect(
        "fewer spin-wait hypercalls (dedicated) or faster lock-holder scheduling (overcommitted)",
    )
    .source("KB R13; TLFS HvNotifyLongSpinWait; QEMU docs hv-spinlocks")
    .into()
}

/// R14: pause-loop exits high.
fn r14(c: &Ctx) -> Option<Finding> {
    let p = c.reason(x::PAUSE);
    if !(c.dominant(&p) || c.high(p.rate)) {
        return None;
    }
    let host = if c.is_amd() {
        "kvm_amd pause_filter_count=0"
    } else {
        "kvm_intel ple_gap=0"
    };
    let q = if c.cfg.cpu_pm {
        format!("dedicated 1:1 pCPUs: {host}; overcommitted: keep PLE")
    } else {
        format!("dedicated 1:1 pCPUs: -overcommit cpu-pm=on or {host}; overcommitted: keep PLE (it lets the lock holder run)")
    };
    Finding::new(
        "R14",
        Severity::Warn,
        "pause-loop exiting is catching guest spin loops",
    )
    .ev(c.line("PAUSE_INSTRUCTION", &p))
    .weight(p.share())
    .qemu(q)
    .libvirt("1:1 <cputune><vcpupin/></cputune> plus the host module parameter")
    .effect("no PAUSE exits on dedicated pCPUs")
    .source("KB R14; kvm_intel ple_gap / kvm_amd pause_filter_count; QEMU -overcommit cpu-pm")
    .into()
}

/// R15: frequent HLT with short waits and oscillating halt polling.
fn r15(c: &Ctx) -> Option<Finding> {
    let hlt = c.reason(x::HLT);
    if c.secs <= 0.0 {
        return r15_from_shares(c, &hlt);
    }
    if !c.high(hlt.rate) {
        return None;
    }
    let wakes = c.ev.count(ev::WAKEUP, |r| r.flags & 1 != 0);
    let wake_ns =
        c.ev.rows_of(ev::WAKEUP)
            .filter(|r| r.flags & 1 != 0)
            .map(|r| r.sum)
            .sum::<u64>();
    let grow = c.ev.count(ev::HALT_POLL, |r| r.flags != 0);
    let shrink = c.ev.count(ev::HALT_POLL, |r| r.flags == 0);
    let poll = c.host.halt_poll_ns.unwrap_or(200_000);
    let mean = wake_ns.checked_div(wakes).unwrap_or(0);
    let short = wakes > 0 && mean < poll.max(1).saturating_mul(2);
    if !(short || (grow > 0 && shrink > 0)) {
        return None;
    }
    let mut f = Finding::new(
        "R15",
        Severity::Info,
        "frequent short halts: wake-up latency vs halt-polling trade-off",
    )
    .ev(format!("HLT: {:.0}/s per vCPU", c.per_vcpu(hlt.rate)))
    .ev(format!(
        "halt_poll_ns {poll} (host); polling grew {grow}x, shrank {shrink}x in the span"
    ));
    if wakes > 0 {
        f = f.ev(format!(
            "waited wake-ups: {}, mean {:.1} µs",
            c.rate_str(wakes),
            mean as f64 / 1000.0
        ));
    }
    f.qemu(if c.cfg.cpu_pm {
        "latency-sensitive + dedicated: raise /sys/module/kvm/parameters/halt_poll_ns; overcommitted: lower it"
    } else {
        "latency-sensitive + dedicated: raise halt_poll_ns or -overcommit cpu-pm=on; overcommitted: lower halt_poll_ns"
    })
    .effect("shorter wake-up latency (dedicated) or less wasted host CPU (overcommitted)")
    .source("KB R15; Linux Documentation/virt/kvm/halt-polling.rst")
    .into()
}

/// R15 on a profile without a span (a pasted table): most exits are HLTs, in volume, and the
/// mean halt is short, so the vCPUs sleep and wake very often (the Firecracker microVM at
/// 99.7 % HLT, 29 µs per halt; Andrea Arcangeli's 100k HLT/s guest).
fn r15_from_shares(c: &Ctx, hlt: &super::ctx::Rs) -> Option<Finding> {
    /// Mean halt below which sleeps count as short (5× the default halt_poll_ns).
    const SHORT_NS: f64 = 1_000_000.0;
    let rows = c.vm.map_or(&[][..], |v| &v.reasons[..]);
    let (n, ns) = rows
        .iter()
        .filter(|r| r.hlt)
        .fold((0u64, 0u64), |(n, t), r| (n + r.count, t + r.total_ns));
    let mean = ns as f64 / n.max(1) as f64;
    // Halts are a majority of all exits, and ten times the volume shares need.
    if hlt.samples_pct < c.th.majority_pct
        || n < c.th.min_exits.saturating_mul(10)
        || mean >= SHORT_NS
    {
        return None;
    }
    Finding::new(
        "R15",
        Severity::Info,
        "halt storm: most exits are short HLTs (wake-up latency vs halt polling)",
    )
    .ev(format!(
        "HLT: {n} exits, {:.1} % of all exits, mean {:.1} µs in the halt",
        hlt.samples_pct,
        mean / 1000.0
    ))
    .evidence_opt(c.unconfirmed(ev::WAKEUP))
    .weight(hlt.samples_pct)
    .qemu("latency-sensitive + dedicated: raise halt_poll_ns or -overcommit cpu-pm=on (or a guest cpuidle-haltpoll driver); overcommitted: lower halt_poll_ns")
    .effect("fewer halt exits and shorter wake-ups (dedicated) or less wasted host CPU (overcommitted)")
    .source("KB R15; Linux Documentation/virt/kvm/halt-polling.rst")
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
    .libvirt(libvirt_snippet(&flags))
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
        libvirt_snippet(&flags)
    ))
    .effect("no nested exits (hidden) or cheaper L2 entries, flushes and timers (enlightened)")
    .source("KB R19; QEMU 4.1 stimer-direct, 7.1 tlbflush-direct, emsr-bitmap; libvirt 10.7/11.0")
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
            "DISABLED" => (
                Severity::Warn,
                "APICv disabled by module parameter",
                "kvm_intel enable_apicv=Y / kvm_amd avic=1",
            ),
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
                .effect("APICv/AVIC active again")
                .source("KB R21; Linux asm/kvm_host.h APICV_INHIBIT_REASON_*"),
        );
    }
    out
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

/// R23: which timer the guest picked (feeds R01, R02, R11, R18).
fn r23(c: &Ctx) -> Option<Finding> {
    let t = c.ev.timers();
    let (name, rate) = t.dominant_timer()?;
    let mut f = Finding::new(
        "R23",
        Severity::Info,
        format!("guest clock-event timer: {name}"),
    )
    .ev(format!("{name}: {rate:.0}/s"));
    for (n, r) in [
        ("stimer MSR writes 0x400000B0-B7", t.stimer_per_s),
        ("stimer expirations", t.stimer_expirations_per_s),
        ("TSC_DEADLINE 0x6E0 writes", t.tsc_deadline_per_s),
        ("LAPIC TMICT (0x838 / offset 0x380)", t.lapic_oneshot_per_s),
        ("HPET timer writes", t.hpet_timer_per_s),
        ("HPET main-counter reads", t.hpet_clock_per_s),
        ("RTC ports", t.rtc_per_s),
        ("PIT ports", t.pit_per_s),
        ("ACPI PM timer reads", t.pm_timer_per_s),
    ] {
        if r > 0.0 {
            f = f.ev(format!("  {n}: {r:.0}/s"));
        }
    }
    f.source("KB R23 (Windows: stimer > HPET > RTC with the hypervisor bit visible; LAPIC > HPET > RTC hidden)")
        .into()
}
