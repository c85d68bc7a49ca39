//! Timers and clocks (theme Timers): Windows on HPET, RTC, PM timer or PIT instead of hv-stimer, the
//! TSC page, and which clock a guest picked.

use profiler_common::ev;

use super::{QEMU_HV, THREAD};
use crate::advice::ctx::{x, Ctx};
use crate::advice::names;
use crate::advice::{Finding, Severity};

pub(super) fn all(c: &Ctx) -> Vec<Option<Finding>> {
    vec![r01(c), r02(c), r03(c), r04(c), r05(c), r23(c)]
}

/// The timer enlightenments Windows needs to leave HPET/RTC/PIT (R01, R02, R04): hv-stimer
/// needs hv-synic and hv-time, hv-synic needs hv-vpindex.
fn timer_fix(c: &Ctx, what: &str) -> (String, String) {
    if !c.visible() {
        return (
            "the hypervisor bit is hidden, so hv-* flags are inert: expose it (drop -hypervisor / \
             hypervisor=off) with hv-time,hv-vpindex,hv-synic,hv-stimer — see R18"
                .into(),
            "remove <feature policy='disable' name='hypervisor'/>; add the hypervclock timer and \
             <vpindex/>, <synic/>, <stimer/> under <hyperv>"
                .into(),
        );
    }
    let mut flags = c.missing_flags(&["hv-time", "hv-vpindex", "hv-synic", "hv-stimer"]);
    // SynIC without hv-avic on an APICv host lands in P2 (AutoEOI inhibits APICv): add it in
    // the same step where the guest honours DEPRECATING_AEOI (L02, L16).
    if flags.contains(&"hv-synic")
        && c.apicv_on()
        && !c.cfg.has("hv-avic")
        && !c.guest.is_nt6_legacy()
    {
        flags.push("hv-avic");
    }
    if flags.is_empty() {
        return (
            format!(
                "hv-time/hv-stimer are configured but Windows still uses the {what}: check the \
                 running -cpu really carries them (GUEST_OS_ID, 0x400000B0 writes) and that \
                 Windows sees a hypervisor; keep {what} until stimer is in use"
            ),
            String::new(),
        );
    }
    let mut q = c.cpu_add(&flags);
    q.push_str("; only once stimer is in use consider -machine hpet=off");
    (q, c.libvirt_add(&flags))
}

/// R01: HPET MMIO emulated in QEMU userspace dominates (EPT_MISCONFIG / npf MMIO).
fn r01(c: &Ctx) -> Option<Finding> {
    let mut mmio = c.reason(x::MMIO);
    let svm_npf = c.reason(&[(profiler_common::ISA_SVM, 0x400)]);
    if svm_npf.count > 0 && c.has(ev::NPF_MMIO) {
        // npf also counts ordinary nested page faults: keep the MMIO (reserved-bit) part.
        let n = c.ev.count(ev::NPF_MMIO, |_| true) as f64;
        let f = (n / svm_npf.count as f64).min(1.0);
        mmio.samples_pct -= svm_npf.samples_pct * (1.0 - f);
        mmio.time_pct -= svm_npf.time_pct * (1.0 - f);
    }
    let (clock, _) = c.ev.hpet(|o| (0xf0..0xf8).contains(&o));
    let (_, timer) = c.ev.hpet(|o| o >= 0x100);
    let (hr, hw) = c.ev.hpet(|_| true);
    let hpet = hr + hw;
    let dominant = c.dominant(&mmio);
    let confirmed = c.has(ev::MMIO_READ);
    if confirmed && (hpet == 0 || !(dominant || c.rate_of(hpet) >= c.th.timer_rate)) {
        return None;
    }
    if !confirmed && !dominant {
        return None;
    }
    let sev = if dominant && confirmed {
        Severity::Critical
    } else {
        Severity::Warn
    };
    let mut f = Finding::new("R01", sev, r01_title(c))
        .ev(c.line("MMIO exits (EPT_MISCONFIG / npf)", &mmio))
        .weight(mmio.share());
    if confirmed {
        f = f.ev(format!(
            "HPET MMIO {}: main-counter reads {} (HPET as clock), timer writes {} (HPET as clock-event)",
            c.rate_str(hpet),
            c.rate_str(clock),
            c.rate_str(timer)
        ));
        let mut top: Vec<_> = c.ev.top(ev::MMIO_READ, 3);
        top.extend(c.ev.top(ev::MMIO_WRITE, 3));
        top.sort_by_key(|r| std::cmp::Reverse(r.count));
        for r in top.iter().take(3) {
            let dir = if r.kind == ev::MMIO_READ {
                "read"
            } else {
                "write"
            };
            f = f.ev(format!(
                "  {dir} {} {}",
                names::gpa_label(r.a),
                c.rate_str(r.count)
            ));
        }
    }
    f = f.evidence_opt(c.unconfirmed(ev::MMIO_READ));
    if let Some(u) =
        c.vm.and_then(|v| v.userspace.iter().find(|r| r.reason == 6))
    {
        f = f.ev(format!("KVM_EXIT_MMIO to the VMM: {}", c.rate_str(u.count)));
    }
    let (q, l) = timer_fix(c, "HPET");
    f.qemu(q)
        .libvirt(l)
        .effect("Windows switches to the synthetic timer and reference TSC page, and the HPET exits go; idle Windows VMs were reported to fall from 30–40 % of a host core to 1–3 % (OpenNebula addon-storpool #79)")
        .source(format!("KB R01; {THREAD} (config 1); {QEMU_HV} hv-time, hv-stimer"))
        .into()
}

