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
//! a table row but cannot be read is an error naming the line; prose after a table ends it.

use super::{import_build as build, perf_table::Event};
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

fn at(line: usize, msg: impl Into<String>) -> ImportError {
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
    pub lost_events: Option<u64>,
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
    pub warnings: Vec<String>,
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

/// Parses perf text into its tables, without interpreting names.
pub fn parse(text: &str) -> Result<(Vec<Section>, Vec<String>), ImportError> {
    let mut sections: Vec<Section> = Vec::new();
    let mut warnings = Vec::new();
    let mut target: (Vec<u32>, Option<u32>) = (Vec::new(), None);
    let mut open: Option<Section> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = clean(raw);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = find_after(line, "Analyze events for") {
            close(&mut open, &mut sections, &mut warnings);
            target = parse_target(rest).map_err(|m| at(n, m))?;
            continue;
        }
        if let Some((event, columns)) = parse_header(line).map_err(|m| at(n, m))? {
            close(&mut open, &mut sections, &mut warnings);
            open = Some(Section {
                line: n,
                pids: target.0.clone(),
                vcpu: target.1,
                event,
                columns,
                rows: Vec::new(),
                total_samples: None,
                total_time_us: None,
                lost_events: None,
            });
            continue;
        }
        if line.starts_with("Total Samples") {
            match open.as_mut() {
                Some(s) => parse_footer(s, line, n)?,
                None => warnings.push(format!("line {n}: footer without a table above it")),
            }
            close(&mut open, &mut sections, &mut warnings);
            continue;
        }
        if let Some(rest) = line.strip_prefix("Lost events:") {
            let lost = rest.trim().parse::<u64>().ok();
            if let Some(s) = open.as_mut().or(sections.last_mut()) {
                s.lost_events = lost;
            }
            continue;
        }
        let Some(s) = open.as_mut() else { continue };
        match parse_row(line, &s.columns, n) {
            Ok(r) => s.rows.push(r),
            Err(msg) if looks_like_row(line) => return Err(at(n, msg)),
            // Prose after a table (a signature, a remark) ends it.
            Err(_) => close(&mut open, &mut sections, &mut warnings),
        }
    }
    close(&mut open, &mut sections, &mut warnings);
    if sections.is_empty() {
        return Err(ImportError::NoTable {
            file: String::new(),
        });
    }
    Ok((sections, warnings))
}

fn close(open: &mut Option<Section>, out: &mut Vec<Section>, warnings: &mut Vec<String>) {
    let Some(s) = open.take() else { return };
    let sum: u64 = s.rows.iter().map(|r| r.samples).sum();
    if let Some(t) = s.total_samples.filter(|t| *t != sum) {
        warnings.push(format!(
            "line {}: the rows add up to {sum} samples but the footer says {t} (table cut short?)",
            s.line
        ));
    }
    out.push(s);
}

/// Drops e-mail quoting and surrounding whitespace (any Unicode space, NBSP included).
fn clean(raw: &str) -> &str {
    raw.trim_start_matches(|c: char| c == '>' || c == '|' || c.is_whitespace())
        .trim_end_matches(|c: char| c == '|' || c.is_whitespace())
}

fn find_after<'a>(line: &'a str, pat: &str) -> Option<&'a str> {
    line.find(pat).map(|i| line[i + pat.len()..].trim())
}

