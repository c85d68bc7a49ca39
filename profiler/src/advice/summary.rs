//! The advice in brief, for the consumers that gate or export on it (check, serve).

use serde::Serialize;

use super::{Report, Severity};

/// One advice finding in brief: what `check --fail-on` and the exporter's gauges need.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdviceItem {
    pub pid: u32,
    pub vm: String,
    pub rule: String,
    pub severity: Severity,
    pub title: String,
}

/// The advice findings of the run, most important first.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AdviceSummary {
    pub findings: Vec<AdviceItem>,
}

impl From<&Report> for AdviceSummary {
    fn from(r: &Report) -> Self {
        let mut findings: Vec<AdviceItem> = r
            .vms
            .iter()
            .flat_map(|v| {
                v.findings.iter().map(move |f| AdviceItem {
                    pid: v.pid,
                    vm: v.name.clone(),
                    rule: f.rule.clone(),
                    severity: f.severity,
                    title: f.title.clone(),
                })
            })
            .collect();
        // Stable: most severe first, the engine's order within a severity.
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        AdviceSummary { findings }
    }
}
