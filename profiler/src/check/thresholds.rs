//! Threshold settings: TOML file and/or `KEY=VALUE` flags, validated with one-line errors that
//! name the key and the fix. Every key is documented in `example.toml` beside this file.

use profiler_common::{ISA_SVM, ISA_VMX};
use serde::{Deserialize, Serialize};

use crate::{decode::ExitNames, settings};

/// What a load test must stay under. Every limit is optional; absent ones are not checked.
///
/// Example (the full, commented file is `example.toml`, printed by `check --example`):
/// ```toml
/// max_exits_per_s = 200000          # all exits of a VM per second (HLT included)
/// max_exits_per_vcpu_per_s = 50000  # the busiest vCPU's exits per second
/// max_overhead_pct = 5.0            # non-HLT handling time / (elapsed × vCPUs) × 100
/// max_p99_us = 50.0                 # worst non-HLT reason's p99 handling time
/// max_exit_us = 5000.0              # longest non-HLT exit
/// storm_window_ms = 100             # window of the storm limits (default 100)
/// max_storm_exits_per_s = 500000    # highest exit rate of a VM in any window
/// frame_hz = [60, 120]              # frames checked (16.7 ms, 8.3 ms)
/// frame_budget_pct = 10.0           # non-HLT handling time per frame, worst window, per vCPU
/// frame_budget_us = 1000.0          # the same as µs per frame
/// fail_on = "critical"              # advice severity that fails: "critical" | "warn"
/// max_slow_per_s = 1.0              # exits logged as slow (--slow) per second, per VM
/// max_slow_dropped = 0              # slow exits the kernel's rate limit dropped
/// max_wait_pct = 5.0                # non-HLT exit time runnable but not running, %
///
/// [[reason]]
/// name = "EPT_MISCONFIG"            # VMX or SVM name (npf, msr, ...), or vmx:49 / svm:0x400
/// max_per_s = 10000                 # whole VM
/// max_per_vcpu_per_s = 2000         # busiest vCPU
/// max_p99_us = 20.0
/// max_us = 500.0
/// max_storm_per_s = 50000
/// max_slow_per_s = 0.5
/// max_wait_pct = 10.0
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    pub max_exits_per_s: Option<f64>,
    pub max_exits_per_vcpu_per_s: Option<f64>,
    pub max_overhead_pct: Option<f64>,
    pub max_p99_us: Option<f64>,
    pub max_exit_us: Option<f64>,
    pub storm_window_ms: Option<f64>,
    pub max_storm_exits_per_s: Option<f64>,
    /// Frame rates whose frame budget is checked; empty = [60, 120].
    pub frame_hz: Vec<f64>,
    pub frame_budget_pct: Option<f64>,
    pub frame_budget_us: Option<f64>,
    pub fail_on: Option<FailOn>,
    pub max_slow_per_s: Option<f64>,
    pub max_slow_dropped: Option<f64>,
    pub max_wait_pct: Option<f64>,
    #[serde(rename = "reason")]
    pub reasons: Vec<ReasonLimit>,
}

/// Advice severity at or above which a finding fails the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailOn {
    Warn,
    Critical,
}

/// Limits of one exit reason.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReasonLimit {
    pub name: String,
    pub max_per_s: Option<f64>,
    pub max_per_vcpu_per_s: Option<f64>,
    pub max_p99_us: Option<f64>,
    pub max_us: Option<f64>,
    pub max_storm_per_s: Option<f64>,
    pub max_slow_per_s: Option<f64>,
    pub max_wait_pct: Option<f64>,
}

/// A threshold setting that cannot be used; the text is the whole one-line message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ThresholdError(pub String);

pub const DEFAULT_STORM_WINDOW_MS: f64 = 100.0;
pub const DEFAULT_FRAME_HZ: [f64; 2] = [60.0, 120.0];

const FIX: &str = "`kvmprof check --example` prints every key";

