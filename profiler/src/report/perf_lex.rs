//! The line-level grammar of `perf kvm stat` text: headers, rows, footers, "Analyze events"
//! lines, and the numbers in them. Every function looks at one line, in time linear in it;
//! errors quote at most [`QUOTE_CHARS`] characters of it.

use super::{
    perf_layout::{Event, PerfLayout},
    perf_rows::{Column, PerfRow, Rounding},
};

/// How much of an offending line or token an error message shows.
pub(crate) const QUOTE_CHARS: usize = 80;

/// `'text'` for a message: cut to [`QUOTE_CHARS`] characters (then `…`), control characters
/// escaped so a quoted line cannot move the cursor or forge another line.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::from("'");
    for (i, c) in s.chars().enumerate() {
        if i == QUOTE_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

pub(crate) fn find_after<'a>(line: &'a str, pat: &str) -> Option<&'a str> {
    line.find(pat).map(|i| line[i + pat.len()..].trim())
}

/// "all VMs, all VCPUs:" / "pid(s) 12,34, VCPU 3:" → (pids, vcpu).
pub(crate) fn parse_target(rest: &str) -> Result<(Vec<u32>, Option<u32>), String> {
    let rest = rest.trim_end_matches(':').trim();
    let (who, cpus) = rest.rsplit_once(',').unwrap_or((rest, "all VCPUs"));
    let cpus = cpus.trim();
    let whole = || quote(&format!("Analyze events for {rest}"));
    let vcpu = if cpus.eq_ignore_ascii_case("all VCPUs") {
        None
    } else {
        let n = cpus.strip_prefix("VCPU").map(str::trim);
        Some(n.and_then(|n| n.parse().ok()).ok_or_else(|| {
            format!(
                "cannot read the vCPU in {}: expected 'all VCPUs' or 'VCPU N'",
                whole()
            )
        })?)
    };
    let who = who.trim().trim_end_matches(',').trim();
    let pids = match who.strip_prefix("pid(s)") {
        Some(list) => list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<u32>()
                    .map_err(|_| format!("{} is not a pid in {}", quote(p), whole()))
            })
            .collect::<Result<Vec<_>, _>>()?,
        // "all VMs", or perf's "dazed and confused on what is monitored".
        None => Vec::new(),
    };
    Ok((pids, vcpu))
}

/// A table's header line: what it is, its numeric columns in order, and the unit of a time
/// printed without one (µs; perf ≥ 6.4 prints integer ns with `(ns)` in the header).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Header {
    pub event: Event,
    /// perf ≥ 6.4's `Event name`: the event is told by the rows (see `perf_parse`).
    pub generic: bool,
    pub columns: Vec<Column>,
    pub unit_us: f64,
}

impl Header {
    /// perf ≥ 6.4's hist-browser columns (`Event name`, times in ns), or print_result's.
    pub fn layout(&self) -> PerfLayout {
        if self.generic || self.unit_us != 1.0 {
            PerfLayout::V6_4
        } else {
            PerfLayout::Classic
        }
    }
}

/// A header line: `<table name> Samples Samples% [Time%] [Min Time] [Max Time] [Avg time] ...`,
/// or perf ≥ 6.4's `Event name Samples Sample% Time (ns) Time% Max Time (ns) Min Time (ns)
/// Mean Time (ns)` (any subset, in any order).
pub(crate) fn parse_header(line: &str) -> Result<Option<Header>, String> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    let Some(pos) = toks
        .windows(2)
        .position(|w| w[0] == "Samples" && (w[1] == "Samples%" || w[1] == "Sample%"))
    else {
        return Ok(None);
    };
    let name = toks[..pos].join(" ");
    // perf ≥ 6.4 names the first column "Event name" whatever the event.
    let generic = name.eq_ignore_ascii_case("Event name");
    let event = if generic {
        Some(Event::Vmexit)
    } else {
        Event::from_header(&name)
    };
    let event = event.ok_or_else(|| {
        format!(
            "unknown table {}: expected VM-EXIT, MMIO Access, IO Port Access or MSR Access",
            quote(&name)
        )
    })?;
    let mut cols = vec![Column::Samples, Column::SamplesPct];
    let mut unit_us = 1.0;
    let mut t = toks[pos + 2..].iter().peekable();
    while let Some(tok) = t.next() {
        let col = match tok.to_ascii_lowercase().as_str() {
            "time%" => Column::TimePct,
            "min" => Column::Min,
            "max" => Column::Max,
            "avg" | "mean" => Column::Avg,
            "time" => Column::TotalTime,
            "(ns)" => {
                unit_us = 1e-3;
                continue;
            }
            // Anything else (kvmprof's p50/p99 columns) comes after "( +- x% )": not read.
            _ => break,
        };
        let timed = !matches!(col, Column::TimePct | Column::TotalTime);
        if timed && t.peek().is_some_and(|n| n.eq_ignore_ascii_case("time")) {
            t.next();
        }
        cols.push(col);
    }
    Ok(Some(Header {
        event,
        generic,
        columns: cols,
        unit_us,
    }))
}

