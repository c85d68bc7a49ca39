//! bcc's `kvmexit` output: counts of exits per reason, without times.
//!
//! ```text
//! PID      TID      KVM_EXIT_REASON                     COUNT
//! 1273903  1273922  EXIT_REASON_EXTERNAL_INTERRUPT      175
//! ```
//! The id columns (`PID`, `TID`, `TIDS`) are optional, and so is the `EXIT_REASON_` prefix.
//! Rows of one PID (of all threads when there is no PID column) are added up per reason into
//! one VM-EXIT table per PID: kvmprof keys exits by VM, and a TID is not a vCPU number.
//! Times are unknown, so the tables have no time columns and none is made up.

use std::collections::HashMap;

use super::{
    import_check,
    perf_layout::Event,
    perf_lex::quote,
    perf_paste::clean,
    perf_rows::{at, Column, ImportError, ImportWarning, PerfRow, Section},
};

type Tables = (Vec<Section>, Vec<ImportWarning>);

/// The tables of a `kvmexit` paste; None when the text has no `KVM_EXIT_REASON  COUNT` header.
pub(crate) fn parse(text: &str) -> Result<Option<Tables>, ImportError> {
    let mut p: Option<Parser> = None;
    let mut banner_pid = None;
    for (i, raw) in text.lines().enumerate() {
        let (n, l) = (i + 1, clean(raw));
        if let Some(pid) = l.split_once("for PID ").and_then(|(_, r)| {
            let d: String = r.chars().take_while(char::is_ascii_digit).collect();
            d.parse::<u32>().ok()
        }) {
            banner_pid = Some(pid);
        }
        let toks: Vec<&str> = l.split_whitespace().collect();
        if let Some(ids) = header(&toks) {
            // A second run's output is a table of its own, not more counts of the first.
            let tables = p
                .take()
                .map(Parser::finish)
                .transpose()?
                .unwrap_or_default();
            p = Some(Parser::new(n, ids, banner_pid, tables));
        } else if let Some(p) = p.as_mut() {
            p.line(n, &l, &toks)?;
        }
    }
    p.map(Parser::finish).transpose()
}

/// `[PID] [TID|TIDS] KVM_EXIT_REASON COUNT` → the id columns.
fn header(toks: &[&str]) -> Option<Vec<String>> {
    let [ids @ .., "KVM_EXIT_REASON", "COUNT"] = toks else {
        return None;
    };
    ids.iter()
        .all(|t| matches!(*t, "PID" | "TID" | "TIDS" | "PIDS"))
        .then(|| ids.iter().map(|t| t.to_string()).collect())
}

struct Parser {
    line: usize,
    ids: Vec<String>,
    banner_pid: Option<u32>,
    /// Tables before this header's, then one per PID in order of first appearance.
    tables: Tables,
    first: usize,
    by_pid: HashMap<Option<u32>, usize>,
    /// (table, reason) → row index.
    index: HashMap<(usize, String), usize>,
    gap: Vec<(usize, String)>,
}

impl Parser {
    fn new(line: usize, ids: Vec<String>, banner_pid: Option<u32>, tables: Tables) -> Self {
        Parser {
            line,
            ids,
            banner_pid,
            first: tables.0.len(),
            tables,
            by_pid: HashMap::new(),
            index: HashMap::new(),
            gap: Vec::new(),
        }
    }

    fn line(&mut self, n: usize, l: &str, toks: &[&str]) -> Result<(), ImportError> {
        if l.is_empty() {
            return Ok(());
        }
        let Some((id_vals, name, count)) = row(toks, self.ids.len()) else {
            self.gap.push((n, quote(l)));
            return Ok(());
        };
        if let Some((first, what)) = self.gap.first() {
            if self.tables.0.len() > self.first {
                self.tables.1.push(ImportWarning::new(
                    *first,
                    format!(
                        "{} line(s) from line {first} ({what} first) inside the kvmexit table of line {} are not rows: skipped",
                        self.gap.len(),
                        self.line
                    ),
                ));
            }
            self.gap.clear();
        }
        let pid_col = self.ids.iter().position(|t| t == "PID");
        let pid = pid_col
            .and_then(|i| id_vals.get(i).copied())
            .or(self.banner_pid);
        let (sections, line) = (&mut self.tables.0, self.line);
        let t = *self.by_pid.entry(pid).or_insert_with(|| {
            sections.push(section(line, pid));
            sections.len() - 1
        });
        let sec = &mut sections[t];
        match self.index.get(&(t, name.to_string())) {
            Some(&i) => {
                let r = &mut sec.rows[i];
                r.samples = r
                    .samples
                    .checked_add(count)
                    .ok_or_else(|| at(n, format!("the counts of {} overflow", quote(name))))?;
            }
            None => {
                self.index.insert((t, name.to_string()), sec.rows.len());
                sec.rows.push(PerfRow {
                    line: n,
                    name: name.to_string(),
                    samples: count,
                    ..Default::default()
                });
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Tables, ImportError> {
        let (sections, mut warnings) = self.tables;
        if sections.len() == self.first {
            return Err(at(
                self.line,
                "a kvmexit header with no rows below it: expected rows like 'HLT  6043' (bcc kvmexit output)",
            ));
        }
        if self.ids.iter().any(|t| t.starts_with("TID")) {
            warnings.push(ImportWarning::new(
                self.line,
                "the threads' counts are added up per VM (a thread id is not a vCPU number)",
            ));
        }
        for sec in &sections[self.first..] {
            import_check::check(sec, &mut warnings)?;
        }
        Ok((sections, warnings))
    }
}

/// `[ids…] [EXIT_REASON_]NAME COUNT`.
fn row<'a>(toks: &[&'a str], ids: usize) -> Option<(Vec<u32>, &'a str, u64)> {
    if toks.len() != ids + 2 {
        return None;
    }
    let id_vals: Vec<u32> = toks[..ids]
        .iter()
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    let name = toks[ids];
    let name = name.strip_prefix("EXIT_REASON_").unwrap_or(name);
    let named = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let count = toks[ids + 1].parse().ok()?;
    named.then_some((id_vals, name, count))
}

fn section(line: usize, pid: Option<u32>) -> Section {
    Section::new(
        line,
        pid.into_iter().collect(),
        None,
        Event::Vmexit,
        vec![Column::Samples],
    )
}