/// R01's title says what the configuration lacks only when it is known to lack it.
fn r01_title(c: &Ctx) -> String {
    const COST: &str = "HPET emulated in the VMM is a top exit cost";
    let missing = c.missing_flags(&["hv-time", "hv-stimer"]);
    if c.cfg.is_unknown() {
        format!("{COST}: Windows is not using hv-time/hv-stimer")
    } else if missing.is_empty() {
        format!("{COST} although the VM has hv-time and hv-stimer")
    } else {
        format!("{COST}: the VM lacks {}", missing.join(" and "))
    }
}

/// R02: RTC ports 0x70/0x71 in steady use (last-resort clock-event source).
fn r02(c: &Ctx) -> Option<Finding> {
    let rtc = c.ev.pio(|p| matches!(p, 0x70 | 0x71));
    if !c.has(ev::PIO_IN) {
        return r02_unconfirmed(c);
    }
    if !c.steady(rtc) {
        return None;
    }
    let io = c.reason(x::IO);
    let sev = if c.dominant(&io) {
        Severity::Critical
    } else {
        Severity::Warn
    };
    let (mut q, l) = timer_fix(c, "RTC");
    if c.cfg.hpet == Some(false) {
        q.push_str("; HPET is disabled (L12): re-enable it unless stimer works");
    } else {
        q.push_str("; do not disable HPET unless stimer works");
    }
    Finding::new(
        "R02",
        sev,
        "RTC (ports 0x70/0x71) is the guest's clock-event source",
    )
    .ev(format!("RTC port I/O: {}", c.rate_str(rtc)))
    .ev(c.line("IO_INSTRUCTION", &io))
    .weight(io.share())
    .qemu(q)
    .libvirt(l)
    .effect("RTC port I/O exits disappear once Windows uses the synthetic timer")
    .source(format!("KB R02; {THREAD}; {QEMU_HV}"))
    .into()
}

/// R02 without port evidence (a pasted table): port I/O dominating a Windows guest's exits is
/// RTC or ACPI PM timer polling far more often than anything else (the 2021 thread; the idle
/// Windows 10 VM at 130 % of a core), so it is named, unconfirmed, with the way to confirm it.
fn r02_unconfirmed(c: &Ctx) -> Option<Finding> {
    let io = c.reason(x::IO);
    if !c.dominant(&io) || !c.guest.is_windows() {
        return None;
    }
    let (mut q, l) = timer_fix(c, "RTC / PM timer");
    if c.cfg.hpet == Some(false) {
        q.push_str("; HPET is disabled (L12): re-enable it unless stimer works");
    }
    Finding::new(
        "R02",
        Severity::Warn,
        "port I/O dominates: Windows is likely polling the RTC or ACPI PM timer (no hv-stimer)",
    )
    .ev(c.line("IO_INSTRUCTION", &io))
    .evidence_opt(c.unconfirmed(ev::PIO_IN))
    .weight(io.share())
    .qemu(q)
    .libvirt(l)
    .effect("timer port I/O exits disappear once Windows uses the synthetic timer")
    .source(format!("KB R02, R03; {THREAD}; {QEMU_HV}"))
    .into()
}

