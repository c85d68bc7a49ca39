//! Thresholds on the slow-exit log: what it holds per VM and reason over the run, and what
//! the kernel dropped.

use std::collections::BTreeMap;

use profiler_common::counter::SLOW_DROPPED;

use super::outcome::{Measured, Outcome};
use super::{thresholds::resolve_reason, Kind, Planned};
use crate::{decode::ExitNames, model::VmView, sample::Sample};

/// A session's slow-exit log, counted: events per VM and (isa, reason), and those dropped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlowCounts {
    pub per_vm: BTreeMap<u32, BTreeMap<(u32, u32), u64>>,
    /// Events the kernel did not send (rate limit, full buffer), host-wide.
    pub dropped: u64,
}

impl SlowCounts {
    /// The events logged between the first sample and the last (the first sample's own came
    /// before the span the rates are over).
    pub fn of(samples: &[Sample]) -> SlowCounts {
        let mut c = SlowCounts::default();
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            return c;
        };
        for e in samples.iter().skip(1).flat_map(|s| &s.slow) {
            *c.per_vm
                .entry(e.tgid)
                .or_default()
                .entry((e.isa, e.reason))
                .or_default() += 1;
        }
        c.dropped = last
            .counter(SLOW_DROPPED)
            .saturating_sub(first.counter(SLOW_DROPPED));
        c
    }
}

/// Why a slow-exit threshold has nothing to measure.
const NOT_RECORDED: &str = "this session has no slow-exit log (perf text, a recording of \
format 3 or older, or --slow off): record with kvmprof ≥ format 4 or check live";

/// Measures `p` when it is a slow-exit threshold (None: it is not one).
pub(super) fn measure(
    p: &Planned,
    vm: &VmView,
    secs: f64,
    slow: Option<&SlowCounts>,
    names: &ExitNames,
) -> Option<Outcome> {
    if !matches!(
        p.kind,
        Kind::SlowPerS | Kind::ReasonSlowPerS(_) | Kind::SlowDropped
    ) {
        return None;
    }
    let Some(slow) = slow else {
        return Some(Outcome::Error(NOT_RECORDED.into()));
    };
    if let Kind::SlowDropped = p.kind {
        return Some(Outcome::Value(Measured {
            value: slow.dropped as f64,
            detail: format!(
                "{} dropped host-wide (the rate limit is per host CPU: --slow-rate)",
                slow.dropped
            ),
            ..Default::default()
        }));
    }
    if secs <= 0.0 {
        return Some(Outcome::Error(
            "span length unknown (0 s): rates cannot be measured".into(),
        ));
    }
    let empty = BTreeMap::new();
    let rows = slow.per_vm.get(&vm.pid).unwrap_or(&empty);
    let codes = match &p.kind {
        Kind::ReasonSlowPerS(name) => Some(resolve_reason(name, names)),
        _ => None,
    };
    let counted: Vec<((u32, u32), u64)> = rows
        .iter()
        .filter(|((isa, reason), _)| {
            codes.as_ref().is_none_or(|c| {
                c.iter()
                    .any(|&(i, r)| i == *isa && super::measure::base(*isa, *reason) == r)
            })
        })
        .map(|(k, n)| (*k, *n))
        .collect();
    let n: u64 = counted.iter().map(|(_, n)| n).sum();
    let top = counted.iter().max_by_key(|(_, n)| *n);
    let top_name = top.map(|((isa, reason), _)| names.name(*isa, *reason));
    let mut detail = format!("{n} slow exits in {secs:.1} s");
    if let (Some(name), Some((_, c))) = (&top_name, top) {
        detail.push_str(&format!(", most {name} ({c})"));
    }
    if slow.dropped > 0 {
        detail.push_str(&format!(
            "; {} more dropped host-wide, not counted",
            slow.dropped
        ));
    }
    Some(Outcome::Value(Measured {
        value: n as f64 / secs,
        worst_reason: top_name,
        detail,
        ..Default::default()
    }))
}
