//! The N-way diff as a text table (one column group per session), JSON and CSV.

use super::{
    csv::quote,
    diff::{basis_exits, basis_time, Cell, Diff, ReasonDiff, Side},
    printf::{f, ls, s},
    ReportError,
};
use crate::text::printable;

/// The diff as JSON (pretty, final newline).
pub fn render_json(d: &Diff) -> Result<String, ReportError> {
    let mut s = serde_json::to_string_pretty(d)?;
    s.push('\n');
    Ok(s)
}

/// Columns of [`render_csv`], in this order: one line per (reason, session), then one
/// `total` line per session (non-HLT exits). `exits_vs_first_pct` and `time_vs_first` compare
/// on the diff's `basis` (per second, or totals) and are empty for the first session. When a
/// session has a slow-exit log, a `slow` line per session (its count and rate empty when it
/// has none: not recorded) and a `slow_reason` line per (reason, session) follow, with the
/// longest exit in `slow_worst_ns`.
pub const CSV_COLUMNS: [&str; 17] = [
    "kind",
    "name",
    "isa",
    "hlt",
    "session",
    "label",
    "duration_s",
    "count",
    "rate_per_s",
    "time_pct",
    "total_ns",
    "time_ns_per_s",
    "mean_ns",
    "p99_ns",
    "exits_vs_first_pct",
    "time_vs_first",
    "slow_worst_ns",
];

/// The diff as CSV (RFC 4180 quoting, `\n` line ends), long form: a spreadsheet pivots it
/// into any layout, whatever the number of sessions.
pub fn render_csv(d: &Diff) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    let opt = |v: Option<f64>, p: usize| v.map_or_else(String::new, |v| format!("{v:.p$}"));
    let mut line = |kind: &str, name: &str, isa: &str, hlt: bool, sd: &Side, c: &Cell| {
        let vs = c.vs_first.as_ref();
        let cells = [
            kind.to_string(),
            quote(name),
            quote(isa),
            hlt.to_string(),
            sd.tag.clone(),
            quote(&sd.label),
            format!("{:.3}", sd.duration_s),
            c.count.to_string(),
            opt(c.rate_per_s, 3),
            format!("{:.4}", c.time_pct),
            c.total_ns.to_string(),
            opt(c.time_ns_per_s, 1),
            opt(c.mean_ns, 1),
            opt(c.p99_ns, 0),
            opt(vs.and_then(|v| v.exits_pct), 2),
            vs.map_or_else(String::new, |v| quote(&v.time_ratio)),
            String::new(),
        ];
        out.push_str(&cells.join(","));
        out.push('\n');
    };
    for r in &d.reasons {
        for (sd, c) in d.sessions.iter().zip(&r.sessions) {
            line("reason", &r.name, &r.isa, r.hlt, sd, c);
        }
    }
    for (sd, c) in d.sessions.iter().zip(&d.totals) {
        line("total", "", &sd.isas.join("+"), false, sd, c);
    }
    if d.slow.iter().any(Option::is_some) {
        slow_csv(d, &mut out);
    }
    out
}

/// The `slow` and `slow_reason` lines of [`render_csv`].
fn slow_csv(d: &Diff, out: &mut String) {
    let opt = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.3}"));
    let mut line =
        |kind: &str, name: &str, sd: &Side, n: Option<(u64, Option<f64>, Option<u64>)>| {
            let (count, rate, worst) = match n {
                Some((c, r, w)) => (
                    c.to_string(),
                    opt(r),
                    w.map_or_else(String::new, |w| w.to_string()),
                ),
                None => Default::default(),
            };
            let mut cells = vec![kind.to_string(), quote(name), String::new(), "false".into()];
            cells.extend([
                sd.tag.clone(),
                quote(&sd.label),
                format!("{:.3}", sd.duration_s),
            ]);
            cells.extend([count, rate]);
            cells.extend(std::iter::repeat_n(String::new(), 7));
            cells.push(worst);
            out.push_str(&cells.join(","));
            out.push('\n');
        };
    for (sd, s) in d.sessions.iter().zip(&d.slow) {
        line(
            "slow",
            "",
            sd,
            s.as_ref().map(|s| (s.count, s.rate_per_s, s.worst_ns)),
        );
    }
    for (sd, s) in d.sessions.iter().zip(&d.slow) {
        for r in s.iter().flat_map(|s| &s.reasons) {
            line(
                "slow_reason",
                &r.name,
                sd,
                Some((r.count, r.rate_per_s, Some(r.worst_ns))),
            );
        }
    }
}

/// A column group's cells: count, exits/s (when some session has a duration), Time%, mean;
/// then, after the first session, the change of exits and the handling-time ratio against it.
const GROUP_W: usize = 10 + 1 + 7 + 1 + 10;
const RATE_W: usize = 10 + 1;
const VS_W: usize = 1 + 9 + 2 + 12;

fn mean(v: Option<f64>) -> String {
    v.map_or_else(|| s(10, "n/a"), |v| format!("{}us", f(8, 2, v / 1e3)))
}

