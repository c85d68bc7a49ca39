//! Spinning, pausing and halting vCPUs (theme Scheduling): spinlock notifications, pause-loop
//! exits, halt polling.

use profiler_common::ev;

use crate::advice::ctx::{x, Ctx};
use crate::advice::{Finding, Severity};

pub(super) fn all(c: &Ctx) -> Vec<Option<Finding>> {
    vec![r13(c), r14(c), r15(c)]
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
    let (q, want) = if c.dedicated() {
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
        if c.dedicated() {
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
fn r15_from_shares(c: &Ctx, hlt: &crate::advice::ctx::Rs) -> Option<Finding> {
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
