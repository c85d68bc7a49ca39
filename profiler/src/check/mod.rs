//! `kvmprof check`: a load-test gate. Thresholds (TOML and/or flags) are evaluated on the model's
//! view of the run plus the per-interval views (storms, frame budgets); the answer is one result
//! per threshold per VM, an exit code, a human summary, JSON and JUnit XML.
//!
//! Exit codes ([`CheckReport::exit_code`]): 0 all passed; 1 a threshold failed (even if others
//! could not be measured); 2 nothing failed but something could not be measured (VM not found by
//! name, no exits seen, source error, advice missing).

mod measure;
mod outcome;
mod plan;
mod render;
mod sched;
mod slow;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_parse;
#[cfg(test)]
mod tests_slow;
#[cfg(test)]
mod tests_wait;
pub mod thresholds;

use serde::Serialize;

pub use render::{junit, summary, timestamp_utc, to_json};
pub use slow::SlowCounts;
pub use thresholds::{resolve_reason, FailOn, ReasonLimit, ThresholdError, Thresholds};

use crate::{
    advice::{AdviceItem, AdviceSummary, Severity},
    decode::ExitNames,
    model::{View, VmSelector, VmView},
};
use outcome::{Measured, Outcome};
pub(crate) use plan::{plan, Kind, Planned};

/// The example thresholds file (also `profiler/src/check/example.toml`).
pub const EXAMPLE_TOML: &str = include_str!("example.toml");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Nothing to measure (e.g. a latency limit on a reason that never happened): not a failure.
    Skipped,
    /// Could not measure.
    Error,
}

/// One threshold on one VM.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckResult {
    /// VM name (or the name asked for, when not found; "*" when no VM was seen).
    pub vm: String,
    pub pid: Option<u32>,
    /// The setting's key, e.g. `max_overhead_pct`, `EPT_MISCONFIG.max_per_s`,
    /// `frame_budget_pct[60hz]`, `fail_on`.
    pub threshold: String,
    pub unit: String,
    pub limit: f64,
    pub measured: Option<f64>,
    pub status: Status,
    /// measured − limit, on failure.
    pub over_by: Option<f64>,
    /// (measured − limit) / limit × 100, on failure with a limit > 0.
    pub over_pct: Option<f64>,
    pub worst_vcpu: Option<u32>,
    pub worst_reason: Option<String>,
    /// What was measured, or why it could not be.
    pub detail: String,
}

/// Everything `kvmprof check` reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CheckReport {
    pub duration_s: f64,
    pub results: Vec<CheckResult>,
    /// Top advice findings of the checked VMs (at most 5).
    pub advice: Vec<AdviceItem>,
    pub notes: Vec<String>,
}

impl CheckReport {
    pub fn failed(&self) -> usize {
        self.count(Status::Fail)
    }
    pub fn errors(&self) -> usize {
        self.count(Status::Error)
    }
    pub fn count(&self, s: Status) -> usize {
        self.results.iter().filter(|r| r.status == s).count()
    }

    /// 0 pass, 1 a threshold failed, 2 could not measure (and nothing failed).
    pub fn exit_code(&self) -> i32 {
        if self.failed() > 0 {
            1
        } else if self.errors() > 0 || self.results.is_empty() {
            2
        } else {
            0
        }
    }

    /// A report for a run that could not measure at all (e.g. the source failed): one error
    /// per threshold per VM asked for, so JUnit still lists every check.
    pub fn could_not_measure(
        reason: &str,
        thresholds: &Thresholds,
        vm_filter: &[VmSelector],
    ) -> Self {
        let vms: Vec<String> = if vm_filter.is_empty() {
            vec!["*".into()]
        } else {
            vm_filter.iter().map(|v| v.as_str().to_string()).collect()
        };
        let mut results = Vec::new();
        for vm in &vms {
            for p in plan(thresholds) {
                results.push(p.result(vm, None, Status::Error, None, reason.into()));
            }
        }
        CheckReport {
            results,
            ..Default::default()
        }
    }
}

/// VMs of `view` that `filter` names (VM name, uuid or pid); empty = all. Selectors that
/// name no VM, or several, come back in the second list with the reason.
fn select<'a>(view: &'a View, filter: &[VmSelector]) -> (Vec<&'a VmView>, Vec<(String, String)>) {
    if filter.is_empty() {
        return (view.vms.iter().collect(), Vec::new());
    }
    let mut found: Vec<&VmView> = Vec::new();
    let mut missing = Vec::new();
    for f in filter {
        match f.find(view) {
            Ok(v) if !found.iter().any(|x| x.pid == v.pid) => found.push(v),
            Ok(_) => {}
            Err(e) => missing.push((f.as_str().to_string(), e.to_string())),
        }
    }
    (found, missing)
}

