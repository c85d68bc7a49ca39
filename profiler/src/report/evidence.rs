//! Sub-reason counts (MSR indexes, I/O ports, MMIO addresses) over a span, and perf's
//! `--event msr|ioport|mmio` tables made from them.
//!
//! kvmprof counts these accesses in kernel per VM, without timing them (their handling time
//! is in the VM-EXIT table's MSR_READ / IO_INSTRUCTION / EPT_MISCONFIG rows). So the tables
//! show perf's Samples and Samples% columns only, a footer without a time, and a note saying
//! why — rather than perf's time columns filled with zeros that would read as measured. Tables
//! read from perf text keep the times perf printed (`sub_times`) and print them back.

use std::collections::BTreeMap;

use super::{
    perf_layout::{footer, header, Event, SortBy},
    printf::{f, s},
    rows::pct,
    sub_times::{self, perf_key},
    ReportError,
};
use crate::{
    model::VmView,
    sample::{EvKey, Sample},
};

/// Evidence counts over a span (newer − older), per key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    pub counts: BTreeMap<EvKey, u64>,
}

impl Evidence {
    /// newer − older, by the model's one rule (reused pids and recreated entries count
    /// from zero).
    pub fn between(older: &Sample, newer: &Sample) -> Evidence {
        let counts = crate::model::evidence_deltas(older, newer)
            .filter(|(_, d)| d.count > 0)
            .map(|(k, d)| (*k, d.count))
            .collect();
        Evidence { counts }
    }

    /// (perf key, count) of one table, for one VM or all: `0x6e0:W`, `0x3f8:POUT`,
    /// `0xfee000b0:R`, keyed as perf decodes them (MSR write flags merged).
    pub fn keyed(&self, event: Event, pid: Option<u32>) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (k, n) in &self.counts {
            if pid.is_some_and(|p| p != k.tgid) {
                continue;
            }
            if let Some(key) = perf_key(event, k) {
                *out.entry(key).or_insert(0) += n;
            }
        }
        out
    }
}

/// Which exit rows hold the time of an event's accesses, and what is counted.
fn what(event: Event) -> (&'static str, &'static str) {
    match event {
        Event::Msr => ("MSR accesses", "MSR_READ/MSR_WRITE, SVM msr"),
        Event::Ioport => ("port I/O", "IO_INSTRUCTION, SVM io"),
        Event::Mmio => ("MMIO accesses", "EPT_MISCONFIG/EPT_VIOLATION, SVM npf"),
        Event::Vmexit => ("exits", "VM-EXIT"),
    }
}

/// Sub-reason counts are kept per VM: a vCPU cannot be asked for.
pub(crate) fn per_vm_only(event: Event, vcpu: Option<u32>) -> Result<(), ReportError> {
    match vcpu {
        Some(_) => Err(ReportError::VcpuWithEvidence {
            event: event.arg(),
            what: what(event).0,
        }),
        None => Ok(()),
    }
}

/// Appends one sub-reason table (after the "Analyze events" line).
pub(crate) fn table(
    out: &mut String,
    data: &super::Data,
    event: Event,
    vm: Option<&VmView>,
    vcpu: Option<u32>,
    sort: SortBy,
) -> Result<(), ReportError> {
    let (evidence, times, width) = (&data.evidence, &data.sub_times, data.name_width());
    let (counted, rows_with_time) = what(event);
    per_vm_only(event, vcpu)?;
    let keyed = evidence.keyed(event, vm.map(|v| v.pid));
    // Read from perf text with its times: printed with them.
    let empty = data.empty_timed(event, &keyed);
    let timed = sub_times::for_table(times, event, vm.map(|v| v.pid), &keyed)
        .or_else(|| empty.map(|_| BTreeMap::new()));
    if let Some(timed) = timed {
        sub_times::classic_table(out, event, &timed, sort, width, empty == Some(true));
        out.push_str("# times as the perf text printed them (kvmprof itself counts these accesses without timing them)\n");
        out.push_str(&sub_times::names_note(event, keyed.keys()));
        return Ok(());
    }
    let mut rows: Vec<(&String, u64)> = keyed.iter().map(|(k, n)| (k, *n)).collect();
    // Only counts exist: name order for `-k name`, count order for everything else.
    match sort {
        SortBy::Name => rows.sort_by(|a, b| a.0.cmp(b.0)),
        _ => rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0))),
    }
    let total: u64 = rows.iter().map(|r| r.1).sum();
    out.push_str(&header(event.header(), width, false, false));
    out.push_str("\n\n");
    for (k, n) in &rows {
        out.push_str(&format!(
            "{} {n:>10} {}%\n",
            s(width, &sub_times::named_key(event, k)),
            f(8, 2, pct(*n as f64, total as f64))
        ));
    }
    out.push_str(&footer(total, None));
    out.push_str(&format!(
        "# kvmprof counts {counted} in kernel without timing them: no Time%/Min/Max/Avg here; their handling time is in the VM-EXIT table ({rows_with_time})\n"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new VM process on a reused pid: the report counts all of its accesses, as the advice
    /// does (the tables once subtracted the old process's counts).
    #[test]
    fn a_reused_pid_counts_from_zero() {
        let at = crate::model::port_0x70_sample;
        let e = Evidence::between(&at(1, 100), &at(2, 150));
        assert_eq!(e.counts.values().copied().collect::<Vec<_>>(), [150]);
    }
}
