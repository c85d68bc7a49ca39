//! Reading format 1 stat columns (files written before format 2 must keep replaying).
//!
//! Format 1 kept every stat value in the zstd payload: per entry a count, sum and min/max
//! difference, the changed buckets gap-coded in `hist_gap` (`hist_len` of them), each with a
//! residual in `hist_diff` against `share`; sum residuals against bucket midpoints.

use super::delta::{hist_total, merge_hist, midpoint, undiff, CodecError, StatColumns};
use crate::sample::Stat;

/// A bucket's expected growth: the key's new exits spread like its history so far.
fn share(old: u64, grown: u64, total: u64) -> u64 {
    if total == 0 {
        return 0;
    }
    (old as u128 * grown as u128 / total as u128) as u64
}

/// Reads format 1 `StatColumns` back entry by entry.
pub(super) struct StatReader<'a> {
    pub(super) c: &'a StatColumns,
    pub(super) gap_pos: usize,
    pub(super) diff_pos: usize,
    pub(super) raw_pos: usize,
}

impl StatReader<'_> {
    pub(super) fn apply(&mut self, entry: usize, s: &mut Stat) -> Result<(), CodecError> {
        let c = self.c;
        let short = || "stat columns too short".to_string();
        let n = *c.hist_len.get(entry).ok_or_else(short)? as usize;
        let get = |v: &[i64]| v.get(entry).copied().ok_or_else(short);
        let grown = get(&c.count)? as u64;
        s.count = s.count.wrapping_add(grown);
        let mut predicted = 0u64;
        match c.hist_raw.get(self.raw_pos) {
            Some((e, h)) if *e as usize == entry => {
                s.hist = h.clone();
                self.raw_pos += 1;
            }
            _ => {
                let gaps = take(&c.hist_gap, &mut self.gap_pos, n)?;
                let d = take(&c.hist_diff, &mut self.diff_pos, n)?;
                let old = &s.hist.buckets;
                let total = hist_total(old);
                let (mut at, mut changes) = (0u32, Vec::with_capacity(n));
                for (&gap, &r) in gaps.iter().zip(d) {
                    let b = at + gap as u32;
                    let b = u16::try_from(b).map_err(|_| "bucket index out of range")?;
                    at = u32::from(b) + 1;
                    let old_c = old
                        .binary_search_by_key(&b, |(i, _)| *i)
                        .map_or(0, |i| old[i].1);
                    let d = undiff(share(old_c, grown, total), r);
                    predicted = predicted.wrapping_add(d.wrapping_mul(midpoint(b)));
                    changes.push((b, d as i64));
                }
                s.hist.buckets = merge_hist(old, &changes);
            }
        }
        s.sum_ns = undiff(s.sum_ns.wrapping_add(predicted), get(&c.sum)?);
        s.min_ns = undiff(s.min_ns, get(&c.min)?);
        s.max_ns = undiff(s.max_ns, get(&c.max)?);
        Ok(())
    }

    pub(super) fn finish(&self) -> Result<(), CodecError> {
        let c = self.c;
        if self.gap_pos != c.hist_gap.len()
            || self.diff_pos != c.hist_diff.len()
            || self.raw_pos != c.hist_raw.len()
        {
            return Err("unused histogram data".into());
        }
        Ok(())
    }
}

/// The next `n` values of a column.
fn take<'a, T>(v: &'a [T], pos: &mut usize, n: usize) -> Result<&'a [T], CodecError> {
    let end = pos.checked_add(n).ok_or("stat columns too short")?;
    let out = v.get(*pos..end).ok_or("stat columns too short")?;
    *pos = end;
    Ok(out)
}
