//! One frame's payload: a `Sample` encoded as the change from the previous one.
//!
//! A key frame is the same encoding against `Sample::default()`, so there is one code path.
//! Layout is columnar (all count residuals together, all bucket indices together, ...) because
//! zstd then finds the same structure frame after frame and codes the noisy columns apart from
//! the repetitive ones. Every difference is a wrapping u64 difference stored as a zigzag varint
//! (postcard's i64), so any u64 round-trips exactly, including counters that go backwards.

use profiler_common::hist;
use serde::{Deserialize, Serialize};

use super::keys::{apply_keys, encode_keys, KeysDelta};
use crate::sample::{EvKey, EvStat, Hist, ProgStat, Sample, Stat, VmInfo};

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
/// Histograms (format 2): every bucket of the old histogram plus the buckets that appeared gets
/// one `hist_diff` value, so which buckets changed is never spelled out (at 1 s most of a busy
/// key's buckets change). Each value is the growth minus `share`, except the old histogram's
/// largest bucket: its growth follows from `count` and the others, and its value is only the
/// (normally zero) disagreement. Format 1 listed changed buckets with their gaps instead.
#[derive(Serialize, Deserialize, Default, Debug)]
struct StatColumns {
    /// Count growth.
    count: Vec<i64>,
    /// sum_ns minus the growth predicted from bucket midpoints.
    sum: Vec<i64>,
    min: Vec<i64>,
    max: Vec<i64>,
    /// Per entry: buckets that appeared (format 1: buckets that changed).
    hist_len: Vec<u32>,
    /// Their gap-coded indices.
    hist_gap: Vec<u16>,
    /// Bucket growth residuals (see above).
    hist_diff: Vec<i64>,
    /// (entry, whole histogram) where a histogram is not sorted/sparse and cannot be merged.
    hist_raw: Vec<(u32, Hist)>,
}

#[derive(Serialize, Deserialize, Default, Debug)]
pub(crate) struct Payload {
    mono: i64,
    wall: i64,
    stat_keys: KeysDelta,
    stats: StatColumns,
    flight_keys: KeysDelta,
    flight: Vec<i64>,
    /// Whole vector when its length changed, else per-slot differences.
    counters_full: Option<Vec<u64>>,
    counters: Vec<i64>,
    /// Whole list when the program set changed, else (run_cnt, run_time_ns) differences.
    progs_full: Option<Vec<ProgStat>>,
    progs: Vec<(i64, i64)>,
    /// VM metadata is stored only when it changes (and in key frames).
    vms_gone: Vec<u32>,
    pub(super) vms_set: Vec<(u32, VmInfo)>,
    /// Sub-reason evidence: keys gone, and (key, count, sum, last) differences for keys that
    /// changed or appeared. Few hundred keys at most, so a plain list does.
    ev_gone: Vec<EvKey>,
    ev_set: Vec<(EvKey, i64, i64, i64)>,
}

/// Sorted, unique bucket indices and no zero counts: the form the merge below reproduces.
fn canonical(h: &Hist) -> bool {
    h.buckets.iter().all(|&(_, c)| c != 0) && h.buckets.windows(2).all(|w| w[0].0 < w[1].0)
}

fn midpoint(b: u16) -> u64 {
    let b = b as usize;
    if b >= hist::BUCKETS {
        return 0;
    }
    let (lo, hi) = (hist::lower(b), hist::upper(b));
    lo + (hi - lo) / 2
}

fn encode_stat(c: &mut StatColumns, entry: u32, old: &Stat, new: &Stat) {
    let mut predicted = 0u64;
    let grown = new.count.wrapping_sub(old.count);
    if canonical(&old.hist) && canonical(&new.hist) {
        let total = hist_total(&old.hist.buckets);
        let omit = largest(&old.hist.buckets);
        let (mut added, mut last) = (0u32, None::<u16>);
        let (mut rest, mut omitted) = (grown, None::<(usize, u64)>);
        for (b, oc, nc) in union(&old.hist.buckets, &new.hist.buckets) {
            if oc == 0 {
                c.hist_gap.push(last.map_or(b, |l| b - l - 1));
                last = Some(b);
                added += 1;
            }
            let d = nc.wrapping_sub(oc);
            predicted = predicted.wrapping_add(d.wrapping_mul(midpoint(b)));
            if Some(b) == omit {
                omitted = Some((c.hist_diff.len(), d));
                c.hist_diff.push(0);
            } else {
                c.hist_diff.push(diff(d, share(oc, grown, total)));
                rest = rest.wrapping_sub(d);
            }
        }
        if let Some((at, d)) = omitted {
            c.hist_diff[at] = diff(d, rest);
        }
        c.hist_len.push(added);
    } else {
        c.hist_len.push(0);
        c.hist_raw.push((entry, new.hist.clone()));
    }
    c.count.push(grown as i64);
    c.sum
        .push(diff(new.sum_ns, old.sum_ns.wrapping_add(predicted)));
    c.min.push(diff(new.min_ns, old.min_ns));
    c.max.push(diff(new.max_ns, old.max_ns));
}

