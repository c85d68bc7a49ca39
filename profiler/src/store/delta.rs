//! The pieces of the stat encoding that codec.rs, stats.rs, keys.rs and v1.rs share: wrapping
//! differences, the stat columns, and histogram bucket helpers. Below all of them, so none
//! imports another back.

use profiler_common::hist;
use serde::{Deserialize, Serialize};

use crate::sample::Hist;

/// Why a payload could not be applied (the caller adds file and offset).
pub(crate) type CodecError = String;

pub(super) fn diff(new: u64, old: u64) -> i64 {
    new.wrapping_sub(old) as i64
}

pub(super) fn undiff(old: u64, d: i64) -> u64 {
    old.wrapping_add(d as u64)
}

/// Stat changes, one entry per changed key then one per added key (added ones against zero).
///
/// Format 2 leaves `count`, `sum` and `hist_diff` empty (those values are range coded, see
/// stats.rs); `hist_len`/`hist_gap` give the buckets that appeared. Format 1 filled all columns
/// and `hist_gap` listed the buckets that changed (see v1.rs).
#[derive(Serialize, Deserialize, Default, Debug, Clone)]
pub(super) struct StatColumns {
    /// Count growth (format 1 only).
    pub(super) count: Vec<i64>,
    /// sum_ns minus the growth predicted from bucket midpoints (format 1 only).
    pub(super) sum: Vec<i64>,
    pub(super) min: Vec<i64>,
    pub(super) max: Vec<i64>,
    /// Per entry: buckets that appeared (format 1: buckets that changed).
    pub(super) hist_len: Vec<u32>,
    /// Their gap-coded indices.
    pub(super) hist_gap: Vec<u16>,
    /// Bucket growth residuals (format 1 only).
    pub(super) hist_diff: Vec<i64>,
    /// (entry, whole histogram) where a histogram is not sorted/sparse and cannot be merged.
    pub(super) hist_raw: Vec<(u32, Hist)>,
}

/// Sorted, unique bucket indices and no zero counts: the form the merge below reproduces.
pub(super) fn canonical(h: &Hist) -> bool {
    h.buckets.iter().all(|&(_, c)| c != 0) && h.buckets.windows(2).all(|w| w[0].0 < w[1].0)
}

pub(super) fn midpoint(b: u16) -> u64 {
    let b = b as usize;
    if b >= hist::BUCKETS {
        return 0;
    }
    let (lo, hi) = (hist::lower(b), hist::upper(b));
    lo + (hi - lo) / 2
}

/// Bucket index of the largest count (the first of equals); None for an empty histogram.
pub(super) fn largest(b: &[(u16, u64)]) -> Option<u16> {
    let mut best: Option<(u16, u64)> = None;
    for &(i, n) in b {
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((i, n));
        }
    }
    best.map(|(i, _)| i)
}

/// (bucket, old count, new count) over the union of two sorted bucket lists.
pub(super) fn union<'a>(
    old: &'a [(u16, u64)],
    new: &'a [(u16, u64)],
) -> impl Iterator<Item = (u16, u64, u64)> + 'a {
    let (mut o, mut n) = (old.iter().peekable(), new.iter().peekable());
    std::iter::from_fn(move || match (o.peek(), n.peek()) {
        (Some(&&(ob, oc)), Some(&&(nb, nc))) if ob == nb => {
            o.next();
            n.next();
            Some((ob, oc, nc))
        }
        (Some(&&(ob, oc)), Some(&&(nb, _))) if ob < nb => {
            o.next();
            Some((ob, oc, 0))
        }
        (Some(&&(ob, oc)), None) => {
            o.next();
            Some((ob, oc, 0))
        }
        (_, Some(&&(nb, nc))) => {
            n.next();
            Some((nb, 0, nc))
        }
        (None, None) => None,
    })
}

pub(super) fn hist_total(b: &[(u16, u64)]) -> u64 {
    b.iter().fold(0u64, |t, (_, c)| t.wrapping_add(*c))
}

/// Old buckets with sorted changes applied; buckets that reach zero disappear.
pub(super) fn merge_hist(old: &[(u16, u64)], changes: &[(u16, i64)]) -> Vec<(u16, u64)> {
    let mut out = Vec::with_capacity(old.len() + changes.len());
    let (mut o, mut c) = (old.iter().peekable(), changes.iter().peekable());
    loop {
        let (b, v) = match (o.peek(), c.peek()) {
            (Some(&&(ob, oc)), Some(&&(cb, d))) if ob == cb => {
                o.next();
                c.next();
                (ob, undiff(oc, d))
            }
            (Some(&&(ob, oc)), Some(&&(cb, _))) if ob < cb => {
                o.next();
                (ob, oc)
            }
            (Some(&&(ob, oc)), None) => {
                o.next();
                (ob, oc)
            }
            (_, Some(&&(cb, d))) => {
                c.next();
                (cb, undiff(0, d))
            }
            (None, None) => break,
        };
        if v != 0 {
            out.push((b, v));
        }
    }
    out
}