/// Change of exits against the first session: "+262.3%", "new", "gone", "-".
fn exits_change(c: &Cell, first: &Cell, per_s: bool) -> String {
    let (e, e0) = (basis_exits(c, per_s), basis_exits(first, per_s));
    let v = c.vs_first.as_ref();
    match (v.and_then(|v| v.exits_pct), e0 > 0.0, e > 0.0) {
        _ if v.is_some_and(|v| v.time_ratio == "other ISA") => s(9, "-"),
        (_, false, true) => s(9, "new"),
        (_, true, false) => s(9, "gone"),
        (Some(p), _, _) => format!("{:>+8.1}%", p),
        (None, _, _) => s(9, "-"),
    }
}

fn group(c: &Cell, first: &Cell, per_s: bool, rates: bool) -> String {
    let rate = match (rates, c.rate_per_s) {
        (false, _) => String::new(),
        (true, None) => format!("{} ", s(10, "n/a")),
        (true, Some(r)) => format!("{} ", f(10, 1, r)),
    };
    let mut g = format!(
        "{:>10} {rate}{} {}",
        c.count,
        f(7, 2, c.time_pct),
        mean(c.mean_ns)
    );
    if let Some(v) = &c.vs_first {
        g.push_str(&format!(
            " {}  {}",
            exits_change(c, first, per_s),
            ls(12, &v.time_ratio)
        ));
    }
    g
}

fn side_line(sd: &Side) -> String {
    let dur = if sd.duration_s > 0.0 {
        format!(", {}s", f(0, 1, sd.duration_s))
    } else {
        ", duration unknown".into()
    };
    let vms: Vec<_> = sd.vms.iter().map(|v| printable(v)).collect();
    format!(
        "{}: {} [{}]{dur}\n",
        sd.tag,
        printable(&sd.label),
        vms.join(", ")
    )
}

/// The diff as a table: the sessions, the basis and notes, then one row per reason with a
/// column group per session, and the totals.
pub fn render_table(d: &Diff) -> String {
    let per_s = d.per_second();
    let mut out: String = d.sessions.iter().map(side_line).collect();
    let unit = if per_s { "per second" } else { "in total" };
    let times: Vec<String> = d
        .sessions
        .iter()
        .zip(&d.totals)
        .map(|(sd, c)| {
            let ratio = c
                .vs_first
                .as_ref()
                .map_or_else(String::new, |v| format!(" ({})", v.time_ratio));
            let t = basis_time(c, per_s) / 1e3;
            format!("{} {}us{ratio}", sd.tag, f(0, 2, t))
        })
        .collect();
    out.push_str(&format!(
        "Handling time {unit} (HLT excluded): {}\n",
        times.join(", ")
    ));
    for n in &d.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out.push('\n');

    let shown = |r: &ReasonDiff| {
        let name = printable(&r.name);
        if r.hlt {
            format!("{name} (idle)")
        } else {
            name.into_owned()
        }
    };
    const TOTAL: &str = "Total (HLT excluded)";
    let w = d
        .reasons
        .iter()
        .map(|r| shown(r).chars().count())
        .max()
        .unwrap_or(0)
        .max(TOTAL.len());
    let rates = d.sessions.iter().any(|s| s.duration_s > 0.0);
    let first_tag = d.sessions.first().map_or("A", |s| s.tag.as_str());
    let (mut titles, mut heads) = (ls(w, ""), ls(w, "Reason"));
    for (i, sd) in d.sessions.iter().enumerate() {
        let width = GROUP_W + if rates { RATE_W } else { 0 } + if i > 0 { VS_W } else { 0 };
        let title: String = format!("{}: {}", sd.tag, printable(&sd.label))
            .chars()
            .take(width)
            .collect();
        titles.push_str(&format!("  {}", ls(width, &title)));
        let rate = if rates {
            format!("{} ", s(10, "Exits/s"))
        } else {
            String::new()
        };
        heads.push_str(&format!(
            "  {} {rate}{} {}",
            s(10, "Count"),
            s(7, "Time%"),
            s(10, "Mean")
        ));
        if i > 0 {
            heads.push_str(&format!(
                " {}  {}",
                s(9, &format!("vs {first_tag}")),
                ls(12, &format!("Time vs {first_tag}"))
            ));
        }
    }
    for l in [titles, heads] {
        out.push_str(l.trim_end());
        out.push('\n');
    }
    let mut row = |name: &str, cells: &[Cell]| {
        let mut l = ls(w, name);
        for c in cells {
            l.push_str("  ");
            l.push_str(&group(c, &cells[0], per_s, rates));
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    for r in &d.reasons {
        row(&shown(r), &r.sessions);
    }
    row(TOTAL, &d.totals);
    let tags: Vec<&str> = d.sessions.iter().map(|s| s.tag.as_str()).collect();
    out.push_str(&super::diff_slow::table_lines(&tags, &d.slow));
    out
}
