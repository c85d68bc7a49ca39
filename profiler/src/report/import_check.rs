//! Numbers of one imported table that contradict each other. perf prints all of a table from
//! the same counters, so, within the rounding of the printed digits: each share lies in
//! 0–100 %, Min ≤ Avg ≤ Max, each reason appears once (but perf's `UNKNOWN`), and the shares and the footer's totals
//! are the rows' sums.
//!
//! What cannot be true (a share outside 0–100 %, Avg outside Min–Max, a reason twice, rows
//! adding up to more than 100 % or than the footer) is refused, naming the line. What a table
//! cut short or a lost row explains (rows adding up to less) is a warning saying how much is
//! missing.

use std::collections::HashMap;

use super::{
    perf_lex::quote,
    perf_rows::{at, ImportError, ImportWarning, PerfRow, Section},
};

pub(crate) fn check(sec: &Section, warnings: &mut Vec<ImportWarning>) -> Result<(), ImportError> {
    let table = format!("the {} table of line {}", sec.event.header(), sec.line);
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(sec.rows.len());
    for r in &sec.rows {
        row(r)?;
        // perf names every exit code it has no name for `UNKNOWN`: several such rows are
        // several reasons (a PVM host's profile has three), not a row copied twice.
        if r.name == "UNKNOWN" {
            continue;
        }
        if let Some(first) = seen.insert(&r.name, r.line) {
            return Err(refuse(
                r.line,
                format!(
                    "{} appears twice in {table} (first on line {first}): perf prints each reason once",
                    quote(&r.name)
                ),
                "delete one of the two rows, or give the second table its own header line",
            ));
        }
    }
    let short = shares(sec, "Samples%", |r| r.samples_pct, &table)?;
    let short = short.or(shares(sec, "Time%", |r| r.time_pct, &table)?);
    // The footer's totals say how much is missing more exactly than the shares.
    if !footer(sec, warnings)? {
        if let Some(msg) = short {
            warnings.push(ImportWarning::new(sec.line, msg));
        }
    }
    Ok(())
}

fn refuse(line: usize, what: String, fix: &str) -> ImportError {
    at(line, format!("{what}; fix: {fix}"))
}

/// A number as read (`151`, `-12.5`); huge ones in exponent form, not 300 digits.
fn num(v: f64) -> String {
    if v.abs() < 1e15 {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// A sum, to perf's two decimals.
fn num2(v: f64) -> String {
    if v.abs() < 1e15 {
        format!("{v:.2}")
    } else {
        format!("{v:.2e}")
    }
}

/// `a` is above `b` by more than `tol` (plus float noise).
fn above(a: f64, b: f64, tol: f64) -> bool {
    a - b > tol + 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn row(r: &PerfRow) -> Result<(), ImportError> {
    let name = quote(&r.name);
    for (col, v) in [("Samples%", r.samples_pct), ("Time%", r.time_pct)] {
        let Some(v) = v else { continue };
        if above(0.0, v, r.rounding.pct) || above(v, 100.0, r.rounding.pct) {
            return Err(refuse(
                r.line,
                format!(
                    "{col} of {name} is {}%, but a share lies between 0 and 100 %",
                    num(v)
                ),
                "correct or delete the row",
            ));
        }
    }
    // Each of two printed times may be off by the rounding.
    let tol = 2.0 * r.rounding.us;
    let order = [
        ("Min Time", r.min_us, "Max Time", r.max_us),
        ("Avg time", r.avg_us, "Max Time", r.max_us),
        ("Min Time", r.min_us, "Avg time", r.avg_us),
    ];
    for (lo_col, lo, hi_col, hi) in order {
        if let (Some(lo), Some(hi)) = (lo, hi) {
            if above(lo, hi, tol) {
                return Err(refuse(
                    r.line,
                    format!(
                        "{lo_col} {}us of {name} is above its {hi_col} {}us",
                        num(lo),
                        num(hi)
                    ),
                    "correct or delete the row",
                ));
            }
        }
    }
    Ok(())
}

/// A share column's sum: over 100 % is refused; under 100 % is returned as a warning.
fn shares(
    sec: &Section,
    col: &str,
    get: fn(&PerfRow) -> Option<f64>,
    table: &str,
) -> Result<Option<String>, ImportError> {
    let (mut sum, mut tol) = (0.0, 0.0);
    // perf ≥ 6.4 as pasted prints whole percents (`63.00%` for 63.7 %): each may be 1 % off.
    let whole = sec
        .rows
        .iter()
        .all(|r| get(r).is_some_and(|v| v.fract() == 0.0));
    for r in &sec.rows {
        let Some(v) = get(r) else { return Ok(None) };
        sum += v;
        tol += if whole { 1.0 } else { r.rounding.pct };
    }
    if sec.rows.is_empty() || !sum.is_finite() {
        return Ok(None);
    }
    if above(sum, 100.0, tol) {
        return Err(refuse(
            sec.line,
            format!(
                "the {col} column of {table} adds up to {} %, more than 100 %",
                num2(sum)
            ),
            "correct the rows, or delete rows copied twice",
        ));
    }
    Ok(above(100.0, sum, tol).then(|| {
        format!(
            "the {col} column adds up to {} %: rows holding {} % are not in this table (cut short?)",
            num2(sum),
            num2(100.0 - sum)
        )
    }))
}

/// The footer's `Total Samples` and `Total events handled time` against the rows' sums;
/// whether it found rows missing.
fn footer(sec: &Section, warnings: &mut Vec<ImportWarning>) -> Result<bool, ImportError> {
    let Some(line) = sec.footer_line else {
        return Ok(false);
    };
    let n = sec
        .rows
        .iter()
        .fold(0u64, |n, r| n.saturating_add(r.samples));
    let mut short = false;
    if let Some(t) = sec.total_samples {
        if n > t {
            return Err(refuse(
                line,
                format!("the rows add up to {n} samples, more than the footer's Total Samples:{t}"),
                "correct the footer or the rows",
            ));
        }
        if n < t {
            short = true;
            warnings.push(ImportWarning::new(
                line,
                format!(
                    "the rows add up to {n} samples but the footer says {t}: {} samples are not in this table (cut short?)",
                    t - n
                ),
            ));
        }
    }
    let Some(total) = sec.total_time_us else {
        return Ok(short);
    };
    let (mut sum, mut tol) = (0.0, sec.total_time_rounding);
    for r in &sec.rows {
        let Some(avg) = r.avg_us else {
            return Ok(short);
        };
        sum += avg * r.samples as f64;
        tol += r.rounding.us * r.samples as f64;
    }
    if above(sum, total, tol) {
        return Err(refuse(
            line,
            format!(
                "the rows' Avg time × Samples add up to {}us, more than the footer's handled time {}us",
                num2(sum),
                num2(total)
            ),
            "correct the footer or the rows",
        ));
    }
    if !short && above(total, sum, tol) {
        warnings.push(ImportWarning::new(
            line,
            format!(
                "the rows' Avg time × Samples add up to {}us but the footer says {}us: a row's Avg time is off",
                num2(sum),
                num2(total)
            ),
        ));
    }
    Ok(short)
}
