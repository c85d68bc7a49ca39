//! The thresholds to check, in report order, and how each becomes a result.

use super::{outcome::Measured, CheckResult, FailOn, Status, Thresholds};

/// What a planned threshold measures.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    ExitsPerS,
    ExitsPerVcpu,
    Overhead,
    P99,
    MaxExit,
    Storm,
    FrameFrac(f64),
    FrameUs(f64),
    ReasonRate(String),
    ReasonVcpuRate(String),
    ReasonP99(String),
    ReasonMax(String),
    ReasonStorm(String),
    /// Exits the slow-exit log holds, per second (check/slow.rs).
    SlowPerS,
    ReasonSlowPerS(String),
    SlowDropped,
    /// Share of exit time runnable but not running (check/sched.rs).
    WaitPct,
    ReasonWaitPct(String),
    Advice(FailOn),
}

#[derive(Clone, Debug)]
pub(crate) struct Planned {
    pub kind: Kind,
    pub name: String,
    pub unit: &'static str,
    pub limit: f64,
}

impl Planned {
    pub(super) fn result(
        &self,
        vm: &str,
        pid: Option<u32>,
        status: Status,
        m: Option<Measured>,
        detail: String,
    ) -> CheckResult {
        let measured = m.as_ref().map(|m| m.value);
        let over = (status == Status::Fail).then(|| measured.unwrap_or(0.0) - self.limit);
        CheckResult {
            vm: vm.into(),
            pid,
            threshold: self.name.clone(),
            unit: self.unit.into(),
            limit: self.limit,
            measured,
            status,
            over_by: over,
            over_pct: over
                .filter(|_| self.limit > 0.0)
                .map(|o| o / self.limit * 100.0),
            worst_vcpu: m.as_ref().and_then(|m| m.worst_vcpu),
            worst_reason: m.and_then(|m| m.worst_reason),
            detail,
        }
    }
}

/// The thresholds to check, in report order.
pub(crate) fn plan(t: &Thresholds) -> Vec<Planned> {
    let mut out = Vec::new();
    let mut add = |kind, name: String, unit, limit: Option<f64>| {
        if let Some(limit) = limit {
            out.push(Planned {
                kind,
                name,
                unit,
                limit,
            });
        }
    };
    add(
        Kind::ExitsPerS,
        "max_exits_per_s".into(),
        "/s",
        t.max_exits_per_s,
    );
    add(
        Kind::ExitsPerVcpu,
        "max_exits_per_vcpu_per_s".into(),
        "/s",
        t.max_exits_per_vcpu_per_s,
    );
    add(
        Kind::Overhead,
        "max_overhead_pct".into(),
        "%",
        t.max_overhead_pct,
    );
    add(Kind::P99, "max_p99_us".into(), "µs", t.max_p99_us);
    add(Kind::MaxExit, "max_exit_us".into(), "µs", t.max_exit_us);
    add(
        Kind::Storm,
        "max_storm_exits_per_s".into(),
        "/s",
        t.max_storm_exits_per_s,
    );
    for hz in t.frames_hz() {
        let hz_s = format!("{}hz", (hz * 100.0).round() / 100.0);
        add(
            Kind::FrameFrac(hz),
            format!("frame_budget_pct[{hz_s}]"),
            "%",
            t.frame_budget_pct,
        );
        add(
            Kind::FrameUs(hz),
            format!("frame_budget_us[{hz_s}]"),
            "µs",
            t.frame_budget_us,
        );
    }
    for r in &t.reasons {
        let n = r.name.trim().to_string();
        add(
            Kind::ReasonRate(n.clone()),
            format!("{n}.max_per_s"),
            "/s",
            r.max_per_s,
        );
        add(
            Kind::ReasonVcpuRate(n.clone()),
            format!("{n}.max_per_vcpu_per_s"),
            "/s",
            r.max_per_vcpu_per_s,
        );
        add(
            Kind::ReasonP99(n.clone()),
            format!("{n}.max_p99_us"),
            "µs",
            r.max_p99_us,
        );
        add(
            Kind::ReasonMax(n.clone()),
            format!("{n}.max_us"),
            "µs",
            r.max_us,
        );
        add(
            Kind::ReasonStorm(n.clone()),
            format!("{n}.max_storm_per_s"),
            "/s",
            r.max_storm_per_s,
        );
        add(
            Kind::ReasonSlowPerS(n.clone()),
            format!("{n}.max_slow_per_s"),
            "/s",
            r.max_slow_per_s,
        );
        add(
            Kind::ReasonWaitPct(n.clone()),
            format!("{n}.max_wait_pct"),
            "%",
            r.max_wait_pct,
        );
    }
    add(
        Kind::SlowPerS,
        "max_slow_per_s".into(),
        "/s",
        t.max_slow_per_s,
    );
    add(
        Kind::SlowDropped,
        "max_slow_dropped".into(),
        "events",
        t.max_slow_dropped,
    );
    add(Kind::WaitPct, "max_wait_pct".into(), "%", t.max_wait_pct);
    if let Some(f) = t.fail_on {
        let limit = match f {
            FailOn::Warn => "warn",
            FailOn::Critical => "critical",
        };
        add(
            Kind::Advice(f),
            format!("fail_on={limit}"),
            "findings",
            Some(0.0),
        );
    }
    out
}
