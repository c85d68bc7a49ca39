//! Sub-reason evidence per VM: deltas and rates of each (kind, flags, subject) counter between
//! two cumulative samples, with names (names.rs), plus the derived facts the rules share
//! (which timer the guest uses — R23).

use std::collections::{BTreeMap, BTreeSet};

use profiler_common::ev;
use serde::Serialize;

use super::names::{self, GpaRegion, InhibitNames};
use crate::sample::Sample;

/// One evidence counter over the span.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EvRow {
    pub kind: u16,
    pub flags: u16,
    pub a: u64,
    /// Events in the span.
    pub count: u64,
    /// Summed quantity in the span (kind-specific, e.g. wake-up ns).
    pub sum: u64,
    /// Last value seen (cumulative: may predate the span, e.g. GUEST_OS_ID written at boot).
    pub last: u64,
    /// Events since the programs attached.
    pub total: u64,
    pub rate_per_s: f64,
}

/// All evidence of one VM process.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct VmEvidence {
    pub pid: u32,
    pub secs: f64,
    pub rows: Vec<EvRow>,
}

/// Evidence per VM over `newer − older` (monotonic span between them).
pub fn per_vm(older: &Sample, newer: &Sample) -> BTreeMap<u32, VmEvidence> {
    per_vm_elapsed(older, newer, crate::model::span_ns(older, newer))
}

/// Like [`per_vm`] with an explicit span in nanoseconds.
pub fn per_vm_elapsed(
    older: &Sample,
    newer: &Sample,
    elapsed_ns: u64,
) -> BTreeMap<u32, VmEvidence> {
    let secs = elapsed_ns as f64 / 1e9;
    let mut out: BTreeMap<u32, VmEvidence> = BTreeMap::new();
    for (k, d) in crate::model::evidence_deltas(older, newer) {
        let vm = out.entry(k.tgid).or_insert_with(|| VmEvidence {
            pid: k.tgid,
            secs,
            rows: Vec::new(),
        });
        vm.rows.push(EvRow {
            kind: k.kind,
            flags: k.flags,
            a: k.a,
            count: d.count,
            sum: d.sum,
            last: d.last,
            total: d.total,
            rate_per_s: if secs > 0.0 {
                d.count as f64 / secs
            } else {
                0.0
            },
        });
    }
    out
}

/// Evidence kinds' names (profiler_common::ev).
pub fn kind_name(kind: u16) -> &'static str {
    match kind {
        ev::MSR_READ => "msr_read",
        ev::MSR_WRITE => "msr_write",
        ev::PIO_IN => "pio_in",
        ev::PIO_OUT => "pio_out",
        ev::MMIO_READ => "mmio_read",
        ev::MMIO_WRITE => "mmio_write",
        ev::HV_HYPERCALL => "hv_hypercall",
        ev::APICV_INHIBIT => "apicv_inhibit",
        ev::SYNIC_MSR => "synic_msr",
        ev::STIMER_EXPIRE => "stimer_expire",
        ev::STIMER_CONFIG => "stimer_config",
        ev::EOI => "eoi",
        ev::PV_EOI => "pv_eoi",
        ev::IPI => "ipi",
        ev::WAKEUP => "wakeup",
        ev::HALT_POLL => "halt_poll",
        ev::EXIT_DETAIL => "exit_detail",
        ev::NPF_MMIO => "npf_mmio",
        _ => "evidence?",
    }
}

/// The tracepoint each kind comes from, to map `Probe::missing` ("kvm:kvm_msr") to kinds.
pub fn kind_event(kind: u16) -> &'static str {
    match kind {
        ev::MSR_READ | ev::MSR_WRITE => "kvm_msr",
        ev::PIO_IN | ev::PIO_OUT => "kvm_pio",
        ev::MMIO_READ | ev::MMIO_WRITE => "kvm_mmio",
        ev::HV_HYPERCALL => "kvm_hv_hypercall",
        ev::APICV_INHIBIT => "kvm_apicv_inhibit_changed",
        ev::SYNIC_MSR => "kvm_hv_synic_set_msr",
        ev::STIMER_EXPIRE => "kvm_hv_stimer_expiration",
        ev::STIMER_CONFIG => "kvm_hv_stimer_set_config",
        ev::EOI => "kvm_eoi",
        ev::PV_EOI => "kvm_pv_eoi",
        ev::IPI => "kvm_apic_ipi",
        ev::WAKEUP => "kvm_vcpu_wakeup",
        ev::HALT_POLL => "kvm_halt_poll_ns",
        _ => "kvm_exit",
    }
}

