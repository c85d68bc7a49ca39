//! A whole session's heatmap rows: for every interval between consecutive samples, each
//! (VM, reason)'s exits per latency band, as the model's interval view counts them (so a
//! key made anew, a reused pid or a reset map count as the tables count them).

use std::collections::BTreeMap;

use super::{cells, Cells};
use crate::{decode::ExitNames, model, sample::Sample, text::printable};

/// One interval: start and end in ns since the session's first sample, and the wall clock
/// at its start (ms since the Unix epoch; 0 when the sample has none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interval {
    pub start_ns: u64,
    pub end_ns: u64,
    pub start_unix_ms: u64,
}

/// A heatmap row: a VM's reason, over all its vCPUs (`vcpu` None) or on one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowKey {
    pub pid: u32,
    pub vcpu: Option<u32>,
    pub isa: u32,
    pub reason: u32,
}

/// A row's names (the latest seen) and its non-empty intervals: (interval index, cells).
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub vm_name: String,
    pub isa_name: String,
    pub name: String,
    pub hlt: bool,
    pub cols: Vec<(u32, Cells)>,
}

impl Row {
    /// Exits over the whole session.
    pub fn total(&self) -> u64 {
        self.cols
            .iter()
            .flat_map(|(_, c)| c.iter().map(|x| x.1))
            .sum()
    }
}

/// The session's intervals and heatmap rows.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub intervals: Vec<Interval>,
    pub rows: BTreeMap<RowKey, Row>,
}

/// Which rows to keep.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this VM.
    pub pid: Option<u32>,
    /// One vCPU's rows instead of the VM's (all vCPUs').
    pub vcpu: Option<u32>,
    /// Only reasons of this name (any case); an error when the session has none.
    pub reason: Option<String>,
    /// Only reasons of these names (the HTML report's top ones), silently.
    pub only: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    #[error(
        "no exit reason `{wanted}` in this session (reasons: {known}): give one of those names"
    )]
    NoReason { wanted: String, known: String },
    #[error(transparent)]
    Read(#[from] anyhow::Error),
}

/// The heatmap rows of `samples` (in order) that `f` keeps. Reads one sample at a time.
pub fn collect(
    samples: impl Iterator<Item = anyhow::Result<Sample>>,
    names: &ExitNames,
    f: &Filter,
) -> Result<Series, SeriesError> {
    let mut out = Series::default();
    let mut known: Vec<String> = Vec::new();
    let mut first_ns = None;
    let mut prev: Option<Sample> = None;
    for s in samples {
        let s = s?;
        let first = *first_ns.get_or_insert(s.mono_ns);
        if let Some(p) = &prev {
            let i = out.intervals.len() as u32;
            out.intervals.push(Interval {
                start_ns: p.mono_ns.saturating_sub(first),
                end_ns: s.mono_ns.saturating_sub(first),
                start_unix_ms: p.wall_ms,
            });
            let view = model::compute(p, &s, names);
            for vm in view.vms.iter().filter(|v| f.pid.is_none_or(|p| p == v.pid)) {
                let rows = match f.vcpu {
                    None => &vm.reasons,
                    Some(c) => match vm.vcpus.iter().find(|x| x.vcpu == c) {
                        Some(x) => &x.reasons,
                        None => continue,
                    },
                };
                for r in rows {
                    if !known.iter().any(|k| *k == *r.name) {
                        known.push(r.name.to_string());
                    }
                    if f.reason
                        .as_ref()
                        .is_some_and(|w| !w.eq_ignore_ascii_case(&r.name))
                    {
                        continue;
                    }
                    let c = cells(&r.hist);
                    if c.is_empty() {
                        continue;
                    }
                    let key = RowKey {
                        pid: vm.pid,
                        vcpu: f.vcpu,
                        isa: r.isa,
                        reason: r.reason,
                    };
                    let row = out.rows.entry(key).or_default();
                    row.vm_name.clone_from(&vm.name);
                    row.isa_name = r.isa_name.to_string();
                    row.name = r.name.to_string();
                    row.hlt = r.hlt;
                    row.cols.push((i, c));
                }
            }
        }
        prev = Some(s);
    }
    if let Some(w) = &f.reason {
        if !known.iter().any(|k| k.eq_ignore_ascii_case(w)) {
            known.sort();
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            return Err(SeriesError::NoReason {
                wanted: printable(w).into_owned(),
                known: printable(&known).into_owned(),
            });
        }
    }
    Ok(out)
}
