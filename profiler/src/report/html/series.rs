//! What the charts show: per scope (all VMs, then each VM) and per session, each exit
//! reason's count, handling time and latency histogram. VMs and reasons are matched across
//! sessions by name (pids differ from run to run); VMs are ordered by their first session.

use std::collections::BTreeMap;

use super::{
    charts::{Bars, Latency},
    Session,
};
use crate::{model::VmView, sample::Hist};

/// Reasons per bar chart; the rest are in the table.
pub const TOP_REASONS: usize = 10;
/// VMs with a section of their own; the others are in the "All VMs" charts and the table.
pub const TOP_VMS: usize = 16;
/// Latency histograms per scope.
pub const TOP_HISTOGRAMS: usize = 3;

/// One exit reason of one scope in one session.
#[derive(Clone, Debug, Default)]
pub struct Reason {
    pub name: String,
    pub hlt: bool,
    pub count: u64,
    pub total_ns: u64,
    pub hist: Hist,
}

/// All VMs, or one VM: what each session has of it (None: the session has no such VM).
pub struct Scope {
    pub title: String,
    pub sessions: Vec<Option<Vec<Reason>>>,
    /// Per session, the pids of the VMs the scope sums (for the heatmaps).
    pub pids: Vec<Vec<u32>>,
}

/// The bar charts' two measures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Exits,
    /// Non-HLT handling time (HLT's is mostly the guest idling).
    Time,
}

/// The scopes of the page: all VMs first when there is more than one VM, then each VM (the
/// [`TOP_VMS`] costliest when there are more; how many were left out is the second value).
pub fn scopes(sessions: &[(String, Session)]) -> (Vec<Scope>, usize) {
    let mut vm_keys: Vec<String> = Vec::new();
    let mut per_vm: Vec<Vec<Option<Vec<Reason>>>> = Vec::new();
    let mut vm_pids: Vec<Vec<Vec<u32>>> = Vec::new();
    let mut all = Vec::new();
    let mut all_pids = Vec::new();
    for (i, (_, s)) in sessions.iter().enumerate() {
        let vms = &s.data.view.vms;
        all.push(Some(merge(vms.iter())));
        all_pids.push(vms.iter().map(|v| v.pid).collect());
        for vm in vms {
            let key = vm_key(vm, vms);
            let at = match vm_keys.iter().position(|k| *k == key) {
                Some(at) => at,
                None => {
                    vm_keys.push(key);
                    per_vm.push(vec![None; sessions.len()]);
                    vm_pids.push(vec![Vec::new(); sessions.len()]);
                    vm_keys.len() - 1
                }
            };
            per_vm[at][i] = Some(merge(std::iter::once(vm)));
            vm_pids[at][i].push(vm.pid);
        }
    }
    let mut vms: Vec<Scope> = vm_keys
        .into_iter()
        .zip(per_vm.into_iter().zip(vm_pids))
        .map(|(k, (s, pids))| Scope {
            title: format!("VM {k}"),
            sessions: s,
            pids,
        })
        .collect();
    let left_out = vms.len().saturating_sub(TOP_VMS);
    if left_out > 0 {
        // The VMs whose exits cost most in any session (stable: ties keep their order).
        vms.sort_by_key(|s| std::cmp::Reverse(cost(s)));
        vms.truncate(TOP_VMS);
    }
    let mut out = Vec::new();
    if vms.len() + left_out != 1 {
        out.push(Scope {
            title: "All VMs".into(),
            sessions: all,
            pids: all_pids,
        });
    }
    out.extend(vms);
    (out, left_out)
}

/// The scope's largest non-HLT handling time in any session, ns.
fn cost(s: &Scope) -> u64 {
    s.sessions
        .iter()
        .flatten()
        .map(|rows| rows.iter().filter(|r| !r.hlt).map(|r| r.total_ns).sum())
        .max()
        .unwrap_or(0)
}

/// A VM's name; with its pid where the name is empty or not unique in its session.
fn vm_key(vm: &VmView, all: &[VmView]) -> String {
    let twins = all.iter().filter(|v| v.name == vm.name).count();
    if vm.name.is_empty() {
        format!("pid {}", vm.pid)
    } else if twins > 1 {
        format!("{} (pid {})", vm.name, vm.pid)
    } else {
        vm.name.clone()
    }
}

