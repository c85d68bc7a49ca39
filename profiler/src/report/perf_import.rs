//! Reads `perf kvm stat report --stdio` (and `live`) text back into kvmprof's model, so report,
//! diff and advise run on perf output people already have, as they paste it.
//!
//! Accepted: new perf (40-column names), old perf (20 columns, or fewer columns: no Min/Max,
//! only Samples/Samples%/Time%), perf ≥ 6.4 (`Event name … Sample% … Mean Time (ns)`, any
//! subset of its columns, integer ns), bcc `kvmexit` counts (`kvmexit`), VMX or SVM names
//! (names may contain spaces: `PF excp`), VM-EXIT / MMIO Access / IO Port Access / MSR Access
//! tables, several "Analyze events" sections, kvmprof's own tables. What pasting does to a
//! table is undone (`perf_paste`, `perf_parse`): any Unicode space as a separator, `> `
//! quoting, boxes and rules, markdown fences and prose around tables, rows and headers a mail
//! client wrapped, rows quoted without their header, `........` cuts, perf's stderr between
//! rows. Columns are read from the table's header line; values are taken from the right of
//! each row.
//!
//! Each section becomes cumulative counters since an empty sample (see `import_build`):
//! count = Samples, sum = Avg × Samples, min / max as printed; perf keeps no histogram, so
//! percentiles (and the `±` estimate) are unavailable for imported rows. A line that looks like
//! a table row but cannot be read is an error naming the line; prose after a table ends it,
//! unless rows follow: then it is skipped with a warning (see [`Section::skipped`]). Each table
//! is checked for numbers that contradict each other (`import_check`).

pub use super::perf_rows::{Column, ImportError, ImportWarning, PerfRow, Rounding, Section};
use super::{import_build as build, kvmexit, perf_layout::Event, perf_parse, sub_times::SubTimes};
use std::collections::HashMap;

use crate::{
    decode::ExitNames,
    model::View,
    sample::{Key, Sample},
};

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
    /// perf's `( +- x% )` of each exit key one printed row made (kvmprof keeps no sum of
    /// squares to compute it again).
    pub rel_err: HashMap<Key, f64>,
    /// MSR / IO port / MMIO access times, as printed (kvmprof's evidence holds counts only).
    pub sub_times: SubTimes,
}

impl PerfImport {
    /// The model's view of the imported counters (no duration: rates are 0).
    pub fn view(&self) -> View {
        crate::model::compute(&self.older, &self.newer, &self.names)
    }

    /// The name column's width all classic tables had, if they agree (see `Section::name_width`).
    /// The MSR / IO port / MMIO tables printed with their time columns but without a row
    /// (`--event mmio` of a guest that made no MMIO): their event, and whether they had the
    /// Min/Max columns.
    pub fn empty_timed(&self) -> Vec<(Event, bool)> {
        self.sections
            .iter()
            .filter(|s| s.event != Event::Vmexit && s.columns.contains(&Column::TimePct))
            .filter(|s| s.rows.iter().all(|r| r.samples == 0))
            .map(|s| (s.event, s.columns.contains(&Column::Max)))
            .collect()
    }

    pub fn name_width(&self) -> Option<usize> {
        let mut widths = self
            .sections
            .iter()
            .filter(|s| s.layout == super::PerfLayout::Classic)
            .map(|s| s.name_width);
        let first = widths.next()??;
        widths.all(|w| w == Some(first)).then_some(first)
    }
}

/// Parses perf text and builds samples from it.
pub fn import(text: &str) -> Result<PerfImport, ImportError> {
    let (sections, mut warnings) = parse(text)?;
    let built = build::samples(&sections, &mut warnings)?;
    Ok(PerfImport {
        sections,
        older: Sample::default(),
        newer: built.sample,
        names: built.names,
        warnings,
        rel_err: built.rel_err,
        sub_times: built.sub_times,
    })
}

/// Parses perf text (or bcc `kvmexit` output) into its tables, without interpreting names;
/// one pass, each line once (a line wrapped by a mail client is joined to the one above).
pub fn parse(text: &str) -> Result<(Vec<Section>, Vec<ImportWarning>), ImportError> {
    let (sections, warnings) = match kvmexit::parse(text)? {
        Some(read) => read,
        None => perf_parse::parse(text)?,
    };
    if sections.is_empty() {
        return Err(ImportError::NoTable {
            file: String::new(),
        });
    }
    Ok((sections, warnings))
}
