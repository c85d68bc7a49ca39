//! A table's rows from deltas: names looked up once per (isa, reason), shares, order.

use std::{cmp::Ordering, collections::HashMap};

use super::{
    delta::{Delta, Pool},
    Name, Row,
};
use crate::decode::{isa_name, ExitNames};

/// Names of the (isa, reason) pairs seen: a row's names are pointer copies, not decodes.
#[derive(Default)]
pub(super) struct NameCache {
    map: HashMap<(u32, u32), Names>,
}

/// One (isa, reason)'s names and whether it is a halt.
struct Names {
    isa: Name,
    reason: Name,
    hlt: bool,
}

impl NameCache {
    fn get(&mut self, names: &ExitNames, isa: u32, reason: u32) -> &Names {
        self.map.entry((isa, reason)).or_insert_with(|| Names {
            isa: isa_name(isa).into(),
            reason: names.name(isa, reason).into(),
            hlt: names.is_hlt(isa, reason),
        })
    }
}

/// A new row for `d`.
pub(super) fn row(
    (isa, reason): (u32, u32),
    d: Delta,
    names: (&ExitNames, &mut NameCache),
    secs: f64,
    pool: &mut Pool,
) -> Row {
    let n = names.1.get(names.0, isa, reason);
    let mut r = Row {
        isa,
        isa_name: n.isa.clone(),
        reason,
        name: n.reason.clone(),
        hlt: n.hlt,
        ..Default::default()
    };
    fill(&mut r, d, secs, pool);
    r
}

/// Sets `r`'s numbers to `d`'s (its name stays); its old histogram buffer goes to `pool`.
pub(super) fn fill(r: &mut Row, d: Delta, secs: f64, pool: &mut Pool) {
    let (min_ns, max_ns) = d.range.unwrap_or((0, 0));
    // Bucket midpoints can overshoot the exact extremes: keep them inside.
    let [p50, p99, p999] = d
        .hist
        .quantiles([0.5, 0.99, 0.999])
        .map(|v| v.map_or(0, |v| v.clamp(min_ns, max_ns.max(min_ns))));
    r.count = d.count;
    r.in_flight = d.in_flight;
    r.timed = d.timed;
    r.hist_total = d.hist.total();
    r.rate_per_s = if secs > 0.0 {
        d.count as f64 / secs
    } else {
        0.0
    };
    r.samples_pct = 0.0;
    r.time_pct = 0.0;
    r.total_ns = d.total_ns;
    r.wait_ns = d.wait_ns;
    r.blocked_ns = d.blocked_ns;
    r.min_ns = min_ns;
    r.max_ns = max_ns;
    r.mean_ns = if d.timed > 0 {
        d.total_ns as f64 / d.timed as f64
    } else {
        0.0
    };
    r.p50_ns = p50;
    r.p99_ns = p99;
    r.p999_ns = p999;
    pool.put(std::mem::replace(&mut r.hist, d.hist).buckets);
}

/// Whether a row shows nothing happened: what an unchanged key's row is.
pub(super) fn quiet(r: &Row) -> bool {
    r.count == 0 && r.timed == 0 && r.total_ns == 0 && r.hist.buckets.is_empty()
}

/// The order of a finished table: `sort_rows(rows, SortKey::Count)`'s. (isa, reason) is unique
/// within a table, so an unstable sort gives the same order, without the stable sort's buffer.
fn order(a: &Row, b: &Row) -> Ordering {
    (b.count.cmp(&a.count)).then((a.isa, a.reason).cmp(&(b.isa, b.reason)))
}

/// Shares and order of a finished table.
pub(super) fn finish(rows: &mut [Row]) {
    set_shares(rows);
    rows.sort_unstable_by(order);
}

/// [`finish`] for a table that was finished before the rows at `moved` (ascending positions)
/// changed: a few are taken out and put back in place, which moves fewer rows than a sort.
pub(super) fn refinish(rows: &mut Vec<Row>, moved: &[usize], spare: &mut Vec<Row>) {
    set_shares(rows);
    if rows.is_sorted_by(|a, b| order(a, b) != Ordering::Greater) {
        return;
    }
    if moved.len() > 4 {
        rows.sort_unstable_by(order);
        return;
    }
    // The other rows are still in order.
    for &i in moved.iter().rev() {
        spare.push(rows.remove(i));
    }
    for r in spare.drain(..) {
        let at = rows.partition_point(|x| order(x, &r) == Ordering::Less);
        rows.insert(at, r);
    }
}

/// Non-HLT handling time: HLT time is mostly the guest idling, not overhead.
pub(super) fn busy_ns(rows: &[Row]) -> u64 {
    rows.iter().filter(|r| !r.hlt).map(|r| r.total_ns).sum()
}

/// Samples% and Time% of each row. Shares exclude HLT, whose idle time would swamp everything
/// (perf's "HLT 99.9 %"); HLT rows get their share of everything instead and are shown apart.
pub fn set_shares(rows: &mut [Row]) {
    let share = |a: u64, b: u64| {
        if b > 0 {
            a as f64 / b as f64 * 100.0
        } else {
            0.0
        }
    };
    let (busy_n, busy_t) = rows
        .iter()
        .filter(|r| !r.hlt)
        .fold((0, 0), |(n, t), r| (n + r.count, t + r.total_ns));
    let (all_n, all_t) = rows
        .iter()
        .fold((0, 0), |(n, t), r| (n + r.count, t + r.total_ns));
    for r in rows {
        let (n, t) = if r.hlt {
            (all_n, all_t)
        } else {
            (busy_n, busy_t)
        };
        r.samples_pct = share(r.count, n);
        r.time_pct = share(r.total_ns, t);
    }
}