/// What the advice cannot see without a kind's tracepoint (and which rules that weakens).
pub fn kind_lost(kind: u16) -> &'static str {
    match kind {
        ev::MSR_READ | ev::MSR_WRITE => "MSR indexes: R05, R06, R11, R23, P2, P3, P5 and guest-OS detection",
        ev::PIO_IN | ev::PIO_OUT => "port numbers: R02, R03, R04, R22",
        ev::MMIO_READ | ev::MMIO_WRITE => "MMIO addresses: R01 cannot confirm HPET",
        ev::HV_HYPERCALL => "hypercall codes: R13, R16, R17, R18",
        ev::APICV_INHIBIT => "APICv inhibit reasons: R07, R20, R21 (old kernels trace kvm_apicv_update_request instead)",
        ev::SYNIC_MSR => "SynIC AutoEOI writes: R07",
        ev::STIMER_EXPIRE | ev::STIMER_CONFIG => "stimer direct mode: R11",
        ev::EOI | ev::PV_EOI => "EOI rates: R12",
        ev::IPI => "IPI rates: R08, R16",
        ev::WAKEUP | ev::HALT_POLL => "wake-ups and halt polling: R15",
        _ => "exit details",
    }
}

/// Every evidence kind.
pub const ALL_KINDS: [u16; 18] = [
    ev::MSR_READ,
    ev::MSR_WRITE,
    ev::PIO_IN,
    ev::PIO_OUT,
    ev::MMIO_READ,
    ev::MMIO_WRITE,
    ev::HV_HYPERCALL,
    ev::APICV_INHIBIT,
    ev::SYNIC_MSR,
    ev::STIMER_EXPIRE,
    ev::STIMER_CONFIG,
    ev::EOI,
    ev::PV_EOI,
    ev::IPI,
    ev::WAKEUP,
    ev::HALT_POLL,
    ev::EXIT_DETAIL,
    ev::NPF_MMIO,
];

/// Human label of one row's subject: "0x40000070 HV_EOI", "port 0x70 RTC index",
/// "HPET+0xf0 MAIN_COUNTER", "hypercall 0x8 HvNotifyLongSpinWait", "inhibit HYPERV set".
pub fn label(r: &EvRow, inhibits: &InhibitNames) -> String {
    let named = |hex: String, n: Option<String>| match n {
        Some(n) => format!("{hex} {n}"),
        None => hex,
    };
    match r.kind {
        ev::MSR_READ | ev::MSR_WRITE => named(format!("MSR {:#x}", r.a), names::msr_name(r.a)),
        ev::PIO_IN | ev::PIO_OUT => named(
            format!("port {:#x}", r.a),
            names::port_name(r.a).map(String::from),
        ),
        ev::MMIO_READ | ev::MMIO_WRITE | ev::NPF_MMIO => names::gpa_label(r.a),
        ev::HV_HYPERCALL => named(
            format!("hypercall {:#x}", r.a),
            names::hypercall_name(r.a).map(String::from),
        ),
        ev::APICV_INHIBIT => format!(
            "inhibit {} {}",
            inhibits.name(r.a),
            if r.flags != 0 { "set" } else { "cleared" }
        ),
        ev::SYNIC_MSR => named(format!("SynIC MSR {:#x}", r.a), names::msr_name(r.a)),
        ev::STIMER_EXPIRE | ev::STIMER_CONFIG => {
            format!("stimer{} direct {}", r.a, u8::from(r.flags & 1 != 0))
        }
        ev::EOI | ev::PV_EOI | ev::IPI => format!("vector {:#x}", r.a),
        ev::EXIT_DETAIL => match r.flags {
            1 => named(
                format!("EXTERNAL_INTERRUPT vector {:#x}", r.a),
                names::vector_name(r.a).map(String::from),
            ),
            45 => format!("EOI_INDUCED vector {:#x}", r.a),
            56 => named(
                format!("APIC_WRITE offset {:#x}", r.a),
                names::apic_reg_name(r.a),
            ),
            f => format!("exit {f} detail {:#x}", r.a),
        },
        _ => format!("{:#x}", r.a),
    }
}

impl VmEvidence {
    pub fn rows_of(&self, kind: u16) -> impl Iterator<Item = &EvRow> {
        self.rows.iter().filter(move |r| r.kind == kind)
    }

    /// Events of `kind` in the span whose row matches `f`.
    pub fn count(&self, kind: u16, f: impl Fn(&EvRow) -> bool) -> u64 {
        self.rows_of(kind).filter(|r| f(r)).map(|r| r.count).sum()
    }

    /// Same as [`VmEvidence::count`], per second (0 when the span is unknown).
    pub fn rate(&self, kind: u16, f: impl Fn(&EvRow) -> bool) -> f64 {
        let n = self.count(kind, f);
        if self.secs > 0.0 {
            n as f64 / self.secs
        } else {
            0.0
        }
    }