/// "all VMs, all VCPUs:" / "pid(s) 12,34, VCPU 3:" → (pids, vcpu).
fn parse_target(rest: &str) -> Result<(Vec<u32>, Option<u32>), String> {
    let rest = rest.trim_end_matches(':').trim();
    let (who, cpus) = rest.rsplit_once(',').unwrap_or((rest, "all VCPUs"));
    let cpus = cpus.trim();
    let vcpu = if cpus.eq_ignore_ascii_case("all VCPUs") {
        None
    } else {
        let n = cpus.strip_prefix("VCPU").map(str::trim);
        Some(n.and_then(|n| n.parse().ok()).ok_or_else(|| {
            format!("cannot read the vCPU in 'Analyze events for {rest}': expected 'all VCPUs' or 'VCPU N'")
        })?)
    };
    let who = who.trim().trim_end_matches(',').trim();
    let pids = match who.strip_prefix("pid(s)") {
        Some(list) => list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<u32>()
                    .map_err(|_| format!("'{p}' is not a pid in 'Analyze events for {rest}'"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        // "all VMs", or perf's "dazed and confused on what is monitored".
        None => Vec::new(),
    };
    Ok((pids, vcpu))
}

/// A header line: `<table name> Samples Samples% [Time%] [Min Time] [Max Time] [Avg time] ...`.
fn parse_header(line: &str) -> Result<Option<(Event, Vec<Column>)>, String> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    let Some(pos) = toks
        .windows(2)
        .position(|w| w[0] == "Samples" && w[1] == "Samples%")
    else {
        return Ok(None);
    };
    let name = toks[..pos].join(" ");
    let event = Event::from_header(&name).ok_or_else(|| {
        format!(
            "unknown table '{name}': expected VM-EXIT, MMIO Access, IO Port Access or MSR Access"
        )
    })?;
    let mut cols = vec![Column::Samples, Column::SamplesPct];
    let mut t = toks[pos + 2..].iter().peekable();
    while let Some(tok) = t.next() {
        let col = match tok.to_ascii_lowercase().as_str() {
            "time%" => Column::TimePct,
            "min" => Column::Min,
            "max" => Column::Max,
            "avg" => Column::Avg,
            // Anything else (kvmprof's p50/p99 columns) comes after "( +- x% )": not read.
            _ => break,
        };
        if col != Column::TimePct && t.peek().is_some_and(|n| n.eq_ignore_ascii_case("time")) {
            t.next();
        }
        cols.push(col);
    }
    Ok(Some((event, cols)))
}

/// `Total Samples:N, Total events handled time:X.XXus.`
fn parse_footer(s: &mut Section, line: &str, n: usize) -> Result<(), ImportError> {
    let after = find_after(line, "Total Samples:").unwrap_or("");
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    s.total_samples = Some(
        digits
            .parse()
            .map_err(|_| at(n, format!("cannot read the sample count in '{line}'")))?,
    );
    if let Some(t) = find_after(line, "handled time:") {
        let num: String = t
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        s.total_time_us = num.trim_end_matches('.').parse().ok();
    }
    Ok(())
}

/// One row: the name is whatever precedes the header's numeric columns.
fn parse_row(line: &str, cols: &[Column], n: usize) -> Result<PerfRow, String> {
    let (left, err) = split_rel_err(line)?;
    let toks = tokens(left);
    if toks.len() <= cols.len() {
        return Err(format!(
            "expected a name and {} columns ({}), found '{line}'",
            cols.len(),
            describe(cols)
        ));
    }
    let split = toks.len() - cols.len();
    let mut row = PerfRow {
        line: n,
        name: toks[..split].join(" "),
        rel_err_pct: err,
        ..Default::default()
    };
    for (col, tok) in cols.iter().zip(&toks[split..]) {
        let bad = |what: &str| format!("'{tok}' is not {what} (in '{line}')");
        match col {
            Column::Samples => row.samples = tok.parse().map_err(|_| bad("a sample count"))?,
            Column::SamplesPct => {
                row.samples_pct = Some(percent(tok).ok_or_else(|| bad("a percentage"))?)
            }
            Column::TimePct => {
                row.time_pct = Some(percent(tok).ok_or_else(|| bad("a percentage"))?)
            }
            Column::Min => row.min_us = Some(micros(tok).ok_or_else(|| bad("a time like 1.23us"))?),
            Column::Max => row.max_us = Some(micros(tok).ok_or_else(|| bad("a time like 1.23us"))?),
            Column::Avg => row.avg_us = Some(micros(tok).ok_or_else(|| bad("a time like 1.23us"))?),
        }
    }
    Ok(row)
}

fn describe(cols: &[Column]) -> String {
    let names: Vec<&str> = cols
        .iter()
        .map(|c| match c {
            Column::Samples => "Samples",
            Column::SamplesPct => "Samples%",
            Column::TimePct => "Time%",
            Column::Min => "Min Time",
            Column::Max => "Max Time",
            Column::Avg => "Avg time",
        })
        .collect();
    names.join(", ")
}

/// Cuts `( +- x% )` (or `(±x%)`, or kvmprof's `( +- n/a )`) off a row; what follows it
/// (kvmprof's percentile columns) is dropped.
fn split_rel_err(line: &str) -> Result<(&str, Option<f64>), String> {
    let Some(open) = line.find('(') else {
        return Ok((line, None));
    };
    let inner = &line[open + 1..];
    let inner = inner.split(')').next().unwrap_or(inner).trim();
    let Some(v) = inner.strip_prefix("+-").or_else(|| inner.strip_prefix('±')) else {
        return Err(format!("expected '( +- x% )' in '{line}'"));
    };
    let v = v.trim().trim_end_matches('%').trim();
    Ok((
        &line[..open],
        v.parse::<f64>().ok().filter(|x| x.is_finite()),
    ))
}

/// Whitespace tokens, with a lone unit (`us`, `%`) joined to the number before it.
fn tokens(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in s.split_whitespace() {
        let unit = matches!(t, "us" | "µs" | "μs" | "ms" | "ns" | "%");
        match out.last_mut() {
            Some(prev) if unit && prev.parse::<f64>().is_ok() => prev.push_str(t),
            _ => out.push(t.to_string()),
        }
    }
    out
}

fn percent(t: &str) -> Option<f64> {
    let v: f64 = t.strip_suffix('%')?.parse().ok()?;
    v.is_finite().then_some(v)
}

/// A time in µs: `1.23us` (also `µs`, `ms`, `ns`, or a bare number in µs).
fn micros(t: &str) -> Option<f64> {
    let (num, scale) = if let Some(v) = t.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = t.strip_suffix("µs").or_else(|| t.strip_suffix("μs")) {
        (v, 1.0)
    } else if let Some(v) = t.strip_suffix("ms") {
        (v, 1e3)
    } else if let Some(v) = t.strip_suffix("ns") {
        (v, 1e-3)
    } else {
        (t, 1.0)
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * scale)
}

/// A line shaped like a row (a percentage or a time among several numbers), so a failure to
/// read it is an error rather than the end of the table.
fn looks_like_row(line: &str) -> bool {
    let toks = tokens(line);
    let numeric = toks
        .iter()
        .filter(|t| percent(t).is_some() || micros(t).is_some())
        .count();
    let marked = toks.iter().any(|t| t.ends_with('%') || t.ends_with("us"));
    numeric >= 2 && marked
}
