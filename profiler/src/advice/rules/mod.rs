//! The rules and configuration checks, one file a theme (catalog.rs names each rule and its theme; docs/advice.md
//! explains each with its sources). Each rule is a pure function of the context.

mod apic;
mod configuration;
mod interrupts;
mod other;
mod scheduling;
mod timers;

use super::ctx::Ctx;
use super::Finding;

/// Every rule's and configuration check's finding (None where it does not apply), theme by theme.
pub(crate) fn all(c: &Ctx) -> Vec<Option<Finding>> {
    let mut v = timers::all(c);
    v.extend(apic::all(c));
    v.extend(interrupts::all(c));
    v.extend(scheduling::all(c));
    v.extend(other::all(c));
    v.extend(configuration::all(c));
    v
}

pub(crate) const THREAD: &str =
    "2021 kvm/qemu-devel thread \"About the performance of hyper-v\" (Liang Li, Vitaly Kuznetsov)";

const QEMU_HV: &str = "QEMU docs/system/i386/hyperv.rst";

/// Inhibit `name` currently in force: set in the span, or set and never cleared since attach.
/// Returns (bit, times set, times cleared, set in span).
pub(crate) fn inhibit_active(c: &Ctx, name: &str) -> Option<(u64, u64, u64, u64)> {
    let bit = c.inh.bit(name)?;
    let (set, clr, now) = c.ev.inhibit(bit);
    (now > 0 || (set > 0 && clr == 0)).then_some((bit, set, clr, now))
}

/// x2APIC MSR writes (0x800–0x8ff) on an AMD host whose AVIC covers xAPIC only.
pub(crate) fn x2apic_without_x2avic(c: &Ctx) -> bool {
    c.host.avic_xapic_only() && c.ev.msr(profiler_common::ev::MSR_WRITE, 0x800, 0x8ff) > 0
}

/// APICv known not to be working for this VM: off on the host, an inhibit in force, or an
/// AMD host without x2AVIC whose guest writes x2APIC MSRs (KVM drops AVIC for such vCPUs,
/// sometimes without an inhibit event).
pub(crate) fn apicv_inactive(c: &Ctx) -> bool {
    c.host.apicv == Some(false)
        || x2apic_without_x2avic(c)
        || c.ev
            .inhibit_bits_set()
            .iter()
            .any(|b| inhibit_active(c, &c.inh.name(*b)).is_some() && c.inh.name(*b) != "IRQWIN")
}

impl Finding {
    /// Adds the "unconfirmed" line when the evidence that would confirm the finding is
    /// missing, and ranks the finding below confirmed ones.
    pub(crate) fn ev_all(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.evidence.extend(lines);
        self
    }

    pub(crate) fn evidence_opt(mut self, line: Option<String>) -> Self {
        match line {
            Some(l) => {
                self.unconfirmed = true;
                self.ev(l)
            }
            None => self,
        }
    }
}