/// `Total Samples:N, Total events handled time:X.XXus.` → (samples, time in µs and its rounding).
pub(crate) fn parse_footer(line: &str) -> Result<(u64, Option<(f64, f64)>), String> {
    let after = find_after(line, "Total Samples:").unwrap_or("");
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    let samples = digits
        .parse()
        .map_err(|_| format!("cannot read the sample count in {}", quote(line)))?;
    let time = find_after(line, "handled time:").and_then(|t| {
        let num: String = t
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let rest = t[num.len()..].split_whitespace().next().unwrap_or("");
        let (_, scale) = unit(rest.trim_end_matches(['.', ',']));
        let num = num.trim_end_matches('.');
        let v: f64 = num.parse().ok()?;
        Some((v * scale, half_ulp(num) * scale))
    });
    Ok((samples, time))
}

/// One row: the name is whatever precedes the header's numeric columns.
/// Times printed without a unit are in `unit_us` µs.
pub(crate) fn parse_row(
    line: &str,
    cols: &[Column],
    unit_us: f64,
    n: usize,
) -> Result<PerfRow, String> {
    let (left, err) = split_rel_err(line)?;
    let toks = tokens(left);
    if toks.len() <= cols.len() {
        return Err(format!(
            "expected a name and {} columns ({}), found {}",
            cols.len(),
            describe(cols),
            quote(line)
        ));
    }
    let split = toks.len() - cols.len();
    let mut row = PerfRow {
        line: n,
        name: toks[..split].join(" "),
        rel_err_pct: err,
        ..Default::default()
    };
    let mut r = Rounding::default();
    for (col, tok) in cols.iter().zip(&toks[split..]) {
        let bad = |what: &str| format!("{} is not {what} (in {})", quote(tok), quote(line));
        let time = || {
            let t = if tok.parse::<f64>().is_ok() {
                tok.parse::<f64>()
                    .ok()
                    .map(|v| v * unit_us)
                    .filter(|v| *v >= 0.0)
            } else {
                micros(tok)
            };
            t.ok_or_else(|| bad("a time like 1.23us"))
        };
        let share = || percent(tok).ok_or_else(|| bad("a percentage"));
        match col {
            Column::Samples => row.samples = tok.parse().map_err(|_| bad("a sample count"))?,
            Column::SamplesPct => row.samples_pct = Some(share()?),
            Column::TimePct => row.time_pct = Some(share()?),
            Column::Min => row.min_us = Some(time()?),
            Column::Max => row.max_us = Some(time()?),
            Column::Avg => row.avg_us = Some(time()?),
            Column::TotalTime => row.total_us = Some(time()?),
        }
        match col {
            Column::Samples => {}
            Column::SamplesPct | Column::TimePct => r.pct = r.pct.max(rounding(tok)),
            _ => {
                let h = if tok.parse::<f64>().is_ok() {
                    half_ulp(tok) * unit_us
                } else {
                    rounding(tok)
                };
                r.us = r.us.max(h);
                if *col == Column::Avg {
                    r.avg_us = h;
                }
            }
        }
    }
    row.rounding = r;
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
            Column::TotalTime => "Time",
        })
        .collect();
    names.join(", ")
}