/// Bucket index of the largest count (the first of equals); None for an empty histogram.
fn largest(b: &[(u16, u64)]) -> Option<u16> {
    let mut best: Option<(u16, u64)> = None;
    for &(i, n) in b {
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((i, n));
        }
    }
    best.map(|(i, _)| i)
}

/// (bucket, old count, new count) over the union of two sorted bucket lists.
fn union<'a>(
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

fn hist_total(b: &[(u16, u64)]) -> u64 {
    b.iter().fold(0u64, |t, (_, c)| t.wrapping_add(*c))
}

/// A bucket's expected growth: the key's new exits spread like its history so far. Coding the
/// difference from this centres every bucket's column value on zero, which compresses better.
fn share(old: u64, grown: u64, total: u64) -> u64 {
    if total == 0 {
        return 0;
    }
    (old as u128 * grown as u128 / total as u128) as u64
}

/// Reads `StatColumns` back entry by entry.
struct StatReader<'a> {
    c: &'a StatColumns,
    version: u32,
    gap_pos: usize,
    diff_pos: usize,
    raw_pos: usize,
}

impl StatReader<'_> {
    fn apply(&mut self, entry: usize, s: &mut Stat) -> Result<(), CodecError> {
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
                let mut at = 0u32;
                let mut added = Vec::with_capacity(n);
                for &gap in gaps {
                    let b = at + gap as u32;
                    added.push((
                        u16::try_from(b).map_err(|_| "bucket index out of range")?,
                        0,
                    ));
                    at = b + 1;
                }
                let changes = if self.version == 1 {
                    let d = take(&c.hist_diff, &mut self.diff_pos, n)?;
                    self.changes_v1(&s.hist.buckets, &added, d, grown)?
                } else {
                    self.changes(&s.hist.buckets, &added, grown)?
                };
                for &(b, d) in &changes {
                    predicted = predicted.wrapping_add((d as u64).wrapping_mul(midpoint(b)));
                }
                s.hist.buckets = merge_hist(&s.hist.buckets, &changes);
            }
        }
        s.sum_ns = undiff(s.sum_ns.wrapping_add(predicted), get(&c.sum)?);
        s.min_ns = undiff(s.min_ns, get(&c.min)?);
        s.max_ns = undiff(s.max_ns, get(&c.max)?);
        Ok(())
    }

    /// Format 2: one value per bucket of old ∪ added, the largest old bucket derived.
    fn changes(
        &mut self,
        old: &[(u16, u64)],
        added: &[(u16, u64)],
        grown: u64,
    ) -> Result<Vec<(u16, i64)>, CodecError> {
        if added.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("bucket indices out of order".into());
        }
        let total = hist_total(old);
        let omit = largest(old);
        let mut changes = Vec::with_capacity(old.len() + added.len());
        let (mut rest, mut omitted) = (grown, None::<(usize, i64)>);
        for (b, oc, _) in union(old, added) {
            let r = *self
                .c
                .hist_diff
                .get(self.diff_pos)
                .ok_or("stat columns too short")?;
            self.diff_pos += 1;
            if Some(b) == omit {
                omitted = Some((changes.len(), r));
                changes.push((b, 0));
            } else {
                let d = undiff(share(oc, grown, total), r);
                rest = rest.wrapping_sub(d);
                changes.push((b, d as i64));
            }
        }
        if let Some((at, r)) = omitted {
            changes[at].1 = undiff(rest, r) as i64;
        }
        Ok(changes)
    }

    /// Format 1: the changed buckets are `gaps`, each with a residual against `share`.
    fn changes_v1(
        &self,
        old: &[(u16, u64)],
        changed: &[(u16, u64)],
        d: &[i64],
        grown: u64,
    ) -> Result<Vec<(u16, i64)>, CodecError> {
        let total = hist_total(old);
        let mut changes = Vec::with_capacity(changed.len());
        for (&(b, _), &r) in changed.iter().zip(d) {
            let old_c = old
                .binary_search_by_key(&b, |(i, _)| *i)
                .map_or(0, |i| old[i].1);
            changes.push((b, undiff(share(old_c, grown, total), r) as i64));
        }
        Ok(changes)
    }
}

/// The next `n` values of a column.
fn take<'a, T>(v: &'a [T], pos: &mut usize, n: usize) -> Result<&'a [T], CodecError> {
    let end = pos.checked_add(n).ok_or("stat columns too short")?;
    let out = v.get(*pos..end).ok_or("stat columns too short")?;
    *pos = end;
    Ok(out)
}