impl Thresholds {
    /// Parses a TOML thresholds file; `origin` (the path) prefixes errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Thresholds, ThresholdError> {
        let t: Thresholds =
            settings::parse(text, origin, false, FIX).map_err(|e| ThresholdError(e.0))?;
        t.check_values()
            .map_err(|e| ThresholdError(format!("{origin}: {e}")))?;
        Ok(t)
    }

    /// Reads and parses a TOML file.
    pub fn load(path: &std::path::Path) -> Result<Thresholds, ThresholdError> {
        let text = crate::text_file::read(path, "a thresholds file (TOML)")
            .map_err(|e| ThresholdError(e.0))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Applies one `KEY=VALUE` flag: a top-level key (`max_overhead_pct=5`, `fail_on=warn`,
    /// `frame_hz=60,120`) or a reason key (`EPT_MISCONFIG.max_per_s=10000`).
    pub fn set(&mut self, flag: &str) -> Result<(), ThresholdError> {
        let bad = |why: &str| {
            ThresholdError(format!(
                "threshold `{flag}`: {why}; use KEY=VALUE, e.g. max_overhead_pct=5 or EPT_MISCONFIG.max_per_s=10000"
            ))
        };
        let (key, value) = flag.split_once('=').ok_or_else(|| bad("no `=`"))?;
        let (key, value) = (key.trim(), value.trim());
        let num = || -> Result<f64, ThresholdError> {
            value
                .parse::<f64>()
                .map_err(|_| bad(&format!("`{value}` is not a number")))
        };
        if let Some((reason, k)) = key.split_once('.') {
            let i = match self.reasons.iter().position(|r| r.name == reason) {
                Some(i) => i,
                None => {
                    self.reasons.push(ReasonLimit {
                        name: reason.to_string(),
                        ..Default::default()
                    });
                    self.reasons.len() - 1
                }
            };
            let r = &mut self.reasons[i];
            let slot = match k {
                "max_per_s" => &mut r.max_per_s,
                "max_per_vcpu_per_s" => &mut r.max_per_vcpu_per_s,
                "max_p99_us" => &mut r.max_p99_us,
                "max_us" => &mut r.max_us,
                "max_storm_per_s" => &mut r.max_storm_per_s,
                "max_slow_per_s" => &mut r.max_slow_per_s,
                "max_wait_pct" => &mut r.max_wait_pct,
                _ => return Err(bad(&format!("unknown reason key `{k}` (max_per_s, max_per_vcpu_per_s, max_p99_us, max_us, max_storm_per_s, max_slow_per_s, max_wait_pct)"))),
            };
            *slot = Some(num()?);
        } else {
            match key {
                "fail_on" => {
                    self.fail_on = Some(match value {
                        "warn" => FailOn::Warn,
                        "critical" => FailOn::Critical,
                        _ => return Err(bad("fail_on is \"critical\" or \"warn\"")),
                    })
                }
                "frame_hz" => {
                    self.frame_hz = value
                        .split(',')
                        .map(|v| v.trim().parse::<f64>())
                        .collect::<Result<_, _>>()
                        .map_err(|_| bad("frame_hz is a comma-separated list of numbers"))?
                }
                _ => {
                    let slot = self
                        .top_slot(key)
                        .ok_or_else(|| bad(&format!("unknown key `{key}`")))?;
                    *slot = Some(num()?);
                }
            }
        }
        self.check_values()
    }

    fn top_slot(&mut self, key: &str) -> Option<&mut Option<f64>> {
        Some(match key {
            "max_exits_per_s" => &mut self.max_exits_per_s,
            "max_exits_per_vcpu_per_s" => &mut self.max_exits_per_vcpu_per_s,
            "max_overhead_pct" => &mut self.max_overhead_pct,
            "max_p99_us" => &mut self.max_p99_us,
            "max_exit_us" => &mut self.max_exit_us,
            "storm_window_ms" => &mut self.storm_window_ms,
            "max_storm_exits_per_s" => &mut self.max_storm_exits_per_s,
            "frame_budget_pct" => &mut self.frame_budget_pct,
            "frame_budget_us" => &mut self.frame_budget_us,
            "max_slow_per_s" => &mut self.max_slow_per_s,
            "max_slow_dropped" => &mut self.max_slow_dropped,
            "max_wait_pct" => &mut self.max_wait_pct,
            _ => return None,
        })
    }

    /// `other`'s settings win (flags over file); reason limits merge by name.
    pub fn merge(mut self, other: Thresholds) -> Thresholds {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            max_exits_per_s,
            max_exits_per_vcpu_per_s,
            max_overhead_pct,
            max_p99_us,
            max_exit_us,
            storm_window_ms,
            max_storm_exits_per_s,
            frame_budget_pct,
            frame_budget_us,
            fail_on,
            max_slow_per_s,
            max_slow_dropped,
            max_wait_pct
        );
        if !other.frame_hz.is_empty() {
            self.frame_hz = other.frame_hz;
        }
        for r in other.reasons {
            match self.reasons.iter_mut().find(|m| m.name == r.name) {
                Some(m) => {
                    macro_rules! take_r {
                        ($($f:ident),*) => { $( if r.$f.is_some() { m.$f = r.$f; } )* };
                    }
                    take_r!(
                        max_per_s,
                        max_per_vcpu_per_s,
                        max_p99_us,
                        max_us,
                        max_storm_per_s,
                        max_slow_per_s,
                        max_wait_pct
                    );
                }
                None => self.reasons.push(r),
            }
        }
        self
    }

    /// True when nothing would be checked.
    pub fn is_empty(&self) -> bool {
        let top = [
            self.max_exits_per_s,
            self.max_exits_per_vcpu_per_s,
            self.max_overhead_pct,
            self.max_p99_us,
            self.max_exit_us,
            self.max_storm_exits_per_s,
            self.frame_budget_pct,
            self.frame_budget_us,
            self.max_slow_per_s,
            self.max_slow_dropped,
            self.max_wait_pct,
        ];
        top.iter().all(Option::is_none) && self.fail_on.is_none() && self.reasons.is_empty()
    }

    pub fn storm_window_s(&self) -> f64 {
        self.storm_window_ms.unwrap_or(DEFAULT_STORM_WINDOW_MS) / 1000.0
    }

    pub fn frames_hz(&self) -> Vec<f64> {
        if self.frame_hz.is_empty() {
            DEFAULT_FRAME_HZ.to_vec()
        } else {
            self.frame_hz.clone()
        }
    }

    /// Limits must be finite and ≥ 0, windows and frame rates > 0, reasons named.
    fn check_values(&self) -> Result<(), ThresholdError> {
        let neg = |k: &str, v: Option<f64>| match v {
            Some(v) => settings::limit(k, v).map_err(|e| ThresholdError(e.0)),
            None => Ok(()),
        };
        neg("max_exits_per_s", self.max_exits_per_s)?;
        neg("max_exits_per_vcpu_per_s", self.max_exits_per_vcpu_per_s)?;
        neg("max_overhead_pct", self.max_overhead_pct)?;
        neg("max_p99_us", self.max_p99_us)?;
        neg("max_exit_us", self.max_exit_us)?;
        neg("max_storm_exits_per_s", self.max_storm_exits_per_s)?;
        neg("frame_budget_pct", self.frame_budget_pct)?;
        neg("frame_budget_us", self.frame_budget_us)?;
        neg("max_slow_per_s", self.max_slow_per_s)?;
        neg("max_slow_dropped", self.max_slow_dropped)?;
        neg("max_wait_pct", self.max_wait_pct)?;
        if let Some(w) = self.storm_window_ms {
            if !w.is_finite() || w <= 0.0 {
                return Err(ThresholdError(format!(
                    "`storm_window_ms` = {w}: the window must be > 0 ms, e.g. 100"
                )));
            }
        }
        if let Some(hz) = self.frame_hz.iter().find(|h| !h.is_finite() || **h <= 0.0) {
            return Err(ThresholdError(format!(
                "`frame_hz` holds {hz}: frame rates must be > 0, e.g. [60, 120]"
            )));
        }
        for (i, r) in self.reasons.iter().enumerate() {
            if r.name.trim().is_empty() {
                return Err(ThresholdError(format!(
                    "[[reason]] #{}: `name` is missing, e.g. name = \"EPT_MISCONFIG\"",
                    i + 1
                )));
            }
            let k = |f: &str| format!("{}.{f}", r.name);
            neg(&k("max_per_s"), r.max_per_s)?;
            neg(&k("max_per_vcpu_per_s"), r.max_per_vcpu_per_s)?;
            neg(&k("max_p99_us"), r.max_p99_us)?;
            neg(&k("max_us"), r.max_us)?;
            neg(&k("max_storm_per_s"), r.max_storm_per_s)?;
            neg(&k("max_slow_per_s"), r.max_slow_per_s)?;
            neg(&k("max_wait_pct"), r.max_wait_pct)?;
        }
        Ok(())
    }

    /// Checks every reason name against `names` (call before collecting, for exit code 2).
    pub fn validate(&self, names: &ExitNames) -> Result<(), ThresholdError> {
        self.check_values()?;
        for r in &self.reasons {
            if resolve_reason(&r.name, names).is_empty() {
                return Err(ThresholdError(unknown_reason(&r.name)));
            }
        }
        Ok(())
    }
}