    /// Events since attach (for facts that are set once, e.g. SINT AutoEOI at boot).
    pub fn total(&self, kind: u16, f: impl Fn(&EvRow) -> bool) -> u64 {
        self.rows_of(kind).filter(|r| f(r)).map(|r| r.total).sum()
    }

    /// Rows of `kind` with events in the span, busiest first.
    pub fn top(&self, kind: u16, n: usize) -> Vec<&EvRow> {
        let mut v: Vec<&EvRow> = self.rows_of(kind).filter(|r| r.count > 0).collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then(a.a.cmp(&b.a)));
        v.truncate(n);
        v
    }

    /// Count in the span of MSR accesses (`kind` MSR_READ/WRITE) with index in `lo..=hi`.
    pub fn msr(&self, kind: u16, lo: u64, hi: u64) -> u64 {
        self.count(kind, |r| (lo..=hi).contains(&r.a))
    }

    /// Any Hyper-V MSR (0x4000xxxx) access or hypercall since attach: the guest is using
    /// enlightenments (KB "Identifying a VM").
    pub fn hyperv_traffic(&self) -> bool {
        let hv = |r: &EvRow| (0x4000_0000..=0x4000_ffff).contains(&r.a);
        self.total(ev::MSR_READ, hv) + self.total(ev::MSR_WRITE, hv) > 0
            || self.total(ev::HV_HYPERCALL, |_| true) > 0
            || self.total(ev::SYNIC_MSR, |_| true) > 0
    }

    /// KVM PV MSRs (0x4b564d00–08, kvmclock 0x11/0x12) seen since attach ⇒ Linux guest.
    pub fn kvm_pv_traffic(&self) -> bool {
        let pv =
            |r: &EvRow| (0x4b56_4d00..=0x4b56_4d08).contains(&r.a) || matches!(r.a, 0x11 | 0x12);
        self.total(ev::MSR_READ, pv) + self.total(ev::MSR_WRITE, pv) > 0
    }

    /// GUEST_OS_ID value (the `last` of the MSR_WRITE 0x40000000 key), when ever written.
    pub fn guest_os_id(&self) -> Option<u64> {
        self.rows_of(ev::MSR_WRITE)
            .find(|r| r.a == 0x4000_0000 && r.total > 0 && r.last != 0)
            .map(|r| r.last)
    }

    /// MMIO accesses (read, write) in the span in HPET space matching `f(offset)`.
    pub fn hpet(&self, f: impl Fn(u64) -> bool) -> (u64, u64) {
        let m = |r: &EvRow| matches!(names::gpa_region(r.a), GpaRegion::Hpet(o) if f(o));
        (self.count(ev::MMIO_READ, m), self.count(ev::MMIO_WRITE, m))
    }

    /// Port I/O events (in + out) in the span on ports matching `f`.
    pub fn pio(&self, f: impl Fn(u64) -> bool) -> u64 {
        self.count(ev::PIO_IN, |r| f(r.a)) + self.count(ev::PIO_OUT, |r| f(r.a))
    }

    /// VMX exit detail rows (EXIT_DETAIL with flags = basic exit reason) in the span.
    pub fn detail(&self, reason: u16, f: impl Fn(u64) -> bool) -> u64 {
        self.count(ev::EXIT_DETAIL, |r| r.flags == reason && f(r.a))
    }

    /// SINT vectors the guest programmed (MSR_WRITE SINTx or SYNIC_MSR, bits 7:0), unmasked.
    pub fn sint_vectors(&self) -> BTreeSet<u64> {
        let sint = |r: &&EvRow| (0x4000_0090..=0x4000_009f).contains(&r.a) && r.total > 0;
        let from_msr = self
            .rows_of(ev::MSR_WRITE)
            .filter(sint)
            .filter(|r| r.flags & 1 == 0 && r.last >> 16 & 1 == 0);
        let from_synic = self
            .rows_of(ev::SYNIC_MSR)
            .filter(sint)
            .filter(|r| r.flags & 4 == 0 && r.last >> 16 & 1 == 0);
        from_msr
            .chain(from_synic)
            .map(|r| r.last & 0xff)
            .filter(|v| *v >= 0x10)
            .collect()
    }

    /// SINT writes with AutoEOI set and not masked since attach (R07): MSR_WRITE flags
    /// MSRF_SINT | AutoEOI<<1 | masked, or SYNIC_MSR flags host | AutoEOI<<1 | masked<<2.
    pub fn autoeoi_sints(&self) -> Vec<&EvRow> {
        let msr = self.rows_of(ev::MSR_WRITE).filter(|r| {
            r.flags & ev::MSRF_SINT != 0 && r.flags & 2 != 0 && r.flags & 1 == 0 && r.total > 0
        });
        let synic = self.rows_of(ev::SYNIC_MSR).filter(|r| {
            (0x4000_0090..=0x4000_009f).contains(&r.a)
                && r.flags & 2 != 0
                && r.flags & 4 == 0
                && r.total > 0
        });
        msr.chain(synic).collect()
    }

    /// Inhibit `bit`: (times set since attach, times cleared, set in the span).
    pub fn inhibit(&self, bit: u64) -> (u64, u64, u64) {
        let set = self.total(ev::APICV_INHIBIT, |r| r.a == bit && r.flags != 0);
        let clr = self.total(ev::APICV_INHIBIT, |r| r.a == bit && r.flags == 0);
        let now = self.count(ev::APICV_INHIBIT, |r| r.a == bit && r.flags != 0);
        (set, clr, now)
    }

    /// Inhibit bits seen set since attach.
    pub fn inhibit_bits_set(&self) -> BTreeSet<u64> {
        self.rows_of(ev::APICV_INHIBIT)
            .filter(|r| r.flags != 0 && r.total > 0)
            .map(|r| r.a)
            .collect()
    }

    /// Which timers the guest drives, per second over the span (R23).
    pub fn timers(&self) -> TimerUse {
        let per_s = |n: u64| {
            if self.secs > 0.0 {
                n as f64 / self.secs
            } else {
                0.0
            }
        };
        let stimer = self.msr(ev::MSR_WRITE, 0x4000_00b0, 0x4000_00b7)
            + self.count(ev::STIMER_CONFIG, |_| true);
        let oneshot = self.msr(ev::MSR_WRITE, 0x838, 0x838)
            + self.detail(56, |o| o == 0x380)
            + self.count(ev::MMIO_WRITE, |r| r.a == names::LAPIC_BASE + 0x380);
        let hpet_timer = self.hpet(|o| o >= 0x100).1;
        let hpet_clock = self.hpet(|o| (0xf0..0xf8).contains(&o)).0;
        TimerUse {
            stimer_per_s: per_s(stimer),
            stimer_expirations_per_s: per_s(self.count(ev::STIMER_EXPIRE, |_| true)),
            tsc_deadline_per_s: per_s(self.msr(ev::MSR_WRITE, 0x6e0, 0x6e0)),
            lapic_oneshot_per_s: per_s(oneshot),
            hpet_timer_per_s: per_s(hpet_timer),
            hpet_clock_per_s: per_s(hpet_clock),
            rtc_per_s: per_s(self.pio(|p| matches!(p, 0x70 | 0x71))),
            pit_per_s: per_s(self.pio(|p| matches!(p, 0x40..=0x43 | 0x61))),
            pm_timer_per_s: per_s(self.count(ev::PIO_IN, |r| names::is_pm_timer_port(r.a))),
        }
    }
}

