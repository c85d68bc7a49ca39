//! Advice input from a pasted `perf kvm stat` profile: exit reasons, plus whatever
//! `--event=msr` / `--event=ioport` / `--event=mmio` tables came with them as evidence. The
//! paste comes from another host, so this host's facts (vendor, APICv, kernel) are not used:
//! the vendor follows from the exit names (VMX or SVM), the rest stays unknown.

use std::collections::BTreeSet;

use profiler_common::{ISA_SVM, ISA_VMX};

use super::{evidence, GuestKind, HostFacts, Input, Vendor};
use crate::report::perf_import::PerfImport;

impl Input {
    /// From an imported perf text; `guest` is what the user says the guest is, if anything
    /// (a paste rarely shows it).
    pub fn from_perf(imp: &PerfImport, guest: Option<GuestKind>) -> Input {
        let isas: BTreeSet<u32> = imp.newer.stats.keys().map(|k| k.isa).collect();
        let vendor = match (isas.contains(&ISA_VMX), isas.contains(&ISA_SVM)) {
            (true, false) => Some(Vendor::Intel),
            (false, true) => Some(Vendor::Amd),
            _ => None,
        };
        let host = HostFacts {
            vendor,
            ..Default::default()
        };
        let mut input = Input::from_samples(&imp.older, &imp.newer, &imp.names, host);
        input.exit_reasons_only = true;
        input.guest_hint = guest;
        input
    }

    /// Evidence kinds a perf-text profile carried (its msr / ioport / mmio tables).
    pub(crate) fn pasted_kinds(&self) -> BTreeSet<u16> {
        self.evidence
            .values()
            .flat_map(|e| {
                evidence::ALL_KINDS
                    .into_iter()
                    .filter(|k| e.rows_of(*k).next().is_some())
            })
            .collect()
    }
}