pub(crate) fn unknown_reason(name: &str) -> String {
    format!(
        "unknown exit reason `{name}`: use a VMX or SVM name such as EPT_MISCONFIG, MSR_WRITE, npf, msr, or a code such as vmx:49 or svm:0x400"
    )
}

/// (isa, code) pairs a reason name means: a VMX and/or SVM table name (exact, then any case),
/// or `vmx:N` / `svm:N` (decimal or 0x hex).
pub fn resolve_reason(name: &str, names: &ExitNames) -> Vec<(u32, u32)> {
    let name = name.trim();
    if let Some((isa, num)) = name.split_once(':') {
        let isa = match isa.to_ascii_lowercase().as_str() {
            "vmx" => ISA_VMX,
            "svm" => ISA_SVM,
            _ => return Vec::new(),
        };
        let num = num.trim();
        let code = match num.strip_prefix("0x").or_else(|| num.strip_prefix("0X")) {
            Some(h) => u32::from_str_radix(h, 16).ok(),
            None => num.parse().ok(),
        };
        return code.map(|c| vec![(isa, c)]).unwrap_or_default();
    }
    let mut out = Vec::new();
    for isa in [ISA_VMX, ISA_SVM] {
        if let Some(c) = names.code(isa, name) {
            out.push((isa, c));
        }
    }
    if out.is_empty() {
        // Any case: `ept_misconfig`, `NPF`.
        let tables = [(ISA_VMX, &names.vmx), (ISA_SVM, &names.svm)];
        for (isa, map) in tables {
            let builtin = ExitNames::builtin();
            let b = if isa == ISA_VMX {
                builtin.vmx
            } else {
                builtin.svm
            };
            for (c, n) in map.iter().chain(b.iter()) {
                if n.eq_ignore_ascii_case(name) && !out.contains(&(isa, *c)) {
                    out.push((isa, *c));
                }
            }
        }
    }
    out
}
