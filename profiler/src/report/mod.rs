//! Reports of a whole session: perf-kvm-stat tables, JSON, CSV, HTML, N-way diffs, and the import of
//! `perf kvm stat report` text so the same renderings and diffs run on perf output.
//!
//! Every renderer takes a [`Data`]: the model's [`View`] plus the sub-reason [`Evidence`] counts
//! (MSR / port / MMIO), built from two samples, a recording, or perf text ([`load`] sniffs which).

pub mod access;
pub mod csv;
pub mod diff;
pub mod diff_chart;
pub mod diff_slow;
pub mod diff_table;
mod evidence;
pub mod html;
mod import_build;
mod import_check;
mod import_names;
mod import_overlap;
mod import_split;
mod import_time;
pub mod json;
mod kvmexit;
pub mod perf_import;
mod perf_layout;
mod perf_lex;
mod perf_parse;
mod perf_paste;
mod perf_rows;
pub mod perf_screen;
pub mod perf_table;
mod perf_table64;
mod printf;
mod rows;
pub mod slow;
mod sub_times;

#[cfg(test)]
mod tests_attribution;
#[cfg(test)]
mod tests_diff;
#[cfg(test)]
mod tests_diff_chart;
#[cfg(test)]
mod tests_diff_n;
#[cfg(test)]
mod tests_fidelity;
#[cfg(test)]
mod tests_import;
#[cfg(test)]
mod tests_import_hostile;
#[cfg(test)]
mod tests_import_kvmexit;
#[cfg(test)]
mod tests_import_paste;
#[cfg(test)]
mod tests_names;
#[cfg(test)]
mod tests_perf612;
#[cfg(test)]
mod tests_slow;
#[cfg(test)]
mod tests_table;

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

pub use diff::{diff, diff_with, Diff, DiffOptions};
pub use evidence::Evidence;
pub use perf_import::{import, ImportError, ImportWarning, PerfImport};
pub use perf_layout::{Event, PerfLayout, SortBy};
pub use perf_table::{render as perf_table, TableOptions};
pub use sub_times::{SubTime, SubTimes};

use crate::{
    decode::ExitNames,
    model::{self, View},
    sample::{Key, Sample},
};

/// Errors of the report module: one line each, saying what to change.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Vm(#[from] crate::model::SelectError),
    #[error(
        "--vcpu cannot be used with --event {event}: kvmprof counts {what} per VM, not per vCPU"
    )]
    VcpuWithEvidence {
        event: &'static str,
        what: &'static str,
    },
    // Transparent: the inner message is the whole message, so a printed chain has it once.
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{path}: cannot read: {cause}")]
    Io { path: String, cause: std::io::Error },
    /// Arguments that do not fit together; the message says how to fix them.
    #[error("{0}")]
    Usage(String),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Text(#[from] crate::text_file::TextFileError),
}

/// What perf text files must hold (ends their errors).
const PERF_TEXT: &str = "perf kvm stat report text";

/// What a report is made from: the session's view and its sub-reason evidence.
#[derive(Clone, Debug, Default)]
pub struct Data {
    pub view: View,
    pub evidence: Evidence,
    /// Where it came from (a path, "perf text", "live"), for diff headings.
    pub label: String,
    /// Whether the latency histograms exist (false for perf text: no percentiles; its ± error
    /// only as perf printed it, in `rel_err`).
    pub has_hist: bool,
    /// Notes for the user (damaged recording frames, inconsistent perf totals, ...).
    pub warnings: Vec<String>,
    /// Whose exits these are, when perf text said so for all of its tables ("Analyze events
    /// for pid(s) 777, VCPU 1"): the tables print that scope unless asked for another.
    pub scope: Option<Scope>,
    /// perf's `( +- x% )` per exit key, as the perf text printed it (see [`PerfImport`]).
    pub rel_err: HashMap<Key, f64>,
    /// MSR / IO port / MMIO access times as perf text printed them (see `sub_times`).
    pub sub_times: SubTimes,
    /// The name column's width of the perf text's classic tables, when they all had the same
    /// (perf before 6.4 prints `%20s`, since `%40s`): printed back in it. None: NAME_WIDTH.
    pub perf_name_width: Option<usize>,
    /// MSR / IO port / MMIO tables the perf text printed with times but no row, and whether
    /// with Min/Max (`PerfImport::empty_timed`): printed back so, not as a counts-only table.
    pub perf_empty: Vec<(Event, bool)>,
    /// The slow-exit log over the session's span; None: not recorded, or not read (only
    /// `diff` and the HTML page read it, `cmd::html::slow_log`: it takes every frame).
    pub slow: Option<slow::Log>,
}

