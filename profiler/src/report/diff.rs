//! A/B comparison of two sessions (recordings or perf text, in any mix).
//!
//! Rows are matched by exit name (so two kernels' codes, or perf's names, line up), after
//! merging the selected VMs' rows. Handling time excludes HLT (idle). When both sides know
//! their duration, totals are compared per second of wall clock (sessions of different
//! lengths stay comparable); otherwise as totals. Rows are ordered by the size of their change
//! in handling time (largest movers first), then of their count.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    printf::{f, ls, s},
    rows::{merge, select},
    Data, ReportError,
};
use crate::model::{Row, VmSelector, VmView};
use crate::text::printable;

/// Which VM of each side, and the sides' labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// One VM of A (name or pid); None: all of A's VMs.
    pub vm_a: Option<VmSelector>,
    pub vm_b: Option<VmSelector>,
}

/// Two values and their change. `rel_pct` is None when A is 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Change {
    pub a: f64,
    pub b: f64,
    pub abs: f64,
    pub rel_pct: Option<f64>,
}

impl Change {
    pub fn new(a: f64, b: f64) -> Change {
        Change {
            a,
            b,
            abs: b - a,
            rel_pct: (a != 0.0).then(|| (b - a) / a * 100.0),
        }
    }
}

/// A value that one side may lack (mean without timed exits, p99 without a histogram); the
/// change is given when both have it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Pair {
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub abs: Option<f64>,
    pub rel_pct: Option<f64>,
}

impl Pair {
    pub fn new(a: Option<f64>, b: Option<f64>) -> Pair {
        let c = a.zip(b).map(|(a, b)| Change::new(a, b));
        Pair {
            a,
            b,
            abs: c.as_ref().map(|c| c.abs),
            rel_pct: c.and_then(|c| c.rel_pct),
        }
    }
}

/// One side's summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Side {
    pub label: String,
    pub vms: Vec<String>,
    /// 0 when unknown (perf text, single samples).
    pub duration_s: f64,
    /// Non-HLT exits and handling time.
    pub exits: u64,
    pub total_ns: u64,
    pub hlt_total_ns: u64,
}

/// One exit reason on both sides.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReasonDiff {
    pub name: String,
    pub isa: String,
    pub hlt: bool,
    pub count: Change,
    /// Exits per second, when both durations are known.
    pub rate_per_s: Option<Change>,
    /// Share of non-HLT handling time (HLT: of all), %.
    pub time_pct: Change,
    pub total_ns: Change,
    /// Mean handling time, where a side has timed exits.
    pub mean_ns: Pair,
    /// p99, where a side has a histogram (not perf text).
    pub p99_ns: Pair,
    /// Handling time B vs A: "5.04× less", "1.30× more", "new", "gone", "same".
    pub time_ratio: String,
}

/// The comparison.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Diff {
    pub a: Side,
    pub b: Side,
    /// "per second" when both durations are known, else "total".
    pub basis: String,
    /// Non-HLT handling time (ns, or ns per second on the "per second" basis).
    pub total_time: Change,
    pub total_time_ratio: String,
    pub exits: Change,
    /// Largest movers first.
    pub reasons: Vec<ReasonDiff>,
}

/// Compares all VMs of `a` with all VMs of `b`.
pub fn diff(a: &Data, b: &Data) -> Diff {
    diff_with(a, b, &DiffOptions::default()).unwrap_or_default()
}

/// Compares the VMs `o` selects.
pub fn diff_with(a: &Data, b: &Data, o: &DiffOptions) -> Result<Diff, ReportError> {
    let pick = |d: &'_ Data, w: &Option<VmSelector>| -> Result<Vec<VmView>, ReportError> {
        Ok(match w {
            Some(w) => vec![w.find(&d.view)?.clone()],
            None => d.view.vms.clone(),
        })
    };
    let (va, vb) = (pick(a, &o.vm_a)?, pick(b, &o.vm_b)?);
    let ra = rows_by_name(&va);
    let rb = rows_by_name(&vb);
    let (da, db) = (a.view.duration_s, b.view.duration_s);
    let per_s = da > 0.0 && db > 0.0;
    let norm = |v: f64, d: f64| if per_s { v / d } else { v };

    let side_a = side(&a.label, &va, da, &ra);
    let side_b = side(&b.label, &vb, db, &rb);
    let total_time = Change::new(
        norm(side_a.total_ns as f64, da),
        norm(side_b.total_ns as f64, db),
    );
    let empty = Row::default();
    let mut reasons: Vec<ReasonDiff> = ra
        .keys()
        .chain(rb.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|name| {
            let (x, y) = (ra.get(name), rb.get(name));
            let (x0, y0) = (x.unwrap_or(&empty), y.unwrap_or(&empty));
            let mean = |r: Option<&Row>| r.filter(|r| r.timed > 0).map(|r| r.mean_ns);
            let p99 = |r: Option<&Row>| r.filter(|r| r.has_percentiles()).map(|r| r.p99_ns as f64);
            let total = Change::new(norm(x0.total_ns as f64, da), norm(y0.total_ns as f64, db));
            ReasonDiff {
                name: name.clone(),
                isa: x.or(y).map(|r| r.isa_name.to_string()).unwrap_or_default(),
                hlt: x.or(y).is_some_and(|r| r.hlt),
                count: Change::new(x0.count as f64, y0.count as f64),
                rate_per_s: per_s.then(|| Change::new(x0.rate_per_s, y0.rate_per_s)),
                time_pct: Change::new(x0.time_pct, y0.time_pct),
                time_ratio: ratio(total.a, total.b),
                total_ns: total,
                mean_ns: Pair::new(mean(x), mean(y)),
                p99_ns: Pair::new(p99(x), p99(y)),
            }
        })
        .collect();
    reasons.sort_by(|p, q| {
        q.total_ns
            .abs
            .abs()
            .total_cmp(&p.total_ns.abs.abs())
            .then(q.count.abs.abs().total_cmp(&p.count.abs.abs()))
            .then_with(|| p.name.cmp(&q.name))
    });
    Ok(Diff {
        basis: if per_s { "per second" } else { "total" }.into(),
        total_time_ratio: ratio(total_time.a, total_time.b),
        total_time,
        exits: Change::new(side_a.exits as f64, side_b.exits as f64),
        a: side_a,
        b: side_b,
        reasons,
    })
}

