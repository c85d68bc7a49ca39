//! Sub-reason evidence over a span: the one rule every consumer (report tables, advice,
//! export) applies to two cumulative samples.

use crate::sample::{EvKey, Sample};

/// One evidence counter's change between two samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvDelta {
    /// Events in the span.
    pub count: u64,
    /// Summed quantity in the span (kind-specific, e.g. wake-up ns).
    pub sum: u64,
    /// Last value seen (may predate the span, e.g. GUEST_OS_ID written at boot).
    pub last: u64,
    /// Events since the programs attached.
    pub total: u64,
}

/// Clamp so sums over rows never overflow, whatever a corrupt recording holds (2^40 events
/// in one span is far beyond any real rate).
const CLAMP: u64 = 1 << 40;

/// `newer − older` for every evidence key of `newer`. A counter counts from zero when its
/// VM is a new process on a reused pid (new start time) or when it went down (the map entry
/// was deleted and recreated).
pub fn evidence_deltas<'a>(
    older: &'a Sample,
    newer: &'a Sample,
) -> impl Iterator<Item = (&'a EvKey, EvDelta)> + 'a {
    let reused = newer.reused_pids(older);
    newer.evidence.iter().map(move |(k, new)| {
        let old = older
            .evidence
            .get(k)
            .filter(|o| !reused.contains(&k.tgid) && o.count <= new.count);
        let (c0, s0) = old.map_or((0, 0), |o| (o.count, o.sum));
        let delta = EvDelta {
            count: (new.count - c0).min(CLAMP),
            sum: new.sum.saturating_sub(s0).min(CLAMP << 16),
            last: new.last,
            total: new.count.min(CLAMP),
        };
        (k, delta)
    })
}

/// For tests: VM 7 (a process started at `start`) with `count` writes to port 0x70.
#[cfg(test)]
pub(crate) fn port_0x70_sample(start: u64, count: u64) -> Sample {
    let mut s = Sample::default();
    s.vms.insert(
        7,
        crate::sample::VmInfo {
            pid: 7,
            start_time: start,
            ..Default::default()
        },
    );
    let k = EvKey {
        tgid: 7,
        kind: profiler_common::ev::PIO_OUT,
        flags: 1,
        a: 0x70,
    };
    let st = crate::sample::EvStat {
        count,
        sum: count.saturating_mul(10),
        last: 1,
    };
    s.evidence.insert(k, st);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    use port_0x70_sample as sample;

    #[test]
    fn one_rule_for_reused_pids_and_recreated_entries() {
        let d = |a: &Sample, b: &Sample| evidence_deltas(a, b).next().map(|(_, d)| d.count);
        assert_eq!(d(&sample(1, 100), &sample(1, 150)), Some(50));
        // Same pid, new process: its 30 events are all new.
        assert_eq!(d(&sample(1, 100), &sample(2, 30)), Some(30));
        // Entry recreated (count went down): counts from zero.
        assert_eq!(d(&sample(1, 100), &sample(1, 20)), Some(20));
        assert_eq!(d(&sample(1, u64::MAX), &sample(1, u64::MAX)), Some(0));
        assert_eq!(d(&Sample::default(), &sample(1, u64::MAX)), Some(CLAMP));
    }
}
