//! Comparison of N sessions (recordings or perf text, in any mix), each against the first.
//!
//! Rows are matched by exit name (so two kernels' codes, or perf's names, line up), after
//! merging the selected VMs' rows. Handling time excludes HLT (idle). When every session knows
//! its duration, exits and handling time are compared per second of wall clock (sessions of
//! different lengths stay comparable: 2000 exits in 2.9 s against 4000 in 1.6 s is +262 %, not
//! +100 %); otherwise as totals, and the diff says which session lacks a duration. Sessions
//! from different ISAs (a VMX table against an SVM recording) have no exit names in common:
//! the diff says so once and marks their ratios instead of calling every row new or gone.
//! Rows are ordered by the largest change of handling time against the first session, then
//! of exits. The table, CSV and chart renderings are in diff_table.rs and diff_chart.rs.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::diff_slow::{self, SlowSide};
use super::{
    rows::{merge, select},
    Data, ReportError,
};
use crate::model::{Row, VmSelector, VmView};

/// Which VMs of each session to compare.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// Per session in order, one VM (name, uuid or pid) or None for all of its VMs; an empty
    /// list takes all VMs of every session, and one entry applies to every session.
    pub vms: Vec<Option<VmSelector>>,
}

/// One session's summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Side {
    /// "A", "B", ...: how the table's columns and the chart's bars name it.
    pub tag: String,
    pub label: String,
    pub vms: Vec<String>,
    /// 0 when unknown (perf text, single samples).
    pub duration_s: f64,
    /// The ISAs of its exit reasons ("vmx", "svm").
    pub isas: Vec<String>,
}

/// What a session's number is against the first session's.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct VsFirst {
    /// Change of exits (per second, or in total on the "total" basis), %; None when the first
    /// session has none or the two sessions have different ISAs.
    pub exits_pct: Option<f64>,
    /// Handling time as a factor: "5.04× less", "1.30× more", "same", "new", "gone", or
    /// "other ISA" (nothing to compare).
    pub time_ratio: String,
}

/// One session's numbers for one reason (or for its total).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Cell {
    pub count: u64,
    /// Exits per second, when the session's duration is known.
    pub rate_per_s: Option<f64>,
    /// Share of non-HLT handling time (HLT: of all), %.
    pub time_pct: f64,
    pub total_ns: u64,
    /// Handling time per second of wall clock, when the duration is known.
    pub time_ns_per_s: Option<f64>,
    /// Mean handling time, where the session has timed exits.
    pub mean_ns: Option<f64>,
    /// p99, where the session has a histogram (not perf text).
    pub p99_ns: Option<f64>,
    /// Against the first session; None for the first.
    pub vs_first: Option<VsFirst>,
}

/// One exit reason in every session.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReasonDiff {
    pub name: String,
    pub isa: String,
    pub hlt: bool,
    /// One per session, in the sessions' order.
    pub sessions: Vec<Cell>,
}

/// The comparison.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Diff {
    pub sessions: Vec<Side>,
    /// "per second" when every duration is known, else "total".
    pub basis: String,
    /// One line each: why the basis is "total", which sessions' ISAs differ.
    pub notes: Vec<String>,
    /// Per session: all non-HLT exits and their handling time.
    pub totals: Vec<Cell>,
    /// Largest movers first.
    pub reasons: Vec<ReasonDiff>,
    /// Per session: its slow-exit log of the compared VMs; None: not recorded.
    pub slow: Vec<Option<SlowSide>>,
}

impl Diff {
    /// Whether exits and times are compared per second.
    pub fn per_second(&self) -> bool {
        self.basis == "per second"
    }
}

/// "A", "B", … "Z", then "S27", "S28", …: a session's short name.
pub fn tag(i: usize) -> String {
    match u8::try_from(i) {
        Ok(n) if n < 26 => char::from(b'A' + n).to_string(),
        _ => format!("S{}", i + 1),
    }
}

/// Compares all VMs of `a` with all VMs of `b` (no VM is named, so nothing can fail).
pub fn diff(a: &Data, b: &Data) -> Diff {
    diff_with(&[a, b], &DiffOptions::default()).unwrap_or_default()
}

/// `--vm` is given once for all sessions, or once per session.
pub fn vm_count_fits(vms: usize, sessions: usize) -> Result<(), ReportError> {
    if vms <= 1 || vms == sessions {
        return Ok(());
    }
    Err(ReportError::Usage(format!(
        "{vms} --vm for {sessions} sessions: give one --vm for every session, in order (`*` \
         for all of a session's VMs), or one for all"
    )))
}

