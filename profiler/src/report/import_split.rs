//! A VM's per-VCPU tables read in place of its all-VCPUs table (see `import_overlap`): each
//! vCPU row's time is chosen within what its own table printed (Avg, Time%, footer) so that
//! the rows of one reason also add up to a time the all-VCPUs table's numbers allow. Then the
//! VM's table printed again gives the all-VCPUs table's digits back, and each vCPU's its own.
//!
//! Alternating moves, each within every row's own range: a reason whose vCPU rows add up to
//! less (more) than the all-VCPUs table allows gets more (less) time; a vCPU whose rows no
//! longer add up to its table's total gives or takes the difference where its reasons have
//! room. When that finds no choice (the tables were not of the same exits), each table keeps
//! its own times. The VM's total is the sum of its vCPUs' footers, which may differ from the
//! all-VCPUs table's own footer in its last printed digit.

use std::collections::HashMap;

use super::{import_time, perf_rows::Section};

/// A row's time and the whole ns it may move in.
#[derive(Clone, Copy)]
struct Cell {
    t: u64,
    lo: u64,
    hi: u64,
}

/// Times for the rows of each of `parts` (the per-VCPU tables of the VM of `all`), in row
/// order, adding up reason by reason to times `all` allows; None when no such times exist.
pub(crate) fn split(all: &Section, parts: &[&Section]) -> Option<Vec<Vec<u64>>> {
    let mut cells: Vec<Vec<Cell>> = parts.iter().map(|p| bounded(p)).collect();
    let owns: Vec<u64> = cells.iter().map(|c| sum(c.iter().map(|c| c.t))).collect();
    let whole = bounded(all);
    let reasons: HashMap<(&str, usize), Cell> = keyed(all).zip(whole.iter().copied()).collect();
    // Which reason each cell is.
    let of: Vec<Vec<(&str, usize)>> = parts.iter().map(|p| keyed(p).collect()).collect();
    if of.iter().flatten().any(|k| !reasons.contains_key(k)) {
        return None;
    }
    let mut cells_of: HashMap<(&str, usize), Vec<(usize, usize)>> = HashMap::new();
    for (k, keys) in of.iter().enumerate() {
        for (i, key) in keys.iter().enumerate() {
            cells_of.entry(*key).or_default().push((k, i));
        }
    }
    for _ in 0..32 {
        let cols = columns(&cells, &of);
        // Reasons outside what the all-VCPUs table allows: moved in.
        for (key, r) in &reasons {
            let col = cols.get(key).copied().unwrap_or(0);
            let want = col.clamp(r.lo, r.hi);
            if want != col {
                let idx = cells_of.get(key).map_or(&[][..], Vec::as_slice);
                shift(&mut cells, idx, col, want, |_, _| u64::MAX);
            }
        }
        // vCPUs off their own totals: moved back, where their reasons have room to spare.
        let cols = columns(&cells, &of);
        for k in 0..cells.len() {
            let have = sum(cells[k].iter().map(|c| c.t));
            let idx: Vec<(usize, usize)> = (0..cells[k].len()).map(|i| (k, i)).collect();
            let spare = |c: (usize, usize), up: bool| {
                let r = reasons[&of[c.0][c.1]];
                let col = cols[&of[c.0][c.1]];
                if up {
                    r.hi.saturating_sub(col)
                } else {
                    col.saturating_sub(r.lo)
                }
            };
            shift(&mut cells, &idx, have, owns[k], spare);
        }
        let cols = columns(&cells, &of);
        let fits = reasons.iter().all(|(key, r)| {
            let col = cols.get(key).copied().unwrap_or(0);
            (r.lo..=r.hi).contains(&col)
        });
        let totals = cells
            .iter()
            .zip(&owns)
            .all(|(c, own)| sum(c.iter().map(|c| c.t)) == *own);
        if fits && totals {
            return Some(
                cells
                    .iter()
                    .map(|c| c.iter().map(|c| c.t).collect())
                    .collect(),
            );
        }
    }
    None
}

/// Each row's time and the whole ns it may move in.
fn bounded(sec: &Section) -> Vec<Cell> {
    import_time::row_ranges(sec)
        .into_iter()
        .map(|(t, r)| match r {
            Some((lo, hi)) => Cell {
                t,
                lo: lo.ceil().max(0.0) as u64,
                hi: hi.floor().max(0.0) as u64,
            },
            None => Cell { t, lo: t, hi: t },
        })
        .collect()
}

fn sum(v: impl Iterator<Item = u64>) -> u64 {
    v.fold(0, u64::saturating_add)
}

/// Each reason's time summed over the vCPUs.
fn columns<'a>(
    cells: &[Vec<Cell>],
    of: &[Vec<(&'a str, usize)>],
) -> HashMap<(&'a str, usize), u64> {
    let mut cols = HashMap::new();
    for (row, keys) in cells.iter().zip(of) {
        for (c, key) in row.iter().zip(keys) {
            let e: &mut u64 = cols.entry(*key).or_insert(0);
            *e = e.saturating_add(c.t);
        }
    }
    cols
}

/// Moves the cells `idx` (adding up to `have`) towards `want`, each within its range and
/// within `spare(cell, up)`, the roomiest first.
fn shift(
    cells: &mut [Vec<Cell>],
    idx: &[(usize, usize)],
    have: u64,
    want: u64,
    spare: impl Fn((usize, usize), bool) -> u64,
) {
    let up = want > have;
    let mut left = want.abs_diff(have);
    let room = |cells: &[Vec<Cell>], at: (usize, usize)| {
        let c = cells[at.0][at.1];
        let own = if up {
            c.hi.saturating_sub(c.t)
        } else {
            c.t.saturating_sub(c.lo)
        };
        own.min(spare(at, up))
    };
    let mut order = idx.to_vec();
    order.sort_by_key(|&at| std::cmp::Reverse(room(cells, at)));
    for at in order {
        let step = room(cells, at).min(left);
        let c = &mut cells[at.0][at.1];
        c.t = if up {
            c.t.saturating_add(step)
        } else {
            c.t.saturating_sub(step)
        };
        left -= step;
    }
}

/// (name, how many rows of that name came before) of each row: perf's UNKNOWN rows are several.
fn keyed(sec: &Section) -> impl Iterator<Item = (&str, usize)> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    sec.rows.iter().map(move |r| {
        let n = seen.entry(&r.name).or_insert(0);
        *n += 1;
        (r.name.as_str(), *n - 1)
    })
}
