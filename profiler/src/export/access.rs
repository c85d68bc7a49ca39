//! `kvmprof_exit_accesses_total` (opt-in, `--sub-reasons`): the MSR, port and MMIO accesses
//! behind exits, by address, from the sub-reason evidence. Bounded like the reasons: per VM
//! and access kind the first `top` addresses to rank by count keep a series of their own, the
//! rest add up in `address="other"`.

use std::collections::{BTreeMap, BTreeSet};

use profiler_common::ev;

use super::encode::{labels, Family, Labels, Value};
use crate::{model::evidence_deltas, sample::Sample};

/// Evidence kinds exported, with their `access` label.
pub(super) const KINDS: [(u16, &str); 6] = [
    (ev::MSR_READ, "msr_read"),
    (ev::MSR_WRITE, "msr_write"),
    (ev::PIO_IN, "port_in"),
    (ev::PIO_OUT, "port_out"),
    (ev::MMIO_READ, "mmio_read"),
    (ev::MMIO_WRITE, "mmio_write"),
];

/// One span's accesses of one VM: (kind, address) → count.
pub(super) type Counts = BTreeMap<(u16, u64), u64>;

/// Per pid, the accesses between two samples (the model's rule for reused pids and recreated
/// entries; MSR write flags merged into their MSR).
pub(super) fn deltas(older: &Sample, newer: &Sample) -> BTreeMap<u32, Counts> {
    let mut out: BTreeMap<u32, Counts> = BTreeMap::new();
    for (k, d) in evidence_deltas(older, newer) {
        if d.count > 0 && KINDS.iter().any(|(kind, _)| *kind == k.kind) {
            *out.entry(k.tgid)
                .or_default()
                .entry((k.kind, k.a))
                .or_default() += d.count;
        }
    }
    out
}

/// One VM's accesses so far.
#[derive(Clone, Debug, Default)]
pub(super) struct AccessAcc {
    /// Addresses with their own series; never taken back, so counters never move.
    promoted: BTreeSet<(u16, u64)>,
    /// (kind, address or None for "other") → count.
    counts: BTreeMap<(u16, Option<u64>), u64>,
}

impl AccessAcc {
    pub(super) fn add(&mut self, span: Counts, top: usize) {
        let mut ranked: Vec<(&(u16, u64), &u64)> = span.iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for ((kind, a), _) in ranked {
            let named = self.promoted.iter().filter(|(k, _)| k == kind).count();
            if named < top {
                self.promoted.insert((*kind, *a));
            }
        }
        for ((kind, a), n) in span {
            let slot = self.promoted.contains(&(kind, a)).then_some(a);
            *self.counts.entry((kind, slot)).or_default() += n;
        }
    }

    /// Appends this VM's series (with its labels `vm`) to `family`.
    pub(super) fn series(&self, vm: &Labels, family: &mut Family) {
        for ((kind, a), n) in &self.counts {
            let access = KINDS
                .iter()
                .find(|(k, _)| k == kind)
                .map_or("unknown", |(_, name)| name);
            let address = a.map_or_else(|| "other".to_string(), |a| format!("{a:#x}"));
            let mut l = vm.clone();
            l.extend(labels(&[("access", access), ("address", &address)]));
            family.series.push((l, Value::Count(*n)));
        }
    }
}