/// Compares the sessions (the first is the reference) on the VMs `o` selects.
pub fn diff_with(data: &[&Data], o: &DiffOptions) -> Result<Diff, ReportError> {
    vm_count_fits(o.vms.len(), data.len())?;
    let mut rows = Vec::new();
    let mut sessions = Vec::new();
    let mut slow = Vec::new();
    for (i, d) in data.iter().enumerate() {
        let sel = o.vms.get(i).or(o.vms.first()).cloned().flatten();
        let vms: Vec<VmView> = match sel {
            Some(w) => vec![w.find(&d.view)?.clone()],
            None => d.view.vms.clone(),
        };
        let pids: Vec<u32> = vms.iter().map(|v| v.pid).collect();
        slow.push(
            d.slow
                .as_ref()
                .map(|log| diff_slow::side(log, &pids, d.view.duration_s)),
        );
        let r = rows_by_name(&vms);
        let isas: BTreeSet<String> = r.values().map(|r| r.isa_name.to_string()).collect();
        sessions.push(Side {
            tag: tag(i),
            label: d.label.clone(),
            vms: vms.iter().map(|v| v.name.clone()).collect(),
            duration_s: d.view.duration_s,
            isas: isas.into_iter().collect(),
        });
        rows.push(r);
    }
    let per_s = sessions.iter().all(|s| s.duration_s > 0.0);
    let mut notes = Vec::new();
    if !per_s {
        let none: Vec<&str> = sessions
            .iter()
            .filter(|s| s.duration_s <= 0.0)
            .map(|s| s.tag.as_str())
            .collect();
        notes.push(format!(
            "compared as totals, not per second: {} {} no duration (perf text, or a \
             recording of one sample); sessions of different lengths are not comparable this way",
            none.join(", "),
            if none.len() == 1 { "has" } else { "have" }
        ));
    }
    let other_isa: Vec<bool> = sessions
        .iter()
        .map(|s| disjoint(&s.isas, &sessions[0].isas))
        .collect();
    if let Some(n) = isa_note(&sessions, &other_isa) {
        notes.push(n);
    }

    let empty = Row::default();
    let names: BTreeSet<&String> = rows.iter().flat_map(|r| r.keys()).collect();
    let mut reasons: Vec<ReasonDiff> = names
        .into_iter()
        .map(|name| {
            let found: Vec<Option<&Row>> = rows.iter().map(|r| r.get(name)).collect();
            let any = found.iter().flatten().next().copied().unwrap_or(&empty);
            let cells = found
                .iter()
                .zip(&sessions)
                .map(|(r, s)| cell(*r, s.duration_s))
                .collect();
            ReasonDiff {
                name: name.clone(),
                isa: any.isa_name.to_string(),
                hlt: any.hlt,
                sessions: against_first(cells, per_s, &other_isa),
            }
        })
        .collect();
    let totals = rows
        .iter()
        .zip(&sessions)
        .map(|(r, s)| total(r, s.duration_s))
        .collect();
    // Totals compare across ISAs: handling time is handling time.
    let totals = against_first(totals, per_s, &vec![false; other_isa.len()]);
    let moved = |r: &ReasonDiff, f: &dyn Fn(&Cell) -> f64| {
        let first = f(&r.sessions[0]);
        r.sessions
            .iter()
            .map(|c| (f(c) - first).abs())
            .fold(0.0, f64::max)
    };
    let time = |c: &Cell| basis_time(c, per_s);
    let exits = |c: &Cell| basis_exits(c, per_s);
    reasons.sort_by(|p, q| {
        moved(q, &time)
            .total_cmp(&moved(p, &time))
            .then(moved(q, &exits).total_cmp(&moved(p, &exits)))
            .then_with(|| p.name.cmp(&q.name))
    });
    Ok(Diff {
        sessions,
        basis: if per_s { "per second" } else { "total" }.into(),
        notes,
        totals,
        reasons,
        slow,
    })
}

/// Exits on the diff's basis: per second, or the count.
pub fn basis_exits(c: &Cell, per_s: bool) -> f64 {
    if per_s {
        c.rate_per_s.unwrap_or(0.0)
    } else {
        c.count as f64
    }
}

/// Handling time on the diff's basis: ns per second, or ns.
pub fn basis_time(c: &Cell, per_s: bool) -> f64 {
    if per_s {
        c.time_ns_per_s.unwrap_or(0.0)
    } else {
        c.total_ns as f64
    }
}