/// perf's "Analyze events for" target: `pid(s) 12,34` (empty: all VMs) and `VCPU N`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub pids: Vec<u32>,
    pub vcpu: Option<u32>,
}

impl Scope {
    /// What every table of `imp` says alike: its pids, its vCPU (tables of one VM's vCPUs 0
    /// and 1 are that VM's, of all its vCPUs).
    fn of(imp: &PerfImport) -> Option<Scope> {
        let (first, rest) = imp.sections.split_first()?;
        let pids = if rest.iter().all(|s| s.pids == first.pids) {
            first.pids.clone()
        } else {
            Vec::new()
        };
        let vcpu = first
            .vcpu
            .filter(|v| rest.iter().all(|s| s.vcpu == Some(*v)));
        (!pids.is_empty() || vcpu.is_some()).then_some(Scope { pids, vcpu })
    }
}

impl Data {
    /// From two cumulative samples (`older` may be `Sample::default()`: since attach).
    pub fn from_samples(older: &Sample, newer: &Sample, names: &ExitNames, label: &str) -> Data {
        Data {
            view: model::compute(older, newer, names),
            evidence: Evidence::between(older, newer),
            label: label.to_string(),
            has_hist: true,
            warnings: Vec::new(),
            scope: None,
            rel_err: HashMap::new(),
            sub_times: SubTimes::new(),
            perf_name_width: None,
            perf_empty: Vec::new(),
            slow: None,
        }
    }

    /// From `perf kvm stat report --stdio` text; `label` (its path) starts each error and
    /// warning.
    pub fn from_perf_text(text: &str, label: &str) -> Result<Data, ReportError> {
        let imp = import(text).map_err(|e| e.in_file(label))?;
        let mut d = Data::from_import(&imp, label);
        d.warnings = imp
            .warnings
            .iter()
            .map(|w| format!("{label}: {w}"))
            .collect();
        Ok(d)
    }

    /// From an imported perf report (its warnings are the caller's to show).
    pub fn from_import(imp: &PerfImport, label: &str) -> Data {
        Data {
            view: imp.view(),
            evidence: Evidence::between(&Sample::default(), &imp.newer),
            label: label.to_string(),
            has_hist: false,
            warnings: Vec::new(),
            scope: Scope::of(imp),
            rel_err: imp.rel_err.clone(),
            sub_times: imp.sub_times.clone(),
            perf_name_width: imp.name_width(),
            perf_empty: imp.empty_timed(),
            slow: None,
        }
    }

    /// The empty timed table the perf text had for `event`, if its accesses are still none
    /// here (`keyed`): Some(whether it had Min/Max).
    pub(crate) fn empty_timed(&self, event: Event, keyed: &BTreeMap<String, u64>) -> Option<bool> {
        let e = self.perf_empty.iter().find(|(e, _)| *e == event);
        e.filter(|_| keyed.is_empty()).map(|(_, min_max)| *min_max)
    }

    /// The name column's width classic tables print with.
    pub(crate) fn name_width(&self) -> usize {
        self.perf_name_width.unwrap_or(perf_layout::NAME_WIDTH)
    }
}

/// Reads and imports perf text from `path`: the name to show, and the tables and samples.
pub fn import_perf_file(path: &Path) -> Result<(String, PerfImport), ReportError> {
    let shown = path.display().to_string();
    let imp = import(&crate::text_file::read(path, PERF_TEXT)?).map_err(|e| e.in_file(&shown))?;
    Ok((shown, imp))
}
