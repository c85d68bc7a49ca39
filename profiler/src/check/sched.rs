//! Thresholds on the scheduler split: the share of exit handling time a VM's vCPU threads
//! spent runnable but not running (preempted, or woken and waiting for a host CPU). A host
//! that is oversubscribed shows it here before the guest sees it as stutter.

use super::outcome::{Measured, Outcome};
use super::{measure::matching, Kind, Planned};
use crate::{
    decode::ExitNames,
    model::{Row, VmView},
};

/// Why a wait threshold has nothing to measure.
const NOT_SPLIT: &str = "this session has no scheduler split (perf text, a recording of format \
4 or older, --no-sched-split, or a kernel without the sched raw tracepoints): record with \
kvmprof ≥ format 5 or check live";

/// (waited, exit time) of `rows`, ns.
fn sums<'a>(rows: impl IntoIterator<Item = &'a Row>) -> (u64, u64) {
    rows.into_iter().fold((0, 0), |(w, t), r| {
        (w + r.wait_ns.min(r.total_ns), t + r.total_ns)
    })
}

fn pct((wait, total): (u64, u64)) -> f64 {
    wait as f64 * 100.0 / total.max(1) as f64
}

/// Measures `p` when it is a wait threshold (None: it is not one). `split`: whether the
/// session's kernel split the exit time (`View::sched_split`).
pub(super) fn measure<'a>(
    p: &Planned,
    vm: &'a VmView,
    split: bool,
    names: &ExitNames,
) -> Option<Outcome> {
    let reason = match &p.kind {
        Kind::WaitPct => None,
        Kind::ReasonWaitPct(name) => Some(name.as_str()),
        _ => return None,
    };
    if !split {
        return Some(Outcome::Error(NOT_SPLIT.into()));
    }
    // The VM-wide share leaves HLT out like every other time share: a halted vCPU woken late
    // is checked by naming HLT (hlt for SVM) as a reason.
    let pick = |rows: &'a [Row]| -> Vec<&'a Row> {
        match reason {
            None => rows.iter().filter(|r| !r.hlt).collect(),
            Some(n) => matching(rows, n, names),
        }
    };
    let rows = pick(&vm.reasons);
    let (wait, total) = sums(rows.iter().copied());
    if total == 0 {
        let what = reason.map_or("non-HLT".to_string(), str::to_string);
        return Some(Outcome::Skip(format!("no timed {what} exits")));
    }
    let worst_vcpu = vm
        .vcpus
        .iter()
        .map(|v| (v.vcpu, sums(pick(&v.reasons))))
        .filter(|(_, (_, t))| *t > 0)
        .max_by(|a, b| pct(a.1).total_cmp(&pct(b.1)));
    let top = rows.iter().max_by_key(|r| r.wait_ns);
    let mut detail = format!(
        "{:.1} of {:.1} ms exit time waited for a host CPU",
        wait as f64 / 1e6,
        total as f64 / 1e6
    );
    if let (None, Some(r)) = (reason, top.filter(|r| r.wait_ns > 0)) {
        detail.push_str(&format!(
            ", most in {} ({:.1} ms)",
            r.name,
            r.wait_ns as f64 / 1e6
        ));
    }
    if let Some((vcpu, s)) = worst_vcpu {
        detail.push_str(&format!("; worst vCPU {vcpu} at {:.2} %", pct(s)));
    }
    Some(Outcome::Value(Measured {
        value: pct((wait, total)),
        worst_vcpu: worst_vcpu.map(|v| v.0),
        worst_reason: match reason {
            Some(n) => Some(n.to_string()),
            None => top.filter(|r| r.wait_ns > 0).map(|r| r.name.to_string()),
        },
        detail,
    }))
}