/// Whether two sessions share no ISA (either having none, e.g. no exits, is no conflict).
fn disjoint(a: &[String], b: &[String]) -> bool {
    !a.is_empty() && !b.is_empty() && !a.iter().any(|x| b.contains(x))
}

/// "A is VMX, C and D are SVM: ..." when some session's ISAs differ from the first's.
fn isa_note(sessions: &[Side], other: &[bool]) -> Option<String> {
    if !other.contains(&true) {
        return None;
    }
    let isas = |s: &Side| s.isas.join("+").to_uppercase();
    // In the sessions' order.
    let mut by: Vec<(String, Vec<&str>)> = Vec::new();
    for s in sessions {
        let isa = isas(s);
        match by.iter_mut().find(|(i, _)| *i == isa) {
            Some((_, tags)) => tags.push(&s.tag),
            None => by.push((isa, vec![&s.tag])),
        }
    }
    let parts: Vec<String> = by
        .iter()
        .map(|(isa, tags)| {
            let verb = if tags.len() == 1 { "is" } else { "are" };
            format!("{} {verb} {isa}", tags.join(", "))
        })
        .collect();
    Some(format!(
        "different ISAs ({}): their exit reasons have different names, so only the totals \
         compare; rows against {} say `other ISA`",
        parts.join("; "),
        sessions[0].tag
    ))
}

/// A session's row of one reason (`None`: it has none).
fn cell(r: Option<&Row>, duration_s: f64) -> Cell {
    let known = duration_s > 0.0;
    let r0 = r.cloned().unwrap_or_default();
    Cell {
        count: r0.count,
        rate_per_s: known.then(|| r0.count as f64 / duration_s),
        time_pct: r0.time_pct,
        total_ns: r0.total_ns,
        time_ns_per_s: known.then(|| r0.total_ns as f64 / duration_s),
        mean_ns: r.filter(|r| r.timed > 0).map(|r| r.mean_ns),
        p99_ns: r.filter(|r| r.has_percentiles()).map(|r| r.p99_ns as f64),
        vs_first: None,
    }
}

/// A session's non-HLT total.
fn total(rows: &BTreeMap<String, Row>, duration_s: f64) -> Cell {
    let busy: Vec<&Row> = rows.values().filter(|r| !r.hlt).collect();
    let count: u64 = busy.iter().map(|r| r.count).sum();
    let timed: u64 = busy.iter().map(|r| r.timed).sum();
    let total_ns: u64 = busy.iter().map(|r| r.total_ns).sum();
    let known = duration_s > 0.0;
    Cell {
        count,
        rate_per_s: known.then(|| count as f64 / duration_s),
        time_pct: if busy.is_empty() { 0.0 } else { 100.0 },
        total_ns,
        time_ns_per_s: known.then(|| total_ns as f64 / duration_s),
        mean_ns: (timed > 0).then(|| total_ns as f64 / timed as f64),
        p99_ns: None,
        vs_first: None,
    }
}

/// Fills every cell but the first with its change against the first.
fn against_first(mut cells: Vec<Cell>, per_s: bool, other_isa: &[bool]) -> Vec<Cell> {
    let Some(first) = cells.first().cloned() else {
        return cells;
    };
    let (e0, t0) = (basis_exits(&first, per_s), basis_time(&first, per_s));
    for (c, &other) in cells.iter_mut().zip(other_isa).skip(1) {
        let (e, t) = (basis_exits(c, per_s), basis_time(c, per_s));
        c.vs_first = Some(if other {
            VsFirst {
                exits_pct: None,
                time_ratio: "other ISA".into(),
            }
        } else {
            VsFirst {
                exits_pct: (e0 > 0.0).then(|| (e - e0) / e0 * 100.0),
                time_ratio: ratio(t0, t),
            }
        });
    }
    cells
}

/// The rows of `vms` by exit name; two codes with one name (a synthetic and a real one, or
/// two kernels' codes) are added together.
fn rows_by_name(vms: &[VmView]) -> BTreeMap<String, Row> {
    let refs: Vec<&VmView> = vms.iter().collect();
    let mut key: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let rows: Vec<Row> = select(&refs, None)
        .into_iter()
        .map(|mut r| {
            (r.isa, r.reason) = *key.entry(r.name.to_string()).or_insert((r.isa, r.reason));
            r
        })
        .collect();
    merge(&rows)
        .into_iter()
        .map(|r| (r.name.to_string(), r))
        .collect()
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