fn rows_by_name(vms: &[VmView]) -> BTreeMap<String, Row> {
    let refs: Vec<&VmView> = vms.iter().collect();
    let mut out = BTreeMap::new();
    // Two codes with one name (a synthetic and a real one) are added together.
    for r in select(&refs, None) {
        out.entry(r.name.to_string())
            .and_modify(|m: &mut Row| *m = merge([&*m, &r]).remove(0))
            .or_insert(r);
    }
    out
}

fn side(label: &str, vms: &[VmView], duration_s: f64, rows: &BTreeMap<String, Row>) -> Side {
    let busy = rows.values().filter(|r| !r.hlt);
    Side {
        label: label.to_string(),
        vms: vms.iter().map(|v| v.name.clone()).collect(),
        duration_s,
        exits: busy.clone().map(|r| r.count).sum(),
        total_ns: busy.map(|r| r.total_ns).sum(),
        hlt_total_ns: rows.values().filter(|r| r.hlt).map(|r| r.total_ns).sum(),
    }
}

/// B against A as a factor: "5.04× less", "1.30× more", "same", "new", "gone".
pub fn ratio(a: f64, b: f64) -> String {
    match (a > 0.0, b > 0.0) {
        (false, false) => "same".into(),
        (false, true) => "new".into(),
        (true, false) => "gone".into(),
        _ if b < a => format!("{:.2}× less", a / b),
        _ if b > a => format!("{:.2}× more", b / a),
        _ => "same".into(),
    }
}

/// The diff as JSON (pretty, final newline).
pub fn render_json(d: &Diff) -> Result<String, ReportError> {
    let mut s = serde_json::to_string_pretty(d)?;
    s.push('\n');
    Ok(s)
}

/// Microseconds with two decimals, or `n/a`.
fn us(v: Option<f64>) -> String {
    v.map_or_else(|| s(11, "n/a"), |v| format!("{}us", f(9, 2, v / 1e3)))
}

fn rel(c: &Change) -> String {
    match (c.rel_pct, c.a > 0.0, c.b > 0.0) {
        (_, false, true) => s(9, "new"),
        (_, true, false) => s(9, "gone"),
        (Some(p), _, _) => format!("{:>+8.1}%", p),
        (None, _, _) => s(9, "-"),
    }
}

/// The diff as a table.
pub fn render_table(d: &Diff) -> String {
    let unit = if d.basis == "per second" { "/s" } else { "" };
    let side_line = |tag: &str, sd: &Side| {
        let dur = if sd.duration_s > 0.0 {
            format!(", {}s", f(0, 1, sd.duration_s))
        } else {
            String::new()
        };
        let vms: Vec<_> = sd.vms.iter().map(|v| printable(v)).collect();
        let label = printable(&sd.label);
        format!("{tag}: {label} [{}]{dur}\n", vms.join(", "))
    };
    let mut out = String::new();
    out.push_str(&side_line("A", &d.a));
    out.push_str(&side_line("B", &d.b));
    out.push_str(&format!(
        "Total handling time (HLT excluded, {}): {}us{unit} -> {}us{unit}: {}\n",
        d.basis,
        f(0, 2, d.total_time.a / 1e3),
        f(0, 2, d.total_time.b / 1e3),
        d.total_time_ratio
    ));
    out.push_str(&format!(
        "Exits (HLT excluded): {} -> {} ({})\n\n",
        d.exits.a,
        d.exits.b,
        rel(&d.exits).trim()
    ));
    let shown = |r: &ReasonDiff| {
        let name = printable(&r.name);
        if r.hlt {
            format!("{name} (idle)")
        } else {
            name.into_owned()
        }
    };
    let w = d
        .reasons
        .iter()
        .map(|r| shown(r).len())
        .max()
        .unwrap_or(0)
        .max(20);
    out.push_str(&format!(
        "{} {} {} {} {} {} {} {} {} {}  {}\n",
        ls(w, "Reason"),
        s(10, "Count A"),
        s(10, "Count B"),
        s(9, "Count"),
        s(9, "Time% A"),
        s(9, "Time% B"),
        s(11, "Mean A"),
        s(11, "Mean B"),
        s(11, "p99 A"),
        s(11, "p99 B"),
        "Time B vs A"
    ));
    for r in &d.reasons {
        let name = shown(r);
        out.push_str(&format!(
            "{} {:>10} {:>10} {} {}% {}% {} {} {} {}  {}\n",
            ls(w, &name),
            r.count.a,
            r.count.b,
            rel(&r.count),
            f(8, 2, r.time_pct.a),
            f(8, 2, r.time_pct.b),
            us(r.mean_ns.a),
            us(r.mean_ns.b),
            us(r.p99_ns.a),
            us(r.p99_ns.b),
            r.time_ratio
        ));
    }
    out
}