/// Cuts `( +- x% )` (or `(±x%)`, or kvmprof's `( +- n/a )`) off a row; what follows it
/// (kvmprof's percentile columns) is dropped.
pub(crate) fn split_rel_err(line: &str) -> Result<(&str, Option<f64>), String> {
    let Some(open) = line.find('(') else {
        return Ok((line, None));
    };
    let inner = &line[open + 1..];
    let inner = inner.split(')').next().unwrap_or(inner).trim();
    let Some(v) = inner.strip_prefix("+-").or_else(|| inner.strip_prefix('±')) else {
        return Err(format!("expected '( +- x% )' in {}", quote(line)));
    };
    let v = v.trim().trim_end_matches('%').trim();
    Ok((
        &line[..open],
        v.parse::<f64>().ok().filter(|x| x.is_finite()),
    ))
}

/// Whitespace tokens, with a lone unit (`us`, `%`) joined to the number before it, and two
/// times printed without a space between them (`0.43us901000.66us`) split.
pub(crate) fn tokens(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in s.split_whitespace() {
        let unit = matches!(t, "us" | "µs" | "μs" | "ms" | "ns" | "%");
        match out.last_mut() {
            Some(prev) if unit && prev.parse::<f64>().is_ok() => prev.push_str(t),
            _ => {
                if let Some(i) = glued(t) {
                    out.push(t[..i].to_string());
                    out.push(t[i..].to_string());
                } else {
                    out.push(t.to_string());
                }
            }
        }
    }
    out
}

/// Where a second time starts inside `t` (`1.07us46197.83us` → 6), if one does (one split:
/// perf prints a space between any other two columns).
fn glued(t: &str) -> Option<usize> {
    let i = t.find("us")? + 2;
    let head = &t[..i];
    let tail = &t[i..];
    (micros(head).is_some() && tail.ends_with("us") && micros(tail).is_some()).then_some(i)
}

pub(crate) fn percent(t: &str) -> Option<f64> {
    let v: f64 = t.strip_suffix('%')?.parse().ok()?;
    v.is_finite().then_some(v)
}

/// A time's number and its unit in µs: `1.23us` (also `µs`, `ms`, `ns`, or a bare number).
fn unit(t: &str) -> (&str, f64) {
    if let Some(v) = t.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = t.strip_suffix("µs").or_else(|| t.strip_suffix("μs")) {
        (v, 1.0)
    } else if let Some(v) = t.strip_suffix("ms") {
        (v, 1e3)
    } else if let Some(v) = t.strip_suffix("ns") {
        (v, 1e-3)
    } else {
        (t, 1.0)
    }
}

/// A time in µs; negative times are not times.
pub(crate) fn micros(t: &str) -> Option<f64> {
    let (num, scale) = unit(t);
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * scale)
}

/// How far printing may have rounded a percentage or a time (in µs): half its last digit.
fn rounding(t: &str) -> f64 {
    let (num, scale) = unit(t.strip_suffix('%').unwrap_or(t));
    half_ulp(num) * scale
}

/// Half a unit of the last printed digit of a decimal number: `5.12` → 0.005, `1e3` → 500.
fn half_ulp(num: &str) -> f64 {
    let (mantissa, exp) = match num.find(['e', 'E']) {
        Some(i) => (&num[..i], num[i + 1..].parse::<i32>().unwrap_or(0)),
        None => (num, 0),
    };
    let decimals = mantissa.split_once('.').map_or(0, |(_, f)| {
        f.chars().take_while(char::is_ascii_digit).count()
    });
    let digits = i32::try_from(decimals).unwrap_or(i32::MAX);
    0.5 * 10f64.powi(exp.clamp(-400, 400).saturating_sub(digits))
}

/// A line shaped like a row (a percentage or a time among several numbers), so a failure to
/// read it is an error rather than the end of the table.
pub(crate) fn looks_like_row(line: &str) -> bool {
    let toks = tokens(line);
    let numeric = toks
        .iter()
        .filter(|t| percent(t).is_some() || micros(t).is_some())
        .count();
    let marked = toks.iter().any(|t| t.ends_with('%') || t.ends_with("us"));
    numeric >= 2 && marked
}
