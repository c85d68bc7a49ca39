//! The parsed form of perf text: tables (`Section`) of rows (`PerfRow`) and what reading them
//! refused or read around. Below the readers (perf_parse.rs, kvmexit.rs), the builder
//! (import_build.rs) and perf_import.rs, which all use it, so none imports another back.

use std::fmt;

use super::perf_layout::{Event, PerfLayout};

/// Why perf text could not be read; one line, with the line number where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("{file}line {line}: {msg}")]
    At {
        file: String,
        line: usize,
        msg: String,
    },
    #[error("{file}no perf kvm stat table found: expected a header line like 'VM-EXIT  Samples  Samples%  Time%  Min Time  Max Time  Avg time'")]
    NoTable { file: String },
}

impl ImportError {
    /// The same error, prefixed with the file it came from.
    pub fn in_file(self, path: &str) -> ImportError {
        let file = format!("{path}: ");
        match self {
            ImportError::At { line, msg, .. } => ImportError::At { file, line, msg },
            ImportError::NoTable { .. } => ImportError::NoTable { file },
        }
    }
}

pub(crate) fn at(line: usize, msg: impl Into<String>) -> ImportError {
    ImportError::At {
        file: String::new(),
        line,
        msg: msg.into(),
    }
}

/// A numeric column of a perf table, in header order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Samples,
    SamplesPct,
    TimePct,
    Min,
    Max,
    Avg,
    /// perf ≥ 6.4's `Time (ns)`: the row's total handling time.
    TotalTime,
}

/// One table row as printed (times in µs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerfRow {
    /// 1-based line number.
    pub line: usize,
    pub name: String,
    pub samples: u64,
    pub samples_pct: Option<f64>,
    pub time_pct: Option<f64>,
    pub min_us: Option<f64>,
    pub max_us: Option<f64>,
    pub avg_us: Option<f64>,
    /// Total handling time (perf ≥ 6.4's `Time (ns)` column).
    pub total_us: Option<f64>,
    /// The `( +- x% )` value, when printed.
    pub rel_err_pct: Option<f64>,
    /// How far printing may have rounded the values.
    pub rounding: Rounding,
}

/// Half the last printed digit of a row's percentages and of its times (µs): how far each
/// printed value may be from the true one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rounding {
    pub pct: f64,
    pub us: f64,
    /// The Avg time's own (a row may print `9us` beside `10.75us`).
    pub avg_us: f64,
}

/// One table with what the "Analyze events" line above it said.
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    /// Line of the header.
    pub line: usize,
    /// `pid(s)` of the section; empty for all VMs.
    pub pids: Vec<u32>,
    /// `VCPU N`; None for all VCPUs.
    pub vcpu: Option<u32>,
    pub event: Event,
    /// Which perf printed it: shares and means of the 6.4 layout are cut, not rounded.
    pub layout: PerfLayout,
    pub columns: Vec<Column>,
    pub rows: Vec<PerfRow>,
    /// From the footer, when present.
    pub total_samples: Option<u64>,
    pub total_time_us: Option<f64>,
    /// Line of the footer, and how far its printed time may be rounded (µs).
    pub footer_line: Option<usize>,
    pub total_time_rounding: f64,
    pub lost_events: Option<u64>,
    /// The name column's width when the header right-aligns it in one of print_result's two
    /// widths (20 before perf 6.4, 40 since); None for other headers (pasted, left-aligned).
    pub name_width: Option<usize>,
    /// Lines between this table's rows that were not rows and were read around (a stray
    /// remark, a damaged row): each was reported in a warning.
    pub skipped: Vec<usize>,
}

impl Section {
    /// A table whose header is at `line`, before any row or footer is read.
    pub(crate) fn new(
        line: usize,
        pids: Vec<u32>,
        vcpu: Option<u32>,
        event: Event,
        columns: Vec<Column>,
    ) -> Section {
        Section {
            line,
            pids,
            vcpu,
            event,
            layout: PerfLayout::Classic,
            columns,
            rows: Vec::new(),
            total_samples: None,
            total_time_us: None,
            footer_line: None,
            total_time_rounding: 0.0,
            lost_events: None,
            name_width: None,
            skipped: Vec::new(),
        }
    }
}

/// What the import read around rather than refused, with the line it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportWarning {
    /// 1-based line number.
    pub line: usize,
    pub msg: String,
}

impl ImportWarning {
    pub(crate) fn new(line: usize, msg: impl Into<String>) -> Self {
        ImportWarning {
            line,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for ImportWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}
