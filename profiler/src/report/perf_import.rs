//! Reads `perf kvm stat report --stdio` (and `live`) text back into kvmprof's model, so report,
//! diff and advise run on perf output people already have.
//!
//! Accepted: new perf (40-column names) and old perf (20 columns, or no Min/Max columns), tabs or
//! any whitespace (NBSP included), with or without the `( +- x% )` column, `> ` e-mail quoting,
//! VMX or SVM names (names may contain spaces: `PF excp`), VM-EXIT / MMIO Access / IO Port
//! Access / MSR Access tables, several "Analyze events" sections, kvmprof's own tables.
//! Columns are read from the table's header line; values are taken from the right of each row.
//!
//! Each section becomes cumulative counters since an empty sample (see `import_build`):
//! count = Samples, sum = Avg × Samples, min / max as printed; perf keeps no histogram, so
//! percentiles (and the `±` estimate) are unavailable for imported rows. A line that looks like
//! a table row but cannot be read is an error naming the line; prose after a table ends it,
//! unless rows follow: then it is skipped with a warning (see [`Section::skipped`]). Each table
//! is checked for numbers that contradict each other (`import_check`).

use std::fmt;

use super::{
    import_build as build, import_check,
    perf_lex::{
        clean, find_after, looks_like_row, parse_footer, parse_header, parse_row, parse_target,
        quote,
    },
    perf_table::Event,
};
use crate::{decode::ExitNames, model::View, sample::Sample};

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
    pub columns: Vec<Column>,
    pub rows: Vec<PerfRow>,
    /// From the footer, when present.
    pub total_samples: Option<u64>,
    pub total_time_us: Option<f64>,
    /// Line of the footer, and how far its printed time may be rounded (µs).
    pub footer_line: Option<usize>,
    pub total_time_rounding: f64,
    pub lost_events: Option<u64>,
    /// Lines between this table's rows that were not rows and were read around (a stray
    /// remark, a damaged row): each was reported in a warning.
    pub skipped: Vec<usize>,
}

/// Parsed perf text and the samples made from it.
#[derive(Clone, Debug, PartialEq)]
pub struct PerfImport {
    pub sections: Vec<Section>,
    /// Always `Sample::default()`: perf's numbers are totals since its start.
    pub older: Sample,
    pub newer: Sample,
    /// Built-in names plus the names this text used that no table knows (synthetic codes).
    pub names: ExitNames,
    pub warnings: Vec<ImportWarning>,
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

impl PerfImport {
    /// The model's view of the imported counters (no duration: rates are 0).
    pub fn view(&self) -> View {
        crate::model::compute(&self.older, &self.newer, &self.names)
    }
}

/// Parses perf text and builds samples from it.
pub fn import(text: &str) -> Result<PerfImport, ImportError> {
    let (sections, mut warnings) = parse(text)?;
    let (newer, names) = build::samples(&sections, &mut warnings)?;
    Ok(PerfImport {
        sections,
        older: Sample::default(),
        newer,
        names,
        warnings,
    })
}

/// Parses perf text into its tables, without interpreting names; one pass, each line once.
pub fn parse(text: &str) -> Result<(Vec<Section>, Vec<ImportWarning>), ImportError> {
    let mut p = Parser::default();
    for (i, raw) in text.lines().enumerate() {
        p.line(i + 1, clean(raw))?;
    }
    p.close()?;
    if p.sections.is_empty() {
        return Err(ImportError::NoTable {
            file: String::new(),
        });
    }
    Ok((p.sections, p.warnings))
}

#[derive(Default)]
struct Parser {
    sections: Vec<Section>,
    warnings: Vec<ImportWarning>,
    /// What the last "Analyze events for" line named.
    target: (Vec<u32>, Option<u32>),
    open: Option<Open>,
}

/// The table being read, and the non-row lines seen since its last row: prose after the
/// table if no row follows them, lines skipped inside it if one does.
struct Open {
    sec: Section,
    gap: Vec<usize>,
    gap_first: String,
}

impl Parser {
    fn line(&mut self, n: usize, line: &str) -> Result<(), ImportError> {
        if line.is_empty() {
            return Ok(());
        }
        if let Some(rest) = find_after(line, "Analyze events for") {
            self.close()?;
            self.target = parse_target(rest).map_err(|m| at(n, m))?;
            return Ok(());
        }
        if let Some((event, columns)) = parse_header(line).map_err(|m| at(n, m))? {
            self.close()?;
            self.open = Some(Open {
                sec: Section {
                    line: n,
                    pids: self.target.0.clone(),
                    vcpu: self.target.1,
                    event,
                    columns,
                    rows: Vec::new(),
                    total_samples: None,
                    total_time_us: None,
                    footer_line: None,
                    total_time_rounding: 0.0,
                    lost_events: None,
                    skipped: Vec::new(),
                },
                gap: Vec::new(),
                gap_first: String::new(),
            });
            return Ok(());
        }
        if line.starts_with("Total Samples") {
            let Some(o) = self.open.as_mut() else {
                let w = ImportWarning::new(n, "footer without a table above it");
                self.warnings.push(w);
                return Ok(());
            };
            let (samples, time) = parse_footer(line).map_err(|m| at(n, m))?;
            o.resume(n, &mut self.warnings);
            o.sec.total_samples = Some(samples);
            o.sec.footer_line = Some(n);
            if let Some((t, r)) = time {
                o.sec.total_time_us = Some(t);
                o.sec.total_time_rounding = r;
            }
            return self.close();
        }
        if let Some(rest) = line.strip_prefix("Lost events:") {
            let lost = rest.trim().parse::<u64>().ok();
            let open = self.open.as_mut().map(|o| &mut o.sec);
            if let Some(s) = open.or(self.sections.last_mut()) {
                s.lost_events = lost;
            }
            return Ok(());
        }
        let Some(o) = self.open.as_mut() else {
            return Ok(());
        };
        match parse_row(line, &o.sec.columns, n) {
            Ok(r) => {
                o.resume(n, &mut self.warnings);
                o.sec.rows.push(r);
            }
            Err(msg) if o.gap.is_empty() && looks_like_row(line) => return Err(at(n, msg)),
            // Prose after the table, or a stray line inside it: which, the next row tells.
            Err(_) => {
                if o.gap.is_empty() {
                    o.gap_first = quote(line);
                }
                o.gap.push(n);
            }
        }
        Ok(())
    }

    /// Ends the open table: the lines after its last row were prose, not part of it.
    fn close(&mut self) -> Result<(), ImportError> {
        let Some(o) = self.open.take() else {
            return Ok(());
        };
        import_check::check(&o.sec, &mut self.warnings)?;
        self.sections.push(o.sec);
        Ok(())
    }
}

impl Open {
    /// The table goes on at line `n`: the non-row lines before it were inside it.
    fn resume(&mut self, n: usize, warnings: &mut Vec<ImportWarning>) {
        let Some(&first) = self.gap.first() else {
            return;
        };
        let k = self.gap.len();
        let (what, lost) = if k == 1 {
            (
                format!("{} is not a row", self.gap_first),
                "if it was a damaged row, that row",
            )
        } else {
            let last = self.gap[k - 1];
            let what = format!(
                "{k} lines ({first}–{last}, the first {}) are not rows",
                self.gap_first
            );
            (what, "any damaged row among them")
        };
        let msg = format!(
            "inside the {} table of line {}, {what}: skipped; the table goes on at line {n} ({lost} is missing)",
            self.sec.event.header(),
            self.sec.line
        );
        warnings.push(ImportWarning::new(first, msg));
        self.sec.skipped.append(&mut self.gap);
    }
}