/// The VMs' reasons summed by name, in first-seen order.
fn merge<'a>(vms: impl Iterator<Item = &'a VmView>) -> Vec<Reason> {
    let mut at: BTreeMap<String, usize> = BTreeMap::new();
    let mut out: Vec<Reason> = Vec::new();
    for r in vms.flat_map(|v| &v.reasons) {
        let i = *at.entry(r.name.to_string()).or_insert_with(|| {
            out.push(Reason {
                name: r.name.to_string(),
                hlt: r.hlt,
                ..Default::default()
            });
            out.len() - 1
        });
        let m = &mut out[i];
        m.count += r.count;
        m.total_ns += r.total_ns;
        m.hist.add(&r.hist);
    }
    out
}

/// Whether every session has a duration, so its numbers can be charted per second (perf
/// text has none: then the charts show totals, and say so).
pub fn per_second(sessions: &[(String, Session)]) -> bool {
    sessions.iter().all(|(_, s)| s.data.view.duration_s > 0.0)
}

/// The bar chart of `m` in `scope`: the top reasons by their largest value in any session.
pub fn bars(scope: &Scope, durations: &[f64], m: Measure, per_s: bool) -> Bars {
    let value = |r: &Reason, dur: f64| {
        let v = match m {
            Measure::Exits => r.count as f64,
            Measure::Time => r.total_ns as f64 / 1e6,
        };
        if per_s {
            v / dur
        } else {
            v
        }
    };
    let mut best: Vec<(String, f64)> = Vec::new();
    for (s, dur) in scope.sessions.iter().zip(durations) {
        for r in s.iter().flatten() {
            if m == Measure::Time && r.hlt {
                continue;
            }
            let v = value(r, *dur);
            match best.iter_mut().find(|(n, _)| *n == r.name) {
                Some((_, b)) => *b = b.max(v),
                None => best.push((r.name.clone(), v)),
            }
        }
    }
    best.retain(|(_, v)| *v > 0.0);
    best.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    best.truncate(TOP_REASONS);
    let categories: Vec<String> = best.into_iter().map(|(n, _)| n).collect();
    let series = scope
        .sessions
        .iter()
        .zip(durations)
        .enumerate()
        .filter_map(|(i, (s, dur))| {
            let rows = s.as_ref()?;
            let vals = categories
                .iter()
                .map(|c| {
                    rows.iter()
                        .find(|r| r.name == *c)
                        .map_or(0.0, |r| value(r, *dur))
                })
                .collect();
            Some((i, vals))
        })
        .collect();
    let (what, unit) = match (m, per_s) {
        (Measure::Exits, true) => ("Exits per second", "exits/s"),
        (Measure::Exits, false) => ("Exits", "exits"),
        (Measure::Time, true) => ("Exit handling time per second (HLT left out)", "ms/s"),
        (Measure::Time, false) => ("Exit handling time (HLT left out)", "ms"),
    };
    Bars {
        title: format!("{what} · {}", scope.title),
        unit: unit.into(),
        categories,
        series,
    }
}

/// Latency histograms of the scope's top non-HLT reasons by handling time, with the
/// session's share of that reason's exits per bucket. Empty when no session has histograms.
pub fn latencies(scope: &Scope) -> Vec<Latency> {
    top_reasons(scope)
        .into_iter()
        .map(|name| {
            let series = scope
                .sessions
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let r = s.as_ref()?.iter().find(|r| r.name == name)?;
                    let total = r.hist.total();
                    (total > 0).then(|| (i, r.hist.buckets.clone(), total))
                })
                .collect();
            Latency {
                title: format!("{name} latency · {}", scope.title),
                series,
            }
        })
        .collect()
}

/// The scope's top non-HLT reasons by handling time in any session (with a histogram): the
/// ones whose latency histograms and heatmaps the page draws.
pub fn top_reasons(scope: &Scope) -> Vec<String> {
    let mut best: Vec<(String, u64)> = Vec::new();
    for r in scope.sessions.iter().flatten().flatten() {
        if r.hlt || r.hist.total() == 0 {
            continue;
        }
        match best.iter_mut().find(|(n, _)| *n == r.name) {
            Some((_, b)) => *b = (*b).max(r.total_ns),
            None => best.push((r.name.clone(), r.total_ns)),
        }
    }
    best.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    best.truncate(TOP_HISTOGRAMS);
    best.into_iter().map(|(n, _)| n).collect()
}
