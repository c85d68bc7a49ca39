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
    perf_import::{at, Column, ImportError, ImportWarning, PerfRow, Section},
    perf_lex::quote,
    perf_paste::clean,
    perf_table::Event,
};

/// The tables of a `kvmexit` paste; None when the text has no `KVM_EXIT_REASON  COUNT` header.
#[allow(clippy::type_complexity)]
pub(crate) fn parse(text: &str) -> Result<Option<(Vec<Section>, Vec<ImportWarning>)>, ImportError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, clean(l)));
    let mut banner_pid = None;
    let (head_line, ids) = loop {
        let Some((n, l)) = lines.next() else {
            return Ok(None);
        };
        if let Some(p) = l.split_once("for PID ").and_then(|(_, r)| {
            let d: String = r.chars().take_while(char::is_ascii_digit).collect();
            d.parse::<u32>().ok()
        }) {
            banner_pid = Some(p);
        }
        let toks: Vec<&str> = l.split_whitespace().collect();
        if let [ids @ .., "KVM_EXIT_REASON", "COUNT"] = toks.as_slice() {
            if ids
                .iter()
                .all(|t| matches!(*t, "PID" | "TID" | "TIDS" | "PIDS"))
            {
                break (n, ids.iter().map(|t| t.to_string()).collect::<Vec<_>>());
            }
        }
    };
    let pid_col = ids.iter().position(|t| t == "PID");
    // (pid, reason) → row index, per PID table in order of first appearance.
    let mut tables: Vec<Section> = Vec::new();
    let mut by_pid: HashMap<Option<u32>, usize> = HashMap::new();
    let mut index: HashMap<(usize, String), usize> = HashMap::new();
    let mut warnings = Vec::new();
    let threads = ids.iter().any(|t| t.starts_with("TID"));
    let (mut gap, mut rows) = (Vec::new(), 0usize);
    for (n, l) in lines {
        if l.is_empty() {
            continue;
        }
        let toks: Vec<&str> = l.split_whitespace().collect();
        let Some((id_vals, name, count)) = row(&toks, ids.len()) else {
            gap.push((n, quote(&l)));
            continue;
        };
        if let Some((first, what)) = gap.first() {
            if rows > 0 {
                warnings.push(ImportWarning::new(
                    *first,
                    format!(
                        "{} line(s) from line {first} ({what} first) inside the kvmexit table of line {head_line} are not rows: skipped",
                        gap.len()
                    ),
                ));
            }
            gap.clear();
        }
        rows += 1;
        let pid = pid_col.and_then(|i| id_vals.get(i).copied()).or(banner_pid);
        let t = *by_pid.entry(pid).or_insert_with(|| {
            tables.push(section(head_line, pid));
            tables.len() - 1
        });
        let sec = &mut tables[t];
        match index.get(&(t, name.to_string())) {
            Some(&i) => {
                let r = &mut sec.rows[i];
                r.samples = r
                    .samples
                    .checked_add(count)
                    .ok_or_else(|| at(n, format!("the counts of {} overflow", quote(name))))?;
            }
            None => {
                index.insert((t, name.to_string()), sec.rows.len());
                sec.rows.push(PerfRow {
                    line: n,
                    name: name.to_string(),
                    samples: count,
                    ..Default::default()
                });
            }
        }
    }
    if tables.is_empty() {
        return Err(at(
            head_line,
            "a kvmexit header with no rows below it: expected rows like 'HLT  6043' (bcc kvmexit output)",
        ));
    }
    if threads {
        warnings.push(ImportWarning::new(
            head_line,
            "the threads' counts are added up per VM (a thread id is not a vCPU number)",
        ));
    }
    for sec in &tables {
        import_check::check(sec, &mut warnings)?;
    }
    Ok(Some((tables, warnings)))
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
    Section {
        line,
        pids: pid.into_iter().collect(),
        vcpu: None,
        event: Event::Vmexit,
        columns: vec![Column::Samples],
        rows: Vec::new(),
        total_samples: None,
        total_time_us: None,
        footer_line: None,
        total_time_rounding: 0.0,
        lost_events: None,
        skipped: Vec::new(),
    }
}