/// R03: ACPI PM timer reads (0x608 q35/pc, 0xB008 PIIX4/OVMF) = PM timer as clock source.
fn r03(c: &Ctx) -> Option<Finding> {
    let pm = c.ev.count(ev::PIO_IN, |r| names::is_pm_timer_port(r.a));
    if !c.has(ev::PIO_IN) || !c.steady(pm) {
        return None;
    }
    let io = c.reason(x::IO);
    let f = Finding::new(
        "R03",
        Severity::Warn,
        "ACPI PM timer is the guest's clock source",
    )
    .ev(format!(
        "PM timer reads (ports 0x608/0xB008): {}",
        c.rate_str(pm)
    ))
    .ev(c.line("IO_INSTRUCTION", &io))
    .weight(io.share())
    .source(format!("KB R03; {QEMU_HV} hv-time"));
    if c.cfg.has("hv-time") && c.visible() {
        f.qemu("hv-time is on, yet the guest reads the PM timer: the reference TSC page is probably invalid — see R05 (host clocksource tsc, hv-frequencies, invtsc)")
            .effect("clock reads served from the TSC page without exits")
    } else {
        let flags = c.missing_flags(&["hv-time"]);
        f.qemu(c.cpu_add(&flags))
            .libvirt(c.libvirt_add(&flags))
            .effect("clock reads served from the reference TSC page without exits")
    }
    .into()
}

/// R04: legacy PIT (0x40–0x43, 0x61) in sustained use.
fn r04(c: &Ctx) -> Option<Finding> {
    let pit = c.ev.pio(|p| matches!(p, 0x40..=0x43 | 0x61));
    if !c.has(ev::PIO_IN) || !c.steady(pit) {
        return None;
    }
    let io = c.reason(x::IO);
    let (mut q, l) = timer_fix(c, "PIT");
    if c.is_amd() {
        q.push_str("; on AVIC hosts also check R20 (-global kvm-pit.lost_tick_policy=discard)");
    }
    Finding::new("R04", Severity::Warn, "legacy PIT in sustained use")
        .ev(format!(
            "PIT port I/O (0x40-0x43, 0x61): {}",
            c.rate_str(pit)
        ))
        .ev(c.line("IO_INSTRUCTION", &io))
        .weight(io.share())
        .qemu(q)
        .libvirt(l)
        .effect("PIT port I/O exits disappear once Windows uses the synthetic timer")
        .source(format!("KB R04; {QEMU_HV}"))
        .into()
}

/// R05: TIME_REF_COUNT (0x40000020) read often with hv-time on: the TSC page is invalid.
fn r05(c: &Ctx) -> Option<Finding> {
    let n = c.ev.msr(ev::MSR_READ, 0x4000_0020, 0x4000_0020);
    if !c.cfg.has("hv-time") || c.per_vcpu(c.rate_of(n)) < c.th.timer_rate {
        return None;
    }
    let rd = c.reason(x::MSR_READ);
    let mut q = Vec::new();
    if c.host.clocksource.as_deref().is_some_and(|s| s != "tsc") {
        q.push("host: switch the clocksource to tsc (current_clocksource)".to_string());
    } else {
        q.push("host: make sure the clocksource is a stable tsc (KVM needs a master clock)".into());
    }
    let flags = c.missing_flags(&["hv-frequencies"]);
    if !flags.is_empty() {
        q.push(c.cpu_add(&flags));
    }
    if c.cfg.invtsc != Some(true) {
        q.push("invtsc may help (-cpu …,+invtsc; blocks migration)".into());
    }
    let mut f = Finding::new(
        "R05",
        Severity::Warn,
        "reference TSC page invalid: clock reads fall back to the TIME_REF_COUNT MSR",
    )
    .ev(format!(
        "MSR 0x40000020 HV_TIME_REF_COUNT reads: {} ({:.0}/s per vCPU)",
        c.rate_str(n),
        c.per_vcpu(c.rate_of(n))
    ))
    .ev(c.line("MSR_READ", &rd))
    .weight(rd.share());
    if let Some(cs) = &c.host.clocksource {
        f = f.ev(format!("host clocksource: {cs}"));
    }
    f.qemu(q.join("; "))
        .libvirt(
            format!(
                "{} <cpu><feature policy='require' name='invtsc'/></cpu>",
                c.libvirt_add(&flags)
            )
            .trim_start()
            .to_string(),
        )
        .effect("clock reads served from the TSC page without exits")
        .source(format!("KB R05; {QEMU_HV} hv-time, hv-frequencies"))
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
