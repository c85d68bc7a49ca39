//! The slow-exit log in the exporter: `kvmprof_slow_exits_total{vm,isa,reason}` counts the
//! events each sample carries (reasons named like `kvmprof_exits_total`'s: the VM's promoted
//! ones, the rest `reason="other"`), `kvmprof_slow_exits_dropped_total` the kernel's
//! `slow_dropped` counter (host-wide: the rate limit is per host CPU).

use std::collections::BTreeMap;

use profiler_common::counter::SLOW_DROPPED;
use prometheus_client::metrics::MetricType::Counter;

use super::{
    encode::{labels, Family, Labels, Value},
    Slot,
};
use crate::decode::{isa_name, ExitNames};

/// One VM's slow exits: (isa, slot) → count.
#[derive(Clone, Debug, Default)]
pub(super) struct SlowAcc(BTreeMap<(u32, Slot), u64>);

impl SlowAcc {
    pub fn add(&mut self, isa: u32, slot: Slot) {
        *self.0.entry((isa, slot)).or_default() += 1;
    }

    pub fn series(&self, vm: &Labels, names: &ExitNames, f: &mut Family) {
        for ((isa, slot), n) in &self.0 {
            let reason = match slot {
                Slot::Reason(r) => names.name(*isa, *r),
                Slot::Other => "other".into(),
            };
            let mut l = vm.clone();
            l.extend(labels(&[("isa", isa_name(*isa)), ("reason", &reason)]));
            f.series.push((l, Value::Count(*n)));
        }
    }
}

pub(super) fn family() -> Family {
    Family::new(
        "kvmprof_slow_exits",
        "Exits at or over the slow-exit threshold (--slow), as the kernel logged them, by reason",
        Counter,
        false,
    )
}

/// Dropped events between two samples.
pub(super) fn dropped(older: &crate::sample::Sample, newer: &crate::sample::Sample) -> u64 {
    newer
        .counter(SLOW_DROPPED)
        .saturating_sub(older.counter(SLOW_DROPPED))
}

pub(super) fn dropped_family(n: u64) -> Family {
    let mut f = Family::new(
        "kvmprof_slow_exits_dropped",
        "Slow exits the kernel did not send (rate limit --slow-rate, full buffer), all VMs",
        Counter,
        false,
    );
    f.series.push((Vec::new(), Value::Count(n)));
    f
}