/// Accesses per second to each timer / clock device (R23 labelling).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct TimerUse {
    /// Writes to STIMERn_CONFIG/COUNT (0x400000B0–B7).
    pub stimer_per_s: f64,
    pub stimer_expirations_per_s: f64,
    /// IA32_TSC_DEADLINE (0x6E0) writes.
    pub tsc_deadline_per_s: f64,
    /// LAPIC TMICT writes (x2APIC 0x838, xAPIC offset 0x380).
    pub lapic_oneshot_per_s: f64,
    /// HPET comparator/config writes (0x100 + 0x20n).
    pub hpet_timer_per_s: f64,
    /// HPET main counter (0xF0) reads.
    pub hpet_clock_per_s: f64,
    pub rtc_per_s: f64,
    pub pit_per_s: f64,
    pub pm_timer_per_s: f64,
}

impl TimerUse {
    /// (label, rate) of the clock-event device used most, if any.
    pub fn dominant_timer(&self) -> Option<(&'static str, f64)> {
        [
            (
                "Hyper-V synthetic timer (stimer)",
                self.stimer_per_s.max(self.stimer_expirations_per_s),
            ),
            ("LAPIC TSC-deadline timer", self.tsc_deadline_per_s),
            ("LAPIC one-shot timer", self.lapic_oneshot_per_s),
            ("HPET timer", self.hpet_timer_per_s),
            ("RTC", self.rtc_per_s),
            ("PIT", self.pit_per_s),
        ]
        .into_iter()
        .filter(|(_, r)| *r > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    pub fn lapic_per_s(&self) -> f64 {
        self.tsc_deadline_per_s + self.lapic_oneshot_per_s
    }
}