/// Old buckets with sorted changes applied; buckets that reach zero disappear.
fn merge_hist(old: &[(u16, u64)], changes: &[(u16, i64)]) -> Vec<(u16, u64)> {
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

/// The payload that turns `old` into `new`.
pub(crate) fn encode(old: &Sample, new: &Sample) -> Payload {
    let mut p = Payload {
        mono: diff(new.mono_ns, old.mono_ns),
        wall: diff(new.wall_ms, old.wall_ms),
        ..Default::default()
    };
    let (keys, vals) = encode_keys(&old.stats, &new.stats);
    p.stat_keys = keys;
    let zero = Stat::default();
    for (e, (o, n)) in vals.into_iter().enumerate() {
        encode_stat(&mut p.stats, e as u32, o.unwrap_or(&zero), n);
    }
    let (keys, vals) = encode_keys(&old.in_flight, &new.in_flight);
    p.flight_keys = keys;
    p.flight = vals
        .into_iter()
        .map(|(o, n)| diff(*n, o.copied().unwrap_or(0)))
        .collect();

    if old.counters.len() == new.counters.len() {
        p.counters = new
            .counters
            .iter()
            .zip(&old.counters)
            .map(|(n, o)| diff(*n, *o))
            .collect();
    } else {
        p.counters_full = Some(new.counters.clone());
    }
    let same_progs = old.progs.len() == new.progs.len()
        && old
            .progs
            .iter()
            .zip(&new.progs)
            .all(|(o, n)| o.name == n.name);
    if same_progs {
        p.progs = (new.progs.iter().zip(&old.progs))
            .map(|(n, o)| {
                (
                    diff(n.run_cnt, o.run_cnt),
                    diff(n.run_time_ns, o.run_time_ns),
                )
            })
            .collect();
    } else {
        p.progs_full = Some(new.progs.clone());
    }
    p.vms_gone = old
        .vms
        .keys()
        .filter(|pid| !new.vms.contains_key(pid))
        .copied()
        .collect();
    p.vms_set = (new.vms.iter())
        .filter(|(pid, vm)| old.vms.get(pid) != Some(vm))
        .map(|(pid, vm)| (*pid, vm.clone()))
        .collect();
    p.ev_gone = (old.evidence.keys())
        .filter(|k| !new.evidence.contains_key(k))
        .copied()
        .collect();
    let zero = EvStat::default();
    p.ev_set = (new.evidence.iter())
        .filter(|(k, v)| old.evidence.get(k) != Some(v))
        .map(|(k, n)| {
            let o = old.evidence.get(k).unwrap_or(&zero);
            (
                *k,
                diff(n.count, o.count),
                diff(n.sum, o.sum),
                diff(n.last, o.last),
            )
        })
        .collect();
    p
}

/// Turn `s` (the previous sample) into the next one, reading a payload of format `version`.
/// On error `s` is left part-updated and must be discarded.
pub(crate) fn apply(s: &mut Sample, p: &Payload, version: u32) -> Result<(), CodecError> {
    s.mono_ns = undiff(s.mono_ns, p.mono);
    s.wall_ms = undiff(s.wall_ms, p.wall);

    let entries = apply_keys(&mut s.stats, &p.stat_keys)?;
    let c = &p.stats;
    let n = entries.len();
    if [
        c.count.len(),
        c.sum.len(),
        c.min.len(),
        c.max.len(),
        c.hist_len.len(),
    ] != [n; 5]
    {
        return Err("stat columns disagree with keys".into());
    }
    let mut r = StatReader {
        c,
        version,
        gap_pos: 0,
        diff_pos: 0,
        raw_pos: 0,
    };
    for (e, (k, _)) in entries.into_iter().enumerate() {
        r.apply(e, s.stats.entry(k).or_default())?;
    }
    if r.gap_pos != c.hist_gap.len()
        || r.diff_pos != c.hist_diff.len()
        || r.raw_pos != c.hist_raw.len()
    {
        return Err("unused histogram data".into());
    }

    let entries = apply_keys(&mut s.in_flight, &p.flight_keys)?;
    if entries.len() != p.flight.len() {
        return Err("in-flight values disagree with keys".into());
    }
    for ((k, _), d) in entries.into_iter().zip(&p.flight) {
        let v = s.in_flight.entry(k).or_default();
        *v = undiff(*v, *d);
    }

    if let Some(full) = &p.counters_full {
        s.counters = full.clone();
    } else if p.counters.len() == s.counters.len() {
        for (c, d) in s.counters.iter_mut().zip(&p.counters) {
            *c = undiff(*c, *d);
        }
    } else {
        return Err("counter deltas disagree in length".into());
    }
    if let Some(full) = &p.progs_full {
        s.progs = full.clone();
    } else if p.progs.len() == s.progs.len() {
        for (pr, (dc, dt)) in s.progs.iter_mut().zip(&p.progs) {
            pr.run_cnt = undiff(pr.run_cnt, *dc);
            pr.run_time_ns = undiff(pr.run_time_ns, *dt);
        }
    } else {
        return Err("program deltas disagree in length".into());
    }
    for pid in &p.vms_gone {
        s.vms.remove(pid);
    }
    for (pid, vm) in &p.vms_set {
        s.vms.insert(*pid, vm.clone());
    }
    for k in &p.ev_gone {
        s.evidence.remove(k);
    }
    for (k, dc, ds, dl) in &p.ev_set {
        let v = s.evidence.entry(*k).or_default();
        v.count = undiff(v.count, *dc);
        v.sum = undiff(v.sum, *ds);
        v.last = undiff(v.last, *dl);
    }
    Ok(())
}