/// Evaluates every threshold on every selected VM. `series` holds the per-interval views of
/// the same run, in order (for storms and frame windows; may be empty, see `measure`).
/// Reason names resolve against the built-in tables and the rows' own names; call
/// [`Thresholds::validate`] with the source's names first to reject unknown names early.
/// `slow`: the session's slow-exit log, None when it has none (its thresholds then error).
pub fn evaluate(
    view: &View,
    series: &[View],
    thresholds: &Thresholds,
    vm_filter: &[VmSelector],
    advice: Option<&AdviceSummary>,
    slow: Option<&SlowCounts>,
) -> CheckReport {
    let names = ExitNames::builtin();
    let planned = plan(thresholds);
    let mut notes = Vec::new();
    if planned.is_empty() {
        notes.push("no thresholds given: set some with KEY=VALUE flags or a TOML file (`kvmprof check --example` prints every key)".into());
    }
    let (vms, missing) = select(view, vm_filter);
    let seen = view
        .vms
        .iter()
        .map(|v| format!("{} (pid {})", v.name, v.pid))
        .collect::<Vec<_>>()
        .join(", ");
    let mut results = Vec::new();
    if vm_filter.is_empty() && vms.is_empty() {
        let why = format!(
            "no exits seen in {:.1} s: is a VM running, and were the probes attached?",
            view.duration_s
        );
        results.extend(
            planned
                .iter()
                .map(|p| p.result("*", None, Status::Error, None, why.clone())),
        );
    }
    for vm in &vms {
        for p in &planned {
            let inputs = Inputs {
                view,
                series,
                advice,
                slow,
            };
            results.push(check_one(p, vm, &inputs, thresholds, &names));
        }
    }
    // VMs asked for but not seen come last.
    for (m, reason) in &missing {
        let why = if seen.is_empty() {
            format!(
                "VM `{m}` not found by name: no VM had exits in {:.1} s",
                view.duration_s
            )
        } else {
            reason.clone()
        };
        results.extend(
            planned
                .iter()
                .map(|p| p.result(m, None, Status::Error, None, why.clone())),
        );
    }
    let advice_top = advice
        .map(|a| {
            a.findings
                .iter()
                .filter(|f| vms.iter().any(|v| v.pid == f.pid))
                .take(5)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    CheckReport {
        duration_s: view.duration_s,
        results,
        advice: advice_top,
        notes,
    }
}

/// What the thresholds are measured on.
struct Inputs<'a> {
    view: &'a View,
    series: &'a [View],
    advice: Option<&'a AdviceSummary>,
    slow: Option<&'a SlowCounts>,
}

fn check_one(
    p: &Planned,
    vm: &VmView,
    inputs: &Inputs,
    t: &Thresholds,
    names: &ExitNames,
) -> CheckResult {
    let (view, series, advice) = (inputs.view, inputs.series, inputs.advice);
    let (name, pid) = (vm.name.as_str(), Some(vm.pid));
    if let Kind::Advice(f) = p.kind {
        let Some(a) = advice else {
            let why = "advice was not computed for this run: run the check with advice enabled";
            return p.result(name, pid, Status::Error, None, why.into());
        };
        let min = match f {
            FailOn::Warn => Severity::Warn,
            FailOn::Critical => Severity::Critical,
        };
        let hits: Vec<&AdviceItem> = a
            .findings
            .iter()
            .filter(|x| x.pid == vm.pid && x.severity >= min)
            .collect();
        let status = if hits.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        };
        let m = Measured {
            value: hits.len() as f64,
            worst_reason: hits.first().map(|h| h.rule.clone()),
            detail: hits
                .iter()
                .map(|h| format!("{} {} {}", h.severity.label(), h.rule, h.title))
                .collect::<Vec<_>>()
                .join("; "),
            ..Default::default()
        };
        let d = m.detail.clone();
        return p.result(name, pid, status, Some(m), d);
    }
    if let Kind::ReasonRate(r)
    | Kind::ReasonVcpuRate(r)
    | Kind::ReasonP99(r)
    | Kind::ReasonMax(r)
    | Kind::ReasonStorm(r)
    | Kind::ReasonSlowPerS(r)
    | Kind::ReasonWaitPct(r) = &p.kind
    {
        let in_rows = vm
            .reasons
            .iter()
            .any(|x| x.name.eq_ignore_ascii_case(r.trim()));
        if resolve_reason(r, names).is_empty() && !in_rows {
            return p.result(
                name,
                pid,
                Status::Error,
                None,
                thresholds::unknown_reason(r),
            );
        }
    }
    if vm.exits == 0 {
        let returns: u64 = vm.userspace.iter().map(|r| r.count).sum();
        let why = if returns > 0 {
            // Running, but on a KVM that emits no kvm_exit: say what was measured.
            format!(
                "no kernel exits for VM {name} (pid {}) in {:.1} s, but {:.0} returns to the \
                 VMM a second: this host's KVM emits no kvm_exit (e.g. a software backend), so \
                 exit thresholds cannot be checked here",
                vm.pid,
                view.duration_s,
                returns as f64 / view.duration_s.max(1e-9)
            )
        } else {
            format!(
                "no exits seen for VM {name} (pid {}) in {:.1} s: is it running?",
                vm.pid, view.duration_s
            )
        };
        return p.result(name, pid, Status::Error, None, why);
    }
    let outcome = slow::measure(p, vm, view.duration_s, inputs.slow, names)
        .or_else(|| sched::measure(p, vm, view.sched_split, names))
        .unwrap_or_else(|| measure::measure(p, vm, view, series, t.storm_window_s(), names));
    match outcome {
        Outcome::Value(m) => {
            // A tiny tolerance so a value printed equal to its limit passes.
            let fail = m.value > p.limit * (1.0 + 1e-9) + 1e-12;
            let status = if fail { Status::Fail } else { Status::Pass };
            let d = m.detail.clone();
            p.result(name, pid, status, Some(m), d)
        }
        Outcome::Skip(why) => p.result(name, pid, Status::Skipped, None, why),
        Outcome::Error(why) => p.result(name, pid, Status::Error, None, why),
    }
}
